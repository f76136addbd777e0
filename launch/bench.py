"""Benchmarks (never timed tests): `python -m launch.bench --what=render|recognizers|search|regions|efficiency|all
[--out=FILE.json] [--compare=OLD.json]`.

Each benchmark prints one JSON row per measured configuration and, with --out, writes the list as JSON
(atomically); the efficiency benchmark (also part of `all`) writes its table and plot beside it
(FILE_efficiency.md, FILE_efficiency.png). --compare prints, per row also in OLD.json, new / old of each number.
"""
from __future__ import annotations

import importlib
import json
import os

from absl import app, flags

from simadv_jax import devices
from simadv_jax.report.files import write_json_atomic

_BENCHMARKS = {
    "render": "simadv_jax.benchmarks.render",
    "recognizers": "simadv_jax.benchmarks.recognizers",
    "search": "simadv_jax.benchmarks.search",
    "regions": "simadv_jax.benchmarks.regions",
    "efficiency": "simadv_jax.benchmarks.efficiency",
    "all": "simadv_jax.benchmarks.suite",
}

WHAT = flags.DEFINE_enum("what", "render", sorted(_BENCHMARKS), "Which benchmark to run (all: every one).")
OUT = flags.DEFINE_string("out", None, "Optional JSON file for the measured rows.")
COMPARE = flags.DEFINE_string("compare", None, "A JSON file of an earlier run: print new / old per matching row.")
BATCHES = flags.DEFINE_list("batches", None, "Batch sizes to measure (default: each benchmark's own; efficiency: "
                            "samples per iteration over all runs).")
CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 0, "JAX devices on a CPU (0: one per core, as launch.search "
                                   "uses); 1 measures a single device.")


def _read_rows(path: str) -> list:
    """The rows of an earlier --out file (a JSON list)."""
    with open(path) as f:
        rows = json.load(f)
    if not isinstance(rows, list):
        raise ValueError("not a list of rows")
    return rows


def main(argv):
    del argv
    try:
        batches = None if BATCHES.value is None else tuple(int(b) for b in BATCHES.value)
    except ValueError:
        raise app.UsageError(f"--batches: expected integers, got {BATCHES.value}")
    try:
        devices.configure(CPU_DEVICES.value)
    except ValueError as e:
        raise app.UsageError(str(e))
    old = None
    if COMPARE.value:  # read first: a bad file fails before the run, not after
        try:
            old = _read_rows(COMPARE.value)
        except (OSError, ValueError) as e:
            raise app.UsageError(f"--compare: cannot read {COMPARE.value}: {e}")
    module = importlib.import_module(_BENCHMARKS[WHAT.value])
    rows = []
    for row in module.run(**({} if batches is None else {"batches": batches})):
        print(json.dumps(row), flush=True)
        rows.append(row)
    if OUT.value:
        write_json_atomic(OUT.value, rows)
        if any(row.get("what") == "efficiency" for row in rows):
            from simadv_jax.benchmarks import efficiency

            efficiency.write_report(rows, os.path.splitext(OUT.value)[0])
    if old is not None:
        from simadv_jax.benchmarks import suite

        for line in suite.compare(rows, old):
            print(line)


if __name__ == "__main__":
    app.run(main)

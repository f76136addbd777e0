"""Benchmarks (never timed tests): `python -m launch.bench --what=render|recognizers|search [--out=FILE.json]`.

Each benchmark prints one JSON row per measured configuration and, with --out, writes the
list as JSON (atomically).
"""
from __future__ import annotations

import importlib
import json

from absl import app, flags

from simadv_jax import devices
from simadv_jax.report.files import write_json_atomic

_BENCHMARKS = {
    "render": "simadv_jax.benchmarks.render",
    "recognizers": "simadv_jax.benchmarks.recognizers",
    "search": "simadv_jax.benchmarks.search",
    "regions": "simadv_jax.benchmarks.regions",
}

WHAT = flags.DEFINE_enum("what", "render", sorted(_BENCHMARKS), "Which benchmark to run.")
OUT = flags.DEFINE_string("out", None, "Optional JSON file for the measured rows.")
BATCHES = flags.DEFINE_list("batches", ["1", "16", "64"], "Batch sizes to measure.")
CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 0, "JAX devices on a CPU (0: one per core, as launch.search "
                                   "uses); 1 measures a single device.")


def main(argv):
    del argv
    try:
        batches = tuple(int(b) for b in BATCHES.value)
    except ValueError:
        raise app.UsageError(f"--batches: expected integers, got {BATCHES.value}")
    try:
        devices.configure(CPU_DEVICES.value)
    except ValueError as e:
        raise app.UsageError(str(e))
    module = importlib.import_module(_BENCHMARKS[WHAT.value])
    rows = []
    for row in module.run(batches=batches):
        print(json.dumps(row), flush=True)
        rows.append(row)
    if OUT.value:
        write_json_atomic(OUT.value, rows)


if __name__ == "__main__":
    app.run(main)

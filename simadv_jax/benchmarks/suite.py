"""Every benchmark in one run: `python -m launch.bench --what=all --out=bench.json [--compare=OLD.json]`.

Rows (each with "what"): the machine's measured matmul peak ("matmul_peak": the best of a jitted float32
2048 x 2048 product, 2 n^3 FLOPs); render; recognizers, each with its fraction of that peak (GFLOPs per image x
images/s / peak); dlib's ResNet port against dlib's own code (`dlib-bin`) side by side at batch 64
("dlib_vs_dlib_bin", timed alternately); the search step; the naive design the batched one replaces at
K x R = 256 ("naive_vs_batched": one iteration of REINFORCE as a per-sample Python loop, one jitted render of the
pair and one recognizer call per sample on one device, against the run loop's batched, sharded step); regions;
efficiency (`benchmarks.efficiency`).

`compare(rows, old)` matches rows by their identifying fields (IDENTITY) and gives new / old of every other number.
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from simadv_jax.benchmarks import efficiency, recognizers, regions, render, search
from simadv_jax import search as search_loop
from simadv_jax.search import experiment
from simadv_jax.search.config import SearchConfig
from simadv_jax.setup import build_setup

MATMUL = 2048
IDENTITY = ("what", "name", "recognizer", "resolution", "batch", "rung", "strategy", "runs", "samples_per_iteration",
            "supersample", "render_group", "input_size", "run", "devices", "num_devices", "device", "rasterizer")
NAIVE_RUNS, NAIVE_SAMPLES = 32, 8


def _best(fn, *args, repeats: int = 5) -> float:
    """Fastest of `repeats` calls (after one warm-up), seconds."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak(size: int = MATMUL) -> dict:
    """{"what": "matmul_peak", "size", "gflops_per_s"}: a jitted float32 size x size product, best of 5."""
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    seconds = _best(jax.jit(jnp.matmul), a, a)
    return {"what": "matmul_peak", "size": size, "gflops_per_s": round(2 * size**3 / seconds / 1e9, 2),
            "device": str(jax.devices()[0].device_kind)}


def dlib_rows(batch: int = 64, repeats: int = 3) -> list[dict]:
    """dlib's ResNet port against dlib's own code on the same chips, timed alternately, each its fastest call."""
    from simadv_jax.recognizers import load

    port, reference = load("dlib_resnet"), load("dlib_reference")
    chips = jax.random.uniform(jax.random.key(0), (batch, port.input_size, port.input_size, 3))
    calls = [(jax.jit(port.embed), port.params), (jax.jit(reference.embed), reference.params)]
    for fn, params in calls:
        jax.block_until_ready(fn(params, chips))
    best = [float("inf")] * 2
    for _ in range(repeats):
        for k, (fn, params) in enumerate(calls):
            start = time.perf_counter()
            jax.block_until_ready(fn(params, chips))
            best[k] = min(best[k], time.perf_counter() - start)
    return [{"what": "dlib_vs_dlib_bin", "batch": batch, "port_images_per_s": round(batch / best[0], 2),
             "dlib_bin_images_per_s": round(batch / best[1], 2), "speedup": round(best[1] / best[0], 2),
             "device": str(jax.devices()[0].device_kind), "devices": len(jax.devices())}]


def naive_vs_batched(runs: int = NAIVE_RUNS, samples: int = NAIVE_SAMPLES, repeats: int = 3) -> dict:
    """One REINFORCE iteration of R x K = runs x samples pairs, as the per-sample loop and as the batched step."""
    config = SearchConfig(space=search.SPACE, runs=runs, samples_per_iteration=samples, stop_at_first=False)
    setup = build_setup(config)
    evaluation, recognizer = setup.evaluation, setup.recognizer
    strategy, initial = experiment.initial_runs(setup, config, "reinforce")
    data, placed = experiment.place(evaluation, evaluation.data, initial)
    batched = experiment.compiled_step(setup, config, "reinforce", strategy, data, placed)
    batched_s = _best(batched, data, placed, repeats=repeats)

    ask = jax.jit(lambda r: search_loop.ask_runs(strategy, r))
    tell = jax.jit(lambda r, a, scores, valid: search_loop.tell_runs(
        strategy, r, a, scores, valid, threshold=evaluation.loss_threshold, stop_at_first=False))
    render_pair = jax.jit(lambda head, rho: evaluation.renderer.render_pairs(head, rho[None], None).image)
    embed = jax.jit(recognizer.embed)
    score = jax.jit(recognizer.score)
    head, params = jax.device_put((evaluation.data.head, evaluation.data.recognizer_params), jax.devices()[0])

    def naive(runs_):
        asked = ask(runs_)
        losses = []
        for rho in np.asarray(asked.flat()):  # one sample at a time
            embeddings = embed(params, render_pair(head, rho))
            losses.append(float(evaluation.scenario.loss(score(embeddings[:1], embeddings[1:])[0])))
        losses = np.asarray(losses, np.float32)
        return tell(runs_, asked, losses, np.isfinite(losses))

    naive_s = _best(naive, initial, repeats=1)
    count = runs * samples
    return {"what": "naive_vs_batched", "batch": count, "runs": runs, "samples_per_iteration": samples,
            "naive_s": round(naive_s, 3), "batched_s": round(batched_s, 3),
            "naive_samples_per_s": round(count / naive_s, 2), "batched_samples_per_s": round(count / batched_s, 2),
            "speedup": round(naive_s / batched_s, 2), "device": str(jax.devices()[0].device_kind),
            "devices": len(jax.devices())}


def run(batches: Optional[Sequence[int]] = None) -> list[dict]:
    """Every benchmark's rows in turn (module docstring); `batches` goes to the ones that take it."""
    sizes = {} if batches is None else {"batches": batches}
    peak = matmul_peak()
    rows = [peak]
    rows += [{"what": "render", **row} for row in render.run(**sizes)]
    for row in recognizers.run(**sizes):
        fraction = (None if row.get("gflops_per_image") is None else
                    round(row["gflops_per_image"] * row["images_per_s"] / peak["gflops_per_s"], 4))
        rows.append({"what": "recognizers", **row, "fraction_of_peak": fraction})
    rows += dlib_rows()
    rows += search.run(**sizes)
    rows.append(naive_vs_batched())
    rows += regions.run(**sizes)
    rows += efficiency.run()
    return rows


def _key(row: dict) -> tuple:
    return tuple((k, str(row[k])) for k in IDENTITY if k in row)


def compare(rows: list[dict], old: list[dict]) -> list[str]:
    """One line per row found in both (by IDENTITY): every numeric field as new / old; rows only in one are
    listed."""
    before = {_key(row): row for row in old}
    lines = []
    for row in rows:
        key = _key(row)
        name = " ".join(f"{k}={v}" for k, v in key)
        if key not in before:
            lines.append(f"{name}: new")
            continue
        previous = before.pop(key)
        ratios = [f"{field} {value:g}/{previous[field]:g} = {value / previous[field]:.3f}"
                  for field, value in row.items()
                  if field not in IDENTITY and isinstance(value, (int, float)) and not isinstance(value, bool)
                  and isinstance(previous.get(field), (int, float)) and previous[field]]
        lines.append(f"{name}: " + ("; ".join(ratios) if ratios else "no numbers to compare"))
    lines += [" ".join(f"{k}={v}" for k, v in key) + ": only in the old file" for key in before]
    return lines

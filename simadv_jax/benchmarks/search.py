"""Search-step throughput against the recognizer alone: `python -m launch.bench --what=search`.

For each batch B (samples per iteration, R = max(B // K, 1) runs of K = min(B, 8) samples), times one step of
the run loop (`search.experiment.compiled_step`) of the reinforce strategy on the embedded head (render both images
of every pair, embed, score, policy update, bookkeeping; with several devices the strategy's half on one device and
the evaluation sharded, as `launch.search` runs it) and, at the same number of images (2B: both images of a pair
counted), the recognizer's embedding alone. ratio = step images/s / recognizer images/s; the target is >= 0.8.

The two are timed alternately, call by call, and each keeps its fastest call, so load from other processes on a
shared machine slows both alike instead of whichever happened to run during a busy moment.
"""
from __future__ import annotations

import time
from typing import Sequence

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from simadv_jax.render.rasterize import resolve_backend

SPACE = "shape[0:5]=-2:2,texture[0:5]=-2:2,yaw=-1:1"


def _time_alternately(first_fn, first_args, second_fn, second_args, repeats: int) -> tuple[float, float, float]:
    """(compile + first call seconds of both, fastest seconds per call of each), calling them in turn."""
    start = time.perf_counter()
    jax.block_until_ready(first_fn(*first_args))
    jax.block_until_ready(second_fn(*second_args))
    compile_s = time.perf_counter() - start
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for k, (fn, args) in enumerate(((first_fn, first_args), (second_fn, second_args))):
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            best[k] = min(best[k], time.perf_counter() - start)
    return compile_s, best[0], best[1]


def run(batches: Sequence[int] = (16, 64), recognizer: str = "dlib_resnet", repeats: int = 7) -> list[dict]:
    """Rows {"what", "recognizer", "batch", "runs", "samples_per_iteration", "images_per_step", "compile_s",
    "step_s", "samples_per_s", "step_images_per_s", "recognizer_images_per_s", "ratio", "device", "devices",
    "rasterizer"} (the visibility pass the renders used: "native" or "jax", see `render.rasterize`)."""
    from simadv_jax.search import experiment
    from simadv_jax.search.config import SearchConfig
    from simadv_jax.setup import build_setup

    setup = build_setup(SearchConfig(recognizer=recognizer, space=SPACE))
    rec, evaluation = setup.recognizer, setup.evaluation
    embed = jax.jit(rec.embed)
    rows = []
    for batch in batches:
        k = min(batch, 8)
        r = max(batch // k, 1)
        # The run loop's own step (with several devices: ask/tell on one device, the evaluation sharded); runs
        # never stop, so every step does the full work.
        config = SearchConfig(recognizer=recognizer, space=SPACE, runs=r, samples_per_iteration=k, stop_at_first=False)
        strategy, runs = experiment.initial_runs(setup, config, "reinforce")
        data, runs = experiment.place(evaluation, evaluation.data, runs)
        step = experiment.compiled_step(setup, config, "reinforce", strategy, data, runs)

        images = 2 * r * k
        pixels = jnp.full((images, rec.input_size, rec.input_size, 3), 0.5, jnp.float32)
        if evaluation.mesh is not None:  # the recognizer alone gets the same devices as the step
            pixels = jax.device_put(pixels, NamedSharding(evaluation.mesh, PartitionSpec("batch")))
        compile_s, step_s, embed_s = _time_alternately(step, (data, runs), embed, (rec.params, pixels), repeats)
        rows.append({
            "what": "search", "recognizer": rec.name, "batch": r * k, "runs": r, "samples_per_iteration": k,
            "images_per_step": images, "compile_s": round(compile_s, 2), "step_s": round(step_s, 4),
            "samples_per_s": round(r * k / step_s, 2), "step_images_per_s": round(images / step_s, 2),
            "recognizer_images_per_s": round(images / embed_s, 2), "ratio": round(embed_s / step_s, 3),
            "device": str(jax.devices()[0].device_kind), "devices": len(jax.devices()),
            "rasterizer": resolve_backend("auto"),
        })
    return rows

"""Flood-fill throughput against the recognizer alone: `python -m launch.bench --what=regions`.

For each batch B, a flood fill (`regions.flood_fill`, B points per step) on the embedded head in the quickstart
space (shape[0:5], texture[0:5], yaw; all 11 dimensions flooded, spacing 0.05) under a threshold every valid point
passes, so that every step scores a full batch and the frontier keeps growing (the bookkeeping of a large region).
After each flood step the recognizer's embedding alone is timed once on as many images as the step rendered (both
images of a pair: the reference moves with the identity), and the evaluation alone (`Evaluation.score_points` of B
points: render, embed, score), so load from other processes slows all three alike; each keeps its fastest call.
ratio = flood images/s / recognizer images/s (target >= 0.8); ratio_vs_evaluation = flood / evaluation alone (what
the flood itself costs). bookkeeping_ms: the flood's own host work per step (the step minus its scoring call): the
frontier, the visited set, the deduplication.
"""
from __future__ import annotations

import time
from typing import Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from simadv_jax.recognizers.base import Recognizer
from simadv_jax.regions import flood_fill
from simadv_jax.render.rasterize import resolve_backend
from simadv_jax.setup import EvaluationSpec, build_setup

SPACE = "shape[0:5]=-2:2,texture[0:5]=-2:2,yaw=-1:1"
SPACING = 0.05
EVERY_POINT = 2.0  # a similarity threshold above any score (cosine <= 1, minus a distance <= 0): all points fail


def run(batches: Sequence[int] = (16, 64), recognizer: Union[str, Recognizer] = "dlib_resnet",
        steps: int = 8) -> list[dict]:
    """Rows {"what", "recognizer", "batch", "dims", "steps", "images_per_point", "compile_s", "points_per_s",
    "flood_images_per_s", "evaluation_images_per_s", "recognizer_images_per_s", "ratio", "ratio_vs_evaluation",
    "bookkeeping_ms", "frontier", "device", "devices", "rasterizer"}; about `steps` full steps are measured after
    the flood's first, smaller ones."""
    name = recognizer if isinstance(recognizer, str) else recognizer.name
    spec = EvaluationSpec(space=SPACE, recognizer=name, threshold=EVERY_POINT)
    rows = []
    for batch in batches:
        setup = build_setup(spec, recognizer=None if isinstance(recognizer, str) else recognizer, batch_size=batch)
        evaluation, rec = setup.evaluation, setup.recognizer
        per_point = 1 if setup.space.reference_is_constant else 2
        images = per_point * evaluation.batch_size
        pixels = jnp.full((images, rec.input_size, rec.input_size, 3), 0.5, jnp.float32)
        if evaluation.mesh is not None:  # the recognizer alone gets the same devices as the evaluation
            pixels = jax.device_put(pixels, NamedSharding(evaluation.mesh, PartitionSpec("batch")))
        embed = jax.jit(rec.embed)
        alone = np.random.default_rng(0).uniform(setup.space.lows, setup.space.highs,
                                                 (evaluation.batch_size, setup.space.size)).astype(np.float32)
        start = time.perf_counter()
        jax.block_until_ready(embed(rec.params, pixels))
        evaluation.score_points(alone)
        compile_s = time.perf_counter() - start
        scoring, timed = [0.0], {"flood": [], "embed": [], "evaluation": [], "bookkeeping": [], "frontier": 0}

        def score(points):
            begin = time.perf_counter()
            scores = evaluation.score_points(points)
            scoring[0] += time.perf_counter() - begin
            return np.where(scores.valid, scores.loss, np.nan)

        mark = [time.perf_counter()]

        def on_step(step):
            now = time.perf_counter()
            if len(step.losses) == evaluation.batch_size:
                timed["flood"].append(now - mark[0])
                timed["bookkeeping"].append(now - mark[0] - scoring[0])
            begin = time.perf_counter()
            jax.block_until_ready(embed(rec.params, pixels))
            timed["embed"].append(time.perf_counter() - begin)
            begin = time.perf_counter()
            evaluation.score_points(alone)
            timed["evaluation"].append(time.perf_counter() - begin)
            timed["frontier"] = step.frontier
            scoring[0] = 0.0
            mark[0] = time.perf_counter()

        flood_fill(score, setup.space.center, SPACING, evaluation.loss_threshold, batch_size=evaluation.batch_size,
                   lower=setup.space.lows, upper=setup.space.highs, on_step=on_step,
                   max_evaluations=(steps + 3) * evaluation.batch_size)
        step_s, embed_s, evaluation_s = min(timed["flood"]), min(timed["embed"]), min(timed["evaluation"])
        rows.append({
            "what": "regions", "recognizer": rec.name, "batch": evaluation.batch_size, "dims": setup.space.size,
            "steps": len(timed["flood"]), "images_per_point": per_point, "compile_s": round(compile_s, 2),
            "points_per_s": round(evaluation.batch_size / step_s, 2),
            "flood_images_per_s": round(images / step_s, 2),
            "evaluation_images_per_s": round(images / evaluation_s, 2),
            "recognizer_images_per_s": round(images / embed_s, 2), "ratio": round(embed_s / step_s, 3),
            "ratio_vs_evaluation": round(evaluation_s / step_s, 3),
            "bookkeeping_ms": round(1000 * float(np.median(timed["bookkeeping"])), 2),
            "frontier": timed["frontier"], "device": str(jax.devices()[0].device_kind),
            "devices": len(jax.devices()), "rasterizer": resolve_backend("auto"),
        })
    return rows

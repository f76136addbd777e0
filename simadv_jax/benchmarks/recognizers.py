"""Recognizer throughput: compile time, images/s and GFLOPs per image of each recognizer at several batch sizes.

Full-size backbones with freshly initialized weights (speed does not depend on the values) at 112x112, and every
real pretrained recognizer (dlib's ResNet port, faceres_deep, faceres, mobileface; the TFJS ones need
`python -m launch.fetch_models`) at its own input size with its real weights, when it loads. FLOPs are XLA's
count for the compiled call (`cost_analysis()["flops"]`, multiply-add = 2) divided by the batch.
`launch.bench --what=recognizers` prints the result as JSON.
"""
from __future__ import annotations

import time
from typing import Sequence

import jax
import jax.numpy as jnp

from simadv_jax.recognizers import zoo

DEFAULT_NAMES = ("ir50", "ir_se50", "ir_cbam50", "mobilefacenet", "dlib_resnet", "faceres_deep", "faceres",
                 "mobileface")


def _embed_function(name: str):
    """(params, apply_fn(params, images), input_size) of a backbone name or a registry recognizer."""
    if name in zoo.BACKBONES:
        model = zoo.create(name)
        images = jnp.zeros((1, 112, 112, 3), jnp.float32)
        variables = jax.jit(model.init)(jax.random.key(0), images)
        return variables, lambda params, x: model.apply(params, x, train=False), 112
    from simadv_jax.recognizers import load

    recognizer = load(name)
    return recognizer.params, recognizer.embed, recognizer.input_size


def run(names: Sequence[str] = DEFAULT_NAMES, batches: Sequence[int] = (1, 16, 64), min_seconds: float = 2.0,
        max_repeats: int = 10) -> list[dict]:
    """Measures each (name, batch): one compile, one warm-up call, then repeats until `min_seconds` or
    `max_repeats`. Returns [{"name", "batch", "input_size", "compile_s", "seconds_per_batch", "images_per_s",
    "gflops_per_image", "repeats", "device"}], or {"name", "error"} for a recognizer that fails to load."""
    rows = []
    device = str(jax.devices()[0].device_kind)
    for name in names:
        try:
            params, apply_fn, size = _embed_function(name)
        except (ImportError, ValueError, OSError) as e:  # FileNotFoundError: not fetched
            rows.append({"name": name, "error": f"{type(e).__name__}: {e}"})
            continue
        for batch in batches:
            images = jnp.full((batch, size, size, 3), 0.5, jnp.float32)
            start = time.perf_counter()
            compiled = jax.jit(apply_fn).lower(params, images).compile()
            compile_s = time.perf_counter() - start
            cost = compiled.cost_analysis()
            flops = (cost[0] if isinstance(cost, (list, tuple)) else cost or {}).get("flops")
            jax.block_until_ready(compiled(params, images))  # warm-up
            repeats, start = 0, time.perf_counter()
            while repeats < max_repeats and (repeats == 0 or time.perf_counter() - start < min_seconds):
                jax.block_until_ready(compiled(params, images))
                repeats += 1
            seconds = (time.perf_counter() - start) / repeats
            rows.append({
                "name": name,
                "batch": batch,
                "input_size": size,
                "compile_s": round(compile_s, 3),
                "seconds_per_batch": round(seconds, 4),
                "images_per_s": round(batch / seconds, 2),
                "gflops_per_image": round(flops / batch / 1e9, 3) if flops else None,
                "repeats": repeats,
                "device": device,
            })
    return rows

"""Shared tiny pieces for simulator/evaluate/search tests: the embedded head and a tiny recognizer."""
import functools

import jax.numpy as jnp
import numpy as np

import flame
from simadv_jax.params import ParamSpace
from simadv_jax.recognizers import pipeline
from simadv_jax.recognizers.base import Recognizer
from simadv_jax.search.config import SearchConfig

TINY_SIZE = 24
TINY_SPACE = "shape[0:2]=-2:2,texture[0:2]=-2:2,yaw=-1:1"


def tiny_recognizer(size: int = TINY_SIZE, dim: int = 16, threshold: float = 0.9, seed: int = 0) -> Recognizer:
    """A fixed random projection of the centred image: (B, size, size, 3) -> (B, dim), cosine score."""
    projection = jnp.asarray(np.random.default_rng(seed).normal(size=(size * size * 3, dim)), jnp.float32)

    def apply_fn(params, images):
        flat = images.reshape(images.shape[0], -1)
        return (flat - jnp.mean(flat, axis=-1, keepdims=True)) @ params["w"]

    return Recognizer(params={"w": projection}, name="tiny_projection", input_size=size, template="arcface112",
                      apply_fn=apply_fn, metric="cosine", threshold=threshold)


def dlib_chip_recognizer() -> Recognizer:
    """The tiny projection recognizer on dlib's 150x150 chip (what --alignment=pipeline crops)."""
    return tiny_recognizer(size=pipeline.CHIP_SIZE).replace(template="dlib150")


@functools.lru_cache(None)
def head():
    return flame.embedded_model(), flame.embedded_texture()


def space(spec: str) -> ParamSpace:
    model, texture = head()
    return ParamSpace.parse(spec, num_shape=model.num_shape, num_texture=texture.num_components,
                            num_expression=model.num_expression)


def tiny_config(**changes) -> SearchConfig:
    """The tiny search of the end-to-end tests: reinforce and uniform, 2 runs x 3 samples x 3 iterations on a
    5-dimensional space, every sample evaluated (no early stop), against the "tiny" recognizer (pass
    `tiny_recognizer()` to build_setup)."""
    values = dict(strategies=("reinforce", "uniform"), runs=2, samples_per_iteration=3, max_iterations=3,
                  stop_at_first=False, recognizer="tiny", space=TINY_SPACE, progress=False, max_saved_adversarials=4)
    return SearchConfig(**{**values, **changes})


def tiny_setup(config: SearchConfig, threshold: float = 0.8):
    """build_setup of `config` on the embedded head with `tiny_recognizer(threshold=threshold)`."""
    from simadv_jax.setup import build_setup

    return build_setup(config, recognizer=tiny_recognizer(threshold=threshold), head=head())


def without_timing(results: dict) -> dict:
    """A results payload without its "timing" (the only part that differs between equal runs)."""
    return {k: v for k, v in results.items() if k != "timing"}

"""Shared tiny pieces for simulator/evaluate/search tests: the embedded head and a tiny recognizer."""
import functools

import jax.numpy as jnp
import numpy as np

import flame
from simadv_jax.params import ParamSpace
from simadv_jax.recognizers.base import Recognizer

TINY_SIZE = 24


def tiny_recognizer(size: int = TINY_SIZE, dim: int = 16, threshold: float = 0.9, seed: int = 0) -> Recognizer:
    """A fixed random projection of the centred image: (B, size, size, 3) -> (B, dim), cosine score."""
    projection = jnp.asarray(np.random.default_rng(seed).normal(size=(size * size * 3, dim)), jnp.float32)

    def apply_fn(params, images):
        flat = images.reshape(images.shape[0], -1)
        return (flat - jnp.mean(flat, axis=-1, keepdims=True)) @ params["w"]

    return Recognizer(params={"w": projection}, name="tiny_projection", input_size=size, template="arcface112",
                      apply_fn=apply_fn, metric="cosine", threshold=threshold)


@functools.lru_cache(None)
def head():
    return flame.embedded_model(), flame.embedded_texture()


def space(spec: str) -> ParamSpace:
    model, texture = head()
    return ParamSpace.parse(spec, num_shape=model.num_shape, num_texture=texture.num_components,
                            num_expression=model.num_expression)

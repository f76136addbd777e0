"""The Recognizer record: everything search code knows about a face recognizer."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

METRICS = ("cosine", "euclidean")


def cosine_similarity(a: jax.Array, b: jax.Array) -> jax.Array:
    """(B, D), (B, D) -> (B,) cosine similarity; zero vectors give 0, never NaN."""
    norm_a = jnp.sqrt(jnp.sum(a * a, axis=-1))
    norm_b = jnp.sqrt(jnp.sum(b * b, axis=-1))
    denom = jnp.maximum(norm_a * norm_b, 1e-12)
    return jnp.sum(a * b, axis=-1) / denom


def euclidean_distance(a: jax.Array, b: jax.Array) -> jax.Array:
    """(B, D), (B, D) -> (B,) Euclidean distance (gradient-safe at a == b)."""
    sq = jnp.sum((a - b) ** 2, axis=-1)
    safe = jnp.where(sq > 0, sq, 1.0)
    return jnp.where(sq > 0, jnp.sqrt(safe), 0.0)


@struct.dataclass
class Recognizer:
    """A face recognizer as search code sees it.

    Attributes:
      params: pytree of weights passed to `apply_fn` (traced).
      name: registry name, e.g. "dlib_resnet".
      input_size: static side length in pixels of the square aligned input crop.
      template: static name of the alignment template (see simadv_jax.render.align),
        e.g. "dlib150" or "arcface112".
      apply_fn: static `(params, images) -> (B, D)` embedding function; images are
        float32 RGB in [0, 1], (B, input_size, input_size, 3).
      metric: static "cosine" (score = cosine similarity) or "euclidean"
        (score = negative Euclidean distance).
      threshold: static decision threshold on the score: same person iff score >= threshold
        (for dlib: -0.6, i.e. distance <= 0.6).
    """

    params: Any
    name: str = struct.field(pytree_node=False)
    input_size: int = struct.field(pytree_node=False)
    template: str = struct.field(pytree_node=False)
    apply_fn: Callable[[Any, jax.Array], jax.Array] = struct.field(pytree_node=False)
    metric: str = struct.field(pytree_node=False, default="cosine")
    threshold: float = struct.field(pytree_node=False, default=0.3)

    def __post_init__(self):
        if self.metric not in METRICS:
            raise ValueError(f"Recognizer {self.name!r}: metric must be one of {METRICS}, got {self.metric!r}")

    def embed(self, params: Any, images: jax.Array) -> jax.Array:
        """(B, H, W, 3) float32 RGB in [0, 1] -> (B, D) embeddings."""
        return self.apply_fn(params, images)

    def score(self, a: jax.Array, b: jax.Array) -> jax.Array:
        """(B, D), (B, D) -> (B,) similarity score; higher means "same person"."""
        if self.metric == "cosine":
            return cosine_similarity(a, b)
        return -euclidean_distance(a, b)

    def same_person(self, scores: jax.Array) -> jax.Array:
        """(B,) scores -> (B,) bool verification decision."""
        return scores >= self.threshold

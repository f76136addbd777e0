"""Margin-softmax classification heads for face-recognition training: ArcFace and CosFace.

Both normalize the embeddings x (B, D) and the class weights W (K, D), take cos(theta) = x_hat . w_hat (B, K),
add a margin to the target class only and scale by s; the logits go into softmax cross-entropy.

  ArcFace (Deng et al. 2019):  target logit s * cos(theta + m)   (default s = 64, m = 0.5)
  CosFace (Wang et al. 2018):  target logit s * (cos(theta) - m) (default s = 64, m = 0.35)

ArcFace's cos(theta + m) stops decreasing once theta + m > pi. As in insightface / Face_Pytorch, when
cos(theta) <= th = cos(pi - m) the target logit becomes s * (cos(theta) - mm) with mm = sin(pi - m) * m
(a CosFace-like margin that keeps the target logit decreasing in theta); with easy_margin the margin is applied
only where cos(theta) > 0 and the target logit is s * cos(theta) elsewhere.
Face_Pytorch trains with s = 32 (ArcFace) and s = 30 (CosFace).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

HEADS = ("arcface", "cosface")


def _safe_sine(cosine: jax.Array) -> jax.Array:
    """sqrt(1 - cos^2) with a finite gradient at |cos| = 1."""
    sq = 1.0 - cosine * cosine
    positive = sq > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def arcface_logits(
    cosine: jax.Array, labels: jax.Array, *, scale: float = 64.0, margin: float = 0.5, easy_margin: bool = False
) -> jax.Array:
    """(B, K) cosines, (B,) int labels -> (B, K) ArcFace logits (see the module docstring)."""
    sine = _safe_sine(cosine)
    phi = cosine * math.cos(margin) - sine * math.sin(margin)  # cos(theta + m)
    if easy_margin:
        phi = jnp.where(cosine > 0, phi, cosine)
    else:
        th = math.cos(math.pi - margin)
        mm = math.sin(math.pi - margin) * margin
        phi = jnp.where(cosine > th, phi, cosine - mm)
    target = jax.nn.one_hot(labels, cosine.shape[-1], dtype=bool)
    return scale * jnp.where(target, phi, cosine)


def cosface_logits(cosine: jax.Array, labels: jax.Array, *, scale: float = 64.0, margin: float = 0.35) -> jax.Array:
    """(B, K) cosines, (B,) int labels -> (B, K) CosFace logits s * (cos - m * onehot)."""
    target = jax.nn.one_hot(labels, cosine.shape[-1], dtype=cosine.dtype)
    return scale * (cosine - margin * target)


class MarginHead(nn.Module):
    """Normalized linear classifier with an ArcFace or CosFace margin.

    Attributes:
      num_classes: K, the number of training identities.
      kind: "arcface" or "cosface".
      scale: s; None -> 64.
      margin: m; None -> 0.5 (arcface) or 0.35 (cosface).
      easy_margin: ArcFace only: apply the margin only where cos(theta) > 0.

    Call: embeddings (B, D) float32, labels (B,) int32 -> (logits (B, K), cosine (B, K)).
    The weight "kernel" is (K, D), initialized Xavier-uniform like the PyTorch heads.
    """

    num_classes: int
    kind: str = "arcface"
    scale: float | None = None
    margin: float | None = None
    easy_margin: bool = False

    @nn.compact
    def __call__(self, embeddings: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
        if self.kind not in HEADS:
            raise ValueError(f"head: expected one of {HEADS}, got {self.kind!r}")
        kernel = self.param("kernel", nn.initializers.xavier_uniform(), (self.num_classes, embeddings.shape[-1]))
        x_hat = embeddings / jnp.maximum(jnp.linalg.norm(embeddings, axis=-1, keepdims=True), 1e-12)
        w_hat = kernel / jnp.maximum(jnp.linalg.norm(kernel, axis=-1, keepdims=True), 1e-12)
        cosine = jnp.clip(x_hat @ w_hat.T, -1.0, 1.0)  # (B, K)
        scale = 64.0 if self.scale is None else self.scale
        if self.kind == "arcface":
            margin = 0.5 if self.margin is None else self.margin
            logits = arcface_logits(cosine, labels, scale=scale, margin=margin, easy_margin=self.easy_margin)
        else:
            margin = 0.35 if self.margin is None else self.margin
            logits = cosface_logits(cosine, labels, scale=scale, margin=margin)
        return logits, cosine

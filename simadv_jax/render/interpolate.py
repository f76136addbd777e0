"""Per-pixel interpolation of vertex attributes with a raster's perspective-correct barycentrics."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from simadv_jax.render.types import Raster


def interpolate(attributes: jax.Array, faces: jax.Array, raster: Raster) -> jax.Array:
    """Interpolates vertex attributes over the visible triangles (one image; batch with `jax.vmap`).

    Args:
      attributes: (A, C) float32 per-vertex (or per-corner) attributes: colours, normals, UVs, positions.
      faces: (F, 3) int32 indices into `attributes`, one row per triangle of the rasterized mesh (the
        mesh's own faces, or e.g. UV faces that index a separate UV array).
      raster: the `Raster` of that mesh.
    Returns:
      (H, W, C) float32 attributes; zeros on background. Differentiable in `attributes` and in the
      raster's barycentrics.
    """
    attributes = jnp.asarray(attributes)
    if attributes.ndim != 2:
        raise ValueError(f"attributes: expected shape (A, C), got {attributes.shape}")
    if faces.ndim != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces: expected shape (F, 3), got {faces.shape}")
    num_faces, channels = faces.shape[0], attributes.shape[1]
    per_face = attributes[faces].reshape(num_faces, 3 * channels)  # (F, 3C): corner-major
    corners = per_face[jnp.maximum(raster.triangle_id, 0)]  # (H, W, 3C): one row gather per pixel
    bary = raster.barycentrics
    # An explicit sum over the 3 corners fuses with the gathers (an einsum is a batched dot on XLA:CPU).
    return sum(bary[..., k:k + 1] * corners[..., k * channels:(k + 1) * channels] for k in range(3))

"""Bilinear texture lookup with wrapped or clamped addressing.

UV convention: u in [0, 1] runs left to right across the texture image, v in [0, 1] runs UP (v = 1 is row 0,
the top of the image, as FLAME's UV maps); texel (r, c) of an (h, w) image has its centre at
u = (c + 0.5) / w, v = 1 - (r + 0.5) / h.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


BOUNDARY_MODES = ("wrap", "clamp")


def texture(uv_image: jax.Array, uv: jax.Array, boundary: str = "clamp") -> jax.Array:
    """Samples `uv_image` bilinearly at `uv` (one image; batch with `jax.vmap`).

    Args:
      uv_image: (h, w, C) float32 texture.
      uv: (..., 2) float32 texture coordinates (e.g. (H, W, 2) from `interpolate`).
      boundary: static "wrap" (repeat the texture) or "clamp" (repeat its edge texels).
    Returns:
      (..., C) float32 samples; differentiable in `uv_image` and `uv`.
    """
    if boundary not in BOUNDARY_MODES:
        raise ValueError(f"boundary: expected one of {BOUNDARY_MODES}, got {boundary!r}")
    if uv_image.ndim != 3:
        raise ValueError(f"uv_image: expected shape (h, w, C), got {uv_image.shape}")
    if uv.shape[-1] != 2:
        raise ValueError(f"uv: expected shape (..., 2), got {uv.shape}")
    h, w, _ = uv_image.shape
    # Continuous texel coordinates with texel centres at integers.
    col = uv[..., 0] * w - 0.5
    row = (1.0 - uv[..., 1]) * h - 0.5
    c0 = jnp.floor(col)
    r0 = jnp.floor(row)
    fc = (col - c0)[..., None]
    fr = (row - r0)[..., None]
    c0 = c0.astype(jnp.int32)
    r0 = r0.astype(jnp.int32)

    def address(index, size):
        if boundary == "wrap":
            return jnp.mod(index, size)
        return jnp.clip(index, 0, size - 1)

    left, right = address(c0, w), address(c0 + 1, w)
    upper, lower = address(r0, h) * w, address(r0 + 1, h) * w
    # The four taps in one gather: XLA:CPU then computes the addresses once, not once per tap.
    taps = jnp.asarray(uv_image).reshape(h * w, -1)[jnp.stack([upper + left, upper + right, lower + left,
                                                               lower + right], axis=-1)]  # (..., 4, C)
    top = taps[..., 0, :] * (1 - fc) + taps[..., 1, :] * fc
    bottom = taps[..., 2, :] * (1 - fc) + taps[..., 3, :] * fc
    return top * (1 - fr) + bottom * fr

"""Compositing a rendered foreground over a background colour or image."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def composite(foreground: jax.Array, alpha: jax.Array, background, *, premultiplied: bool = False) -> jax.Array:
    """alpha * foreground + (1 - alpha) * background (foreground + (1 - alpha) * background if premultiplied).

    Args:
      foreground: (H, W, C) float32 (already multiplied by alpha when `premultiplied`).
      alpha: (H, W) coverage in [0, 1] (a bool mask is a hard composite).
      background: (C,) colour, a scalar, or an (H, W, C) image.
    Returns:
      (H, W, C) float32.
    """
    alpha = jnp.asarray(alpha, jnp.float32)[..., None]
    background = jnp.asarray(background, jnp.float32)
    if background.ndim not in (0, 1) and background.shape != foreground.shape:
        raise ValueError(
            f"background: expected a colour (C,) or an image {foreground.shape}, got {background.shape}"
        )
    if not premultiplied:
        foreground = alpha * foreground
    return foreground + (1.0 - alpha) * background

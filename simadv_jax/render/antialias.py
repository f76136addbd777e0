"""Supersampling antialiasing: render at `factor` times the resolution, then box-filter down."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def supersample(image: jax.Array, factor: int) -> jax.Array:
    """(factor*H, factor*W, C) -> (H, W, C) mean over each factor x factor block (factor static int >= 1).

    Works for any dtype convertible to float (a bool mask becomes fractional coverage).
    """
    if not isinstance(factor, int) or factor < 1:
        raise ValueError(f"supersample: expected an int factor >= 1, got {factor!r}")
    if factor == 1:
        return image
    big_h, big_w = image.shape[:2]
    if big_h % factor or big_w % factor:
        raise ValueError(f"supersample: image {image.shape[:2]} is not divisible by factor {factor}")
    blocks = image.reshape(big_h // factor, factor, big_w // factor, factor, *image.shape[2:])
    return jnp.mean(blocks.astype(jnp.float32), axis=(1, 3))

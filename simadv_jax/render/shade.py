"""Shading: vertex normals, 9-coefficient spherical-harmonics lighting (as DECA) and Lambertian lights.

Normals and light directions must be in the same frame; `render_mesh` uses view space (OpenGL: x right,
y up, z towards the viewer), so lighting stays fixed relative to the camera while the head moves.

DECA's SH lighting: irradiance(n) = sum_k SH_CONSTANTS[k] * poly_k(n) * coeffs[k] (per RGB channel), with
poly = `sh_polynomials` = [1, x, y, z, xy, xz, yz, x^2 - y^2, 3z^2 - 1] of the unit normal n = (x, y, z).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp


# Real SH normalization of each of DECA's 9 basis polynomials (bands 0, 1 x 3, 2 x 5), and the clamped-cosine
# (Lambertian) kernel per band: irradiance from radiance L is sum_k _KERNEL[k] * L_k * Y_k.
_SH_NORM = (
    1 / math.sqrt(4 * math.pi),
    *(math.sqrt(3 / (4 * math.pi)),) * 3,
    *(3 * math.sqrt(5 / (12 * math.pi)),) * 3,
    1.5 * math.sqrt(5 / (12 * math.pi)),
    0.5 * math.sqrt(5 / (4 * math.pi)),
)
_KERNEL = (math.pi, *(2 * math.pi / 3,) * 3, *(math.pi / 4,) * 5)
# DECA's per-polynomial constants: normalization times kernel, except band 0, where DECA leaves the pi out.
SH_CONSTANTS = (_SH_NORM[0], *(k * n for k, n in zip(_KERNEL[1:], _SH_NORM[1:])))


def vertex_normals(vertices: jax.Array, faces: jax.Array) -> jax.Array:
    """(V, 3) positions, (F, 3) counter-clockwise faces -> (V, 3) unit area-weighted normals.

    Vertices used by no (non-degenerate) triangle get (0, 0, 1).
    """
    corners = jnp.asarray(vertices)[faces]  # (F, 3, 3)
    face_normals = jnp.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # 2 * area
    summed = jax.ops.segment_sum(jnp.repeat(face_normals, 3, axis=0), faces.reshape(-1),
                                 num_segments=vertices.shape[0])
    length = jnp.linalg.norm(summed, axis=-1, keepdims=True)
    fallback = jnp.array([0.0, 0.0, 1.0], vertices.dtype)
    return jnp.where(length > 0, summed / jnp.where(length > 0, length, 1.0), fallback)


def sh_polynomials(x: jax.Array, y: jax.Array, z: jax.Array) -> tuple[jax.Array, ...]:
    """Unit-vector components x, y, z (same shape S) -> DECA's 9 SH polynomials, each of shape S:
    1, x, y, z, xy, xz, yz, x^2 - y^2, 3z^2 - 1 (a tuple, so callers can use them without a (..., 9) array)."""
    return (jnp.ones_like(x), x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1)


def sh_basis(normals: jax.Array) -> jax.Array:
    """(..., 3) unit normals -> (..., 9) DECA's scaled SH basis SH_CONSTANTS[k] * poly_k (`sh_polynomials`)."""
    basis = jnp.stack(sh_polynomials(normals[..., 0], normals[..., 1], normals[..., 2]), axis=-1)
    return basis * jnp.asarray(SH_CONSTANTS, normals.dtype)


def sh_shading(normals: jax.Array, sh_coeffs: jax.Array) -> jax.Array:
    """(..., 3) unit normals, (9, 3) coefficients (band x RGB) -> (..., 3) irradiance per channel."""
    if sh_coeffs.shape != (9, 3):
        raise ValueError(f"sh_coeffs: expected shape (9, 3), got {sh_coeffs.shape}")
    # sh_basis's polynomials band by band with the constants folded into the (9, 3) coefficients: one
    # elementwise pass, no (..., 9) basis array and no batched matmul.
    coeffs = sh_coeffs * jnp.asarray(SH_CONSTANTS, sh_coeffs.dtype)[:, None]
    polys = sh_polynomials(normals[..., 0:1], normals[..., 1:2], normals[..., 2:3])  # each (..., 1)
    return sum(p * coeffs[k] for k, p in enumerate(polys))


def light_direction(azimuth: jax.Array, elevation: jax.Array) -> jax.Array:
    """() radians each -> (3,) unit view-space direction towards the light; azimuth 0, elevation 0 is the
    camera (+z), azimuth turns towards +x, elevation towards +y."""
    return jnp.stack([jnp.sin(azimuth) * jnp.cos(elevation), jnp.sin(elevation), jnp.cos(azimuth) * jnp.cos(elevation)])


def directional_light_sh(azimuth, elevation, intensity, ambient) -> jax.Array:
    """Directional + ambient white light -> (9, 3) float32 DECA SH coefficients (band x RGB, for `sh_shading`).

    azimuth, elevation: () radians (`light_direction`); intensity, ambient: () unitless. The irradiance the
    coefficients give is the order-2 SH approximation (Ramamoorthi & Hanrahan) of
    ambient + intensity * max(0, n . d), d = `light_direction(azimuth, elevation)`: coefficient k is
    kernel_l * norm_k^2 * poly_k(d) * intensity / SH_CONSTANTS[k] (+ ambient / SH_CONSTANTS[0] for k = 0).
    """
    d = light_direction(azimuth, elevation)
    poly = jnp.stack(sh_polynomials(d[0], d[1], d[2]))
    scale = jnp.asarray([k * n * n / c for k, n, c in zip(_KERNEL, _SH_NORM, SH_CONSTANTS)], jnp.float32)
    coeffs = intensity * scale * poly
    coeffs = coeffs.at[0].add(ambient / SH_CONSTANTS[0])
    return jnp.tile(coeffs[:, None], (1, 3)).astype(jnp.float32)


def lambertian_shading(normals, directions, colors, ambient) -> jax.Array:
    """Directional + ambient Lambertian irradiance.

    Args:
      normals: (..., 3) unit normals.
      directions: (L, 3) directions TOWARDS each light (normalized here).
      colors: (L, 3) RGB intensity per light.
      ambient: (3,) RGB ambient term.
    Returns:
      (..., 3) ambient + sum_l colors[l] * max(0, n . d_l).
    """
    directions = jnp.asarray(directions, jnp.float32)
    colors = jnp.asarray(colors, jnp.float32)
    if directions.ndim != 2 or directions.shape[-1] != 3 or colors.shape != directions.shape:
        raise ValueError(f"directions/colors: expected (L, 3) each, got {directions.shape} and {colors.shape}")
    directions = directions / jnp.linalg.norm(directions, axis=-1, keepdims=True)
    cosine = jnp.maximum(normals @ directions.T, 0.0)  # (..., L)
    return jnp.asarray(ambient, jnp.float32) + cosine @ colors


def normalize(vectors: jax.Array) -> jax.Array:
    """(..., 3) -> unit vectors; zero vectors stay zero (gradient-safe)."""
    x, y, z = vectors[..., 0], vectors[..., 1], vectors[..., 2]
    squared = (x * x + y * y + z * z)[..., None]  # per component: fuses (a norm is a reduction)
    # sqrt only of positive values: sqrt's derivative at 0 is infinite, and 0 * inf would make the gradient NaN.
    return vectors / jnp.sqrt(jnp.where(squared > 0, squared, 1.0))


def shade(albedo: jax.Array, normals: jax.Array, sh_coeffs: jax.Array) -> jax.Array:
    """(H, W, 3) albedo * SH irradiance at (H, W, 3) normals (renormalized) -> (H, W, 3) colour."""
    return albedo * sh_shading(normalize(normals), sh_coeffs)

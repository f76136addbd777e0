"""render_mesh: the primitives composed into the one call the simulator makes per image."""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from simadv_jax.render.antialias import supersample as box_filter
from simadv_jax.render.camera import Camera
from simadv_jax.render.composite import composite
from simadv_jax.render.interpolate import interpolate
from simadv_jax.render.rasterize import rasterize
from simadv_jax.render.shade import shade, vertex_normals
from simadv_jax.render.texture import texture
from simadv_jax.render.types import Raster, Resolution, resolution_hw


class Rendered(NamedTuple):
    """image: (H, W, 3) float32 RGB in [0, 1]; mask: (H, W) float32 coverage in [0, 1] (fractional at
    silhouettes when supersampling); raster: the `Raster` at the rendering resolution (H*s, W*s)."""

    image: jax.Array
    mask: jax.Array
    raster: Raster


def render_mesh(
    vertices: jax.Array,
    faces: jax.Array,
    camera: Camera,
    resolution: Resolution,
    albedo: jax.Array,
    *,
    uv_coords: Optional[jax.Array] = None,
    uv_faces: Optional[jax.Array] = None,
    sh_coeffs: Optional[jax.Array] = None,
    background=0.0,
    supersample: int = 1,
    cull_backfaces: bool = True,
    boundary: str = "clamp",
    backend: str = "auto",
) -> Rendered:
    """Renders one textured, SH-lit mesh (batch with `jax.vmap`).

    Args:
      vertices: (V, 3) float32 world positions.
      faces: (F, 3) int32 counter-clockwise (seen from outside) triangles.
      camera: `Camera` (e.g. from `align.align_camera` to render straight into a recognizer crop).
      resolution: static output size, int S or (H, W).
      albedo: (h, w, 3) UV albedo image (needs `uv_coords` and `uv_faces`) or (V, 3) per-vertex colours;
        RGB in [0, 1].
      uv_coords: (T, 2) UV coordinates (v up, see `texture`); uv_faces: (F, 3) indices into them.
      sh_coeffs: (9, 3) DECA-style SH lighting in view space; None renders unlit albedo.
      background: (3,) colour, scalar, or (H, W, 3) image at the output resolution.
      supersample: static int; rasterize at supersample x resolution and box-filter down.
      cull_backfaces: static; skip triangles facing away from the camera.
      boundary: static texture addressing, "clamp" or "wrap".
      backend: static rasterizer backend, as `rasterize`: "auto" (default), "jax", "native" or "nvdiffrast"
        (CUDA, eager: call render_mesh outside jit and vmap, one image at a time).
    Returns:
      Rendered(image clipped to [0, 1], mask, raster).
    """
    height, width = resolution_hw(resolution)
    clip = camera.to_clip(vertices)
    raster = rasterize(clip, faces, (height * supersample, width * supersample), cull_backfaces=cull_backfaces,
                       backend=backend)
    if albedo.ndim == 3:
        if uv_coords is None or uv_faces is None:
            raise ValueError("render_mesh: a UV albedo image needs uv_coords and uv_faces")
        color = texture(albedo, interpolate(uv_coords, uv_faces, raster), boundary)
    elif albedo.shape == vertices.shape:
        color = interpolate(albedo, faces, raster)
    else:
        raise ValueError(f"albedo: expected (h, w, 3) or per-vertex {vertices.shape}, got {albedo.shape}")
    if sh_coeffs is not None:
        normals = interpolate(vertex_normals(camera.to_view(vertices), faces), faces, raster)
        color = shade(color, normals, sh_coeffs)
    mask = raster.mask.astype(jnp.float32)
    color = box_filter(color * mask[..., None], supersample)
    mask = box_filter(mask, supersample)
    image = composite(color, mask, background, premultiplied=True)
    return Rendered(jnp.clip(image, 0.0, 1.0), mask, raster)

"""nvdiffrast backend: the same `rasterize` / `interpolate` / `texture` outputs from NVIDIA's CUDA rasterizer.

Install with the `gpu` extra (torch + nvdiffrast) on a CUDA machine. Arrays cross between JAX and torch with
DLPack on the GPU (no host copies). These calls are eager (not jit-traceable); batched (B, ...) inputs are
rasterized in one nvdiffrast call. Conventions are converted to `simadv_jax.render.types`': rows are
flipped (nvdiffrast's row 0 is NDC y = -1), triangle ids shifted by -1, barycentrics (u, v) extended with
1 - u - v, and background depth set to `BACKGROUND_DEPTH`.

Known difference: nvdiffrast clips triangles that cross the eye plane (w <= 0) where the JAX backend
discards them, so such scenes differ there.
"""
from __future__ import annotations

import functools
import jax
import jax.numpy as jnp

from simadv_jax.render.types import BACKGROUND_DEPTH, Raster, Resolution, resolution_hw


class NvdiffrastUnavailable(RuntimeError):
    """nvdiffrast, torch or a CUDA device is missing."""


def _modules():
    try:
        import nvdiffrast.torch as dr
        import torch
    except ImportError as error:
        raise NvdiffrastUnavailable(
            f"backend='nvdiffrast' needs torch and nvdiffrast (pip install 'simadv-jax[gpu]'): {error}"
        ) from error
    if not torch.cuda.is_available():
        raise NvdiffrastUnavailable("backend='nvdiffrast' needs a CUDA GPU; torch sees none")
    return dr, torch


def available() -> tuple[bool, str]:
    """(True, "") when the backend can run here, else (False, the reason)."""
    try:
        _modules()
    except NvdiffrastUnavailable as error:
        return False, str(error)
    return True, ""


@functools.lru_cache(maxsize=None)
def _context():
    dr, _ = _modules()
    return dr.RasterizeCudaContext()


def _to_torch(array: jax.Array):
    _, torch = _modules()
    return torch.utils.dlpack.from_dlpack(jnp.asarray(array))


def _to_jax(tensor) -> jax.Array:
    return jnp.from_dlpack(tensor.contiguous())


def rasterize(clip_vertices: jax.Array, faces: jax.Array, resolution: Resolution, *,
              cull_backfaces: bool = False) -> Raster:
    """As `simadv_jax.render.rasterize.rasterize`; clip_vertices (V, 4) or (B, V, 4) -> Raster ((B,) H, W, ...)."""
    dr, torch = _modules()
    height, width = resolution_hw(resolution)
    clip_vertices = jnp.asarray(clip_vertices, jnp.float32)
    faces = jnp.asarray(faces, jnp.int32)
    single = clip_vertices.ndim == 2
    batch = clip_vertices[None] if single else clip_vertices
    if batch.ndim != 3 or batch.shape[-1] != 4:
        raise ValueError(f"clip_vertices: expected shape (V, 4) or (B, V, 4), got {clip_vertices.shape}")
    num_batch, num_vertices, _ = batch.shape
    num_faces = faces.shape[0]
    if cull_backfaces:
        # nvdiffrast does not cull, and instance mode shares one triangle list: use range mode with each
        # sample's own list, back-facing triangles made degenerate so that ids stay aligned.
        culled = jax.vmap(_cull, in_axes=(0, None))(batch, faces)  # (B, F, 3)
        tri = culled + (jnp.arange(num_batch, dtype=jnp.int32) * num_vertices)[:, None, None]
        ranges = torch.stack([torch.arange(num_batch) * num_faces, torch.full((num_batch,), num_faces)], 1).int()
        rast, _ = dr.rasterize(_context(), _to_torch(batch.reshape(-1, 4)).contiguous(),
                               _to_torch(tri.reshape(-1, 3)).contiguous(), resolution=[height, width],
                               ranges=ranges)
    else:
        rast, _ = dr.rasterize(_context(), _to_torch(batch).contiguous(), _to_torch(faces).contiguous(),
                               resolution=[height, width])
    rast = torch.flip(rast, dims=[1])  # nvdiffrast row 0 is the bottom
    u, v, depth, tid = rast[..., 0], rast[..., 1], rast[..., 2], rast[..., 3]
    covered = tid > 0
    # Range mode may number triangles across the whole list; the remainder is the index into `faces`.
    triangle_id = torch.where(covered, torch.remainder(tid.to(torch.int32) - 1, num_faces), -1)
    bary = torch.stack([u, v, 1.0 - u - v], dim=-1) * covered[..., None]
    depth = torch.where(covered, depth, torch.full_like(depth, BACKGROUND_DEPTH))
    out = Raster(_to_jax(triangle_id), _to_jax(bary), _to_jax(depth))
    return Raster(*(a[0] for a in out)) if single else out


def _cull(clip_vertices: jax.Array, faces: jax.Array) -> jax.Array:
    corners = clip_vertices[faces]
    ndc = corners[..., :2] / corners[..., 3:4]
    area = ((ndc[:, 1, 0] - ndc[:, 0, 0]) * (ndc[:, 2, 1] - ndc[:, 0, 1])
            - (ndc[:, 2, 0] - ndc[:, 0, 0]) * (ndc[:, 1, 1] - ndc[:, 0, 1]))
    return jnp.where((area > 0)[:, None], faces, 0)


def interpolate(attributes: jax.Array, faces: jax.Array, raster: Raster) -> jax.Array:
    """As `simadv_jax.render.interpolate.interpolate`, with nvdiffrast's kernel; (B,) H, W, C."""
    dr, torch = _modules()
    single = raster.triangle_id.ndim == 2
    tid = raster.triangle_id[None] if single else raster.triangle_id
    bary = raster.barycentrics[None] if single else raster.barycentrics
    depth = raster.depth[None] if single else raster.depth
    rast = jnp.stack([bary[..., 0], bary[..., 1], depth, (tid + 1).astype(jnp.float32)], axis=-1)[:, ::-1]
    out, _ = dr.interpolate(_to_torch(jnp.asarray(attributes, jnp.float32)[None]).contiguous(),
                            _to_torch(rast).contiguous(), _to_torch(jnp.asarray(faces, jnp.int32)).contiguous())
    out = _to_jax(torch.flip(out, dims=[1]))
    return out[0] if single else out


def texture(uv_image: jax.Array, uv: jax.Array, boundary: str = "clamp") -> jax.Array:
    """As `simadv_jax.render.texture.texture` (v up, row 0 = v 1).

    uv_image (h, w, C) or (B, h, w, C); uv (H, W, 2) or (B, H, W, 2).
    """
    dr, _ = _modules()
    if boundary not in ("wrap", "clamp"):
        raise ValueError(f"boundary: expected 'wrap' or 'clamp', got {boundary!r}")
    single = uv.ndim == 3
    uv_b = uv[None] if single else uv
    image = uv_image if uv_image.ndim == 4 else jnp.broadcast_to(uv_image, (uv_b.shape[0],) + uv_image.shape)
    # nvdiffrast puts v = 0 at row 0; ours puts v = 1 there, so hand it the image flipped.
    tex = _to_torch(jnp.asarray(image[:, ::-1], jnp.float32)).contiguous()
    out = dr.texture(tex, _to_torch(jnp.asarray(uv_b, jnp.float32)).contiguous(), filter_mode="linear",
                     boundary_mode=boundary)
    out = _to_jax(out)
    return out[0] if single else out

"""Rasterization: clip-space triangles -> per-pixel triangle id, barycentrics and depth.

Conventions (clip space, pixel centres, rows, depth, culling): `simadv_jax.render.types`.

Algorithm (memory O(F + CHUNK * TILE^2 + H * W), never O(F * H * W)): each triangle's screen bounding box
is split into TILE x TILE windows of pixel centres; these (triangle, window) work items, however many there
are, are processed CHUNK at a time in a `lax.while_loop` until all are done, so a triangle of any size (a
full-screen quad, a huge triangle partly off-screen) is rasterized exactly and nothing is dropped. Culled,
off-screen and sub-pixel triangles produce no work. Visibility is one scatter-min per chunk of a 31-bit key:
the depth quantized to 2^(31 - b) levels over the depth range of the rasterized triangles (b = bits of F) in
the high bits, the triangle id in the low bits, so two surfaces closer than one level along a pixel's ray
(about a micrometre for a 20 cm deep head) are ordered by id. Barycentrics and depth are then recomputed exactly
per pixel from the winning triangle, so they are differentiable with respect to the vertex positions (the
triangle ids, i.e. silhouettes, are not). On the CPU the visibility pass (triangle ids) runs by default as a
compiled loop over each triangle's bounding box (`simadv_jax.render.native`, about 4x faster than the
vectorized work-item loop here, which stays the reference and the fallback).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from simadv_jax.render import native, nvdiffrast_backend
from simadv_jax.render.types import BACKGROUND_DEPTH, Raster, Resolution, resolution_hw

TILE = 3  # side, in pixel centres, of the windows triangles are split into (3 was fastest at 112-300 px)
CHUNK = 2048  # (triangle, window) work items per loop iteration
MAX_ID_BITS = 20  # triangle-id bits of the visibility key (the other 11 or more hold depth)
BACKENDS = ("auto", "jax", "native", "nvdiffrast")


def _check_inputs(clip_vertices: jax.Array, faces: jax.Array) -> None:
    if clip_vertices.ndim != 2 or clip_vertices.shape[-1] != 4:
        raise ValueError(f"clip_vertices: expected shape (V, 4), got {clip_vertices.shape}")
    if faces.ndim != 2 or faces.shape[-1] != 3 or faces.shape[0] == 0:
        raise ValueError(f"faces: expected shape (F, 3) with F >= 1, got {faces.shape}")
    if faces.shape[0] > 2 ** MAX_ID_BITS - 1:
        raise ValueError(f"faces: at most {2 ** MAX_ID_BITS - 1} triangles are supported, got {faces.shape[0]}")


def _screen(clip_vertices: jax.Array, faces: jax.Array, height: int, width: int):
    """(V, 4) clip vertices, (F, 3) faces -> corner pixel x, pixel y, NDC z, w (each (F, 3)), (F,) in front."""
    corners = clip_vertices[faces]  # (F, 3, 4)
    x, y, z, w = (corners[..., k] for k in range(4))
    in_front = jnp.all(w > 0, axis=-1)
    safe_w = jnp.where(in_front[:, None], w, 1.0)
    x = (x / safe_w + 1.0) * (0.5 * width)
    y = (1.0 - y / safe_w) * (0.5 * height)
    return x, y, z / safe_w, safe_w, in_front


def _edges(x: jax.Array, y: jax.Array, px: jax.Array, py: jax.Array) -> jax.Array:
    """Unnormalized barycentric edge functions.

    x, y: (..., 3) corner pixel coordinates; px, py: (..., N) sample points -> (..., N, 3).
    Evaluated on differences to the sample point, which keeps float32 precise near the triangle.
    """
    dx = x[..., None, :] - px[..., None]
    dy = y[..., None, :] - py[..., None]
    e0 = dx[..., 1] * dy[..., 2] - dx[..., 2] * dy[..., 1]
    e1 = dx[..., 2] * dy[..., 0] - dx[..., 0] * dy[..., 2]
    e2 = dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]
    return jnp.stack([e0, e1, e2], axis=-1)


class _Bounds(NamedTuple):
    area: jax.Array  # (...,) twice the signed pixel-space area (negative = front-facing)
    col0: jax.Array  # (...,) first pixel column whose centre is inside the bounding box
    row0: jax.Array  # (...,) first pixel row
    ncols: jax.Array  # (...,) number of pixel-centre columns in the bounding box (<= 0: none)
    nrows: jax.Array  # (...,) number of pixel-centre rows
    tiles_x: jax.Array  # (...,) TILE-wide windows across the bounding box


def _bounds(x, y, height, width) -> _Bounds:
    """Signed area and pixel-centre bounding box from corner pixel coordinates x, y (each (..., 3))."""
    area = (x[..., 1] - x[..., 0]) * (y[..., 2] - y[..., 0]) - (x[..., 2] - x[..., 0]) * (y[..., 1] - y[..., 0])

    def span(lo, hi, size):
        lo = jnp.clip(lo, -2.0, size + 2.0)
        hi = jnp.clip(hi, -2.0, size + 2.0)
        first = jnp.maximum(jnp.ceil(lo - 0.5), 0).astype(jnp.int32)
        last = jnp.minimum(jnp.floor(hi - 0.5), size - 1).astype(jnp.int32)
        return first, last - first + 1

    col0, ncols = span(x.min(-1), x.max(-1), width)
    row0, nrows = span(y.min(-1), y.max(-1), height)
    return _Bounds(area, col0, row0, ncols, nrows, (ncols + TILE - 1) // TILE)


def _visible_triangles(x, y, z, in_front, height, width, cull_backfaces) -> jax.Array:
    """Corner pixel x, y, NDC z (each (F, 3)), (F,) in front -> (H * W,) int32 nearest triangle (-1: none)."""
    num_faces = x.shape[0]
    npix = height * width
    b = _bounds(x, y, height, width)
    ok = in_front & (b.area != 0) & jnp.all(jnp.isfinite(x) & jnp.isfinite(y) & jnp.isfinite(z), axis=-1)
    if cull_backfaces:
        ok = ok & (b.area < 0)
    # Work items: each triangle's bounding box split into TILE x TILE windows of pixel centres.
    items = jnp.where(ok & (b.ncols > 0) & (b.nrows > 0), b.tiles_x * ((b.nrows + TILE - 1) // TILE), 0)
    ends = jnp.cumsum(items)
    starts = ends - items
    total = ends[-1]

    # Visibility key: depth quantized over the depth range of the rasterized triangles in the high bits,
    # triangle id in the low bits; one scatter-min resolves the nearest fragment per pixel.
    id_bits = max(1, int(num_faces).bit_length())  # <= MAX_ID_BITS (`_check_inputs`)
    depth_levels = float(2 ** (31 - id_bits) - 1)
    used = (items > 0)[:, None]
    z_clipped = jnp.clip(z, -1.0, 1.0)
    z_min = jnp.min(jnp.where(used, z_clipped, 1.0))
    z_max = jnp.max(jnp.where(used, z_clipped, -1.0))
    z_scale = depth_levels / jnp.maximum(z_max - z_min, 1e-30)
    empty = jnp.iinfo(jnp.int32).max
    xyz = jnp.concatenate([x, y, z], axis=-1)
    offs = jnp.arange(TILE, dtype=jnp.int32)
    dj = jnp.tile(offs, TILE)
    di = jnp.repeat(offs, TILE)

    def body(start, keys):
        item = start + jnp.arange(CHUNK, dtype=jnp.int32)
        tri = jnp.minimum(jnp.searchsorted(ends, item, side="right"), num_faces - 1).astype(jnp.int32)
        # Gather only the corners and the item offset; the box is recomputed (cheaper than gathering it).
        corners = xyz[tri]  # (CHUNK, 9): one row gather (far cheaper on XLA:CPU than 9 scalar gathers)
        tx, ty, tz = corners[:, 0:3], corners[:, 3:6], corners[:, 6:9]
        tb = _bounds(tx, ty, height, width)
        local = item - starts[tri]
        per_row = jnp.maximum(tb.tiles_x, 1)
        cols = tb.col0[:, None] + (local % per_row)[:, None] * TILE + dj
        rows = tb.row0[:, None] + (local // per_row)[:, None] * TILE + di
        inside = ((item < total)[:, None] & (cols < (tb.col0 + tb.ncols)[:, None])
                  & (rows < (tb.row0 + tb.nrows)[:, None]))
        e = _edges(tx, ty, cols.astype(jnp.float32) + 0.5, rows.astype(jnp.float32) + 0.5)
        e = e * jnp.sign(tb.area)[:, None, None]
        depth = jnp.einsum("nkc,nc->nk", e, tz) / jnp.abs(tb.area)[:, None]
        valid = inside & jnp.all(e >= 0, axis=-1) & (depth >= -1.0) & (depth <= 1.0)
        level = jnp.clip((depth - z_min) * z_scale, 0.0, depth_levels).astype(jnp.int32)
        key = (level << id_bits) | tri[:, None]
        pixel = jnp.where(valid, rows * width + cols, npix)
        return keys.at[pixel.reshape(-1)].min(key.reshape(-1), mode="drop")

    def cond(state):
        return state[0] < total

    def step(state):
        start, keys = state
        return start + CHUNK, body(start, keys)

    # The initial buffer is derived from the data (0 * total) so that it has the data's varying type
    # inside `shard_map`, as the loop body's output does.
    keys = jnp.full((npix,), empty, jnp.int32) + 0 * total
    keys = lax.while_loop(cond, step, (jnp.int32(0), keys))[1]
    return jnp.where(keys == empty, -1, keys & ((1 << id_bits) - 1))


def barycentric_at_pixels(x, y, z, inv_w, triangle_id, height, width):
    """Perspective-correct barycentrics and NDC depth of `triangle_id` at every pixel centre.

    x, y, z, inv_w: (F, 3) corner pixel coordinates, NDC depth and 1 / w; triangle_id: (H, W) int32
    (-1 background) -> barycentrics (H, W, 3) (zeros on background), depth (H, W) (`BACKGROUND_DEPTH` on
    background). Differentiable with respect to x, y, z, inv_w.
    """
    covered = triangle_id >= 0
    table = jnp.concatenate([x, y, z, inv_w], axis=-1)[jnp.maximum(triangle_id, 0)]  # (H, W, 12)
    x, y, z, inv_w = table[..., 0:3], table[..., 3:6], table[..., 6:9], table[..., 9:12]
    cols = jnp.arange(width, dtype=jnp.float32)[None, :, None] + 0.5
    rows = jnp.arange(height, dtype=jnp.float32)[:, None, None] + 0.5
    dx = x - cols
    dy = y - rows
    e = jnp.stack([dx[..., 1] * dy[..., 2] - dx[..., 2] * dy[..., 1],
                   dx[..., 2] * dy[..., 0] - dx[..., 0] * dy[..., 2],
                   dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]], axis=-1)  # (H, W, 3)
    area = jnp.sum(e, axis=-1, keepdims=True)
    screen_bary = e / jnp.where(covered[..., None] & (area != 0), area, 1.0)
    depth = jnp.sum(screen_bary * z, axis=-1)
    persp = screen_bary * inv_w
    total = jnp.sum(persp, axis=-1, keepdims=True)
    persp = persp / jnp.where(covered[..., None] & (total != 0), total, 1.0)
    barycentrics = jnp.where(covered[..., None], persp, 0.0)
    depth = jnp.where(covered, depth, BACKGROUND_DEPTH)
    return barycentrics, depth


def resolve_backend(backend: str) -> str:
    """The backend `rasterize` runs for `backend`: "auto" becomes "native" or "jax"; unknown names are a
    ValueError."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "native" if native.available() else "jax"
    if backend == "native" and jax.default_backend() != "cpu":
        raise ValueError(f"backend='native' runs on the CPU only; JAX's default backend is "
                         f"{jax.default_backend()!r} (use 'auto', 'jax' or 'nvdiffrast')")
    return backend


def rasterize(
    clip_vertices: jax.Array,
    faces: jax.Array,
    resolution: Resolution,
    *,
    cull_backfaces: bool = False,
    backend: str = "auto",
) -> Raster:
    """Rasterizes one triangle mesh (batch with `jax.vmap`); conventions in the module docstring.

    Args:
      clip_vertices: (V, 4) float32 clip-space positions (x, y, z, w).
      faces: (F, 3) int32 vertex indices per triangle.
      resolution: static int S (S x S) or (H, W).
      cull_backfaces: static; drop triangles that are clockwise in NDC.
      backend: static "auto" (default: "native" when JAX runs on the CPU and the kernel builds, else "jax"),
        "jax" (pure JAX), "native" (the visibility pass as a compiled CPU kernel, see
        `simadv_jax.render.native`; the barycentrics and depth stay pure JAX and differentiable) or
        "nvdiffrast" (CUDA; eager, see `simadv_jax.render.nvdiffrast_backend`). "jax", "native" and "auto"
        are jit/vmap-able. "native" finds the same triangle ids as "jax" except where two surfaces are
        within float rounding of one depth level apart (measured: under 1e-5 of the pixels of face crops).
    Returns:
      Raster with triangle_id (H, W), barycentrics (H, W, 3), depth (H, W).
    """
    height, width = resolution_hw(resolution)
    if backend == "nvdiffrast":
        return nvdiffrast_backend.rasterize(clip_vertices, faces, (height, width), cull_backfaces=cull_backfaces)
    backend = resolve_backend(backend)
    clip_vertices = jnp.asarray(clip_vertices, jnp.float32)
    faces = jnp.asarray(faces, jnp.int32)
    _check_inputs(clip_vertices, faces)
    x, y, z, w, in_front = _screen(clip_vertices, faces, height, width)
    corners = tuple(lax.stop_gradient(a) for a in (x, y, z))
    if backend == "native":
        ids = native.nearest_triangles(*corners, in_front, height, width, cull_backfaces)
    else:
        ids = _visible_triangles(*corners, in_front, height, width, cull_backfaces)
    triangle_id = ids.reshape(height, width)
    inv_w = 1.0 / w
    barycentrics, depth = barycentric_at_pixels(x, y, z, inv_w, triangle_id, height, width)
    return Raster(triangle_id, barycentrics, depth)

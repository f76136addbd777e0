"""Render benchmark: a FLAME-size mesh, textured and SH-shaded, at several resolutions and batch sizes.

`run()` returns one dict per (resolution, batch): images/s, compile time, peak memory. `launch.bench
--what=render` prints and writes them. The mesh is a closed ellipsoid head of 5,023 vertices (4,990 on the
surface, 33 unused, as FLAME's count) and 9,976 triangles (FLAME's count), filling a face crop like an
aligned render does.
"""
from __future__ import annotations

import resource
import time
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from simadv_jax.batching import RENDER_GROUP, map_groups
from simadv_jax.render import Camera, look_at, perspective, render_mesh
from simadv_jax.render.rasterize import resolve_backend

NUM_VERTICES = 5023
NUM_FACES = 9976
_RINGS, _COLUMNS = 58, 86  # 2 * rings * columns = 9,976 triangles, near-isotropic at the equator
_RADII = np.array([0.075, 0.105, 0.095])


def flame_size_mesh():
    """-> vertices (5023, 3) metres, faces (9976, 3) int32 counter-clockwise, uv (5023, 2), uv_faces (9976, 3)."""
    theta = np.pi * np.arange(1, _RINGS + 1) / (_RINGS + 1)
    phi = 2 * np.pi * np.arange(_COLUMNS) / _COLUMNS
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    dirs = np.concatenate([[[0.0, 1.0, 0.0]], ring, [[0.0, -1.0, 0.0]]])
    bottom = len(dirs) - 1
    j = np.arange(_COLUMNS)

    def vid(i, col):
        return 1 + i * _COLUMNS + np.mod(col, _COLUMNS)

    faces = [np.stack([np.zeros_like(j), vid(0, j), vid(0, j + 1)], -1)]
    for i in range(_RINGS - 1):
        a, b, c, d = vid(i, j), vid(i, j + 1), vid(i + 1, j), vid(i + 1, j + 1)
        faces += [np.stack([a, c, b], -1), np.stack([b, c, d], -1)]
    faces.append(np.stack([vid(_RINGS - 1, j), np.full_like(j, bottom), vid(_RINGS - 1, j + 1)], -1))
    faces = np.concatenate(faces).astype(np.int32)
    vertices = dirs * _RADII
    vertices = vertices + 0.01 * np.sin(7 * dirs[:, :1]) * np.cos(5 * dirs[:, 1:2])  # some relief
    extra = NUM_VERTICES - len(vertices)
    vertices = np.concatenate([vertices, np.zeros((extra, 3))]).astype(np.float32)
    uv = np.stack([0.5 + np.arctan2(dirs[:, 0], dirs[:, 2]) / (2 * np.pi), 1 - np.arccos(dirs[:, 1]) / np.pi], -1)
    uv = np.concatenate([uv, np.zeros((extra, 2))]).astype(np.float32)
    assert faces.shape == (NUM_FACES, 3) and vertices.shape == (NUM_VERTICES, 3)
    return vertices, faces, uv, faces.copy()


def _scene(batch: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    vertices, faces, uv, uv_faces = flame_size_mesh()
    offsets = rng.normal(0, 0.003, (batch, 1, 3)).astype(np.float32)
    albedo = rng.uniform(0.3, 0.9, (batch, 256, 256, 3)).astype(np.float32)
    sh = np.zeros((batch, 9, 3), np.float32)
    sh[:, 0] = 2.0
    sh[:, 1:4] = rng.normal(0, 0.3, (batch, 3, 3))
    return vertices[None] + offsets, faces, uv, uv_faces, albedo, sh


def _renderer(resolution: int, faces, uv, uv_faces, supersample: int, render_group, sharding):
    # A frontal camera whose view the head overfills slightly, as in an aligned face crop.
    camera = Camera(look_at((0.0, 0.0, 0.6), (0.0, 0.0, 0.0)), perspective(0.25))

    def one(mesh, args):
        faces, uv, uv_faces = mesh
        vertices, albedo, sh = args
        out = render_mesh(vertices, faces, camera, resolution, albedo, uv_coords=uv, uv_faces=uv_faces,
                          sh_coeffs=sh, background=0.5, supersample=supersample)
        return out.image

    # Each device renders its own shard, in vmapped groups of `render_group` (the search's render loop).
    sharded = sharding if sharding.mesh.size > 1 else None
    return jax.jit(lambda args: map_groups(one, (faces, uv, uv_faces), args, sharded, render_group))


def _batch_sharding(batch: int):
    """Shards the batch axis over every local device when it divides evenly (else one device)."""
    devices = jax.local_devices()
    if len(devices) == 1 or batch % len(devices):
        devices = devices[:1]
    mesh = jax.sharding.Mesh(np.array(devices), ("batch",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(resolutions: Sequence[int] = (112, 150, 224), batches: Sequence[int] = (1, 16, 64), *, supersample: int = 1,
        render_group: Optional[int] = RENDER_GROUP, repeats: int = 5, seed: int = 0) -> list[dict]:
    """Times `render_mesh` (vmap + jit) per (resolution, batch), the batch sharded over the local devices.

    On a CPU, `launch.bench` makes one device per core (`--cpu_devices`, or XLA_FLAGS=
    --xla_force_host_platform_device_count=N set before JAX starts), so the batch is rendered on all cores (each
    device its own shard, via `jax.shard_map`).
    `render_group` renders each shard as `lax.map` over vmapped groups of that many samples (None: one vmap
    over the whole shard; `evaluate.map_groups`); on a 2-core CPU, groups of 8 were 20-90% faster than one vmap
    of 64 (smaller working set).

    Returns dicts with resolution, batch, supersample, render_group, images_per_s (best of `repeats` timed
    calls after compilation), compile_s (compilation and first call), temp_mb (XLA's temporary buffers for
    the call, from the compiled memory analysis; None where unavailable), peak_rss_mb (process peak so
    far), device, num_devices and rasterizer (the visibility pass used: "native" or "jax").
    """
    results = []
    for resolution in resolutions:
        for batch in batches:
            vertices, faces, uv, uv_faces, albedo, sh = _scene(batch, seed)
            sharding = _batch_sharding(batch)
            fn = _renderer(resolution, jnp.asarray(faces), jnp.asarray(uv), jnp.asarray(uv_faces), supersample,
                           render_group, sharding)
            args = tuple(jax.device_put(a, sharding) for a in (vertices, albedo, sh))
            start = time.perf_counter()
            compiled = fn.lower(args).compile()
            jax.block_until_ready(compiled(args))
            compile_s = time.perf_counter() - start
            memory = compiled.memory_analysis()
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                jax.block_until_ready(compiled(args))
                best = min(best, time.perf_counter() - start)
            results.append({
                "resolution": resolution,
                "batch": batch,
                "supersample": supersample,
                "render_group": render_group,
                "images_per_s": batch / best,
                "compile_s": compile_s,
                "temp_mb": None if memory is None else memory.temp_size_in_bytes / 2**20,
                "peak_rss_mb": _peak_rss_mb(),
                "device": str(jax.devices()[0].platform),
                "num_devices": sharding.mesh.size,
                "rasterizer": resolve_backend("auto"),
            })
    return results

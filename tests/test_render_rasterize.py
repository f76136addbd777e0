"""Rasterizer vs an exact float64 numpy reference (per-pixel ray/triangle intersection); render module imports."""
import ast
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simadv_jax.render
from simadv_jax.render import camera as cam
from simadv_jax.render.interpolate import interpolate
from simadv_jax.render.rasterize import rasterize
from simadv_jax.render.types import BACKGROUND_DEPTH
from tests.render_fixtures import needs_native

RES = (40, 48)  # (H, W): non-square on purpose


def reference(clip, faces, height, width, cull=False):
    """Exact reference: for every pixel centre, every triangle; nearest hit wins.

    Uses the conventions of simadv_jax.render.types (row 0 = top, centres at +0.5, discard w <= 0,
    per-pixel depth clipping to [-1, 1], CCW-in-NDC front faces). Returns triangle id, perspective-correct
    barycentrics and NDC depth, in float64.
    """
    clip = np.asarray(clip, np.float64)
    corners = clip[np.asarray(faces)]
    w = corners[..., 3]
    ok = np.all(w > 0, -1)
    sw = np.where(ok[:, None], w, 1.0)
    x = (corners[..., 0] / sw + 1) * 0.5 * width
    y = (1 - corners[..., 1] / sw) * 0.5 * height
    z = corners[..., 2] / sw
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    ok &= area != 0
    if cull:
        ok &= area < 0
    px, py = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    px, py = px.reshape(-1, 1), py.reshape(-1, 1)
    tid = np.full(height * width, -1)
    best = np.full(height * width, np.inf)
    bary = np.zeros((height * width, 3))
    for f in np.nonzero(ok)[0]:
        dx, dy = x[f][None] - px, y[f][None] - py
        e = np.stack([dx[:, 1] * dy[:, 2] - dx[:, 2] * dy[:, 1], dx[:, 2] * dy[:, 0] - dx[:, 0] * dy[:, 2],
                      dx[:, 0] * dy[:, 1] - dx[:, 1] * dy[:, 0]], -1) / area[f]
        depth = e @ z[f]
        hit = np.all(e >= 0, -1) & (depth >= -1) & (depth <= 1) & (depth < best)
        best[hit], tid[hit] = depth[hit], f
        p = e[hit] / w[f]
        bary[hit] = p / p.sum(-1, keepdims=True)
    best[tid < 0] = BACKGROUND_DEPTH
    return tid.reshape(height, width), bary.reshape(height, width, 3), best.reshape(height, width)


@pytest.fixture(scope="module", params=["jax", pytest.param("native", marks=needs_native)])
def raster_fn(request):
    """The jitted rasterizer with each jit-able backend: the pure-JAX visibility pass and the CPU kernel (where
    it can run)."""
    return jax.jit(functools.partial(rasterize, backend=request.param),
                   static_argnames=("resolution", "cull_backfaces"))


def _camera(distance=3.0, fov=0.9, near=0.5, far=10.0):
    return cam.Camera(cam.look_at((0.3, 0.2, distance), (0.0, 0.0, 0.0)), cam.perspective(fov, RES[1] / RES[0], near, far))


def _check(raster, clip, faces, attributes=None, cull=False):
    tid, bary, depth = reference(clip, faces, *RES, cull=cull)
    got = np.asarray(raster.triangle_id)
    agree = np.mean(got == tid)
    assert agree >= 0.995, f"triangle id agreement {agree}"
    same = (got == tid) & (tid >= 0)
    assert same.sum() > 0.05 * tid.size, "degenerate test: almost nothing drawn"
    rel = np.abs(np.asarray(raster.depth) - depth)[same] / np.maximum(np.abs(depth[same]), 1e-3)
    assert rel.max() <= 1e-5
    np.testing.assert_allclose(np.asarray(raster.barycentrics)[same], bary[same], atol=1e-4)
    assert np.all(np.asarray(raster.depth)[tid < 0 & (got < 0)] == BACKGROUND_DEPTH)
    if attributes is not None:
        expected = np.einsum("hwk,hwkc->hwc", bary, np.asarray(attributes, np.float64)[np.asarray(faces)][np.maximum(tid, 0)])
        got_attr = np.asarray(interpolate(jnp.asarray(attributes), jnp.asarray(faces), raster))
        np.testing.assert_allclose(got_attr[same], expected[same], atol=1e-4)
        assert np.all(got_attr[got < 0] == 0)
    return agree


def _soup(seed, count=50):
    rng = np.random.default_rng(seed)
    centres = rng.uniform([-1.2, -1.0, -1.0], [1.2, 1.0, 1.0], (count, 1, 3))
    scale = np.exp(rng.uniform(np.log(0.03), np.log(1.5), (count, 1, 1)))
    tris = centres + rng.normal(0, 1, (count, 3, 3)) * scale
    return tris.reshape(-1, 3).astype(np.float32), np.arange(3 * count, dtype=np.int32).reshape(count, 3)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_soup_matches_reference(raster_fn, seed):
    vertices, faces = _soup(seed)
    clip = _camera().to_clip(jnp.asarray(vertices))
    raster = raster_fn(clip, jnp.asarray(faces), resolution=RES)
    colors = np.random.default_rng(seed).uniform(size=(len(vertices), 3)).astype(np.float32)
    _check(raster, clip, faces, colors)


def _uv_sphere(rings=12, columns=20, radius=1.0):
    theta = np.pi * np.arange(1, rings) / rings
    phi = 2 * np.pi * np.arange(columns) / columns
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    vertices = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]]) * radius
    j = np.arange(columns)
    vid = lambda i, c: 1 + i * columns + np.mod(c, columns)  # noqa: E731
    faces = [np.stack([np.zeros_like(j), vid(0, j), vid(0, j + 1)], -1)]
    for i in range(rings - 2):
        faces += [np.stack([vid(i, j), vid(i + 1, j), vid(i, j + 1)], -1),
                  np.stack([vid(i, j + 1), vid(i + 1, j), vid(i + 1, j + 1)], -1)]
    faces.append(np.stack([vid(rings - 2, j), np.full_like(j, len(vertices) - 1), vid(rings - 2, j + 1)], -1))
    return vertices.astype(np.float32), np.concatenate(faces).astype(np.int32)


@pytest.mark.parametrize("cull", [False, True])
def test_sphere_matches_reference_and_culling(raster_fn, cull):
    vertices, faces = _uv_sphere()
    clip = _camera().to_clip(jnp.asarray(vertices))
    raster = raster_fn(clip, jnp.asarray(faces), resolution=RES, cull_backfaces=cull)
    _check(raster, clip, faces, vertices, cull=cull)
    if cull:  # a closed convex mesh looks the same with and without culling
        plain = raster_fn(clip, jnp.asarray(faces), resolution=RES)
        assert np.mean(np.asarray(plain.triangle_id) == np.asarray(raster.triangle_id)) >= 0.995


def test_backface_culling_drops_clockwise_triangles(raster_fn):
    faces = np.array([[0, 1, 2]], np.int32)
    ccw = jnp.array([[-0.5, -0.5, 0, 1], [0.5, -0.5, 0, 1], [0, 0.5, 0, 1]], jnp.float32)
    assert np.any(np.asarray(raster_fn(ccw, faces, resolution=RES, cull_backfaces=True).triangle_id) == 0)
    cw = ccw[::-1]
    assert np.all(np.asarray(raster_fn(cw, faces, resolution=RES, cull_backfaces=True).triangle_id) == -1)
    assert np.any(np.asarray(raster_fn(cw, faces, resolution=RES).triangle_id) == 0)


def test_head_at_several_poses(raster_fn):
    flame = pytest.importorskip("flame")
    from flame.embedded import embedded_model

    model = embedded_model()
    camera = cam.Camera(cam.look_at((0.0, 0.0, 0.55), (0.0, 0.0, 0.0)), cam.perspective(0.45, RES[1] / RES[0], 0.1, 2.0))
    for yaw, pitch in [(0.0, 0.0), (0.6, 0.1), (-1.2, -0.2)]:
        pose = jnp.zeros((5, 3)).at[0].set(jnp.array([pitch, yaw, 0.0]))
        vertices = flame.forward(model, jnp.zeros(3), jnp.zeros(2), pose).vertices
        clip = camera.to_clip(vertices)
        raster = raster_fn(clip, model.faces, resolution=RES, cull_backfaces=True)
        _check(raster, clip, np.asarray(model.faces), np.asarray(vertices), cull=True)


def test_full_screen_quad_and_interpolation(raster_fn):
    # Two triangles covering all of NDC, tilted in depth, seen through a perspective divide.
    clip = jnp.array([[-1, -1, -0.5, 1], [1, -1, 0.2, 2], [1, 1, 0.9, 3], [-1, 1, 0.0, 1.5]], jnp.float32) * \
        jnp.array([[1.0], [2.0], [3.0], [1.5]])
    clip = clip.at[:, 3].set(jnp.array([1.0, 2.0, 3.0, 1.5]))
    faces = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    raster = raster_fn(clip, faces, resolution=RES)
    assert np.all(np.asarray(raster.triangle_id) >= 0)
    _check(raster, clip, faces, np.arange(12, dtype=np.float32).reshape(4, 3))


def test_huge_triangle_partly_off_screen(raster_fn):
    # One triangle far larger than the image with a vertex close to the eye plane, plus a small one in front.
    clip = jnp.array([[-40, -30, 0.5, 1], [60, -5, 0.3, 0.05], [-3, 80, 0.2, 1.0],
                      [-0.2, -0.2, 0.0, 1], [0.3, -0.2, 0.0, 1], [0.0, 0.3, 0.0, 1]], jnp.float32)
    faces = np.array([[0, 1, 2], [3, 4, 5]], np.int32)
    raster = raster_fn(clip, faces, resolution=RES)
    ids = np.asarray(raster.triangle_id)
    assert np.sum(ids == 0) > 0.3 * ids.size and np.sum(ids == 1) > 0
    _check(raster, clip, faces, np.random.default_rng(0).uniform(size=(6, 2)).astype(np.float32))


def test_behind_camera_triangles_are_discarded(raster_fn):
    vertices = np.array([[-1, -1, -2], [1, -1, -2], [0, 1, -2],  # in front (camera looks down -z)
                         [-1, -1, 1], [1, -1, 1], [0, 1, 1],  # behind the camera
                         [-1, -1, -2], [1, -1, -2], [0, 1, 1]], np.float32)  # crossing the eye plane
    faces = np.arange(9, dtype=np.int32).reshape(3, 3)
    camera = cam.Camera(jnp.eye(4), cam.perspective(1.2, RES[1] / RES[0], 0.1, 10.0))
    clip = camera.to_clip(jnp.asarray(vertices))
    raster = raster_fn(clip, faces, resolution=RES)
    ids = np.asarray(raster.triangle_id)
    assert set(np.unique(ids)) == {-1, 0}
    assert np.all(np.isfinite(np.asarray(raster.barycentrics))) and np.all(np.isfinite(np.asarray(raster.depth)))
    _check(raster, clip, faces)


def test_vmap_matches_single_and_rejects_bad_shapes(raster_fn):
    vertices, faces = _soup(3, count=20)
    clips = jnp.stack([_camera(d).to_clip(jnp.asarray(vertices)) for d in (3.0, 4.0)])
    batched = jax.jit(jax.vmap(lambda c: raster_fn(c, faces, resolution=RES)))(clips)
    for b in range(2):
        single = raster_fn(clips[b], faces, resolution=RES)
        np.testing.assert_array_equal(np.asarray(batched.triangle_id[b]), np.asarray(single.triangle_id))
    with pytest.raises(ValueError, match="clip_vertices"):
        rasterize(jnp.zeros((3, 3)), faces, RES)
    with pytest.raises(ValueError, match="resolution"):
        rasterize(clips[0], faces, (0, 4))
    with pytest.raises(ValueError, match="backend"):
        rasterize(clips[0], faces, RES, backend="opengl")
    with pytest.raises(ValueError, match="at most 1048575 triangles"):  # the visibility key's id bits
        raster_fn(clips[0], np.zeros((2**20, 3), np.int32), resolution=RES)


def test_barycentrics_differentiable_in_vertices(raster_fn):
    vertices, faces = _uv_sphere(8, 10)
    camera = _camera()

    def loss(v):
        r = raster_fn(camera.to_clip(v), faces, resolution=RES)
        return jnp.sum(r.depth * r.mask)

    grad = jax.jit(jax.grad(loss))(jnp.asarray(vertices))
    assert np.all(np.isfinite(np.asarray(grad))) and np.abs(np.asarray(grad)).sum() > 0


def test_rasterize_inside_shard_map():
    if not hasattr(jax, "shard_map"):
        pytest.skip("jax.shard_map needs a newer JAX")
    vertices, faces = _soup(4, count=10)
    clips = jnp.stack([_camera(d).to_clip(jnp.asarray(vertices)) for d in (3.0, 3.5)] * len(jax.devices()))
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("batch",))
    spec = jax.sharding.PartitionSpec("batch")
    fn = jax.jit(jax.shard_map(jax.vmap(lambda c: rasterize(c, faces, RES).triangle_id), mesh=mesh,
                               in_specs=spec, out_specs=spec))
    expected = jax.vmap(lambda c: rasterize(c, faces, RES).triangle_id)(clips)
    np.testing.assert_array_equal(np.asarray(fn(clips)), np.asarray(expected))


def _render_imports() -> dict:
    """{module: render modules it imports} for every module of simadv_jax.render, imports inside functions too."""
    folder = os.path.dirname(simadv_jax.render.__file__)
    modules = {name[:-3] for name in os.listdir(folder) if name.endswith(".py") and name != "__init__.py"}
    graph = {}
    for module in modules:
        with open(os.path.join(folder, module + ".py")) as f:
            tree = ast.parse(f.read())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "simadv_jax.render":
                imported |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("simadv_jax.render."):
                imported.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                imported |= {a.name.split(".")[2] for a in node.names if a.name.startswith("simadv_jax.render.")}
        graph[module] = imported
    return graph


def test_render_modules_import_without_cycles():
    graph = _render_imports()
    assert graph["types"] == set()  # the shared types and conventions build on nothing in render
    assert graph["nvdiffrast_backend"] <= {"types"} and graph["native"] <= {"types"}
    done, active = set(), []

    def visit(module):
        assert module not in active, f"import cycle: {' -> '.join(active[active.index(module):] + [module])}"
        if module not in done:
            active.append(module)
            for imported in sorted(graph[module]):
                visit(imported)
            active.pop()
            done.add(module)

    for module in sorted(graph):
        visit(module)

"""The compiled CPU visibility kernel against the pure-JAX visibility pass it replaces."""
import importlib
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flame.embedded import embedded_model
from simadv_jax import simulator
from simadv_jax.params import ParamSpace
from simadv_jax.render import Camera, native, perspective_from_focal

# The module, not the `rasterize` function that `simadv_jax.render` re-exports under the same name.
raster = importlib.import_module("simadv_jax.render.rasterize")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_kernel_builds_here():
    try:
        native.load()
    except native.NativeUnavailable as error:  # say why, rather than a bare failure
        pytest.fail(f"the native CPU rasterizer did not build: {error}")
    assert native.available()
    assert os.path.exists(native._library_path(native._compiler()))


def _head_corners(yaws, size=150):
    """Screen-space corners (x, y, z each (B, F, 3)) and in-front flags (B, F) of the embedded head, aligned
    as the search renders it, at `yaws` (paper units, 1 = 90 degrees) with the mouth a little open."""
    model = embedded_model()
    space = ParamSpace.parse("yaw=-1:1,pitch=0.05,jaw=0.1", num_shape=model.num_shape, num_texture=0,
                             num_expression=model.num_expression)

    def one(params):
        vertices, _, camera = simulator.aligned_geometry(model, params, "dlib150", size)
        x, y, z, _, in_front = raster._screen(camera.to_clip(vertices), jnp.asarray(model.faces), size, size)
        return x, y, z, in_front

    probe = space.decode(jnp.asarray(yaws, jnp.float32)[:, None]).probe
    return jax.jit(jax.vmap(one))(probe)


def test_embedded_head_ids_match_the_jax_pass():
    x, y, z, in_front = _head_corners(np.linspace(-0.9, 0.9, 8))
    args = dict(height=150, width=150, cull_backfaces=True)
    got = np.asarray(jax.jit(jax.vmap(lambda *a: native.nearest_triangles(*a, **args)))(x, y, z, in_front))
    want = np.asarray(jax.jit(jax.vmap(lambda *a: raster._visible_triangles(*a, *args.values())))(x, y, z, in_front))
    assert np.mean(want >= 0) > 0.3  # the face fills the crop
    differ = np.argwhere(got != want)
    assert len(differ) <= 1e-4 * got.size, f"{len(differ)} of {got.size} pixels differ"
    # Where they differ, both triangles cover the pixel and lie within float rounding of one depth level of
    # each other: the quantized depth keys tie up to rounding, and the triangle ids break the tie.
    for image, pixel in differ:
        row, col = divmod(int(pixel), 150)
        depths = []
        for tri in (got[image, pixel], want[image, pixel]):
            assert tri >= 0
            tx, ty, tz = (np.asarray(a[image, tri], np.float64) for a in (x, y, z))
            dx, dy = tx - (col + 0.5), ty - (row + 0.5)
            e = np.array([dx[1] * dy[2] - dx[2] * dy[1], dx[2] * dy[0] - dx[0] * dy[2], dx[0] * dy[1] - dx[1] * dy[0]])
            e /= e.sum()
            assert np.all(e >= -1e-5)
            depths.append(e @ tz)
        assert abs(depths[0] - depths[1]) < 1e-5


def test_batch_and_nested_vmap_match_single_calls():
    x, y, z, in_front = _head_corners([0.0, 0.3, -0.45, 0.6], size=64)

    def call(*a):
        return native.nearest_triangles(*a, 64, 64, True)

    singles = np.stack([np.asarray(jax.jit(call)(x[i], y[i], z[i], in_front[i])) for i in range(4)])
    batched = np.asarray(jax.jit(jax.vmap(call))(x, y, z, in_front))
    pairs = (a.reshape(2, 2, *a.shape[1:]) for a in (x, y, z, in_front))
    nested = np.asarray(jax.jit(jax.vmap(jax.vmap(call)))(*pairs))
    np.testing.assert_array_equal(batched, singles)
    np.testing.assert_array_equal(nested.reshape(4, -1), singles)
    # Unbatched arguments next to batched ones are broadcast.
    shared = np.asarray(jax.vmap(call, in_axes=(0, 0, 0, None))(x, y, z, in_front[0]))
    np.testing.assert_array_equal(shared[0], singles[0])


def test_render_gradients_equal_with_either_backend():
    vertices = jnp.asarray([[-0.5, -0.5, 0.0], [0.6, -0.4, 0.1], [0.0, 0.7, -0.1], [0.7, 0.6, 0.2]], jnp.float32)
    faces = jnp.asarray([[0, 1, 2], [1, 3, 2]], jnp.int32)
    camera = Camera(jnp.eye(4).at[2, 3].set(-3.0), perspective_from_focal(60.0, 48))

    def loss(v, backend):
        r = raster.rasterize(camera.to_clip(v), faces, 48, backend=backend)
        return jnp.sum(r.depth * r.mask) + jnp.sum(r.barycentrics[..., 0])

    ids = [raster.rasterize(camera.to_clip(vertices), faces, 48, backend=b).triangle_id for b in ("jax", "native")]
    np.testing.assert_array_equal(np.asarray(ids[1]), np.asarray(ids[0]))
    assert np.mean(np.asarray(ids[0]) >= 0) > 0.1
    # The same visible triangles, so the same differentiable barycentric pass: equal up to float rounding
    # (XLA fuses the two programs differently).
    grads = [np.asarray(jax.jit(jax.grad(loss), static_argnums=1)(vertices, b)) for b in ("jax", "native")]
    assert np.abs(grads[0]).sum() > 0
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6)


def test_unbuildable_kernel_falls_back_with_the_reason(tmp_path):
    # A fresh process: the kernel is built once per process and cache folder.
    script = """
import logging, jax.numpy as jnp
from simadv_jax.render import native
from simadv_jax.render.rasterize import rasterize
try:
    native.load()
except native.NativeUnavailable as error:
    print("UNAVAILABLE", error)
print("AVAILABLE", native.available())
clip = jnp.asarray([[-0.5, -0.5, 0.0, 1.0], [0.5, -0.5, 0.0, 1.0], [0.0, 0.5, 0.0, 1.0]])
ids = {b: rasterize(clip, jnp.asarray([[0, 1, 2]]), 16, backend=b).triangle_id for b in ("auto", "jax")}
print("COVERED", int((ids["auto"] >= 0).sum()), "SAME", bool((ids["auto"] == ids["jax"]).all()))
"""
    env = dict(os.environ, CXX=str(tmp_path / "no-such-compiler"), SIMADV_JAX_CACHE=str(tmp_path / "cache"),
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "UNAVAILABLE building" in out.stdout and "no-such-compiler" in out.stdout
    assert "AVAILABLE False" in out.stdout
    assert "native CPU rasterizer unavailable" in out.stderr  # the auto backend says why it fell back
    assert "COVERED 32 SAME True" in out.stdout  # the pure-JAX pass drew it: an eighth of the 16 x 16 pixels
    assert os.listdir(tmp_path / "cache") == []  # no half-written library left behind


def test_unwritable_cache_falls_back_and_a_corrupt_library_is_rebuilt(tmp_path):
    script = """
import os, sys
from simadv_jax.render import native
if sys.argv[1] == "corrupt":
    path = native._library_path(native._compiler())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").write(b"not a library")
print("AVAILABLE", native.available())
"""
    (tmp_path / "a_file").write_text("")
    cases = {"unwritable": (str(tmp_path / "a_file" / "cache"), "AVAILABLE False"),
             "corrupt": (str(tmp_path / "cache"), "AVAILABLE True")}
    for case, (cache, expected) in cases.items():
        env = dict(os.environ, SIMADV_JAX_CACHE=cache, JAX_PLATFORMS="cpu")
        out = subprocess.run([sys.executable, "-c", script, case], capture_output=True, text=True, env=env,
                             cwd=ROOT, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        assert expected in out.stdout, (case, out.stdout, out.stderr[-2000:])
        if case == "unwritable":  # the warning names the folder it could not write
            assert "native CPU rasterizer unavailable" in out.stderr and cache in out.stderr


def test_environment_switch_selects_the_jax_pass():
    script = "from simadv_jax.render.rasterize import resolve_backend; print('AUTO', resolve_backend('auto'))"
    env = dict(os.environ, SIMADV_JAX_NATIVE="0", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "AUTO jax" in out.stdout
    assert raster.resolve_backend("auto") == "native"  # this process: the kernel builds here
    with pytest.raises(ValueError, match="backend"):
        raster.resolve_backend("opengl")

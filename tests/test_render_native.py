"""The compiled CPU visibility kernel against the pure-JAX visibility pass it replaces.

The kernel's tests skip, saying why, where it cannot run (no C++ compiler, or JAX not on the CPU); the fallback
tests run everywhere.
"""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flame.embedded import embedded_model, embedded_texture
from simadv_jax import simulator
from simadv_jax.params import ParamSpace
from simadv_jax.render import (Camera, directional_light_sh, native, perspective_from_focal, rasterize, render_mesh,
                               to_pixels)
from simadv_jax.render.rasterize import resolve_backend
from tests.render_fixtures import NO_NATIVE, needs_native
from tests.subprocesses import run_script


@needs_native
def test_kernel_builds_here():
    try:
        native.load()
    except native.NativeUnavailable as error:  # say why, rather than a bare failure
        pytest.fail(f"the native CPU rasterizer did not build: {error}")
    assert native.available()
    assert os.path.exists(native.library_path(native.compiler()))


def _head(yaws, size=150):
    """The embedded head aligned as the search renders it, at `yaws` (paper units, 1 = 90 degrees) with the
    mouth a little open: the model, vertices (B, V, 3) and the batched Camera of a `size` crop."""
    model = embedded_model()
    space = ParamSpace.parse("yaw=-1:1,pitch=0.05,jaw=0.1", num_shape=model.num_shape, num_texture=0,
                             num_expression=model.num_expression)
    probe = space.decode(jnp.asarray(yaws, jnp.float32)[:, None]).probe
    vertices, _, cameras = jax.jit(jax.vmap(lambda p: simulator.aligned_geometry(model, p, "dlib150", size)))(probe)
    return model, vertices, cameras


def _triangle_ids(clips, faces, size, backend):
    """(B, V, 4) clip vertices -> (B, size * size) visible triangle per pixel (culled), one jitted vmap."""
    ids = jax.jit(jax.vmap(lambda c: rasterize(c, faces, size, cull_backfaces=True, backend=backend).triangle_id))
    return np.asarray(ids(clips)).reshape(len(clips), -1)


def _corners(clips, faces, size):
    """The kernel's inputs from the conventions (`to_pixels`, NDC depth z / w): corner pixel x, y and NDC z
    (each (B, F, 3) float32) and (B, F) in front, for (B, V, 4) clip vertices."""
    pixels = jax.vmap(lambda c: to_pixels(c, size))(clips)[:, faces]  # (B, F, 3, 2)
    corners = clips[:, faces]  # (B, F, 3, 4)
    return pixels[..., 0], pixels[..., 1], corners[..., 2] / corners[..., 3], jnp.all(corners[..., 3] > 0, axis=-1)


@needs_native
def test_embedded_head_ids_match_the_jax_pass():
    model, vertices, cameras = _head(np.linspace(-0.9, 0.9, 8))
    clips = jax.vmap(lambda cam, v: cam.to_clip(v))(cameras, vertices)
    got = _triangle_ids(clips, model.faces, 150, "native")
    want = _triangle_ids(clips, model.faces, 150, "jax")
    assert np.mean(want >= 0) > 0.3  # the face fills the crop
    differ = np.argwhere(got != want)
    assert len(differ) <= 1e-4 * got.size, f"{len(differ)} of {got.size} pixels differ"
    # Where they differ, both triangles cover the pixel and lie within float rounding of one depth level of
    # each other: the quantized depth keys tie up to rounding, and the triangle ids break the tie.
    x, y, z, _ = _corners(clips, model.faces, 150)
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


@needs_native
def test_batch_and_nested_vmap_match_single_calls():
    model, vertices, cameras = _head([0.0, 0.3, -0.45, 0.6], size=64)
    clips = jax.vmap(lambda cam, v: cam.to_clip(v))(cameras, vertices)

    def call(clip):
        return rasterize(clip, model.faces, 64, cull_backfaces=True, backend="native").triangle_id

    singles = np.stack([np.asarray(jax.jit(call)(clips[i])) for i in range(4)])
    batched = np.asarray(jax.jit(jax.vmap(call))(clips))
    nested = np.asarray(jax.jit(jax.vmap(jax.vmap(call)))(clips.reshape(2, 2, *clips.shape[1:])))
    np.testing.assert_array_equal(batched, singles)
    np.testing.assert_array_equal(nested.reshape(4, 64, 64), singles)
    # Unbatched kernel arguments next to batched ones are broadcast.
    x, y, z, in_front = _corners(clips, model.faces, 64)
    shared = np.asarray(jax.vmap(lambda *a: native.nearest_triangles(*a, 64, 64, True), in_axes=(0, 0, 0, None))(
        x, y, z, in_front[0]))
    np.testing.assert_array_equal(shared[0].reshape(64, 64), singles[0])


@needs_native
def test_render_gradients_equal_with_either_backend():
    vertices = jnp.asarray([[-0.5, -0.5, 0.0], [0.6, -0.4, 0.1], [0.0, 0.7, -0.1], [0.7, 0.6, 0.2]], jnp.float32)
    faces = jnp.asarray([[0, 1, 2], [1, 3, 2]], jnp.int32)
    camera = Camera(jnp.eye(4).at[2, 3].set(-3.0), perspective_from_focal(60.0, 48))

    def loss(v, backend):
        r = rasterize(camera.to_clip(v), faces, 48, backend=backend)
        return jnp.sum(r.depth * r.mask) + jnp.sum(r.barycentrics[..., 0])

    ids = [rasterize(camera.to_clip(vertices), faces, 48, backend=b).triangle_id for b in ("jax", "native")]
    np.testing.assert_array_equal(np.asarray(ids[1]), np.asarray(ids[0]))
    assert np.mean(np.asarray(ids[0]) >= 0) > 0.1
    # The same visible triangles, so the same differentiable barycentric pass: equal up to float rounding
    # (XLA fuses the two programs differently).
    grads = [np.asarray(jax.jit(jax.grad(loss), static_argnums=1)(vertices, b)) for b in ("jax", "native")]
    assert np.abs(grads[0]).sum() > 0
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-6)


@needs_native
def test_render_mesh_gives_the_same_image_with_either_backend():
    model, vertices, cameras = _head([0.0, 0.5, -0.8])
    albedo = embedded_texture().mean
    sh = directional_light_sh(0.3, 0.2, 0.6, 0.5)

    def render(backend):
        def one(v, camera):
            return render_mesh(v, model.faces, camera, 150, albedo, uv_coords=model.uv_coords,
                               uv_faces=model.uv_faces, sh_coeffs=sh, background=0.5, backend=backend)

        return jax.jit(jax.vmap(one))(vertices, cameras)

    plain, compiled = render("jax"), render("native")
    same = np.asarray(plain.raster.triangle_id) == np.asarray(compiled.raster.triangle_id)
    assert same.mean() >= 1 - 1e-4  # up to the depth-level near-ties of test_embedded_head_ids_match_the_jax_pass
    assert np.asarray(plain.mask).mean() > 0.3
    np.testing.assert_allclose(np.asarray(compiled.image)[same], np.asarray(plain.image)[same], atol=1e-6)


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
    out = run_script(script, CXX=str(tmp_path / "no-such-compiler"), SIMADV_JAX_CACHE=str(tmp_path / "cache"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "UNAVAILABLE building" in out.stdout and "no-such-compiler" in out.stdout
    assert "AVAILABLE False" in out.stdout
    assert "native CPU rasterizer unavailable" in out.stderr  # the auto backend says why it fell back
    assert "COVERED 32 SAME True" in out.stdout  # the pure-JAX pass drew it: an eighth of the 16 x 16 pixels
    assert os.listdir(tmp_path / "cache") == []  # no half-written library left behind


@needs_native
def test_unwritable_cache_falls_back_and_a_corrupt_library_is_rebuilt(tmp_path):
    script = """
import os, sys
from simadv_jax.render import native
if sys.argv[1] == "corrupt":
    path = native.library_path(native.compiler())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").write(b"not a library")
print("AVAILABLE", native.available())
"""
    (tmp_path / "a_file").write_text("")
    cases = {"unwritable": (str(tmp_path / "a_file" / "cache"), "AVAILABLE False"),
             "corrupt": (str(tmp_path / "cache"), "AVAILABLE True")}
    for case, (cache, expected) in cases.items():
        out = run_script(script, case, SIMADV_JAX_CACHE=cache)
        assert out.returncode == 0, out.stderr[-2000:]
        assert expected in out.stdout, (case, out.stdout, out.stderr[-2000:])
        if case == "unwritable":  # the warning names the folder it could not write
            assert "native CPU rasterizer unavailable" in out.stderr and cache in out.stderr


def test_environment_switch_selects_the_jax_pass():
    script = "from simadv_jax.render.rasterize import resolve_backend; print('AUTO', resolve_backend('auto'))"
    out = run_script(script, timeout=120, SIMADV_JAX_NATIVE="0")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "AUTO jax" in out.stdout
    # This process: the kernel where it builds, else the pure-JAX pass.
    assert resolve_backend("auto") == ("jax" if NO_NATIVE else "native")
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("opengl")

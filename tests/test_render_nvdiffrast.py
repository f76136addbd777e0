"""nvdiffrast backend agrees with the JAX backend (needs torch, nvdiffrast and a CUDA GPU; skipped otherwise)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simadv_jax.render import camera as cam
from simadv_jax.render import directional_light_sh, nvdiffrast_backend, render_mesh
from simadv_jax.render.interpolate import interpolate
from simadv_jax.render.rasterize import rasterize
from simadv_jax.render.texture import texture

AVAILABLE, REASON = nvdiffrast_backend.available()
needs_gpu = pytest.mark.skipif(not AVAILABLE, reason=f"nvdiffrast backend unavailable: {REASON}")
RES = (48, 64)


def test_unavailable_backend_raises_clear_error():
    if AVAILABLE:
        pytest.skip("nvdiffrast is available here")
    with pytest.raises(nvdiffrast_backend.NvdiffrastUnavailable, match="nvdiffrast"):
        rasterize(jnp.zeros((3, 4)), jnp.zeros((1, 3), jnp.int32), 8, backend="nvdiffrast")


def _head():
    """The embedded head at 3 yaws: model, texture model, camera, vertices (3, V, 3)."""
    from flame.embedded import embedded_model, embedded_texture
    import flame

    model = embedded_model()
    camera = cam.Camera(cam.look_at((0.1, 0.05, 0.6), (0.0, 0.0, 0.0)), cam.perspective(0.45, RES[1] / RES[0], 0.1, 2.0))
    poses = jnp.zeros((3, 5, 3)).at[:, 0, 1].set(jnp.array([0.0, 0.7, -1.1]))
    vertices = jax.vmap(lambda p: flame.forward(model, jnp.zeros(3), jnp.zeros(2), p).vertices)(poses)
    return model, embedded_texture(), camera, vertices


@needs_gpu
@pytest.mark.parametrize("cull", [False, True])
def test_rasterize_interpolate_texture_agree(cull):
    model, tex, camera, vertices = _head()
    clips = jax.vmap(camera.to_clip)(vertices)
    ours = jax.vmap(lambda c: rasterize(c, model.faces, RES, cull_backfaces=cull))(clips)
    theirs = rasterize(clips, model.faces, RES, cull_backfaces=cull, backend="nvdiffrast")
    same = np.asarray(ours.triangle_id) == np.asarray(theirs.triangle_id)
    assert same.mean() >= 0.995
    both = same & (np.asarray(ours.triangle_id) >= 0)
    np.testing.assert_allclose(np.asarray(ours.barycentrics)[both], np.asarray(theirs.barycentrics)[both], atol=1e-3)
    np.testing.assert_allclose(np.asarray(ours.depth)[both], np.asarray(theirs.depth)[both], atol=1e-5)
    uv_ours = jax.vmap(lambda r: interpolate(model.uv_coords, model.uv_faces, r))(ours)
    uv_theirs = nvdiffrast_backend.interpolate(model.uv_coords, model.uv_faces, ours)
    np.testing.assert_allclose(np.asarray(uv_ours), np.asarray(uv_theirs), atol=1e-5)
    color_ours = jax.vmap(lambda uv: texture(tex.mean, uv))(uv_ours)
    color_theirs = nvdiffrast_backend.texture(tex.mean, uv_ours)
    np.testing.assert_allclose(np.asarray(color_ours), np.asarray(color_theirs), atol=1e-3)


@needs_gpu
def test_render_mesh_with_the_nvdiffrast_backend_agrees():
    model, tex, camera, vertices = _head()
    sh = directional_light_sh(0.3, 0.2, 0.6, 0.5)
    rendered = {b: render_mesh(vertices[1], model.faces, camera, RES, tex.mean, uv_coords=model.uv_coords,
                               uv_faces=model.uv_faces, sh_coeffs=sh, backend=b) for b in ("jax", "nvdiffrast")}
    ids = [np.asarray(r.raster.triangle_id) for r in rendered.values()]
    same = ids[0] == ids[1]
    assert same.mean() >= 0.995 and (ids[0] >= 0).mean() > 0.2
    # Barycentrics agree to 1e-3 (test above), so colours do to about that times the texture's gradient.
    diff = np.abs(np.asarray(rendered["jax"].image) - np.asarray(rendered["nvdiffrast"].image))[same]
    assert diff.mean() < 1e-3 and diff.max() < 0.05

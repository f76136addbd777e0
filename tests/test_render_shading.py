"""interpolate / texture / shade / composite / supersample / render_mesh: values and finite-difference gradients."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simadv_jax.render import camera as cam
from simadv_jax.render.antialias import supersample
from simadv_jax.render.composite import composite
from simadv_jax.render.interpolate import interpolate
from simadv_jax.render.pipeline import render_mesh
from simadv_jax.render.rasterize import rasterize
from simadv_jax.render.shade import lambertian_shading, sh_basis, sh_shading, shade, vertex_normals
from simadv_jax.render.texture import texture

RES = 24


def _quad():
    """A square facing the camera, two CCW triangles, with UVs; and a camera seeing it at an angle."""
    vertices = jnp.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], jnp.float32)
    faces = jnp.array([[0, 1, 2], [0, 2, 3]], jnp.int32)
    uv = jnp.array([[0, 0], [1, 0], [1, 1], [0, 1]], jnp.float32)
    camera = cam.Camera(cam.look_at((0.8, 0.5, 2.5), (0.0, 0.0, 0.0)), cam.perspective(1.0))
    return vertices, faces, uv, camera


def _numeric_grad(f, x, eps=1e-3):
    x = np.asarray(x, np.float64)
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = eps
        grad[index] = (f(jnp.asarray(x + step, jnp.float32)) - f(jnp.asarray(x - step, jnp.float32))) / (2 * eps)
    return grad


def test_texture_bilinear_matches_numpy_and_addressing():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(5, 7, 2)).astype(np.float32)
    # Texel centres return the texel itself (row 0 is v = 1).
    rows, cols = np.meshgrid(np.arange(5), np.arange(7), indexing="ij")
    centres = np.stack([(cols + 0.5) / 7, 1 - (rows + 0.5) / 5], -1).astype(np.float32)
    np.testing.assert_allclose(texture(jnp.asarray(image), jnp.asarray(centres)), image, atol=1e-6)
    # Between centres: bilinear weights; beyond the edge: clamp vs wrap.
    uv = jnp.array([[(1.0 + 0.25) / 7, 1 - (2.0 + 0.5) / 5]])  # col 0.75, row 2.0 (texel-centre coords)
    expected = 0.25 * image[2, 0] + 0.75 * image[2, 1]
    np.testing.assert_allclose(texture(jnp.asarray(image), uv)[0], expected, atol=1e-6)
    left = jnp.array([[0.0, 1 - 2.5 / 5]])  # u = 0: halfway between the last and first column
    np.testing.assert_allclose(texture(jnp.asarray(image), left, "clamp")[0], image[2, 0], atol=1e-6)
    np.testing.assert_allclose(texture(jnp.asarray(image), left, "wrap")[0], 0.5 * (image[2, 0] + image[2, 6]), atol=1e-6)
    with pytest.raises(ValueError, match="boundary"):
        texture(jnp.asarray(image), left, "mirror")
    # A numpy texture closed over inside vmap/jit works too.
    batched = jax.jit(jax.vmap(lambda u: texture(image, u)))(jnp.asarray(centres)[None])
    np.testing.assert_allclose(batched[0], image, atol=1e-6)


def test_sh_shading_matches_deca_formula():
    rng = np.random.default_rng(1)
    n = rng.normal(size=(6, 3))
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    coeffs = rng.normal(size=(9, 3))
    pi = math.pi
    factors = [1 / math.sqrt(4 * pi)] + [(2 * pi / 3) * math.sqrt(3 / (4 * pi))] * 3 + \
        [(pi / 4) * 3 * math.sqrt(5 / (12 * pi))] * 3 + [(pi / 4) * 1.5 * math.sqrt(5 / (12 * pi)),
                                                         (pi / 4) * 0.5 * math.sqrt(5 / (4 * pi))]
    x, y, z = n.T
    basis = np.stack([np.ones_like(x), x, y, z, x * y, x * z, y * z, x ** 2 - y ** 2, 3 * z ** 2 - 1], -1) * factors
    np.testing.assert_allclose(sh_shading(jnp.asarray(n, jnp.float32), jnp.asarray(coeffs, jnp.float32)),
                               basis @ coeffs, rtol=1e-5, atol=1e-5)
    assert sh_basis(jnp.zeros((1, 3))).shape == (1, 9)


def test_lambertian_and_normals():
    n = jnp.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    out = lambertian_shading(n, jnp.array([[0.0, 0.0, 2.0]]), jnp.array([[1.0, 0.5, 0.25]]), jnp.array([0.1, 0.1, 0.1]))
    np.testing.assert_allclose(out, [[1.1, 0.6, 0.35], [0.1, 0.1, 0.1]], atol=1e-6)
    vertices, faces, _, _ = _quad()
    np.testing.assert_allclose(vertex_normals(vertices, faces), np.tile([0, 0, 1.0], (4, 1)), atol=1e-6)


def test_composite_and_supersample():
    fg = jnp.ones((4, 4, 3))
    alpha = jnp.zeros((4, 4)).at[:2].set(1.0)
    out = composite(fg, alpha, jnp.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(out[3, 0], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(out[0, 0], [1.0, 1.0, 1.0])
    image = jnp.arange(16.0).reshape(4, 4, 1)
    np.testing.assert_allclose(supersample(image, 2)[..., 0], [[2.5, 4.5], [10.5, 12.5]])
    with pytest.raises(ValueError, match="divisible"):
        supersample(jnp.zeros((5, 4, 1)), 2)


def test_gradients_through_interpolate_texture_shade_match_finite_differences():
    vertices, faces, uv, camera = _quad()
    raster = rasterize(camera.to_clip(vertices), faces, RES)
    assert raster.mask.mean() > 0.2
    normals = jnp.broadcast_to(jnp.array([0.2, 0.1, 1.0]), (RES, RES, 3))
    rng = np.random.default_rng(2)
    colors0 = jnp.asarray(rng.uniform(size=(4, 3)), jnp.float32)
    albedo0 = jnp.asarray(rng.uniform(size=(3, 3, 3)), jnp.float32)
    sh0 = jnp.asarray(rng.normal(size=(9, 3)) * 0.3, jnp.float32).at[0].add(1.5)
    weights = jnp.asarray(rng.uniform(size=(RES, RES, 3)), jnp.float32)

    def loss(colors, albedo, sh):
        tex = texture(albedo, interpolate(uv, faces, raster), "clamp")
        color = shade(interpolate(colors, faces, raster) * tex, normals, sh)
        return jnp.sum(composite(color, raster.mask, 0.3) * weights)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(colors0, albedo0, sh0)
    f = jax.jit(loss)
    numeric = (_numeric_grad(lambda c: float(f(c, albedo0, sh0)), colors0),
               _numeric_grad(lambda a: float(f(colors0, a, sh0)), albedo0),
               _numeric_grad(lambda s: float(f(colors0, albedo0, s)), sh0))
    for analytic, fd in zip(grads, numeric):
        assert np.abs(fd).max() > 1e-3
        np.testing.assert_allclose(np.asarray(analytic), fd, rtol=2e-2, atol=2e-2 * np.abs(fd).max())


def test_render_mesh_textured_lit_and_supersampled():
    vertices, faces, uv, camera = _quad()
    albedo = jnp.full((4, 4, 3), 0.5)
    sh = jnp.zeros((9, 3)).at[0].set(1.0 / 0.28209479)  # constant irradiance 1
    render = jax.jit(lambda v, s: render_mesh(v, faces, camera, 16, albedo, uv_coords=uv, uv_faces=faces,
                                              sh_coeffs=sh, background=jnp.array([0.0, 0.0, 1.0]),
                                              supersample=s), static_argnums=1)
    plain = render(vertices, 1)
    covered = np.asarray(plain.mask) > 0
    np.testing.assert_allclose(np.asarray(plain.image)[covered], 0.5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(plain.image)[~covered], np.tile([0.0, 0.0, 1.0], ((~covered).sum(), 1)), atol=1e-6)
    smooth = render(vertices, 2)
    mask = np.asarray(smooth.mask)
    assert np.any((mask > 0) & (mask < 1)), "supersampling should give fractional coverage at the silhouette"
    assert abs(mask.mean() - covered.mean()) < 0.05
    per_vertex = render_mesh(vertices, faces, camera, 16, jnp.full((4, 3), 0.25))
    np.testing.assert_allclose(np.asarray(per_vertex.image)[covered], 0.25, atol=1e-6)
    with pytest.raises(ValueError, match="uv_coords"):
        render_mesh(vertices, faces, camera, 16, albedo)

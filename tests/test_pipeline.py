"""`--alignment=pipeline`: rendered photos cropped as a deployed dlib system does (face box -> 5-point shape
predictor -> 150x150 chip), inside the evaluation, against the pipeline run on its own and against dlib-bin."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simadv_jax import simulator
from simadv_jax.evaluate import make_evaluate, make_renderer
from simadv_jax.recognizers import pipeline, shape_predictor
from tests.search_fixtures import dlib_chip_recognizer, head, space, tiny_recognizer

# The probe's pose and light; rows: frontal, turned, and a black head (no light) that no detector finds.
SPEC = "yaw=-1:1,ambient=0:1,light_intensity=0:1"
RHO = np.array([[0.0, 0.6, 0.3], [0.4, 0.6, 0.3], [-0.3, 0.7, 0.2], [0.0, 0.0, 0.0]], np.float32)


@functools.lru_cache(None)
def _pipeline():
    return make_evaluate(space(SPEC), *head(), dlib_chip_recognizer(), alignment="pipeline", batch_size=4)


@functools.lru_cache(None)
def _photos():
    """The probes' photos (N, S, S, 3) float32 as the evaluation's renderer draws them (the same program, so the
    same 8-bit grey values reach the predictor) and their projected landmarks (N, L, 2; only the box of the
    landmarks uses them: zeros when BlazeFace gives the box)."""
    model, texture = head()
    photos = make_renderer(space(SPEC), model, texture, simulator.View.photo()).images(RHO).probe
    if _pipeline().renderer.box_source == "blazeface":
        return photos, np.zeros((len(RHO), model.landmarks.num_landmarks, 2), np.float32)
    render = jax.jit(jax.vmap(lambda p: simulator.render_view(model, texture, p, simulator.View.photo())))
    return photos, np.asarray(render(space(SPEC).decode(RHO).probe).landmarks)


@functools.lru_cache(None)
def _alone():
    """pipeline.acquire run on its own over the probes' photos."""
    photos, landmarks = _photos()
    acquisition = _pipeline().renderer.head.acquisition
    return jax.jit(jax.vmap(lambda im, lm: pipeline.acquire(acquisition, im, lm)))(photos, landmarks)


def test_chips_are_the_pipeline_on_the_rendered_photo():
    evaluation = _pipeline()
    pairs, alone = evaluation.images(RHO), _alone()
    np.testing.assert_array_equal(pairs.acquired[:, 1], np.asarray(alone.acquired))
    ok = np.asarray(alone.acquired)
    np.testing.assert_allclose(pairs.probe[ok], np.asarray(alone.chip)[ok], atol=1e-4)
    assert pairs.probe.shape == (4, 150, 150, 3) and pairs.acquired[:, 0].all()  # the frontal reference
    np.testing.assert_array_equal(pairs.valid, pairs.acquired.all(axis=1))


def test_scores_report_a_failure_to_acquire_apart_from_a_false_non_match():
    evaluation = _pipeline()
    scores = evaluation.score_points(RHO)
    assert scores.acquired[:3].all()
    if evaluation.renderer.box_source == "blazeface":
        assert not scores.acquired[3]  # the black head: no face found, so neither valid nor a false non-match
    np.testing.assert_array_equal(scores.valid, scores.acquired)
    assert not (scores.adversarial & ~scores.valid).any()
    np.testing.assert_array_equal(scores.acquired, evaluation.images(RHO).acquired.all(axis=1))


def test_parts_and_chip_match_dlib_on_the_rendered_photo():
    dlib = pytest.importorskip("dlib", reason="dlib-bin (the reference implementation) is not installed")
    photos, alone = _photos()[0], _alone()
    predictor = dlib.shape_predictor(shape_predictor.model_path())
    for photo, rect, parts, chip, ok in zip(photos, *(np.asarray(a) for a in (alone.rect, alone.parts, alone.chip,
                                                                               alone.acquired))):
        if not ok:
            continue
        image = np.rint(photo * 255).astype(np.uint8)
        shape = predictor(image, dlib.rectangle(*map(int, rect)))
        assert np.abs(parts - np.array([[p.x, p.y] for p in shape.parts()])).max() <= 1
        want = dlib.get_face_chip(image, shape, pipeline.CHIP_SIZE, pipeline.CHIP_PADDING).astype(np.float32)
        assert np.abs(chip * 255 - want).mean() < 1.0


def test_pipeline_alignment_needs_dlibs_chip():
    with pytest.raises(ValueError, match="--alignment=pipeline"):
        make_evaluate(space(SPEC), *head(), tiny_recognizer(), alignment="pipeline")
    with pytest.raises(ValueError, match="--alignment: expected one of oracle, pipeline"):
        make_evaluate(space(SPEC), *head(), tiny_recognizer(), alignment="mtcnn")


def test_blank_photo_is_not_acquired():
    acquisition = _pipeline().renderer.head.acquisition
    if acquisition.detector is None:
        pytest.skip("BlazeFace not fetched: the box of the projected landmarks always acquires")
    _, acquired = pipeline.face_rect(acquisition, jnp.full((256, 256, 3), 0.5), None)
    assert not bool(acquired)

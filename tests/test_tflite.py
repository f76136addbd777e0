"""BlazeFace and the face-landmark model (JAX, read by recognizers.tflite) against TFLite's own runtime
(ai-edge-litert), and the project's photo pipeline on the fetched photos."""
import numpy as np
import pytest

from simadv_jax import fetch, realism
from simadv_jax.recognizers import detectors, tflite
from tests import model_fixtures

# BlazeFace: at the anchors that detect a face (score >= 0.5) every output within 1e-4. Elsewhere |delta| <=
# 5e-4 * max(1, |value|): on black letterbox borders activations grow to thousands (offsets up to 6,000, where one
# float32 ulp is 4.9e-4) and TFLite's own XNNPACK and reference kernels differ from each other by 1.4e-4 * max(1,
# |value|) on these inputs (measured: ours vs XNNPACK 3.2e-4, vs the reference kernels 2.4e-4).
DETECTOR_TOLERANCE = 1e-4
BORDER_TOLERANCE = 5e-4
# Landmarks are 192-px crop pixels (values up to ~190, where one float32 ulp is 1.5e-5): compared in units of
# the crop (x / 192), max |delta| <= 1e-6 (= 1.9e-4 px); measured 6e-7 (1.2e-4 px) on noise.
LANDMARK_TOLERANCE = 1e-6


def _litert(name: str, inputs: np.ndarray) -> list[np.ndarray]:
    """The .tflite model `name` run by ai-edge-litert on each input (batch 1 each): outputs in subgraph order."""
    interpreter_module = pytest.importorskip("ai_edge_litert.interpreter")
    interpreter = interpreter_module.Interpreter(model_path=fetch.asset_path(name))
    interpreter.allocate_tensors()
    index = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    model = tflite.read_model(fetch.asset_path(name))
    outputs = []
    for x in inputs:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[None])
        interpreter.invoke()
        outputs.append([interpreter.get_tensor(index[model.names[t]])[0] for t in model.outputs])
    return [np.stack(o) for o in zip(*outputs)]


@pytest.fixture(scope="module")
def faces():
    model_fixtures.fetched()
    return model_fixtures.photo_faces()


def test_detector_matches_litert(faces):
    """The 4 letterboxed portraits, the group photo's 9 half-size windows (as `detectors.detect` searches it) and 2
    rendered chips: every output."""
    def windows(image, fractions):
        square = detectors.letterbox(image)[0]
        return [np.asarray(detectors.warp(square, np.array([[w / 128, 0, x], [0, w / 128, y]], np.float32), 128))
                for x, y, w in detectors.tiles(square.shape[0], fractions)]

    portraits = [w for name, _ in model_fixtures.PHOTOS[:4] for w in windows(model_fixtures.read_photo(name), (1.0,))]
    group = windows(model_fixtures.read_photo("t1.jpg"), (0.5,))
    chips = [np.asarray(detectors.warp(c, detectors._scaling(150 / 128), 128))
             for c in model_fixtures.rendered_chips("dlib150", 2)]
    inputs = (np.stack(portraits + group + chips) * 2.0 - 1.0).astype(np.float32)
    ours = [np.asarray(o) for o in detectors.detector_logits(inputs)]
    references = _litert(detectors.DETECTOR_FILE, inputs)
    faces_at = references[1][..., 0] >= 0.0  # sigmoid(logit) >= 0.5
    assert faces_at[:4].any(axis=1).all() and faces_at[-2:].any(axis=1).all() and faces_at[4:-2].any()
    for mine, reference in zip(ours, references):
        delta = np.abs(mine - reference)
        relative = delta / np.maximum(1.0, np.abs(reference))
        print(f"blazeface {mine.shape}: at faces max |delta| {delta[faces_at].max():.3g}; everywhere max |delta| "
              f"{delta.max():.3g}, relative {relative.max():.3g}, max |value| {np.abs(reference).max():.3g}")
        assert delta[faces_at].max() <= DETECTOR_TOLERANCE and relative.max() <= BORDER_TOLERANCE


def test_landmarks_match_litert(faces):
    """The 192² landmark crops of every photo face and 2 rendered chips."""
    crops = [np.asarray(detectors.warp(image, detectors.landmark_crop(d), 192))
             for name, _ in model_fixtures.PHOTOS[:4] for image in [model_fixtures.read_photo(name)]
             for d in detectors.detect(image)[:1]]
    chips = [np.asarray(detectors.warp(c, detectors._scaling(150 / 192), 192))
             for c in model_fixtures.rendered_chips("dlib150", 2)]
    inputs = np.stack(crops + chips).astype(np.float32)
    points, score = (np.asarray(o) for o in detectors.landmark_outputs(inputs))
    ref_points, ref_score = _litert(detectors.LANDMARK_FILE, inputs)
    delta = np.abs(points - ref_points).max() / 192
    print(f"landmarks: max |delta| {delta * 192:.3g} px ({delta:.3g} of the crop); face logit "
          f"{np.abs(score - ref_score).max():.3g}")
    assert delta <= LANDMARK_TOLERANCE and np.abs(score - ref_score).max() <= DETECTOR_TOLERANCE


def test_photo_pipeline_finds_every_face(faces):
    """One face in each portrait, six in the group photo; crops land the template's points."""
    counts = {}
    for _, name, _, _ in faces:
        counts[name] = counts.get(name, 0) + 1
    assert counts == {"obama.jpg": 1, "obama2.jpg": 1, "obama3.jpg": 1, "biden.jpg": 1,
                      "t1.jpg": model_fixtures.T1_FACES}


def test_blazeface_counts_rendered_faces():
    """The realism report's batched counter: a framed render of the embedded head is one face, grey is none."""
    model_fixtures.fetched()
    chips = np.rint(model_fixtures.rendered_chips("facebox224", 2) * 255).astype(np.uint8)
    blank = np.full_like(chips[:1], 128)
    np.testing.assert_array_equal(detectors.count_faces(np.concatenate([chips, blank])), [1, 1, 0])
    metrics = realism.blazeface_metrics(chips, np.concatenate([chips[:1], blank]), np.array([0.8, -0.8]))
    assert metrics["blazeface_detection_rate_frontal"] == 1.0 and metrics["blazeface_detection_rate_yaw45"] == 0.5
    assert metrics["blazeface_detection_rate_yaw45_by_sign"] == {"+45": 1.0, "-45": 0.0}

"""MediaPipe's BlazeFace (short range) and 468-point face landmark models as JAX functions, and real photos
detected and aligned with them into any recognizer's template.

Both models are read from MediaPipe's own .tflite files (`@mediapipe/face_mesh`, Apache-2.0; fetched by
`python -m launch.fetch_models`) by `simadv_jax.recognizers.tflite`, and run as MediaPipe's graphs configure them:

- BlazeFace: 128x128 RGB in [-1, 1] (the image letterboxed to a square with black); 896 SSD anchors (strides 8,
  16, 16, 16, 2 + 6 anchors per cell, fixed size 1); box centre and size and 6 keypoints (eye, eye, nose tip,
  mouth, ear, ear) as offsets / 128 from the anchor centre; score sigmoid(clip(logit, +-100)); detections with
  score >= 0.5 merged by weighted non-maximum suppression (IoU > 0.3).
- Face landmarks: the detection box squared to its longer side, scaled 1.5x and rotated so the eyes are level,
  resampled to 192x192 RGB in [0, 1]; 468 (x, y, z) points in crop pixels, mapped back to the image.

`align_photo(image, template)` does both and warps the image by the least-squares similarity that puts the
mesh's points for the template's 5 landmarks (MESH_FOR_IBUG: the same anatomical points as the iBUG-68
indices the templates name) onto the template. Pixel coordinates are continuous (pixel (i, j) has its centre at
(j + 0.5, i + 0.5)).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simadv_jax import fetch
from simadv_jax.recognizers import tflite
from simadv_jax.render.align import get_template, similarity

DETECTOR_FILE = "face_detection_short_range.tflite"
LANDMARK_FILE = "face_landmark.tflite"
DETECTOR_SIZE = 128
LANDMARK_SIZE = 192
MIN_SCORE = 0.5
NMS_IOU = 0.3
LANDMARK_CROP_SCALE = 1.5
# MediaPipe face-mesh index of the same anatomical point as each iBUG-68 landmark the templates use.
MESH_FOR_IBUG = {36: 33, 37: 160, 38: 158, 39: 133, 40: 153, 41: 144, 42: 362, 43: 385, 44: 387, 45: 263,
                 46: 373, 47: 380, 30: 1, 33: 2, 48: 61, 54: 291}


class Detection(NamedTuple):
    """score; box (x0, y0, x1, y1) and keypoints (6, 2) in image pixels (continuous coordinates)."""

    score: float
    box: np.ndarray
    keypoints: np.ndarray


def anchors() -> np.ndarray:
    """(896, 2) BlazeFace short-range anchor centres in [0, 1] (x, y): a 16x16 grid with 2 anchors per cell,
    then an 8x8 grid with 6 (MediaPipe's SsdAnchorsCalculator with fixed_anchor_size)."""
    centres = []
    for grid, per_cell in ((16, 2), (8, 6)):
        y, x = np.meshgrid((np.arange(grid) + 0.5) / grid, (np.arange(grid) + 0.5) / grid, indexing="ij")
        cells = np.stack([x.ravel(), y.ravel()], axis=-1)
        centres.append(np.repeat(cells, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


@functools.lru_cache(maxsize=2)
def _model(name: str):
    model = tflite.read_model(fetch.asset_path(name))
    return jax.jit(tflite.graph_function(model)), tflite.params(model)


def detector_params():
    """BlazeFace's weights (a pytree of arrays; raises FileNotFoundError naming the fetch command when the model
    is not fetched)."""
    return _model(DETECTOR_FILE)[1]


def detector_logits(images: jax.Array, params=None) -> tuple[jax.Array, jax.Array]:
    """(B, 128, 128, 3) float32 RGB in [-1, 1] -> (regressors (B, 896, 16), score logits (B, 896, 1)); params:
    `detector_params()` passed as traced data (default: the cached weights as constants)."""
    apply, weights = _model(DETECTOR_FILE)
    return apply(weights if params is None else params, images)


def landmark_outputs(crops: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(B, 192, 192, 3) float32 RGB in [0, 1] -> (landmarks (B, 1, 1, 1404) crop pixels, face logit (B, 1, 1, 1))."""
    apply, params = _model(LANDMARK_FILE)
    return apply(params, crops)


def decode(regressors, logits, xp=np) -> tuple:
    """One image's raw outputs -> (scores (896,), boxes (896, 4) x0 y0 x1 y1, keypoints (896, 6, 2)), all in
    [0, 1] of the 128x128 input. xp: numpy (host, float64) or jax.numpy (traced, float32)."""
    centre = anchors()
    dtype = np.float64 if xp is np else jnp.float32
    raw = xp.asarray(regressors, dtype) / DETECTOR_SIZE
    xy = raw[:, 0:2] + centre
    half = raw[:, 2:4] / 2
    keypoints = raw[:, 4:16].reshape(-1, 6, 2) + centre[:, None]
    scores = 1.0 / (1.0 + xp.exp(-xp.clip(xp.asarray(logits, dtype)[:, 0], -100, 100)))
    return scores, xp.concatenate([xy - half, xy + half], axis=-1), keypoints


def _area(boxes, xp=np):
    return xp.prod(boxes[..., 2:] - boxes[..., :2], axis=-1)


def _iou(box, boxes, xp=np):
    """(4,), (N, 4) x0 y0 x1 y1 -> (N,) intersection over union (xp: numpy or jax.numpy)."""
    lo, hi = xp.maximum(box[:2], boxes[:, :2]), xp.minimum(box[2:], boxes[:, 2:])
    inter = xp.prod(xp.clip(hi - lo, 0, None), axis=-1)
    return inter / xp.maximum(_area(box, xp) + _area(boxes, xp) - inter, 1e-12)


def best_face(regressors: jax.Array, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Traced: one image's raw outputs -> (score (), box (4,) x0 y0 x1 y1 in [0, 1] of the input) of the best
    detection as `weighted_nms` keeps it first (the best anchor's score-weighted group of every detection with
    score >= MIN_SCORE overlapping it by IoU > NMS_IOU); a face is found iff score >= MIN_SCORE."""
    scores, boxes, _ = decode(regressors, logits, jnp)
    top = jnp.argmax(scores)
    weight = jnp.where((_iou(boxes[top], boxes, jnp) > NMS_IOU) & (scores >= MIN_SCORE), scores, 0.0)
    return scores[top], (boxes * weight[:, None]).sum(0) / jnp.maximum(weight.sum(), 1e-12)


def weighted_nms(scores, boxes, keypoints) -> list[tuple[float, np.ndarray, np.ndarray]]:
    """MediaPipe's weighted non-maximum suppression of the detections with score >= MIN_SCORE: the best left
    absorbs every detection overlapping it by IoU > NMS_IOU; boxes and keypoints are score-weighted means."""
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] >= MIN_SCORE]
    kept = []
    while order:
        overlap = _iou(boxes[order[0]], boxes[order]) > NMS_IOU
        group = [i for i, o in zip(order, overlap) if o]
        w = scores[group][:, None]
        kept.append((float(scores[order[0]]), (boxes[group] * w).sum(0) / w.sum(),
                     (keypoints[group] * w[:, :, None]).sum(0) / w.sum()))
        order = [i for i, o in zip(order, overlap) if not o]
    return kept


def letterbox(image: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """(H, W, 3) float32 [0, 1] -> (square (S, S, 3) with the image centred on black, S = max(H, W); S; offset (2,)
    x, y of the image's corner in the square)."""
    h, w = image.shape[:2]
    side = max(h, w)
    offset = np.array([(side - w) // 2, (side - h) // 2])
    square = np.zeros((side, side, 3), np.float32)
    square[offset[1]:offset[1] + h, offset[0]:offset[0] + w] = image
    return square, side, offset


def warp(image: jax.Array, to_source: jax.Array, size: int) -> jax.Array:
    """Resamples `image` (H, W, C) into a (size, size, C) crop, bilinear, zeros outside: crop point p (continuous
    pixels, (u, v)) takes the image at to_source[:, :2] @ p + to_source[:, 2] ((2, 3) affine)."""
    centres = jnp.arange(size, dtype=jnp.float32) + 0.5
    v, u = jnp.meshgrid(centres, centres, indexing="ij")
    points = jnp.stack([u, v], axis=-1) @ to_source[:, :2].T + to_source[:, 2]
    coords = [points[..., 1] - 0.5, points[..., 0] - 0.5]
    return jnp.stack([jax.scipy.ndimage.map_coordinates(image[..., c], coords, order=1, mode="constant")
                      for c in range(image.shape[-1])], axis=-1)


def tiles(side: int, fractions: tuple[float, ...]) -> np.ndarray:
    """(T, 3) square windows (x0, y0, width) of a side x side image: for each fraction f, windows f * side wide
    overlapping by half, covering the image."""
    windows = []
    for f in fractions:
        width = side * f
        starts = np.linspace(0, side - width, max(1, int(round(2 / f)) - 1))
        windows += [(x, y, width) for y in starts for x in starts]
    return np.asarray(windows, np.float64)


def detect(image: np.ndarray, fractions: tuple[float, ...] = (1.0, 0.5)) -> list[Detection]:
    """Faces BlazeFace finds in one (H, W, 3) float32 RGB [0, 1] image, best first.

    The image is letterboxed to a square and searched whole and in overlapping windows (`tiles(fractions)`:
    the short-range model finds faces that fill roughly 1/6 to 2/3 of its input); every window is one batched
    detector call, and weighted NMS merges the detections of all windows in image pixels.
    """
    square, side, offset = letterbox(image)
    windows = tiles(side, fractions)
    to_source = np.stack([np.array([[w / DETECTOR_SIZE, 0, x], [0, w / DETECTOR_SIZE, y]], np.float32)
                          for x, y, w in windows])
    small = jax.vmap(warp, (None, 0, None))(jnp.asarray(square), jnp.asarray(to_source), DETECTOR_SIZE)
    regressors, logits = detector_logits(small * 2.0 - 1.0)
    scores, boxes, keypoints = [], [], []
    for (x, y, w), r, l in zip(windows, np.asarray(regressors), np.asarray(logits)):
        s, b, k = decode(r, l)
        scores.append(s)
        boxes.append(b * w + np.array([x, y, x, y]) - np.tile(offset, 2))
        keypoints.append(k * w + np.array([x, y]) - offset)
    kept = weighted_nms(np.concatenate(scores), np.concatenate(boxes), np.concatenate(keypoints))
    return [Detection(*d) for d in kept]


def _scaling(factor: float) -> np.ndarray:
    """(2, 3) affine scaling continuous pixel coordinates by `factor`."""
    return np.array([[factor, 0, 0], [0, factor, 0]], np.float32)


def _whole_image_input(image: jax.Array) -> jax.Array:
    """(S, S, 3) float32 RGB [0, 1] square image -> (128, 128, 3) detector input in [-1, 1] (bilinear resize)."""
    return warp(image, jnp.asarray(_scaling(image.shape[0] / DETECTOR_SIZE)), DETECTOR_SIZE) * 2.0 - 1.0


def count_faces(images: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 square images -> (N,) int faces BlazeFace finds in each (one batched call)."""
    regressors, logits = detector_logits(jax.vmap(_whole_image_input)(jnp.asarray(images, jnp.float32) / 255.0))
    return np.array([len(weighted_nms(*decode(r, l))) for r, l in zip(np.asarray(regressors), np.asarray(logits))])


def face_box(params, image: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Traced: (S, S, 3) float32 RGB [0, 1] square image -> (score (), box (4,) x0 y0 x1 y1 in image pixels,
    continuous coordinates) of the best face BlazeFace finds in the whole image (`best_face`; as `count_faces`
    sees it). params: `detector_params()`."""
    regressors, logits = detector_logits(_whole_image_input(image)[None], params)
    score, box = best_face(regressors[0], logits[0])
    return score, box * image.shape[0]


def landmark_crop(detection: Detection) -> np.ndarray:
    """(2, 3) affine from the 192x192 landmark crop to the image: the detection box squared to its longer side,
    scaled LANDMARK_CROP_SCALE about its centre, its x axis along the eye line (keypoint 0 -> 1)."""
    centre = (detection.box[:2] + detection.box[2:]) / 2
    side = np.max(detection.box[2:] - detection.box[:2]) * LANDMARK_CROP_SCALE
    eyes = detection.keypoints[1] - detection.keypoints[0]
    d = eyes / np.linalg.norm(eyes)
    matrix = np.array([[d[0], -d[1]], [d[1], d[0]]]) * side / LANDMARK_SIZE
    return np.concatenate([matrix, (centre - matrix @ np.full(2, LANDMARK_SIZE / 2))[:, None]], axis=1)


def face_mesh(image: np.ndarray, detection: Detection) -> tuple[np.ndarray, float]:
    """(468, 2) mesh landmarks (x, y) in image pixels of the face `detection` found in `image` (H, W, 3) float32
    RGB [0, 1], and the model's face score (sigmoid of its face logit)."""
    to_image = landmark_crop(detection)
    crop = warp(jnp.asarray(image), jnp.asarray(to_image, jnp.float32), LANDMARK_SIZE)
    points, logit = landmark_outputs(crop[None])
    xy = np.asarray(points, np.float64).reshape(468, 3)[:, :2]
    return xy @ to_image[:, :2].T + to_image[:, 2], float(1.0 / (1.0 + np.exp(-float(np.ravel(logit)[0]))))


def template_points(mesh: np.ndarray, template: str) -> np.ndarray:
    """(468, 2) mesh landmarks -> (5, 2) the points `template` aligns (means of MESH_FOR_IBUG's points)."""
    return np.stack([mesh[[MESH_FOR_IBUG[i] for i in group]].mean(axis=0) for group in get_template(template).ibug68])


def align_photo(image: np.ndarray, mesh: np.ndarray, template: str) -> np.ndarray:
    """The (S, S, 3) float32 crop of `template` (S its size) from `image` (H, W, 3) float32 RGB [0, 1], given the
    face's (468, 2) mesh landmarks: the least-squares similarity onto the template's 5 points. Bilinear at k x S
    then a k x k box filter (k = ceil(image pixels per crop pixel)), so a large photo is not aliased."""
    t = get_template(template)
    a, shift = similarity(jnp.asarray(template_points(mesh, template), jnp.float32),
                          jnp.asarray(t.points, jnp.float32))
    inverse = np.linalg.inv(np.asarray(a, np.float64))
    k = max(1, int(np.ceil(np.sqrt(abs(np.linalg.det(inverse))))))
    to_source = np.concatenate([inverse / k, (-inverse @ np.asarray(shift))[:, None]], axis=1)
    fine = np.asarray(warp(jnp.asarray(image), jnp.asarray(to_source, jnp.float32), t.size * k))
    return fine.reshape(t.size, k, t.size, k, 3).mean(axis=(1, 3))

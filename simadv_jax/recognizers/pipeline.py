"""dlib's deployed face pipeline on a rendered photo as one pure JAX function (`acquire`): a face box -> dlib's face
rectangle -> the 5-point shape predictor -> dlib's 150x150 chip (`get_face_chip(img, shape, 150, 0.25)`), the way
`face_recognition` runs dlib (face detector, `pose_predictor_5_point`, `compute_face_descriptor`).

The box comes from BlazeFace (`detectors.face_box`; the face is acquired iff its score >= detectors.MIN_SCORE)
when its model is fetched, else from the box of the head's projected landmarks (always acquired). A fixed
calibration turns either box into the rectangle dlib's CNN face detector would give (`mmod_human_face_detector`,
the detector the shape predictor is run after): centre = box centre + offset x the box's side, square side = ratio
x the box's side (BLAZEFACE_TO_DLIB: the box's width; LANDMARKS_TO_DLIB: the larger side of the landmarks' box);
the rectangle is rounded to integer pixels as dlib's detector reports it. Fitted against dlib's CNN detector (a
detector, not the recognizer) on the photos the pipeline crops: BLAZEFACE_TO_DLIB, the medians over the 111
renders of 60 embedded-head identities (frontal and yaw +-45 deg, `realism` photos) where both detectors found one
face (IoU with dlib's rectangle 0.79; the previous fit on the fetched photos' faces, ratio 0.994: 0.77);
LANDMARKS_TO_DLIB on 40 frontal renders. `realism` reports the IoU per |yaw| bin.

Coordinates: boxes and landmarks in the simulator's continuous pixels (pixel (i, j) centred at (j + 0.5, i + 0.5));
dlib's rectangles and parts put pixel centres at integers (continuous - 0.5).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from simadv_jax.recognizers import detectors, shape_predictor
from simadv_jax.recognizers.detectors import warp

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# (centre offset x, centre offset y, side), in units of the box's side (see the module docstring).
BLAZEFACE_TO_DLIB = (-0.056, -0.113, 0.936)
LANDMARKS_TO_DLIB = (-0.055, -0.18, 1.02)


@struct.dataclass
class Acquisition:
    """The pipeline's models as traced data: predictor, the ShapePredictor arrays; detector, BlazeFace's weights
    (`detectors.detector_params()`), or None for the box of the projected landmarks."""

    predictor: Any
    detector: Any = None

    @property
    def box_source(self) -> str:
        return "blazeface" if self.detector is not None else "landmarks"


def load_acquisition() -> Acquisition:
    """The installed shape predictor, with BlazeFace when its model is fetched (`python -m launch.fetch_models`)."""
    try:
        detector = detectors.detector_params()
    except FileNotFoundError:
        detector = None
    return Acquisition(shape_predictor.load(), detector)


class Acquired(NamedTuple):
    """chip: (150, 150, C) float32, the photo's C channels; acquired: () bool; parts: (5, 2) dlib's integer parts
    (dlib pixels); rect: (4,) dlib's rectangle left, top, right, bottom; to_photo: (2, 3) affine from chip to photo
    pixels (continuous coordinates)."""

    chip: jax.Array
    acquired: jax.Array
    parts: jax.Array
    rect: jax.Array
    to_photo: jax.Array


def dlib_rect(box: jax.Array, side: jax.Array, calibration) -> jax.Array:
    """Continuous box (4,) x0 y0 x1 y1 and its reference side () -> dlib's integer rectangle (4,)."""
    dx, dy, ratio = calibration
    centre = (box[:2] + box[2:]) / 2 - 0.5 + jnp.stack([dx, dy]) * side
    half = ratio * side / 2
    return jnp.rint(jnp.concatenate([centre - half, centre + half]))


def face_rect(acquisition: Acquisition, image: jax.Array, landmarks: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(dlib rectangle (4,), acquired ()) of the face in `image` (S, S, 3) [0, 1] whose projected landmarks are
    (L, 2) continuous pixels."""
    if acquisition.detector is None:
        box = jnp.concatenate([landmarks.min(axis=0), landmarks.max(axis=0)])
        return dlib_rect(box, jnp.max(box[2:] - box[:2]), LANDMARKS_TO_DLIB), jnp.ones((), bool)
    score, box = detectors.face_box(acquisition.detector, image)
    return dlib_rect(box, box[2] - box[0], BLAZEFACE_TO_DLIB), score >= detectors.MIN_SCORE


def chip_to_photo(parts: jax.Array) -> jax.Array:
    """(2, 3) affine from dlib's 150x150 chip of 5 parts (5, 2) (dlib pixels) to the photo, both in continuous
    pixels (p_continuous = p_dlib + 0.5)."""
    to_image = shape_predictor.chip_transform(parts, CHIP_SIZE, CHIP_PADDING)
    shift = to_image[:, 2] + 0.5 - to_image[:, :2] @ jnp.full(2, 0.5)
    return jnp.concatenate([to_image[:, :2], shift[:, None]], axis=1)


def chip(image: jax.Array, parts: jax.Array) -> jax.Array:
    """dlib's (150, 150, C) face chip of `image` (H, W, C) for 5 parts (5, 2) in dlib pixels, bilinear, zeros
    outside (dlib rounds its chip down to 8 bits; this one stays float). As dlib's `get_face_chip` when the chip's
    scale (photo pixels per chip pixel) is <= 2; above, dlib first blurs with an image pyramid."""
    return warp(image, chip_to_photo(parts), CHIP_SIZE)


def to_chip(to_photo: jax.Array, points: jax.Array) -> jax.Array:
    """(N, 2) photo points -> chip points (continuous pixels), inverting the (2, 3) `to_photo`."""
    return (points - to_photo[:, 2]) @ jnp.linalg.inv(to_photo[:, :2]).T


def acquire(acquisition: Acquisition, image: jax.Array, landmarks: jax.Array) -> Acquired:
    """The pipeline on one rendered photo (pure; vmap over images): `image` (S, S, C) float32 in [0, 1], RGB in its
    first 3 channels (any further channels, e.g. a coverage mask, are chipped alike); `landmarks` (L, 2) its
    projected landmarks (continuous pixels, used only without a detector). The predictor sees the photo's 8-bit
    grey values, as from a file."""
    rgb = image[..., :3]
    rect, acquired = face_rect(acquisition, rgb, landmarks)
    grey = shape_predictor.intensity(jnp.rint(jnp.clip(rgb, 0.0, 1.0) * 255.0))
    parts = shape_predictor.predict(acquisition.predictor, grey, rect)
    to_photo = chip_to_photo(parts)
    return Acquired(warp(image, to_photo, CHIP_SIZE), acquired, parts, rect, to_photo)

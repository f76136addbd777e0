"""Aligned rendering: fold the similarity transform onto a recognizer's 5-point template into the projection.

Instead of rendering a large image and resampling a crop (as `dlib.get_face_chip` or insightface's
`norm_crop` do with photos), the 2-D similarity that maps the model's projected landmarks onto the
template is applied in clip space, so the face is rasterized directly into the crop at the recognizer's
resolution.

Templates are in continuous pixel coordinates of the crop (see `simadv_jax.render.types`: pixel (i, j)
has its centre at (j + 0.5, i + 0.5)). Both published templates use "pixel centres at integers"
coordinates, so 0.5 is added to each.

- "arcface112": insightface's standard 112 x 112 ArcFace template (`arcface_dst`): the two eye centres,
  the nose tip and the two mouth corners. From iBUG-68 landmarks: mean of 36-41, mean of 42-47, 30, 48, 54.
- "dlib150": where dlib's `get_face_chip_details(det, size=150, padding=0.25)` puts the 5 points of its
  5-point shape predictor. dlib defines them on the unit square (part 0..4: subject's left eye outer and
  inner corner, right eye outer and inner corner, base of the nose, at (0.8595674595992, 0.2134981538014),
  (0.6460604764104, 0.2289674387677), (0.1205750620789, 0.2137274526848), (0.3340850613712,
  0.2290642403242), (0.4901123135679, 0.6277975316475)) and maps p -> (padding + p) / (2 * padding + 1) *
  size. From iBUG-68 landmarks: 45, 42, 36, 39, 33 (the same anatomical points).
- "facebox224": a loose face-box crop at 224 x 224 (faceres: trained on detector boxes, no landmark alignment):
  the ArcFace template's points shrunk by FACEBOX_SHRINK about the crop centre and scaled to 224, i.e. the
  ArcFace crop's face inside a box 1.25x wider (a detector box with a 25% margin). Same iBUG-68 points.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simadv_jax.render.camera import Camera


class Template(NamedTuple):
    """size: crop side in pixels; points: (5, 2) targets in continuous pixel coordinates (u right, v down);
    ibug68: for each target point, the iBUG-68 landmark indices whose mean it is."""

    size: int
    points: np.ndarray
    ibug68: tuple[tuple[int, ...], ...]


def _dlib_points(size: int, padding: float) -> np.ndarray:
    unit = np.array([
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ])
    return (padding + unit) / (2 * padding + 1) * size + 0.5


_ARCFACE_112 = np.array([
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
]) + 0.5

FACEBOX_SHRINK = 0.8


def _facebox_points(size: int) -> np.ndarray:
    return ((_ARCFACE_112 - 56.0) * FACEBOX_SHRINK + 56.0) * (size / 112.0)


_EYES_NOSE_MOUTH = (tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,))
TEMPLATES = {
    "arcface112": Template(112, _ARCFACE_112, _EYES_NOSE_MOUTH),
    "dlib150": Template(150, _dlib_points(150, 0.25), ((45,), (42,), (36,), (39,), (33,))),
    "facebox224": Template(224, _facebox_points(224), _EYES_NOSE_MOUTH),
}

# Offset of each supported landmark layout's first point within iBUG-68 ("flame51" drops the 17 contour points).
LAYOUT_OFFSETS = {"ibug68": 0, "flame51": 17}


def get_template(name: str) -> Template:
    """Template by name; unknown names are a ValueError listing the known ones."""
    if name not in TEMPLATES:
        raise ValueError(f"template: unknown alignment template {name!r}; known: {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def five_points(landmarks: jax.Array, template: str, layout: str = "ibug68") -> jax.Array:
    """(L, D) landmarks in `layout` ("ibug68" or "flame51") -> (5, D) the points `template` aligns."""
    if layout not in LAYOUT_OFFSETS:
        raise ValueError(f"layout: unknown landmark layout {layout!r}; known: {', '.join(LAYOUT_OFFSETS)}")
    offset = LAYOUT_OFFSETS[layout]
    expected = 68 - offset
    if landmarks.shape[0] != expected:
        raise ValueError(f"landmarks: layout {layout!r} has {expected} points, got shape {landmarks.shape}")
    return jnp.stack([jnp.mean(landmarks[jnp.array(idx) - offset], axis=0) for idx in get_template(template).ibug68])


def similarity(source: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Least-squares 2-D similarity (rotation, uniform scale, translation; no reflection).

    source, target: (N, 2) -> (A (2, 2), t (2,)) minimizing sum |A source_n + t - target_n|^2
    (Umeyama's solution, as dlib's `find_similarity_transform` and skimage's `SimilarityTransform`).
    """
    mu_s = jnp.mean(source, axis=0)
    mu_t = jnp.mean(target, axis=0)
    s = source - mu_s
    d = target - mu_t
    norm = jnp.sum(s * s)
    a = jnp.sum(s[:, 0] * d[:, 0] + s[:, 1] * d[:, 1]) / norm
    b = jnp.sum(s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]) / norm
    matrix = jnp.array([[a, -b], [b, a]])
    return matrix, mu_t - matrix @ mu_s


def alignment_matrix(clip_points: jax.Array, template: str) -> jax.Array:
    """(5, 4) clip-space positions of the template's points -> (4, 4) clip-space transform M.

    M maps the points onto the template (least squares) in the NDC of the template's square crop:
    render `M @ clip` at `get_template(template).size`.
    """
    t = get_template(template)
    ndc = clip_points[:, :2] / clip_points[:, 3:4]
    target = jnp.asarray(t.points, jnp.float32)
    target_ndc = jnp.stack([target[:, 0] / t.size * 2 - 1, 1 - target[:, 1] / t.size * 2], axis=-1)
    a, shift = similarity(ndc, target_ndc)
    m = jnp.eye(4, dtype=jnp.float32)
    m = m.at[:2, :2].set(a).at[:2, 3].set(shift)
    return m


def align_camera(camera: Camera, landmarks: jax.Array, template: str, layout: str = "ibug68") -> Camera:
    """Camera whose projection renders `landmarks` (L, 3) world points onto `template` (least squares).

    Render with `resolution=get_template(template).size`.
    """
    clip = camera.to_clip(landmarks)
    ndc = clip[:, :3] / clip[:, 3:4]
    # Averaging (eye centres) happens on the projected points, as a 2-D landmark detector would see them.
    points = five_points(jnp.concatenate([ndc[:, :2], jnp.ones_like(ndc[:, :2])], axis=-1), template, layout)
    return camera.replace(projection=alignment_matrix(points, template) @ camera.projection)

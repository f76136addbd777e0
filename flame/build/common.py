"""What the parts of the embedded head share (build time only): the facial layout, the head's UV
parametrisation, smooth window functions and the UV-sphere triangulation.

Frame: metres, y up, the face looks down +z, the subject's left is +x (FLAME's convention). UV: u runs around the
head with the face at u = 0.5 (seam at the back), v = 1 at the top.
"""
from __future__ import annotations

import numpy as np

# Facial layout in the front view (x, y), metres.
EYE = (0.032, 0.025)
MOUTH_Y = -0.057
# The eyeballs: spheres of EYEBALL_RADIUS behind the eyelid apertures, ellipses of half axes APERTURE around EYE.
EYEBALL_RADIUS = 0.0125
APERTURE = (0.0115, 0.0048)
_UV_FRONT = 0.6  # u-warp strength: the front gets 1 / (1 - 0.6) = 2.5x the texels of a uniform unwrap
_UV_MIDDLE = 0.4  # v-warp strength: the equator band (the face) gets 1 / (1 - 0.4) = 1.7x


def gauss(x, y, cx, cy, sx, sy):
    """Axis-aligned Gaussian window at (cx, cy) with widths (sx, sy): 1 at the centre."""
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def ramp(t):
    """Smoothstep of t clipped to [0, 1]."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _warp(s, strength):
    """Odd monotone map of [-1, 1] onto itself, flatter at 0: strength * s^3 + (1 - strength) * s."""
    return strength * s**3 + (1.0 - strength) * s


def uv_to_directions(u, v):
    """UV coordinates (any shape) -> (..., 3) unit directions of the sphere the head is built from."""
    phi = np.pi * _warp(2.0 * np.asarray(u) - 1.0, _UV_FRONT)
    theta = 0.5 * np.pi * (1.0 + _warp(1.0 - 2.0 * np.asarray(v), _UV_MIDDLE))
    return np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)], -1)


def grid_faces(rings, columns, vid, tid, pole_top, pole_bottom):
    """Faces and UV faces of a UV sphere: fans at the poles, quads between rings 1..`rings` split along the
    diagonal that mirrors across the middle column (a mirror-symmetric triangulation)."""
    j = np.arange(columns)
    faces, uv_faces = [], []
    faces.append(np.stack([np.full_like(j, pole_top), vid(1, j + 1), vid(1, j)], -1))
    uv_faces.append(np.stack([tid(0, j), tid(1, j + 1), tid(1, j)], -1))
    left = (j < columns // 2)[:, None]
    for i in range(1, rings):
        a, b, c, d = vid(i, j), vid(i, j + 1), vid(i + 1, j), vid(i + 1, j + 1)
        ta, tb, tc, td = tid(i, j), tid(i, j + 1), tid(i + 1, j), tid(i + 1, j + 1)
        faces += [np.where(left, np.stack([a, b, c], -1), np.stack([a, b, d], -1)),
                  np.where(left, np.stack([b, d, c], -1), np.stack([a, d, c], -1))]
        uv_faces += [np.where(left, np.stack([ta, tb, tc], -1), np.stack([ta, tb, td], -1)),
                     np.where(left, np.stack([tb, td, tc], -1), np.stack([ta, td, tc], -1))]
    faces.append(np.stack([vid(rings, j), vid(rings, j + 1), np.full_like(j, pole_bottom)], -1))
    uv_faces.append(np.stack([tid(rings, j), tid(rings, j + 1), tid(rings + 1, j)], -1))
    return np.concatenate(faces), np.concatenate(uv_faces)


def uv_area_sign(uv, uv_faces):
    """The sign (+1, -1) of the summed signed areas of the (F, 3) `uv_faces` on (T, 2) `uv`: their winding."""
    corners = uv[uv_faces]
    d1, d2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    return np.sign(np.sum(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]))

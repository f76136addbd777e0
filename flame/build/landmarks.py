"""The embedded head's 68-point iBUG landmark embedding (build time only): rays cast at the head surface in iBUG
order (the eye points on the lid contour), each landmark the farthest hit's triangle and barycentrics."""
from __future__ import annotations

import numpy as np

from flame.build.common import APERTURE, EYE, MOUTH_Y
from flame.model import LandmarkEmbedding


def _ray_hit(vertices, faces, origin, direction):
    """(face index, barycentrics) of the farthest hit of a ray (Moller-Trumbore over all faces)."""
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    e1, e2 = v1 - v0, v2 - v0
    p = np.cross(direction, e2)
    det = np.sum(e1 * p, -1)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origin - v0
    u = np.sum(s * p, -1) * inv
    q = np.cross(s, e1)
    v = np.sum(direction * q, -1) * inv
    t = np.sum(e2 * q, -1) * inv
    eps = 1e-9  # a ray through an edge or a vertex hits its triangles
    hit = ok & (u >= -eps) & (v >= -eps) & (u + v <= 1 + eps) & (t > 0)
    if not hit.any():
        raise ValueError(f"landmark ray from {origin} along {direction} misses the head")
    face = int(np.argmax(np.where(hit, t, -np.inf)))
    bary = np.clip([1.0 - u[face] - v[face], u[face], v[face]], 0.0, 1.0)
    return face, bary / bary.sum()


def _ibug68_targets():
    """68 (origin, direction) rays in iBUG order; image-left is the subject's right (-x)."""
    rays = []
    for k in range(17):  # jaw line, cast horizontally outward from the vertical axis
        t = (k - 8) / 8.0
        angle = np.deg2rad(75.0) * t
        height = -0.088 + 0.105 * abs(t) ** 1.5
        rays.append(((0.0, height, 0.0), (np.sin(angle), 0.0, np.cos(angle))))
    brow = [(-0.055, 0.040), (-0.045, 0.046), (-0.034, 0.048), (-0.023, 0.047), (-0.012, 0.043)]
    front = brow + [(-x, y) for x, y in reversed(brow)]
    front += [(0.0, 0.025), (0.0, 0.008), (0.0, -0.008), (0.0, -0.025)]  # nose bridge
    front += [(-0.014, -0.035), (-0.007, -0.037), (0.0, -0.038), (0.007, -0.037), (0.014, -0.035)]
    # The eyes: on the lid contour (just outside the aperture ellipse), outer corner first, then the upper lid.
    ex, ey = EYE
    a, b = 1.08 * APERTURE[0], 1.08 * APERTURE[1]
    angles = np.deg2rad([180.0, 117.0, 63.0, 0.0, -63.0, -117.0])  # seen on the right eye (-x), corner at -x
    right_eye = [(-ex + a * np.cos(t), ey + b * np.sin(t)) for t in angles]
    front += right_eye + [(-x, y) for x, y in (right_eye[3], right_eye[2], right_eye[1], right_eye[0],
                                              right_eye[5], right_eye[4])]
    m = MOUTH_Y
    front += [(-0.025, m), (-0.016, m + 0.006), (-0.007, m + 0.009), (0.0, m + 0.008), (0.007, m + 0.009),
              (0.016, m + 0.006), (0.025, m), (0.016, m - 0.007), (0.007, m - 0.010), (0.0, m - 0.011),
              (-0.007, m - 0.010), (-0.016, m - 0.007)]
    front += [(-0.020, m), (-0.007, m + 0.002), (0.0, m + 0.002), (0.007, m + 0.002), (0.020, m),
              (0.007, m - 0.002), (0.0, m - 0.002), (-0.007, m - 0.002)]
    rays += [((x, y, 0.0), (0.0, 0.0, 1.0)) for x, y in front]
    return rays


def embedding(vertices, faces) -> LandmarkEmbedding:
    """The iBUG embedding on `faces` (the head surface, not the eyeballs)."""
    hits = [_ray_hit(vertices, faces, np.array(o), np.array(d)) for o, d in _ibug68_targets()]
    return LandmarkEmbedding(
        face_idx=np.array([f for f, _ in hits], np.int32),
        bary_coords=np.array([b for _, b in hits], np.float32),
        layout="ibug68",
    )

"""The eyeballs of the embedded head (build time only): spheres (114 vertices and 224 triangles each) of
EYEBALL_RADIUS behind the lid apertures, centred on the eye joints and skinned 100% to them. Identity moves each
eyeball with the weighted affine fit of its lids' displacement (`identity_shapes`: position, size), so the lids keep
covering it.

Both eyeballs share one UV strip (bottom rows at the back, where the map only covers the hidden bottom cap, like
the mouth's): u = EYE_UV_U[0] + (EYE_UV_U[1] - EYE_UV_U[0]) * sin(polar / 2) (most texels at the front pole: the
pupil's centre; EYE_UV_U[1]: the back), v runs around the axis.
"""
from __future__ import annotations

import numpy as np

from flame.build.common import EYEBALL_RADIUS, gauss, grid_faces, uv_area_sign
from flame.build.surface import eye_centre

_EYEBALL_POLAR = np.deg2rad([0.0, 9.0, 18.0, 28.0, 40.0, 55.0, 75.0, 105.0, 140.0, 180.0])
_EYEBALL_LON = 14
EYE_UV_U = (0.87, 0.985)
EYE_UV_V = (0.005, 0.012)


def _eyeball():
    """A left eyeball at the origin: unit-sphere points (E, 3) (front pole +z, rings at _EYEBALL_POLAR), its
    outward-wound faces, UV coords (u: sin(polar angle / 2) over EYE_UV_U, v: around the axis over EYE_UV_V) and UV
    faces."""
    rings = len(_EYEBALL_POLAR) - 2
    t, p = np.meshgrid(_EYEBALL_POLAR[1:-1], 2.0 * np.pi * np.arange(_EYEBALL_LON) / _EYEBALL_LON, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    dirs = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])
    faces, uv_faces = grid_faces(
        rings, _EYEBALL_LON, lambda i, j: 1 + (i - 1) * _EYEBALL_LON + np.mod(j, _EYEBALL_LON),
        lambda i, j: i * (_EYEBALL_LON + 1) + j, 0, len(dirs) - 1)
    corners = dirs[faces]
    if np.sum(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]) * corners.mean(1)) < 0:
        faces, uv_faces = faces[:, ::-1], uv_faces[:, ::-1]
    uu, vv = np.meshgrid(np.sin(_EYEBALL_POLAR / 2.0), np.arange(_EYEBALL_LON + 1) / _EYEBALL_LON, indexing="ij")
    uv = np.stack([EYE_UV_U[0] + uu * (EYE_UV_U[1] - EYE_UV_U[0]), EYE_UV_V[0] + vv * (EYE_UV_V[1] - EYE_UV_V[0])],
                  -1).reshape(-1, 2)
    return dirs, faces.astype(np.int32), uv, uv_faces.astype(np.int32)


def _follow_affine(points, fields, weight, targets, centre):
    """(T, 3, K) displacements of `targets` (T, 3) under the weighted least-squares affine fit (about `centre`)
    of the displacement fields (P, 3, K) at `points` (P, 3), weights (P,): an eyeball moves and scales with its
    lids (translation, size, and the lids' stretch, so it stays under them) and stays a smooth ellipsoid."""
    design = np.concatenate([points - centre, np.ones((len(points), 1))], 1)  # (P, 4)
    normal = (design * weight[:, None]).T @ design
    normal[:3, :3] += np.eye(3) * weight.sum() * 0.003**2  # ridge: the surface samples z poorly
    coef = np.linalg.solve(normal, (design * weight[:, None]).T @ fields.reshape(len(points), -1))
    out = np.concatenate([targets - centre, np.ones((len(targets), 1))], 1) @ coef
    return out.reshape(len(targets), 3, -1)


def eyeballs(uv_sign):
    """The left eyeball and its mirror image, the right one, at their rest centres.

    Returns (2, 3) centres (left at +x, right), their (E, 3) points [left, right], the left one's (Fe, 3) faces
    (the right one's are them reversed), the (E', 2) UV coords [left, right] with the left one's (Fe, 3) UV faces
    (reversed likewise), wound like the head's: `uv_sign` is the head's `uv_area_sign`.
    """
    ball, ball_faces, ball_uv, ball_uv_faces = _eyeball()
    if uv_area_sign(ball_uv, ball_uv_faces) != uv_sign:
        ball_uv[:, 1] = EYE_UV_V[0] + EYE_UV_V[1] - ball_uv[:, 1]
    mirrored_uv = ball_uv * [1.0, -1.0] + [0.0, EYE_UV_V[0] + EYE_UV_V[1]]  # keeps the UV winding after mirroring
    centres = eye_centre() * np.array([[1.0, 1.0, 1.0], [-1.0, 1.0, 1.0]])
    balls = [centres[0] + EYEBALL_RADIUS * ball, (centres[0] + EYEBALL_RADIUS * ball) * [-1.0, 1.0, 1.0]]
    return centres, balls, ball_faces, [ball_uv, mirrored_uv], ball_uv_faces


def identity_shapes(head_points, head_shapes, front, centre, points):
    """(E, 3, K) identity basis of an eyeball's (E, 3) `points` around its (3,) `centre`: the affine fit of the
    displacement (P, 3, K) `head_shapes` of the lids around it on the (P, 3) `head_points` (`front` (P,): how much
    each faces forward)."""
    weight = front * gauss(head_points[:, 0], head_points[:, 1], centre[0], centre[1], 0.007, 0.006)
    return _follow_affine(head_points, head_shapes, weight, points, centre)

"""The head's surface (build time only): a UV sphere whose rings are denser on the face and halved around the eye
line, with a mirror-symmetric triangulation, shaped into a superellipsoid skull (flatter face and sides than an
ellipsoid, taller cranium, jaw brought forward) with facial relief (brow ridge, eye sockets, nose with bridge, tip
and alae, cheekbones, nasolabial folds, lips, chin), eyelids, ears, a hair layer standing off the scalp and a neck
drawn down from the bottom cap.

The lids stay _LID_GAP in front of the eyeballs (`eye_centre`); inside each aperture the surface is a socket
_SOCKET_GAP behind the eyeball, so the eyeball shows there (no holes). `template_points` gives the rest surface at
any sphere direction, so the texture builder can paint at the exact points the texels land on.
"""
from __future__ import annotations

import functools

import numpy as np

from flame.build.common import APERTURE, EYE, EYEBALL_RADIUS, MOUTH_Y, gauss, grid_faces, ramp, uv_to_directions

_N_LAT = 50  # latitude steps from the top pole to the bottom pole
N_LON = 80  # longitude steps around the head (even, so the mesh is mirror-symmetric in x)
EYE_BAND = (17, 21)  # a ring is inserted halfway after each of rings 17..20 (y = 0.037 .. 0.017 at the midline)
_RADII = np.array([0.075, 0.105, 0.095])  # half width (x), half height (y), half depth (z)
_ROUNDNESS = np.array([0.65, 1.0, 0.7])  # superellipsoid exponents per axis (1: ellipsoid; < 1: flatter)
_HAIR_THICKNESS = 0.01  # metres the hair stands off the scalp
_NECK_LENGTH = 0.12  # metres the bottom pole is drawn down
_SOCKET_GAP = 0.001
EAR = (0.0, -0.014)  # (y, z) of the ear's centre on the side of the head, metres
EAR_SIZE = (0.021, 0.012)  # its half height and half depth (Gaussian widths), metres
_LID_GAP = 0.001


def _ring_v():
    """(R,) v of the latitude rings between the poles: _N_LAT - 1 even steps, halved across EYE_BAND."""
    v = 1.0 - np.arange(1, _N_LAT) / _N_LAT
    extra = 1.0 - (np.arange(*EYE_BAND) + 0.5) / _N_LAT
    return np.sort(np.concatenate([v, extra]))[::-1]


def sphere():
    """Unit directions (V, 3) of the UV sphere, its (F, 3) faces, UV coords and UV faces."""
    ring_v = _ring_v()
    rings = len(ring_v)
    v, u = np.meshgrid(ring_v, np.arange(N_LON) / N_LON, indexing="ij")
    ring = uv_to_directions(u, v).reshape(-1, 3)  # rings denser on the face, like the UV map
    dirs = np.concatenate([[[0.0, 1.0, 0.0]], ring, [[0.0, -1.0, 0.0]]])
    bottom = len(dirs) - 1

    def vid(i, j):  # vertex of ring i (1..rings), column j (wrapped)
        return 1 + (i - 1) * N_LON + np.mod(j, N_LON)

    def tid(i, j):  # UV grid point: row i (0..rings + 1), column j (0..N_LON, no wrap)
        return i * (N_LON + 1) + j

    faces, uv_faces = grid_faces(rings, N_LON, vid, tid, 0, bottom)

    # Orient every triangle counter-clockwise seen from outside (the construction is consistent,
    # so one global check decides).
    corners = dirs[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    if np.sum(normals * corners.mean(1)) < 0:
        faces, uv_faces = faces[:, ::-1], uv_faces[:, ::-1]

    vv, uu = np.meshgrid(np.concatenate([[1.0], ring_v, [0.0]]), np.arange(N_LON + 1) / N_LON, indexing="ij")
    uv = np.stack([uu, vv], -1).reshape(-1, 2)
    return dirs, faces.astype(np.int32), uv.astype(np.float32), uv_faces.astype(np.int32)


def nose_relief(x, y):
    """Forward (z) relief of the nose (bridge, ridge, tip, alae) at front-view position (x, y), metres."""
    ax = np.abs(x)
    length = ramp((0.022 - y) / 0.045) * ramp((y + 0.032) / 0.006)  # 0 at the nasion, 1 at the tip
    width = 0.006 + 0.006 * length
    ridge = (0.004 + 0.016 * length) * np.exp(-0.5 * (x / width) ** 2)
    alae = 0.006 * gauss(ax, y, 0.014, -0.026, 0.006, 0.006)
    tip = 0.004 * gauss(x, y, 0.0, -0.024, 0.007, 0.007)
    return ridge + alae + tip


def _face_relief(x, y):
    """Forward (z) relief of the facial features at front-view position (x, y), metres."""
    ax = np.abs(x)
    ex, ey = EYE
    m = MOUTH_Y
    brow = 0.006 * gauss(x, y, 0.0, 0.044, 0.045, 0.008) + 0.003 * gauss(ax, y, 0.03, 0.04, 0.014, 0.006)
    sockets = -0.011 * gauss(ax, y, ex, ey + 0.002, 0.013, 0.010)
    eyeballs = 0.005 * gauss(ax, y, ex, ey, 0.008, 0.005)
    cheekbones = 0.005 * gauss(ax, y, 0.046, -0.008, 0.014, 0.012)
    nasolabial = -0.002 * gauss(ax - 0.022 - 0.3 * (y + 0.035), y, 0.0, -0.04, 0.003, 0.012)
    upper_lip = 0.006 * gauss(x, y, 0.0, m + 0.006, 0.017, 0.005)
    lower_lip = 0.005 * gauss(x, y, 0.0, m - 0.007, 0.015, 0.005)
    mouth_line = -0.003 * gauss(x, y, 0.0, m, 0.02, 0.0015)
    philtrum = -0.0015 * gauss(x, y, 0.0, -0.04, 0.003, 0.005)
    labiomental = -0.003 * gauss(x, y, 0.0, -0.075, 0.015, 0.004)
    chin = 0.009 * gauss(x, y, 0.0, -0.088, 0.017, 0.011)
    return (nose_relief(x, y) + brow + sockets + eyeballs + cheekbones + nasolabial + upper_lip + lower_lip + mouth_line
            + philtrum + labiomental + chin)


def _ears(dirs, base):
    """Outward (x) offset (..., ) of the ears on the sides of the head, metres: a flap (~6 cm tall, standing out
    most at its back edge) with a rolled rim (the helix; the texture paints the hollow inside it)."""
    side = ramp((np.abs(dirs[..., 0]) - 0.72) / 0.15)
    y, z = base[..., 1], base[..., 2]
    flap = gauss(y, z, EAR[0], EAR[1], EAR_SIZE[0], EAR_SIZE[1]) * (1.0 + 0.5 * ramp((EAR[1] - z) / 0.012))
    rho = np.hypot((y - EAR[0]) / EAR_SIZE[0], (z - EAR[1]) / EAR_SIZE[1])
    rim = np.exp(-0.5 * ((rho - 0.95) / 0.2) ** 2)
    return np.sign(dirs[..., 0]) * side * (0.015 * flap + 0.005 * rim)


def _smooth_max(a, b, eps=0.0005):
    """Smooth max(a, b) (within eps / 2 of it), so the lids bend smoothly over the eyeballs."""
    return 0.5 * (a + b + np.sqrt((a - b) ** 2 + eps**2))


def _face_surface(dirs):
    """Head points (..., 3) for unit directions (..., 3) up to the facial relief (no lids, hair, ears or neck)."""
    base = np.sign(dirs) * np.abs(dirs) ** _ROUNDNESS * _RADII  # flatter face and sides than an ellipsoid
    dy, dz = dirs[..., 1], dirs[..., 2]
    base[..., 1] *= 1.0 + 0.2 * ramp(dy / 0.6)  # a taller cranium
    facing = ramp(dz / 0.3)
    base[..., 2] *= 1.0 + facing * (0.37 * ramp((-dy - 0.3) / 0.55) + 0.08 * ramp((dy - 0.2) / 0.5))  # jaw, brow
    jaw_taper = 1.0 - 0.22 * ramp(-base[..., 1] / _RADII[1])
    base[..., 0] *= jaw_taper
    front = ramp(dz / 0.5)
    base[..., 2] += front * _face_relief(base[..., 0], base[..., 1])
    return base


@functools.lru_cache(maxsize=1)
def _eye_centre_tuple():
    u, v = np.meshgrid(np.linspace(0.5, 0.7, 401), np.linspace(0.5, 0.7, 401))
    points = _face_surface(uv_to_directions(u, v)).reshape(-1, 3)
    nearest = points[np.argmin(np.hypot(points[:, 0] - EYE[0], points[:, 1] - EYE[1]))]
    return EYE[0], EYE[1], float(nearest[2]) - EYEBALL_RADIUS


def eye_centre():
    """(3,) rest centre of the left eyeball (+x; the right one is its mirror image): EYEBALL_RADIUS behind the
    facial relief's surface at EYE, so the eyeball's front is where that surface was."""
    return np.array(_eye_centre_tuple())


def _eyelids(points, front):
    """Lids over the eyeballs: (...) z of `points` (..., 3) kept at least _LID_GAP in front of both eyeballs, and
    (2, ...) socket depths (left, right eye): how far the surface inside each aperture goes back to lie
    _SOCKET_GAP behind the eyeball (1 inside the aperture ellipse, a smooth edge across its rim)."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    cx, cy, cz = eye_centre()
    sockets, balls = [], []
    for side in (1.0, -1.0):
        dx, dy = x - side * cx, y - cy
        inside = EYEBALL_RADIUS**2 - dx**2 - dy**2
        ball = cz + np.sqrt(np.maximum(inside, 0.0))  # the eyeball's front (its equator's depth beyond its rim)
        cover = np.where(inside > 0.0, ball + _LID_GAP, cz - 1.0)  # -1: nothing to cover beyond the rim
        z = z + front * (_smooth_max(z, cover) - z)
        balls.append(ball)
    for side, ball in zip((1.0, -1.0), balls):
        rho = np.hypot((x - side * cx) / APERTURE[0], (y - cy) / APERTURE[1])
        aperture = front * ramp((1.0 - rho) / 0.6 + 0.5)
        sockets.append(aperture * np.maximum(z - (ball - _SOCKET_GAP), 0.0))
    return z, np.stack(sockets)


def eye_sockets(dirs):
    """(2, ...) socket depths (metres; left, right eye) of the head points for unit directions (..., 3)."""
    return _eyelids(_face_surface(dirs), ramp(dirs[..., 2] / 0.5))[1]


def template_points(dirs):
    """Rest-pose head points (..., 3) for unit directions (..., 3): an ellipsoid with a narrower jaw, the facial
    relief on the front, lids over the eyeballs with a socket in each aperture, a hair layer, ears and a neck
    drawn down from the bottom cap (behind and under the chin)."""
    base = _face_surface(dirs)
    lids, sockets = _eyelids(base, ramp(dirs[..., 2] / 0.5))
    base[..., 2] = lids - sockets.sum(0)
    base += dirs * (_HAIR_THICKNESS * hair_mask(base, edge=0.015))[..., None]
    base[..., 0] += _ears(dirs, base)
    neck = neck_weight(dirs)
    base[..., 0] *= 1.0 + 0.9 * neck
    base[..., 1] -= _NECK_LENGTH * neck
    base[..., 2] = base[..., 2] * (1.0 + 0.4 * neck) - 0.025 * neck
    return base


def hair_mask(points, edge=0.006):
    """(...,) 1 where the scalp is covered by hair, 0 on the face, ears and neck, for head points (..., 3): a
    hairline across the forehead, down the temples to sideburns in front of the ear, over the top of the ear and
    down behind it to the nape; `edge`: the width (metres) of its soft edge."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    sides = ramp((np.abs(x) - 0.045) / 0.025) * ramp((0.05 - z) / 0.04)
    # On the side: a sideburn down to the ear's middle in front of it, an arc around its top, the nape behind it.
    around = np.clip((z - EAR[1]) / (EAR_SIZE[1] + 0.012), -1.0, 1.0)
    over_ear = EAR[0] + (1.6 * EAR_SIZE[0] + 0.008) * np.sqrt(1.0 - around**2)
    sideburn = ramp((z - EAR[1] - EAR_SIZE[1] - 0.008) / 0.01) * ramp((EAR[1] + EAR_SIZE[1] + 0.04 - z) / 0.012)
    temple = ramp((z - EAR[1] - EAR_SIZE[1] - 0.03) / 0.015)
    behind = ramp((EAR[1] - EAR_SIZE[1] - 0.006 - z) / 0.015)
    side_line = np.minimum(over_ear, (1.0 - behind) * 0.05 + behind * (EAR[0] - 0.075))
    side_line = side_line * (1.0 - sideburn) + sideburn * (EAR[0] - 0.005)
    side_line = side_line * (1.0 - temple) + temple * 0.05
    hairline = (1.0 - sides) * (0.078 - 0.13 * ramp((0.01 - z) / 0.06)) + sides * side_line
    return ramp((y - hairline) / edge + 0.5)


def neck_weight(dirs):
    """(...,) how much of the neck deformation a sphere direction gets: 1 at the bottom pole, 0 on the face."""
    return ramp((-dirs[..., 1] - 0.8) / 0.15) * (1.0 - ramp((dirs[..., 2] - 0.05) / 0.3)) ** 2

"""Procedural geometry of the embedded head (build time only; see flame/build_embedded.py).

Three closed, consistently outward-wound surfaces, 4,558 vertices and 9,104 triangles in all:
  * the head, 4,330 vertices and 8,656 triangles (a UV sphere of 4,242 vertices whose rings are denser on the face
    and halved around the eye line, with a mirror-symmetric triangulation, plus the mouth): a superellipsoid skull
    (flatter face and sides than an ellipsoid, taller cranium, jaw brought forward), facial relief (brow ridge, eye
    sockets, nose with bridge, tip and alae, cheekbones, nasolabial folds, lips, chin), eyelids, ears, a hair
    layer standing off the scalp and a neck drawn down from the bottom cap;
  * two eyeballs (114 vertices and 224 triangles each), spheres of EYEBALL_RADIUS behind the lid apertures
    (ellipses of half axes APERTURE around EYE), skinned 100% to the eye joints at their centres. The lids stay
    _LID_GAP in front of the eyeballs; inside each aperture the head surface is a socket _SOCKET_GAP behind the
    eyeball, so the eyeball shows there (no holes). Identity moves each eyeball with the weighted affine fit of
    its lids' displacement (position, size), so the lids keep covering it; eye closure (expression) fills the
    sockets and closes the lids over it. Both eyeballs share a UV strip (`EYE_UV_U` x `EYE_UV_V`).
FLAME's five joints in FLAME order; skinning weights (jaw region and lower lip -> jaw, eyeballs -> eyes, neck
bottom -> global, rest -> neck); 60 identity components (30 named, 30 smooth random fields) and 12 expression
components in standard deviations; zero pose correctives; a 68-point iBUG landmark embedding on the head surface
(the eye points on the lid contour).
The lips part: the mouth line is a slit between the upper-lip and lower-lip vertex rows whose lower edge is
skinned to the jaw, closed behind by a mouth bag (an elliptic pocket, upper half on the head, lower half on the
jaw) textured as the mouth interior (its own UV strip, `MOUTH_UV_U` x `MOUTH_UV_V`).

Frame: metres, y up, the face looks down +z, the subject's left is +x (FLAME's convention); the head is
~0.21 m tall and centred at the origin. UV: u runs around the head with the face at u = 0.5 (seam at
the back), v = 1 at the top; texture row 0 is v = 1. `uv_to_directions` and `template_points` let the
texture builder paint at the exact surface points the texels land on.
"""
from __future__ import annotations

import functools

import numpy as np

from flame.model import FLAME_PARENTS, FlameModel, LandmarkEmbedding

_N_LAT = 50  # latitude steps from the top pole to the bottom pole
_N_LON = 80  # longitude steps around the head (even, so the mesh is mirror-symmetric in x)
_RADII = np.array([0.075, 0.105, 0.095])  # half width (x), half height (y), half depth (z)
_ROUNDNESS = np.array([0.65, 1.0, 0.7])  # superellipsoid exponents per axis (1: ellipsoid; < 1: flatter)

# Facial layout in the front view (x, y), metres.
EYE = (0.032, 0.025)
MOUTH_Y = -0.057
_FEATURE_GAIN = 1.25  # scale of the named identity components relative to the amplitudes written below
_HAIR_THICKNESS = 0.01  # metres the hair stands off the scalp
_NECK_LENGTH = 0.12  # metres the bottom pole is drawn down
_UV_FRONT = 0.6  # u-warp strength: the front gets 1 / (1 - 0.6) = 2.5x the texels of a uniform unwrap
_UV_MIDDLE = 0.4  # v-warp strength: the equator band (the face) gets 1 / (1 - 0.4) = 1.7x
_EYE_BAND = (17, 21)  # a ring is inserted halfway after each of rings 17..20 (y = 0.037 .. 0.017 at the midline)
_MOUTH_RING = 38 + _EYE_BAND[1] - _EYE_BAND[0]  # latitude ring on the mouth line (y = -0.0574 at the midline)
_MOUTH_CORNER = 6  # columns from the midline to each mouth corner (x = +-0.0255)
_MOUTH_PARTED = 0.0255  # |x| of the mouth corners: the lower lip follows the jaw fully 6 mm inside them
_BAG_ROWS = 8  # rows of the mouth bag from the upper lip (0) to the lower lip (_BAG_ROWS)
_BAG_SIZE = (0.014, 0.03)  # height and depth of the mouth bag at the midline, metres
# UV of the mouth bag, a strip of the bottom texel rows at the back (there the map only covers the hidden back of
# the neck's bottom cap): u runs from the upper lip through the pocket to the lower lip, v across the mouth.
MOUTH_UV_U = (0.005, 0.1)
MOUTH_UV_V = (0.002, 0.018)
# The eyeballs: spheres behind the eyelid apertures (ellipses of half axes APERTURE around EYE), their centres the
# eye joints; the head surface inside an aperture is a socket _SOCKET_GAP behind the eyeball, outside it the lids
# stay _LID_GAP in front of it. Both eyeballs share one UV strip (bottom rows at the back, where the map only covers
# the hidden bottom cap, like the mouth's): u = EYE_UV_U[0] + (EYE_UV_U[1] - EYE_UV_U[0]) * sin(polar / 2) (most
# texels at the front pole: the pupil's centre; EYE_UV_U[1]: the back), v runs around the axis.
EYEBALL_RADIUS = 0.0125
APERTURE = (0.0115, 0.0048)
_SOCKET_GAP = 0.001
_LID_GAP = 0.001
_EYEBALL_POLAR = np.deg2rad([0.0, 9.0, 18.0, 28.0, 40.0, 55.0, 75.0, 105.0, 140.0, 180.0])
_EYEBALL_LON = 14
EYE_UV_U = (0.87, 0.985)
EYE_UV_V = (0.005, 0.012)


def _gauss(x, y, cx, cy, sx, sy):
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _ramp(t):
    """Smoothstep of t clipped to [0, 1]."""
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _ring_v():
    """(R,) v of the latitude rings between the poles: _N_LAT - 1 even steps, halved across _EYE_BAND."""
    v = 1.0 - np.arange(1, _N_LAT) / _N_LAT
    extra = 1.0 - (np.arange(*_EYE_BAND) + 0.5) / _N_LAT
    return np.sort(np.concatenate([v, extra]))[::-1]


def _grid_faces(rings, columns, vid, tid, pole_top, pole_bottom):
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


def _sphere():
    """Unit directions (V, 3) of the UV sphere, its (F, 3) faces, UV coords and UV faces."""
    ring_v = _ring_v()
    rings = len(ring_v)
    v, u = np.meshgrid(ring_v, np.arange(_N_LON) / _N_LON, indexing="ij")
    ring = uv_to_directions(u, v).reshape(-1, 3)  # rings denser on the face, like the UV map
    dirs = np.concatenate([[[0.0, 1.0, 0.0]], ring, [[0.0, -1.0, 0.0]]])
    bottom = len(dirs) - 1

    def vid(i, j):  # vertex of ring i (1..rings), column j (wrapped)
        return 1 + (i - 1) * _N_LON + np.mod(j, _N_LON)

    def tid(i, j):  # UV grid point: row i (0..rings + 1), column j (0.._N_LON, no wrap)
        return i * (_N_LON + 1) + j

    faces, uv_faces = _grid_faces(rings, _N_LON, vid, tid, 0, bottom)

    # Orient every triangle counter-clockwise seen from outside (the construction is consistent,
    # so one global check decides).
    corners = dirs[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    if np.sum(normals * corners.mean(1)) < 0:
        faces, uv_faces = faces[:, ::-1], uv_faces[:, ::-1]

    vv, uu = np.meshgrid(np.concatenate([[1.0], ring_v, [0.0]]), np.arange(_N_LON + 1) / _N_LON, indexing="ij")
    uv = np.stack([uu, vv], -1).reshape(-1, 2)
    return dirs, faces.astype(np.int32), uv.astype(np.float32), uv_faces.astype(np.int32)


def _warp(s, strength):
    """Odd monotone map of [-1, 1] onto itself, flatter at 0: strength * s^3 + (1 - strength) * s."""
    return strength * s**3 + (1.0 - strength) * s


def uv_to_directions(u, v):
    """UV coordinates (any shape) -> (..., 3) unit directions of the sphere the head is built from."""
    phi = np.pi * _warp(2.0 * np.asarray(u) - 1.0, _UV_FRONT)
    theta = 0.5 * np.pi * (1.0 + _warp(1.0 - 2.0 * np.asarray(v), _UV_MIDDLE))
    return np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)], -1)


def _nose(x, y):
    """Forward (z) relief of the nose (bridge, ridge, tip, alae) at front-view position (x, y), metres."""
    ax = np.abs(x)
    length = _ramp((0.022 - y) / 0.045) * _ramp((y + 0.032) / 0.006)  # 0 at the nasion, 1 at the tip
    width = 0.006 + 0.006 * length
    ridge = (0.004 + 0.016 * length) * np.exp(-0.5 * (x / width) ** 2)
    alae = 0.006 * _gauss(ax, y, 0.014, -0.026, 0.006, 0.006)
    tip = 0.004 * _gauss(x, y, 0.0, -0.024, 0.007, 0.007)
    return ridge + alae + tip


def _face_relief(x, y):
    """Forward (z) relief of the facial features at front-view position (x, y), metres."""
    ax = np.abs(x)
    ex, ey = EYE
    m = MOUTH_Y
    brow = 0.006 * _gauss(x, y, 0.0, 0.044, 0.045, 0.008) + 0.003 * _gauss(ax, y, 0.03, 0.04, 0.014, 0.006)
    sockets = -0.011 * _gauss(ax, y, ex, ey + 0.002, 0.013, 0.010)
    eyeballs = 0.005 * _gauss(ax, y, ex, ey, 0.008, 0.005)
    cheekbones = 0.005 * _gauss(ax, y, 0.046, -0.008, 0.014, 0.012)
    nasolabial = -0.002 * _gauss(ax - 0.022 - 0.3 * (y + 0.035), y, 0.0, -0.04, 0.003, 0.012)
    upper_lip = 0.006 * _gauss(x, y, 0.0, m + 0.006, 0.017, 0.005)
    lower_lip = 0.005 * _gauss(x, y, 0.0, m - 0.007, 0.015, 0.005)
    mouth_line = -0.003 * _gauss(x, y, 0.0, m, 0.02, 0.0015)
    philtrum = -0.0015 * _gauss(x, y, 0.0, -0.04, 0.003, 0.005)
    labiomental = -0.003 * _gauss(x, y, 0.0, -0.075, 0.015, 0.004)
    chin = 0.009 * _gauss(x, y, 0.0, -0.088, 0.017, 0.011)
    return (_nose(x, y) + brow + sockets + eyeballs + cheekbones + nasolabial + upper_lip + lower_lip + mouth_line
            + philtrum + labiomental + chin)


def _ears(dirs, base):
    """Outward (x) offset (..., ) of the ears on the sides of the head, metres: a flap with a rim."""
    side = _ramp((np.abs(dirs[..., 0]) - 0.75) / 0.15)
    y, z = base[..., 1], base[..., 2]
    flap = _gauss(y, z, 0.0, -0.012, 0.024, 0.013)
    rim = _gauss(np.hypot((y - 0.0) / 0.024, (z + 0.012) / 0.013), 0.0, 0.85, 0.0, 0.15, 1.0)
    return np.sign(dirs[..., 0]) * side * (0.014 * flap + 0.005 * rim)


def _smooth_max(a, b, eps=0.0005):
    """Smooth max(a, b) (within eps / 2 of it), so the lids bend smoothly over the eyeballs."""
    return 0.5 * (a + b + np.sqrt((a - b) ** 2 + eps**2))


def _face_surface(dirs):
    """Head points (..., 3) for unit directions (..., 3) up to the facial relief (no lids, hair, ears or neck)."""
    base = np.sign(dirs) * np.abs(dirs) ** _ROUNDNESS * _RADII  # flatter face and sides than an ellipsoid
    dy, dz = dirs[..., 1], dirs[..., 2]
    base[..., 1] *= 1.0 + 0.2 * _ramp(dy / 0.6)  # a taller cranium
    facing = _ramp(dz / 0.3)
    base[..., 2] *= 1.0 + facing * (0.37 * _ramp((-dy - 0.3) / 0.55) + 0.08 * _ramp((dy - 0.2) / 0.5))  # jaw, brow
    jaw_taper = 1.0 - 0.22 * _ramp(-base[..., 1] / _RADII[1])
    base[..., 0] *= jaw_taper
    front = _ramp(dz / 0.5)
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
        aperture = front * _ramp((1.0 - rho) / 0.6 + 0.5)
        sockets.append(aperture * np.maximum(z - (ball - _SOCKET_GAP), 0.0))
    return z, np.stack(sockets)


def eye_sockets(dirs):
    """(2, ...) socket depths (metres; left, right eye) of the head points for unit directions (..., 3)."""
    return _eyelids(_face_surface(dirs), _ramp(dirs[..., 2] / 0.5))[1]


def template_points(dirs):
    """Rest-pose head points (..., 3) for unit directions (..., 3): an ellipsoid with a narrower jaw, the facial
    relief on the front, lids over the eyeballs with a socket in each aperture, a hair layer, ears and a neck
    drawn down from the bottom cap (behind and under the chin)."""
    base = _face_surface(dirs)
    lids, sockets = _eyelids(base, _ramp(dirs[..., 2] / 0.5))
    base[..., 2] = lids - sockets.sum(0)
    base += dirs * (_HAIR_THICKNESS * hair_mask(base))[..., None]
    base[..., 0] += _ears(dirs, base)
    neck = neck_weight(dirs)
    base[..., 0] *= 1.0 + 0.9 * neck
    base[..., 1] -= _NECK_LENGTH * neck
    base[..., 2] = base[..., 2] * (1.0 + 0.4 * neck) - 0.025 * neck
    return base


def hair_mask(points):
    """(...,) 1 where the scalp is covered by hair, 0 on the face, ears and neck, for head points (..., 3)."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    sides = _ramp((np.abs(x) - 0.045) / 0.025) * _ramp((0.05 - z) / 0.04)
    hairline = 0.078 - 0.045 * sides - 0.13 * _ramp((0.01 - z) / 0.06)
    return _ramp((y - hairline) / 0.012 + 0.5)


def neck_weight(dirs):
    """(...,) how much of the neck deformation a sphere direction gets: 1 at the bottom pole, 0 on the face."""
    return _ramp((-dirs[..., 1] - 0.8) / 0.15) * (1.0 - _ramp((dirs[..., 2] - 0.05) / 0.3)) ** 2


def _regressor(vertices, targets, sigma=0.05):
    """(J, V) joint regressor reproducing `targets` exactly on `vertices`: for each joint the
    minimum-norm weights (under a Gaussian locality prior) with sum 1 and weighted mean = target."""
    rows = []
    ones = np.ones((1, len(vertices)))
    a = np.concatenate([vertices.T, ones])  # (4, V)
    for target in targets:
        g = np.exp(-0.5 * np.sum((vertices - target) ** 2, -1) / sigma**2)
        b = np.concatenate([target, [1.0]])
        rows.append(g * (a.T @ np.linalg.solve((a * g) @ a.T, b)))
    return np.stack(rows)


def _weights(vertices, dirs):
    """(V, 5) skinning weights of the head surface for [global, neck, jaw, left eye, right eye] (the eye joints
    move only the eyeballs)."""
    x, y, z = vertices.T
    neck_part = _ramp(neck_weight(dirs) / 0.3)
    jaw = _ramp((MOUTH_Y - y) / 0.008) * _ramp((z + 0.01) / 0.04) * (1.0 - neck_part)
    root = _ramp((-0.14 - y) / 0.03) * (1.0 - jaw)
    neck = np.clip(1.0 - jaw - root, 0.0, 1.0)
    weights = np.stack([root, neck, jaw, np.zeros_like(x), np.zeros_like(x)], -1)
    return weights / weights.sum(-1, keepdims=True)


def _smooth_fields(dirs, count, rng, sigma_range):
    """(V, count) smooth, mostly mirror-symmetric scalar fields on the unit sphere, unit RMS."""
    mirrored = dirs * np.array([-1.0, 1.0, 1.0])
    fields = []
    for k in range(count):
        centres = rng.normal(size=(6, 3))
        centres /= np.linalg.norm(centres, axis=-1, keepdims=True)
        amps = rng.normal(size=6)
        sigma = sigma_range[0] + (sigma_range[1] - sigma_range[0]) * rng.random()

        def field(d):
            return np.exp(-np.sum((d[:, None] - centres) ** 2, -1) / (2 * sigma**2)) @ amps

        sym = 0.5 * (field(dirs) + field(mirrored))
        value = sym + (0.25 * (field(dirs) - field(mirrored)) if k % 5 == 4 else 0.0)
        fields.append(value / np.sqrt(np.mean(value**2)))
    return np.stack(fields, -1)


def _shape_basis(vertices, dirs, rng):
    """(V, 3, 60) identity basis in metres per standard deviation (unordered; see `_by_magnitude`).

    30 named components (head and face proportions; nose, eye, brow, mouth, cheek, chin and jaw features,
    each a smooth window times a displacement; painted features move with the surface) and 30 smooth
    random fields (every fifth one asymmetric) of decreasing amplitude.
    """
    x, y, z = vertices.T
    ax, sx = np.abs(x), np.tanh(x / 0.006)  # a smooth sign: no crease on the midline
    front = _ramp(dirs[:, 2] / 0.5)
    zero = np.zeros_like(x)
    lower = _ramp(-y / 0.05)
    ex, ey = EYE
    m = MOUTH_Y

    def field(window, dx=0.0, dy=0.0, dz=0.0):
        w = front * window
        return np.stack([w * dx + zero, w * dy + zero, w * dz + zero], -1)

    eyes = _gauss(ax, y, ex, ey, 0.016, 0.012)
    orbits = _ramp((0.034 - np.hypot(ax - ex, 1.2 * (y - ey))) / 0.024)  # flat over the eyeball and its lids
    nose = _gauss(x, y, 0.0, -0.015, 0.012, 0.025)
    tip = _gauss(x, y, 0.0, -0.025, 0.012, 0.010)
    mouth = _gauss(x, y, 0.0, m, 0.028, 0.012)
    chin = _gauss(x, y, 0.0, -0.088, 0.022, 0.016)
    cheekbone = _gauss(ax, y, 0.048, -0.002, 0.016, 0.014)
    semantic = [
        np.stack([0.07 * x, zero, zero], -1),  # head width
        np.stack([zero, 0.05 * y, zero], -1),  # head length
        np.stack([zero, zero, 0.05 * z], -1),  # head depth
        np.stack([0.10 * x * lower, zero, zero], -1),  # jaw width
        np.stack([zero, 0.08 * np.minimum(y, 0.0) * lower, zero], -1),  # lower-face length
        np.stack([0.05 * x * _ramp(y / 0.05), zero, zero], -1),  # forehead/temple width
        field(_gauss(x, y, 0.0, 0.07, 0.06, 0.025), dz=0.006),  # forehead slope
        field(_nose(x, y) / 0.024, dz=0.004),  # nose projection
        field(nose * sx * ax / 0.012, dx=0.003),  # nose width
        field(nose, dy=-0.004),  # nose length (the tip drops)
        field(tip, dz=0.003, dy=0.001),  # nose tip
        field(_gauss(x, y, 0.0, 0.012, 0.008, 0.015), dz=0.003),  # nose bridge
        field(_gauss(x, y, 0.0, -0.03, 0.015, 0.006), dy=0.002, dz=-0.002),  # nostril flare / columella
        field(orbits * sx, dx=0.003),  # eye spacing
        field(eyes * (ax - ex) / 0.012, dx=0.0015),  # eye width
        field(eyes * (y - ey) / 0.008, dy=0.001),  # eye height
        field(orbits, dz=-0.003),  # eye depth (socket)
        field(eyes * sx * (ax - ex) / 0.012, dy=0.0012),  # eye tilt
        field(_gauss(ax, y, 0.033, 0.046, 0.022, 0.010), dy=0.003),  # brow height
        field(_gauss(x, y, 0.0, 0.045, 0.045, 0.009), dz=0.004),  # brow ridge
        field(mouth * x / 0.025, dx=0.004),  # mouth width
        field(mouth * (y - m) / 0.01, dy=0.002, dz=0.001),  # lip thickness
        field(mouth, dy=0.004),  # mouth height
        field(mouth, dz=0.004),  # lip protrusion
        field(chin, dy=-0.005, dz=0.003),  # chin length
        field(chin * x / 0.02, dx=0.004),  # chin width
        field(cheekbone, dx=0.003 * sx, dz=0.003),  # cheekbones
        field(_gauss(ax, y, 0.04, -0.04, 0.018, 0.02), dz=-0.004),  # cheek hollows
        field(_gauss(ax, y, 0.055, -0.07, 0.02, 0.02) * sx, dx=0.005),  # jaw angle
        field(eyes * 0.5 * (1.0 + sx) + mouth * x / 0.05, dy=0.002),  # asymmetry (left eye, mouth tilt)
    ]
    random_fields = _smooth_fields(dirs, 30, rng, (0.25, 0.6))
    amplitudes = 0.0015 / np.sqrt(1.0 + np.arange(30) / 4.0)
    random = [dirs * (random_fields[:, k] * amplitudes[k])[:, None] for k in range(30)]
    return np.stack([_FEATURE_GAIN * f for f in semantic] + random, -1)  # (V, 3, 60)


def _by_magnitude(basis):
    """(V, 3, K) basis with its components reordered by decreasing RMS magnitude."""
    scale = np.sqrt(np.mean(np.sum(basis**2, 1), 0))
    return basis[:, :, np.argsort(-scale, kind="stable")]


def _expression_basis(vertices, weights, sockets):
    """(V, 3, 12) expression basis in metres per standard deviation; `sockets` (2, V): the eye socket depths
    (eye closure fills them: the lids close over the eyeball at +2 sigma)."""
    x, y, z = vertices.T
    zero = np.zeros_like(x)
    jaw = weights[:, 2]
    corners = [_gauss(x, y, s * 0.025, MOUTH_Y, 0.01, 0.01) for s in (1.0, -1.0)]
    lips = _gauss(x, y, 0.0, MOUTH_Y, 0.022, 0.01)
    brows = [_gauss(x, y, s * 0.033, 0.046, 0.018, 0.008) for s in (1.0, -1.0)]
    inner_brows = _gauss(np.abs(x), y, 0.012, 0.044, 0.008, 0.007)
    lids = [_gauss(x, y, s * EYE[0], EYE[1] + 0.004, 0.011, 0.004) for s in (1.0, -1.0)]
    cheeks = _gauss(np.abs(x), y, 0.045, -0.03, 0.015, 0.015)
    nose = _gauss(x, y, 0.0, -0.01, 0.012, 0.02)
    both = corners[0] + corners[1]
    fields = [
        (zero, -0.008 * jaw, -0.002 * jaw),  # mouth open
        (0.002 * (corners[0] - corners[1]), 0.004 * both, -0.001 * both),  # smile
        (-0.002 * np.tanh(x / 0.006) * lips, zero, 0.004 * lips),  # pucker
        (zero, 0.004 * (brows[0] + brows[1]), zero),  # brow raise
        (-0.002 * np.tanh(x / 0.006) * inner_brows, -0.002 * inner_brows, zero),  # brow furrow
        (zero, -0.002 * lids[0], 0.5 * sockets[0] + 0.0006 * lids[0]),  # left eye close
        (zero, -0.002 * lids[1], 0.5 * sockets[1] + 0.0006 * lids[1]),  # right eye close
        (zero, zero, 0.005 * cheeks),  # cheek puff
        (0.004 * (corners[0] - corners[1]), zero, zero),  # mouth wide
        (0.004 * jaw, zero, zero),  # jaw sideways
        (0.002 * corners[0], 0.004 * corners[0], zero),  # left smile
        (zero, 0.002 * nose, zero),  # nose wrinkle
    ]
    return np.stack([np.stack(f, -1) for f in fields], -1)


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


def _landmarks(vertices, faces) -> LandmarkEmbedding:
    """The iBUG embedding on `faces` (the head surface, not the eyeballs)."""
    hits = [_ray_hit(vertices, faces, np.array(o), np.array(d)) for o, d in _ibug68_targets()]
    return LandmarkEmbedding(
        face_idx=np.array([f for f, _ in hits], np.int32),
        bary_coords=np.array([b for _, b in hits], np.float32),
        layout="ibug68",
    )


def _mouth(vertices, faces, uv, uv_faces):
    """Cuts the mouth slit and closes it with the mouth bag.

    Returns the extended vertices (V + D + B, 3), faces, UV coords and UV faces; (D,) `inner`, the slit vertices
    whose lower-lip duplicates are vertices V .. V + D - 1; (B, 2) `bag_rim` and (B,) `bag_blend`: bag vertex b
    takes (1 - bag_blend[b]) of upper-lip vertex bag_rim[b, 0]'s attributes and bag_blend[b] of lower-lip vertex
    bag_rim[b, 1]'s.
    """
    n = len(vertices)
    centre = _N_LON // 2
    cols = np.arange(centre - _MOUTH_CORNER, centre + _MOUTH_CORNER + 1)  # corner .. corner
    upper = 1 + (_MOUTH_RING - 1) * _N_LON + cols  # slit vertices (corners at both ends)
    inner = upper[1:-1]
    lower = np.concatenate([[upper[0]], n + np.arange(len(inner)), [upper[-1]]])  # lower-lip duplicates
    row_start = _N_LON + (_MOUTH_RING - 1) * 2 * _N_LON  # triangles between the mouth ring and the one below
    below = faces[row_start:row_start + 2 * _N_LON]
    remap = np.arange(n)
    remap[inner] = lower[1:-1]
    faces = faces.copy()
    faces[row_start:row_start + 2 * _N_LON] = remap[below]

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
    bag_blend = np.repeat(_ramp((s - 0.35) / 0.3), len(inner))
    return (vertices, np.concatenate([faces, new_faces]).astype(np.int32),
            np.concatenate([uv, uv_grid.reshape(-1, 2)]).astype(np.float32),
            np.concatenate([uv_faces, new_uv_faces]).astype(np.int32), inner, bag_rim, bag_blend)


def _edges(faces):
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def _eyeball():
    """A left eyeball at the origin: unit-sphere points (E, 3) (front pole +z, rings at _EYEBALL_POLAR), its
    outward-wound faces, UV coords (u: sin(polar angle / 2) over EYE_UV_U, v: around the axis over EYE_UV_V) and UV
    faces."""
    rings = len(_EYEBALL_POLAR) - 2
    t, p = np.meshgrid(_EYEBALL_POLAR[1:-1], 2.0 * np.pi * np.arange(_EYEBALL_LON) / _EYEBALL_LON, indexing="ij")
    ring = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    dirs = np.concatenate([[[0.0, 0.0, 1.0]], ring, [[0.0, 0.0, -1.0]]])
    faces, uv_faces = _grid_faces(
        rings, _EYEBALL_LON, lambda i, j: 1 + (i - 1) * _EYEBALL_LON + np.mod(j, _EYEBALL_LON),
        lambda i, j: i * (_EYEBALL_LON + 1) + j, 0, len(dirs) - 1)
    corners = dirs[faces]
    if np.sum(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]) * corners.mean(1)) < 0:
        faces, uv_faces = faces[:, ::-1], uv_faces[:, ::-1]
    uu, vv = np.meshgrid(np.sin(_EYEBALL_POLAR / 2.0), np.arange(_EYEBALL_LON + 1) / _EYEBALL_LON, indexing="ij")
    uv = np.stack([EYE_UV_U[0] + uu * (EYE_UV_U[1] - EYE_UV_U[0]), EYE_UV_V[0] + vv * (EYE_UV_V[1] - EYE_UV_V[0])],
                  -1).reshape(-1, 2)
    return dirs, faces.astype(np.int32), uv, uv_faces.astype(np.int32)


def _uv_area_sign(uv, uv_faces):
    corners = uv[uv_faces]
    d1, d2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    return np.sign(np.sum(d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]))


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


def build_model(name: str, source: str, license_: str) -> FlameModel:
    """The procedural head as a FlameModel with numpy leaves (see the module docstring)."""
    rng = np.random.default_rng(20240601)
    dirs, faces, uv, uv_faces = _sphere()
    sphere_vertices = template_points(dirs)
    shapedirs = _shape_basis(sphere_vertices, dirs, rng)
    vertices, faces, uv, uv_faces, inner, bag_rim, bag_blend = _mouth(sphere_vertices, faces, uv, uv_faces)
    lips = len(sphere_vertices) + len(inner)  # sphere vertices and the lower-lip duplicates
    weights = _weights(sphere_vertices, dirs)
    parted = _ramp((_MOUTH_PARTED - np.abs(vertices[inner, 0])) / 0.006)[:, None]  # 0 at the corners
    weights = np.concatenate([weights, (1.0 - parted) * weights[inner] + parted * np.eye(5)[2]])
    sockets = eye_sockets(dirs)
    sockets = np.concatenate([sockets, np.zeros((2, len(inner)))], 1)  # the lower lip has no socket
    expression = _expression_basis(vertices[:lips], weights, sockets)
    shapedirs = np.concatenate([shapedirs, shapedirs[inner]])

    def with_bag(values):  # (lips, ...) -> (V, ...): the bag blends its upper and lower rim
        blend = bag_blend.reshape((-1,) + (1,) * (values.ndim - 1))
        return np.concatenate([values, (1.0 - blend) * values[bag_rim[:, 0]] + blend * values[bag_rim[:, 1]]])

    weights, expression, shapedirs = with_bag(weights), with_bag(expression), with_bag(shapedirs)
    head_faces = faces

    # The eyeballs (left, then its mirror image), skinned to the eye joints at their centres; identity moves each
    # with the affine fit of the surrounding face's displacement, expressions leave them alone.
    ball, ball_faces, ball_uv, ball_uv_faces = _eyeball()
    if _uv_area_sign(ball_uv, ball_uv_faces) != _uv_area_sign(uv, uv_faces):
        ball_uv[:, 1] = EYE_UV_V[0] + EYE_UV_V[1] - ball_uv[:, 1]
    mirrored_uv = ball_uv * [1.0, -1.0] + [0.0, EYE_UV_V[0] + EYE_UV_V[1]]  # keeps the UV winding after mirroring
    centres = eye_centre() * np.array([[1.0, 1.0, 1.0], [-1.0, 1.0, 1.0]])
    balls = [centres[0] + EYEBALL_RADIUS * ball, (centres[0] + EYEBALL_RADIUS * ball) * [-1.0, 1.0, 1.0]]
    front = _ramp(dirs[:, 2] / 0.5)
    ball_shapes = []
    for centre, points in zip(centres, balls):
        weight = front * _gauss(sphere_vertices[:, 0], sphere_vertices[:, 1], centre[0], centre[1], 0.007, 0.006)
        ball_shapes.append(_follow_affine(sphere_vertices, shapedirs[:len(sphere_vertices)], weight, points, centre))
    n, e = len(vertices), len(ball)
    faces = np.concatenate([faces, ball_faces + n, ball_faces[:, ::-1] + n + e]).astype(np.int32)
    uv_faces = np.concatenate([uv_faces, ball_uv_faces + len(uv), ball_uv_faces[:, ::-1] + len(uv) + len(ball_uv)])
    uv = np.concatenate([uv, ball_uv, mirrored_uv]).astype(np.float32)
    vertices = np.concatenate([vertices] + balls)
    weights = np.concatenate([weights, np.tile(np.eye(5)[3], (e, 1)), np.tile(np.eye(5)[4], (e, 1))])
    expression = np.concatenate([expression, np.zeros((2 * e,) + expression.shape[1:])])
    shapedirs = np.concatenate([shapedirs] + ball_shapes)

    head_joints = np.array([
        [0.0, -0.090, -0.015],  # global: base of the head, where a neck would attach
        [0.0, -0.060, -0.015],  # neck
        [0.0, -0.020, 0.000],  # jaw hinge, at ear height below the eyes
    ])
    regressor = np.zeros((len(FLAME_PARENTS), len(vertices)))
    regressor[:3, :n] = _regressor(vertices[:n], head_joints)
    for k, centre in enumerate(centres):  # eye joints: affine combinations of their own eyeball's vertices
        regressor[3 + k, n + k * e:n + (k + 1) * e] = _regressor(balls[k], centre[None], sigma=EYEBALL_RADIUS)[0]
    return FlameModel(
        v_template=vertices.astype(np.float32),
        shapedirs=_by_magnitude(shapedirs).astype(np.float32),
        exprdirs=expression.astype(np.float32),
        posedirs=np.zeros((9 * (len(FLAME_PARENTS) - 1), 3 * len(vertices)), np.float32),
        J_regressor=regressor.astype(np.float32),
        lbs_weights=weights.astype(np.float32),
        faces=faces,
        parents=FLAME_PARENTS,
        uv_coords=uv,
        uv_faces=uv_faces.astype(np.int32),
        landmarks=_landmarks(vertices, head_faces),
        name=name,
        source=source,
        license=license_,
    )

"""UV albedo model of the embedded head (build time only).

The map is painted at the exact surface point of every texel (`common.uv_to_directions` and
`surface.template_points`):
  * mean: skin (medium tone) with pores and mottling, a hair cap with strands (a hairline across the forehead, down
    to sideburns, around the ears and down to the nape: `surface.hair_mask`), brows with strands, lips, lash line,
    the ears (shadowed hollow inside a lit rim) and the eye sockets (seen only at the lid rims), modulated inside
    the face by the mean luminance pattern of real faces (LFW crops, brightness-normalised);
  * the eyeballs (`eyes.EYE_UV_*`, a strip of the hidden bottom cap's texels, painted by the angle from
    the front pole): pupil, iris with a dark limbus, sclera; only the iris colour component changes them;
  * 24 designed components (skin tone from very light to very dark, redness, olive; brow lightness, thickness,
    height and arch; hair colour black -> brown, blond, grey, hairline height; stubble; lip
    redness, lightness and fullness; iris colour; freckles, moles, forehead wrinkles, age folds, dark circles, eye
    shadow, blush, lash line), LFW-independent, interleaved with 16 mirror-symmetric principal components
    (std x _FACE_GAIN) of the real faces' luminance patterns (real variation of eyes, brows, nose, mouth and face
    shape as they appear in photographs), 40 in all (a painted full beard and moustache, two more LFW components
    and a larger _FACE_GAIN cost dlib's CNN detector: BUILD.md);
  * the mouth interior (`mouth.MOUTH_UV_*`, the hidden back of the neck's bottom cap elsewhere):
    upper and lower teeth behind the lips, a dark red cavity between them; no component changes it;
  * every component has unit max |basis| (stored on a 2^-10 grid, `_quantized`) and its std in albedo units
    (coefficients in standard deviations).
The real faces: 100 LFW face crops (25x25 grey) shipped as `skimage/data/lfw_subset.npy` with scikit-image, and
their mirror images. A crop maps onto the face by an affine fit of its mean eye and mouth positions to the head's.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from flame.build import eyes, mouth, surface
from flame.build.common import APERTURE, EYE, MOUTH_Y, gauss, ramp, uv_to_directions
from flame.model import TextureModel

SIZE = 256  # texels per side
NUM_FACE_PCS = 16
# Of the first 18 symmetric LFW components, the two that went with most of dlib's CNN detector's misses (t = 5.0
# frontal, 5.3 at 45 deg: coefficients of missed vs found faces over 400 random identities; BUILD.md): no. 6 (dark
# eye sockets over bright cheeks) and no. 16 (speckle: with 100 crops, components that far down are mostly noise).
_DETECTOR_HOSTILE_PCS = (6, 16)
_BASIS_STEP = 2.0**-10  # basis values are stored on this grid (`_quantized`)
_FACE_GAIN = 1.4  # the LFW components' std x this: the 25x25 crops are blurred, their contrast underestimated
# Where the features of the mean LFW crop lie, in crop units (0..1, x right, y down).
_CROP_EYE_X = (0.34, 0.66)
_CROP_EYE_Y = 0.38
_CROP_MOUTH_Y = 0.76
_SKIN = np.array([0.62, 0.46, 0.37])
_HAIR = np.array([0.16, 0.11, 0.08])
_BROW = np.array([0.22, 0.16, 0.12])
_LIPS = np.array([0.62, 0.34, 0.32])
_SCLERA = np.array([0.90, 0.88, 0.85])
_IRIS = np.array([0.30, 0.20, 0.13])
_TEETH = np.array([0.78, 0.74, 0.64])
_SOCKET = np.array([0.45, 0.25, 0.22])
_IRIS_ANGLE = 0.5  # radians from the eyeball's front pole to the iris rim (a 6 mm iris radius)
_PUPIL_ANGLE = 0.17
_CAVITY = np.array([0.22, 0.06, 0.06])


def _disc(x, y, cx, cy, rx, ry, edge=0.25):
    """Soft-edged filled ellipse: 1 inside, 0 outside, a smooth edge `edge` (relative radius) wide."""
    r = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return ramp((1.0 - r) / edge + 0.5)


def _brows(x, y, lift=0.0, arch=0.004, thickness=0.0035, length=0.020):
    """Both brows as a soft mask: arcs over the eyes, `lift` metres up, the ends `arch` metres below the middle."""
    ax = np.abs(x)
    return np.maximum.reduce([_disc(x, y, s * 0.033, 0.047 + lift - arch * ((ax - 0.033) / 0.02) ** 2, length,
                                    thickness) for s in (1.0, -1.0)])


def _strands(rng, shape, along, across):
    """Hair-like noise (unit std): white noise blurred `along` texels down the rows and `across` along them."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), (along, across), mode="wrap")
    return field / field.std()


def _spots(rng, x, y, count, radius):
    """`count` small round spots (soft discs of `radius` metres) at random places on the face (front view)."""
    centres = np.stack([rng.uniform(-0.05, 0.05, count), rng.uniform(-0.09, 0.05, count)], -1)
    return np.maximum.reduce([_disc(x, y, cx, cy, radius, radius, edge=0.8) for cx, cy in centres])


def _quantized(basis):
    """`basis` rounded to multiples of _BASIS_STEP: the .npz compresses ~3x better; the albedo changes by at most
    std * _BASIS_STEP / 2 per component (1.3e-4 at the largest std, 0.26)."""
    return np.round(basis / _BASIS_STEP) * _BASIS_STEP


def _texel_points():
    """(SIZE, SIZE, 3) template points and (SIZE, SIZE) facing-forward weight of every texel (row 0: v = 1)."""
    v = 1.0 - (np.arange(SIZE) + 0.5) / SIZE
    u = (np.arange(SIZE) + 0.5) / SIZE
    vv, uu = np.meshgrid(v, u, indexing="ij")
    dirs = uv_to_directions(uu, vv)
    return surface.template_points(dirs), ramp(dirs[..., 2] / 0.3)


def _crop_coordinates(x, y):
    """Head front-view position (metres) -> LFW crop pixel coordinates (row, col) for 25x25 crops."""
    ex, ey = EYE
    scale_x = 2.0 * ex / (_CROP_EYE_X[1] - _CROP_EYE_X[0])
    scale_y = (ey - MOUTH_Y) / (_CROP_MOUTH_Y - _CROP_EYE_Y)
    s = 0.5 + x / scale_x
    t = _CROP_EYE_Y - (y - ey) / scale_y
    return t * 25.0 - 0.5, s * 25.0 - 0.5


def _face_patterns(faces: np.ndarray):
    """(N, 25, 25) grey crops in [0, 1] -> mean brightness-normalised pattern (25, 25) and NUM_FACE_PCS
    mirror-symmetric principal components (NUM_FACE_PCS, 25, 25) scaled by their standard deviations (the first
    ones but _DETECTOR_HOSTILE_PCS), from the crops and their mirror images."""
    faces = np.asarray(faces, np.float64)
    faces = np.concatenate([faces, faces[:, :, ::-1]])
    centre = faces[:, 6:19, 6:19].mean(axis=(1, 2), keepdims=True)
    ratio = faces / np.maximum(centre, 1e-3)
    mean = ratio.mean(0)
    _, singular, vt = np.linalg.svd((ratio - mean).reshape(len(ratio), -1), full_matrices=False)
    std = singular / np.sqrt(len(ratio) - 1)
    components = vt.reshape(-1, 25, 25)
    # With mirrored data every component is mirror-symmetric or antisymmetric; the antisymmetric ones are mostly
    # the photos' light direction and head turn, so only symmetric ones are kept.
    symmetric = np.sum(components * components[:, :, ::-1], axis=(1, 2)) > 0
    keep = np.delete(np.nonzero(symmetric)[0][:NUM_FACE_PCS + len(_DETECTOR_HOSTILE_PCS)], _DETECTOR_HOSTILE_PCS)
    signs = np.where(components[keep].sum(axis=(1, 2), keepdims=True) < 0, -1.0, 1.0)
    return mean, components[keep] * signs * std[keep, None, None]


def _sample(image, rows, cols):
    return ndimage.map_coordinates(image, [rows, cols], order=1, mode="nearest")


def _noise(rng, shape, sigma):
    """Band-limited noise with unit standard deviation."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma, mode="wrap")
    return field / field.std()


def _eye_strip(shape):
    """(SIZE, SIZE) mask of the eyeballs' UV strip (`eyes.EYE_UV_*`, padded by a texel) and the polar
    angle (radians from the front pole, clipped to [0, pi]) that each texel of it stands for."""
    u = np.broadcast_to((np.arange(SIZE) + 0.5) / SIZE, shape)
    v = np.broadcast_to(1.0 - (np.arange(SIZE) + 0.5)[:, None] / SIZE, shape)
    (u0, u1), (v0, v1) = eyes.EYE_UV_U, eyes.EYE_UV_V
    pad = 1.0 / SIZE
    strip = (u > u0 - pad) & (u < u1 + pad) & (v > v0 - 1.5 * pad) & (v < v1 + 1.5 * pad)
    return strip.astype(np.float64), 2.0 * np.arcsin(np.clip((u - u0) / (u1 - u0), 0.0, 1.0))


def build_texture(lfw_faces: np.ndarray, name: str, source: str, license_: str) -> TextureModel:
    """The albedo model (see the module docstring) from the (N, 25, 25) LFW face crops."""
    points, front = _texel_points()
    x, y, z = np.moveaxis(points, -1, 0)
    ax = np.abs(x)
    ex, ey = EYE
    m = MOUTH_Y
    rng = np.random.default_rng(20240605)

    face = front * _disc(x, y, 0.0, -0.025, 0.056, 0.085, edge=0.6)
    hair = ndimage.gaussian_filter(surface.hair_mask(points), 2.0, mode=("nearest", "wrap"))
    hair_band = surface.hair_mask(points + np.array([0.0, 0.012, 0.0])) - hair
    brows = front * _brows(x, y)
    brows_wide = front * _brows(x, y, thickness=0.0065, length=0.024)
    brows_up = front * _brows(x, y, lift=0.004)
    brows_arched = front * _brows(x, y, arch=0.009)
    lip_shape = 0.008 * (1.0 - (x / 0.026) ** 2)
    lips = front * ramp((lip_shape - np.abs(y - m)) / 0.002) * (ax < 0.026)
    lips_full = front * ramp((1.4 * lip_shape - np.abs(y - m)) / 0.002) * (ax < 0.028)
    lip_line = front * gauss(x, y, 0.0, m, 0.02, 0.0008)
    ax_, ay_ = APERTURE
    # The socket inside each lid aperture (behind the eyeball; seen only at its rim) and the lash line on the upper
    # lid's rim.
    socket = front * np.maximum.reduce([_disc(x, y, s * ex, ey, ax_, ay_, edge=0.3) for s in (1.0, -1.0)])
    lashes = front * np.maximum.reduce([_disc(x, y, s * ex, ey + ay_, ax_ + 0.002, 0.0018) for s in (1.0, -1.0)])
    lashes = lashes * (1.0 - socket)
    strip, polar = _eye_strip(x.shape)
    iris = strip * ramp((_IRIS_ANGLE - polar) / 0.08 + 0.5)
    pupil = strip * ramp((_PUPIL_ANGLE - polar) / 0.08 + 0.5)
    limbus = strip * np.exp(-0.5 * ((polar - _IRIS_ANGLE) / 0.06) ** 2)
    sockets = front * np.maximum.reduce([gauss(x, y, s * ex, ey + 0.002, 0.014, 0.009) for s in (1.0, -1.0)])
    cheeks = front * np.maximum.reduce([gauss(x, y, s * 0.045, -0.02, 0.015, 0.013) for s in (1.0, -1.0)])
    beard = front * ramp((0.0 - y) / 0.02) * ramp((y + 0.115) / 0.01) * ramp((-m + 0.05 - ax) / 0.02) * (1.0 - lips)
    beard = beard * (1.0 - _disc(x, y, 0.0, -0.02, 0.02, 0.03))

    mean_pattern, patterns = _face_patterns(lfw_faces)
    rows, cols = _crop_coordinates(x, y)
    luminance = 1.0 + face * (_sample(mean_pattern, rows, cols) - 1.0)

    def paint(base, mask, colour):
        return base * (1.0 - mask[..., None]) + mask[..., None] * np.asarray(colour)

    # Skin detail (pores, mottling) and hair and brow strands, in the mean.
    detail = 1.0 + 0.03 * _noise(rng, x.shape, 1.0) + 0.025 * _noise(rng, x.shape, 6.0)
    strands = 1.0 + 0.3 * _strands(rng, x.shape, 3.0, 0.8)
    skin = np.broadcast_to(_SKIN, x.shape + (3,)) * (luminance * detail)[..., None]
    mean = paint(skin, hair, _HAIR * strands[..., None])
    mean = paint(mean, lips, _LIPS * luminance[..., None])
    mean = paint(mean, lip_line, _LIPS * 0.5)
    mean = paint(mean, brows, _BROW * strands[..., None])
    mean = paint(mean, lashes, _BROW * 0.6)
    mean = paint(mean, socket, _SOCKET)
    mean = paint(mean, strip, _SCLERA * (1.0 - 0.25 * ramp((polar - 0.9) / 0.6))[..., None])
    mean = paint(mean, iris, _IRIS)
    mean = paint(mean, limbus, _IRIS * 0.4)
    mean = paint(mean, pupil, (0.03, 0.03, 0.03))
    # The ear: the hollow inside the helix (concha, in front of the canal) in shadow, the helix's rim lit.
    ey_, ez_ = surface.EAR
    sy_, sz_ = surface.EAR_SIZE
    on_ear = ramp((ax - 0.075) / 0.006) * (1.0 - hair)
    ear_rho = np.hypot((y - ey_) / sy_, (z - ez_) / sz_)
    hollow = on_ear * ramp((0.8 - ear_rho) / 0.3) * (0.3 + 0.7 * gauss(y, z, ey_ - 0.005, ez_ + 0.003, 0.008, 0.005))
    mean = paint(mean, hollow, _SKIN * 0.65)
    mean = paint(mean, on_ear * np.exp(-0.5 * ((ear_rho - 0.95) / 0.12) ** 2), _SKIN * np.array([1.08, 0.98, 0.95]))
    nostrils = front * np.maximum.reduce([_disc(x, y, s * 0.0075, -0.030, 0.0035, 0.0018) for s in (1.0, -1.0)])
    mean = paint(mean, nostrils, _SKIN * 0.55)
    # The mouth bag: u runs from the upper lip (0 at MOUTH_UV_U[0]) through the pocket to the lower lip (1).
    depth = (np.broadcast_to((np.arange(SIZE) + 0.5) / SIZE, x.shape) - mouth.MOUTH_UV_U[0]) / np.diff(
        mouth.MOUTH_UV_U)
    interior = ((np.arange(SIZE) + 0.5)[:, None] / SIZE > 1.0 - mouth.MOUTH_UV_V[1] - 1.0 / SIZE) & (
        depth > -0.1) & (depth < 1.1)
    interior = interior.astype(np.float64)
    teeth = np.maximum(ramp((0.07 - np.abs(depth - 0.38)) / 0.04), ramp((0.06 - np.abs(depth - 0.68)) / 0.04))
    cavity = _CAVITY * (1.0 - 0.5 * np.sin(np.pi * np.clip(depth, 0.0, 1.0)))[..., None]
    mean = paint(mean, interior, cavity * (1.0 - teeth[..., None]) + teeth[..., None] * _TEETH)
    skin_mask = (1.0 - hair) * (1.0 - np.maximum.reduce([brows, socket, lashes]))
    eye_free = 1.0 - socket

    stubble = beard * np.clip(_noise(rng, x.shape, 0.8) + 1.0, 0.0, None)
    freckles = front * (cheeks + gauss(x, y, 0.0, -0.005, 0.03, 0.02)) * np.clip(_noise(rng, x.shape, 1.0) - 1.2,
                                                                                   0.0, None)
    moles = front * _spots(rng, x, y, 6, 0.0018) * eye_free * (1.0 - lips)
    forehead = front * gauss(x, y, 0.0, 0.065, 0.035, 0.012) * (1.0 - hair)
    lines = forehead * (0.5 - 0.5 * np.cos(2.0 * np.pi * (y - 0.002 * np.cos(x / 0.02)) / 0.007))
    folds = (gauss(ax - 0.022 - 0.3 * (y + 0.035), y, 0.0, -0.04, 0.0025, 0.012)  # nasolabial folds
             + 0.6 * gauss(ax, y, ex + 0.017, ey, 0.004, 0.006)  # crow's feet
             + 0.6 * gauss(ax, y, ex, ey - 0.011, 0.010, 0.0025))  # lower lid folds
    folds = front * folds * (1.0 - socket)
    dark_circles = front * np.maximum.reduce([gauss(x, y, s * ex, ey - 0.009, 0.011, 0.005) for s in (1.0, -1.0)])
    iris_colour = 0.12 * (iris * (1.0 - pupil))[..., None] * np.array([0.05, 0.6, 1.0])
    brow_colour = _BROW - _SKIN
    designed = [  # each component at +1 standard deviation, in albedo units
        0.13 * (skin_mask * luminance)[..., None] * np.array([1.0, 0.95, 0.88]),  # skin tone
        0.08 * brows[..., None] * np.ones(3),  # brow lightness
        0.09 * hair[..., None] * np.array([1.0, 0.85, 0.65]),  # hair colour (black -> brown)
        0.5 * (brows_wide - brows)[..., None] * brow_colour,  # brow thickness
        0.06 * lips[..., None] * np.array([1.0, -0.5, -0.4]),  # lip redness
        0.10 * hair[..., None] * np.array([1.0, 0.8, 0.45]),  # blond
        0.5 * (brows_up - brows)[..., None] * brow_colour,  # brow height
        0.035 * skin_mask[..., None] * np.array([1.0, -0.3, -0.3]),  # redness
        -0.025 * stubble[..., None] * np.ones(3),  # stubble
        iris_colour,  # iris colour (brown -> blue/grey), on the eyeballs' strip
        0.03 * skin_mask[..., None] * np.array([0.4, 0.3, -0.6]),  # olive / yellow
        -0.05 * freckles[..., None] * np.array([0.2, 0.35, 0.4]),  # freckles
        -0.12 * moles[..., None] * np.array([0.6, 0.75, 0.8]),  # moles
        -0.04 * (sockets * eye_free)[..., None] * np.ones(3),  # eye shadow
        0.06 * lips[..., None] * np.ones(3),  # lip lightness
        0.4 * hair_band[..., None] * (_HAIR - _SKIN),  # hairline height
        0.04 * (cheeks * skin_mask)[..., None] * np.array([1.0, -0.3, -0.2]),  # blush
        -0.06 * lashes[..., None] * np.ones(3),  # lash line
        -0.05 * lines[..., None] * np.array([1.0, 1.05, 1.1]),  # forehead wrinkles
        -0.06 * folds[..., None] * np.array([1.0, 1.05, 1.1]),  # age folds (nasolabial, crow's feet, lower lids)
        -0.05 * dark_circles[..., None] * np.array([0.9, 1.0, 0.8]),  # dark circles under the eyes
        0.5 * (brows_arched - brows)[..., None] * brow_colour,  # brow arch
        0.3 * (lips_full - lips)[..., None] * (_LIPS - _SKIN),  # lip fullness
        0.12 * hair[..., None] * np.array([1.0, 1.05, 1.15]),  # grey hair
    ]
    face_components = [_FACE_GAIN * (face * eye_free * _sample(p, rows, cols))[..., None] * _SKIN for p in patterns]
    ordered = [c for pair in zip(designed, face_components) for c in pair]
    ordered += designed[len(face_components):] + face_components[len(designed):]
    ordered = [c if c is iris_colour else c * ((1.0 - interior) * (1.0 - strip))[..., None] for c in ordered]
    std = np.array([np.abs(c).max() for c in ordered])
    basis = _quantized(np.stack([c / s for c, s in zip(ordered, std)], -1))
    return TextureModel(
        mean=np.clip(mean, 0.0, 1.0).astype(np.float32),
        basis=basis.astype(np.float32),
        std=std.astype(np.float32),
        name=name,
        source=source,
        license=license_,
    )

"""The embedded head's linear parts (build time only): skinning weights (jaw region and lower lip -> jaw, neck
bottom -> global, rest -> neck; the eyeballs' own weights are set where they are added), the joint regressor,
60 identity components (30 named, 30 smooth random fields) and 12 expression components, in standard deviations.
"""
from __future__ import annotations

import numpy as np

from flame.build.common import EYE, MOUTH_Y, gauss, ramp
from flame.build.surface import neck_weight, nose_relief

_FEATURE_GAIN = 1.25  # scale of the named identity components relative to the amplitudes written below


def regressor(vertices, targets, sigma=0.05):
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


def skinning_weights(vertices, dirs):
    """(V, 5) skinning weights of the head surface for [global, neck, jaw, left eye, right eye] (the eye joints
    move only the eyeballs)."""
    x, y, z = vertices.T
    neck_part = ramp(neck_weight(dirs) / 0.3)
    jaw = ramp((MOUTH_Y - y) / 0.008) * ramp((z + 0.01) / 0.04) * (1.0 - neck_part)
    root = ramp((-0.14 - y) / 0.03) * (1.0 - jaw)
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


def shape_basis(vertices, dirs, rng):
    """(V, 3, 60) identity basis in metres per standard deviation (unordered; see `by_magnitude`).

    30 named components (head and face proportions; nose, eye, brow, mouth, cheek, chin and jaw features,
    each a smooth window times a displacement; painted features move with the surface) and 30 smooth
    random fields (every fifth one asymmetric) of decreasing amplitude.
    """
    x, y, z = vertices.T
    ax, sx = np.abs(x), np.tanh(x / 0.006)  # a smooth sign: no crease on the midline
    front = ramp(dirs[:, 2] / 0.5)
    zero = np.zeros_like(x)
    lower = ramp(-y / 0.05)
    ex, ey = EYE
    m = MOUTH_Y

    def field(window, dx=0.0, dy=0.0, dz=0.0):
        w = front * window
        return np.stack([w * dx + zero, w * dy + zero, w * dz + zero], -1)

    eyes = gauss(ax, y, ex, ey, 0.016, 0.012)
    orbits = ramp((0.034 - np.hypot(ax - ex, 1.2 * (y - ey))) / 0.024)  # flat over the eyeball and its lids
    nose = gauss(x, y, 0.0, -0.015, 0.012, 0.025)
    tip = gauss(x, y, 0.0, -0.025, 0.012, 0.010)
    mouth = gauss(x, y, 0.0, m, 0.028, 0.012)
    chin = gauss(x, y, 0.0, -0.088, 0.022, 0.016)
    cheekbone = gauss(ax, y, 0.048, -0.002, 0.016, 0.014)
    semantic = [
        np.stack([0.07 * x, zero, zero], -1),  # head width
        np.stack([zero, 0.05 * y, zero], -1),  # head length
        np.stack([zero, zero, 0.05 * z], -1),  # head depth
        np.stack([0.10 * x * lower, zero, zero], -1),  # jaw width
        np.stack([zero, 0.08 * np.minimum(y, 0.0) * lower, zero], -1),  # lower-face length
        np.stack([0.05 * x * ramp(y / 0.05), zero, zero], -1),  # forehead/temple width
        field(gauss(x, y, 0.0, 0.07, 0.06, 0.025), dz=0.006),  # forehead slope
        field(nose_relief(x, y) / 0.024, dz=0.004),  # nose projection
        field(nose * sx * ax / 0.012, dx=0.003),  # nose width
        field(nose, dy=-0.004),  # nose length (the tip drops)
        field(tip, dz=0.003, dy=0.001),  # nose tip
        field(gauss(x, y, 0.0, 0.012, 0.008, 0.015), dz=0.003),  # nose bridge
        field(gauss(x, y, 0.0, -0.03, 0.015, 0.006), dy=0.002, dz=-0.002),  # nostril flare / columella
        field(orbits * sx, dx=0.003),  # eye spacing
        field(eyes * (ax - ex) / 0.012, dx=0.0015),  # eye width
        field(eyes * (y - ey) / 0.008, dy=0.001),  # eye height
        field(orbits, dz=-0.003),  # eye depth (socket)
        field(eyes * sx * (ax - ex) / 0.012, dy=0.0012),  # eye tilt
        field(gauss(ax, y, 0.033, 0.046, 0.022, 0.010), dy=0.003),  # brow height
        field(gauss(x, y, 0.0, 0.045, 0.045, 0.009), dz=0.004),  # brow ridge
        field(mouth * x / 0.025, dx=0.004),  # mouth width
        field(mouth * (y - m) / 0.01, dy=0.002, dz=0.001),  # lip thickness
        field(mouth, dy=0.004),  # mouth height
        field(mouth, dz=0.004),  # lip protrusion
        field(chin, dy=-0.005, dz=0.003),  # chin length
        field(chin * x / 0.02, dx=0.004),  # chin width
        field(cheekbone, dx=0.003 * sx, dz=0.003),  # cheekbones
        field(gauss(ax, y, 0.04, -0.04, 0.018, 0.02), dz=-0.004),  # cheek hollows
        field(gauss(ax, y, 0.055, -0.07, 0.02, 0.02) * sx, dx=0.005),  # jaw angle
        field(eyes * 0.5 * (1.0 + sx) + mouth * x / 0.05, dy=0.002),  # asymmetry (left eye, mouth tilt)
    ]
    random_fields = _smooth_fields(dirs, 30, rng, (0.25, 0.6))
    amplitudes = 0.0015 / np.sqrt(1.0 + np.arange(30) / 4.0)
    random = [dirs * (random_fields[:, k] * amplitudes[k])[:, None] for k in range(30)]
    return np.stack([_FEATURE_GAIN * f for f in semantic] + random, -1)  # (V, 3, 60)


def by_magnitude(basis):
    """(V, 3, K) basis with its components reordered by decreasing RMS magnitude."""
    scale = np.sqrt(np.mean(np.sum(basis**2, 1), 0))
    return basis[:, :, np.argsort(-scale, kind="stable")]


def expression_basis(vertices, weights, sockets):
    """(V, 3, 12) expression basis in metres per standard deviation; `sockets` (2, V): the eye socket depths
    (eye closure fills them: the lids close over the eyeball at +2 sigma)."""
    x, y, z = vertices.T
    zero = np.zeros_like(x)
    jaw = weights[:, 2]
    corners = [gauss(x, y, s * 0.025, MOUTH_Y, 0.01, 0.01) for s in (1.0, -1.0)]
    lips = gauss(x, y, 0.0, MOUTH_Y, 0.022, 0.01)
    brows = [gauss(x, y, s * 0.033, 0.046, 0.018, 0.008) for s in (1.0, -1.0)]
    inner_brows = gauss(np.abs(x), y, 0.012, 0.044, 0.008, 0.007)
    lids = [gauss(x, y, s * EYE[0], EYE[1] + 0.004, 0.011, 0.004) for s in (1.0, -1.0)]
    cheeks = gauss(np.abs(x), y, 0.045, -0.03, 0.015, 0.015)
    nose = gauss(x, y, 0.0, -0.01, 0.012, 0.02)
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

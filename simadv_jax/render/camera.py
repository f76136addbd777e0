"""Cameras as two 4x4 matrices: world -> view (OpenGL view space) and view -> clip (projection).

See `simadv_jax.render.types` for the clip-space, pixel and handedness conventions.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from simadv_jax.render.types import Resolution, resolution_hw


@struct.dataclass
class Camera:
    """view: (4, 4) float32 world -> view transform; projection: (4, 4) float32 view -> clip."""

    view: jax.Array
    projection: jax.Array

    def to_view(self, points: jax.Array) -> jax.Array:
        """(N, 3) world points -> (N, 3) view-space points."""
        return points @ self.view[:3, :3].T + self.view[:3, 3]

    def to_clip(self, points: jax.Array) -> jax.Array:
        """(N, 3) world points -> (N, 4) clip-space points."""
        return homogeneous(points) @ (self.projection @ self.view).T


def homogeneous(points: jax.Array) -> jax.Array:
    """(N, 3) -> (N, 4) with w = 1."""
    return jnp.concatenate([points, jnp.ones_like(points[..., :1])], axis=-1)


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> jax.Array:
    """(4, 4) world -> view matrix of a camera at `eye` looking at `target` (OpenGL: looks down -z)."""
    eye, target, up = (jnp.asarray(a, jnp.float32) for a in (eye, target, up))
    back = eye - target
    back = back / jnp.linalg.norm(back)
    right = jnp.cross(up, back)
    right = right / jnp.linalg.norm(right)
    true_up = jnp.cross(back, right)
    rotation = jnp.stack([right, true_up, back])  # rows: view axes in world coordinates
    top = jnp.concatenate([rotation, -(rotation @ eye)[:, None]], axis=1)
    return jnp.concatenate([top, jnp.array([[0.0, 0.0, 0.0, 1.0]])], axis=0)


def perspective(fov_y, aspect=1.0, near=0.01, far=10.0) -> jax.Array:
    """(4, 4) OpenGL perspective projection; fov_y = full vertical field of view in radians, aspect = W / H."""
    f = 1.0 / jnp.tan(jnp.asarray(fov_y, jnp.float32) / 2)
    return _perspective(f / aspect, f, near, far)


def perspective_from_focal(focal, resolution: Resolution, near=0.01, far=10.0) -> jax.Array:
    """(4, 4) perspective projection for a focal length in pixels (principal point at the image centre)."""
    height, width = resolution_hw(resolution)
    focal = jnp.asarray(focal, jnp.float32)
    return _perspective(2 * focal / width, 2 * focal / height, near, far)


def _perspective(sx, sy, near, far) -> jax.Array:
    if not 0 < near < far:
        raise ValueError(f"near/far: expected 0 < near < far, got near={near}, far={far}")
    a = -(far + near) / (far - near)
    b = -2 * far * near / (far - near)
    zero = jnp.zeros_like(sx)
    return jnp.stack([
        jnp.stack([sx, zero, zero, zero]),
        jnp.stack([zero, sy, zero, zero]),
        jnp.array([0.0, 0.0, a, b]),
        jnp.array([0.0, 0.0, -1.0, 0.0]),
    ]).astype(jnp.float32)


def weak_perspective(scale, translation, depth_scale=0.1) -> jax.Array:
    """(4, 4) DECA-style weak-perspective (scaled orthographic) projection.

    NDC x = scale * (x + tx), y = scale * (y + ty); depth = -depth_scale * scale * z (nearer = larger z =
    smaller depth). `translation` is (2,); keep |depth_scale * scale * z| <= 1 so nothing is depth-clipped.
    """
    scale = jnp.asarray(scale, jnp.float32)
    tx, ty = jnp.asarray(translation, jnp.float32)
    zero = jnp.zeros_like(scale)
    return jnp.stack([
        jnp.stack([scale, zero, zero, scale * tx]),
        jnp.stack([zero, scale, zero, scale * ty]),
        jnp.stack([zero, zero, -depth_scale * scale, zero]),
        jnp.stack([zero, zero, zero, jnp.ones_like(scale)]),
    ])


def to_pixels(clip_points: jax.Array, resolution: Resolution) -> jax.Array:
    """(N, 4) clip points -> (N, 2) continuous pixel coordinates (u right, v down; centres at +0.5).

    Points at w <= 0 (at or behind the eye plane) have no projection: they are divided by 1 instead of w,
    which keeps them finite; callers that must know test w > 0 themselves.
    """
    height, width = resolution_hw(resolution)
    w = clip_points[:, 3:4]
    ndc = clip_points[:, :2] / jnp.where(w > 0, w, 1.0)
    return jnp.stack([(ndc[:, 0] + 1) * 0.5 * width, (1 - ndc[:, 1]) * 0.5 * height], axis=-1)

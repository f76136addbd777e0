"""Linear blend skinning as a chain of small pure functions (one sample, no batch axis).

Conventions: rotations act on column vectors (x' = R x); vertices are row vectors (V, 3),
so transformed vertices are x @ R.T + t. Angles are radians; axis-angle vectors have the
rotation angle as their norm.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

# Below this angle (radians) Rodrigues' coefficients use their Taylor series, which keeps
# values and gradients finite and exact to float32 precision at and near zero rotation.
_SMALL_ANGLE = 1e-3


def small_matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """(..., K) @ (K, N) -> (..., N) as K broadcast multiply-adds, for small static K (a joint count, 3 or 4).

    Equal to `a @ b` up to float rounding. XLA:CPU hands a dot with so small a contraction to a matrix
    library call that costs more than the arithmetic; written out, it fuses with its neighbours.
    """
    return sum(a[..., k:k + 1] * b[k] for k in range(a.shape[-1]))


def skew(v: jax.Array) -> jax.Array:
    """(..., 3) vectors -> (..., 3, 3) cross-product matrices [v]_x."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    zero = jnp.zeros_like(x)
    return jnp.stack(
        [
            jnp.stack([zero, -z, y], -1),
            jnp.stack([z, zero, -x], -1),
            jnp.stack([-y, x, zero], -1),
        ],
        -2,
    )


def rodrigues(axis_angle: jax.Array) -> jax.Array:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices.

    R = I + a [r]_x + b [r]_x^2 with a = sin(t)/t, b = (1 - cos t)/t^2, t = |r|; for
    t < 1e-3 the series a = 1 - t^2/6, b = 1/2 - t^2/24 is used, so R and its gradient are
    finite at r = 0 (where dR/dr = [.]_x exactly).
    """
    theta_sq = jnp.sum(axis_angle * axis_angle, axis=-1)
    small = theta_sq < _SMALL_ANGLE**2
    safe_sq = jnp.where(small, 1.0, theta_sq)
    theta = jnp.sqrt(safe_sq)
    a = jnp.where(small, 1.0 - theta_sq / 6.0, jnp.sin(theta) / theta)
    b = jnp.where(small, 0.5 - theta_sq / 24.0, (1.0 - jnp.cos(theta)) / safe_sq)
    k = skew(axis_angle)
    eye = jnp.eye(3, dtype=axis_angle.dtype)
    return eye + a[..., None, None] * k + b[..., None, None] * (k @ k)


def blend_shapes(coefficients: jax.Array, basis: jax.Array) -> jax.Array:
    """(C,) coefficients, (V, 3, C) basis -> (V, 3) offsets."""
    return jnp.einsum("vdc,c->vd", basis, coefficients)


def vertices_to_joints(J_regressor: jax.Array, vertices: jax.Array) -> jax.Array:
    """(J, V) regressor, (V, 3) vertices -> (J, 3) joint locations."""
    return J_regressor @ vertices


def pose_features(rotations: jax.Array) -> jax.Array:
    """(J, 3, 3) joint rotations -> ((J-1)*9,) corrective features R - I of non-root joints."""
    eye = jnp.eye(3, dtype=rotations.dtype)
    return (rotations[1:] - eye).reshape(-1)


def rigid_transforms(
    rotations: jax.Array, joints: jax.Array, parents: tuple
) -> tuple[jax.Array, jax.Array]:
    """Forward kinematics along the static kinematic tree.

    Args:
      rotations: (J, 3, 3) local joint rotations.
      joints: (J, 3) rest-pose joint locations.
      parents: static tuple of J parent indices, root = -1, parents before children.
    Returns:
      posed_joints: (J, 3) joint locations after posing.
      transforms: (J, 4, 4) transforms mapping rest-pose points to posed points
        (x_posed = R x + t, i.e. relative to the rest pose, as skinning needs).
    """
    num_joints = len(parents)
    world = []  # (4, 4) world transforms of the joint frames
    for j in range(num_joints):
        parent = parents[j]
        offset = joints[j] if parent < 0 else joints[j] - joints[parent]
        local = jnp.eye(4, dtype=joints.dtype)
        local = local.at[:3, :3].set(rotations[j]).at[:3, 3].set(offset)
        world.append(local if parent < 0 else world[parent] @ local)
    world = jnp.stack(world)  # (J, 4, 4)
    posed_joints = world[:, :3, 3]
    # Remove the rest-pose joint location so the transform applies to rest-pose vertices.
    rest_offset = jnp.einsum("jab,jb->ja", world[:, :3, :3], joints)
    transforms = world.at[:, :3, 3].add(-rest_offset)
    return posed_joints, transforms


def skin(vertices: jax.Array, weights: jax.Array, transforms: jax.Array) -> jax.Array:
    """Linear blend skinning: (V, 3) vertices, (V, J) weights, (J, 4, 4) -> (V, 3)."""
    num_joints = transforms.shape[0]
    blended = small_matmul(weights, transforms[:, :3].reshape(num_joints, 12)).reshape(-1, 3, 4)  # (V, 3, 4)
    return sum(blended[..., k] * vertices[:, k:k + 1] for k in range(3)) + blended[..., 3]

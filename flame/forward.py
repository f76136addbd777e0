"""flame.forward: parameters of one sample -> posed vertices, joints and landmarks; the pose convention
(`pose`), a rigid rotation about the root joint (`rotate_about_root`) and the albedo (`albedo`)."""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from flame import lbs
from flame.model import FLAME_JOINT_NAMES, FlameModel, LandmarkEmbedding, TextureModel

_GLOBAL, _JAW = FLAME_JOINT_NAMES.index("global"), FLAME_JOINT_NAMES.index("jaw")


class FlameOutput(NamedTuple):
    """Posed model of one sample.

    vertices: (V, 3) float32, metres. joints: (J, 3) posed joint locations.
    landmarks: (L, 3) landmark positions, or None when the model has no embedding.
    """

    vertices: jax.Array
    joints: jax.Array
    landmarks: Optional[jax.Array]


def pad_coefficients(coefficients: jax.Array, size: int, field: str) -> jax.Array:
    """Zero-pads a (C,) coefficient vector to (size,); C > size is a ValueError naming `field`."""
    coefficients = jnp.asarray(coefficients, jnp.float32)
    if coefficients.ndim != 1:
        raise ValueError(f"{field}: expected a 1-D coefficient vector, got shape {coefficients.shape}")
    count = coefficients.shape[0]
    if count > size:
        raise ValueError(f"{field}: {count} coefficients given but the model's basis has {size}")
    return jnp.pad(coefficients, (0, size - count))


def surface_points(vertices: jax.Array, faces: jax.Array, embedding: LandmarkEmbedding) -> jax.Array:
    """(V, 3) vertices, (F, 3) faces, embedding of L points -> (L, 3) surface points."""
    corners = vertices[faces[embedding.face_idx]]  # (L, 3, 3)
    return jnp.einsum("lc,lcd->ld", embedding.bary_coords, corners)


def pose(num_joints: int, *, yaw=0.0, jaw=0.0) -> jax.Array:
    """(J, 3) float32 axis-angle pose in FLAME's joint order: the global joint turned by `yaw` about +y (> 0
    turns the face towards +x) and the jaw opened by `jaw` about +x, radians; every other joint at rest.
    Traceable (`yaw`, `jaw` may be traced scalars); J = `num_joints` >= 3.

    Example: `flame.forward(model, shape, expression, flame.pose(model.num_joints, jaw=0.2))`.
    """
    if num_joints <= _JAW:
        raise ValueError(f"pose: a FLAME pose has the jaw at joint {_JAW}; got {num_joints} joints")
    return jnp.zeros((num_joints, 3), jnp.float32).at[_GLOBAL, 1].set(yaw).at[_JAW, 0].set(jaw)


def forward(
    model: FlameModel,
    shape: jax.Array,
    expression: jax.Array,
    pose: jax.Array,
    translation: Optional[jax.Array] = None,
) -> FlameOutput:
    """Evaluates the head model for one sample (pure; batch with `jax.vmap`).

    Args:
      model: the head model.
      shape: (S',) identity coefficients in standard deviations, S' <= model.num_shape
        (missing trailing coefficients are zero).
      expression: (E',) expression coefficients, E' <= model.num_expression.
      pose: (J, 3) axis-angle per joint in radians, FLAME order
        [global, neck, jaw, left eye, right eye]; the global rotation is about the root joint.
      translation: optional (3,) translation added to everything, metres.
    Returns:
      FlameOutput with vertices (V, 3), joints (J, 3), landmarks (L, 3) or None.
    """
    pose = jnp.asarray(pose, jnp.float32)
    if pose.shape != (model.num_joints, 3):
        raise ValueError(f"pose: expected shape ({model.num_joints}, 3), got {pose.shape}")
    shape = pad_coefficients(shape, model.num_shape, "shape")
    expression = pad_coefficients(expression, model.num_expression, "expression")

    # (V, 3) identity + expression shaped rest mesh, and its (J, 3) joints.
    shaped = (
        model.v_template
        + lbs.blend_shapes(shape, model.shapedirs)
        + lbs.blend_shapes(expression, model.exprdirs)
    )
    rest_joints = lbs.vertices_to_joints(model.J_regressor, shaped)

    rotations = lbs.rodrigues(pose)  # (J, 3, 3)
    # (P,) @ (P, 3V) -> (V, 3) pose-corrective offsets.
    corrective = (lbs.pose_features(rotations) @ model.posedirs).reshape(-1, 3)
    posed_joints, transforms = lbs.rigid_transforms(rotations, rest_joints, model.parents)
    vertices = lbs.skin(shaped + corrective, model.lbs_weights, transforms)

    if translation is not None:
        translation = jnp.asarray(translation, jnp.float32).reshape(3)
        vertices = vertices + translation
        posed_joints = posed_joints + translation
    landmarks = None
    if model.landmarks is not None:
        landmarks = surface_points(vertices, model.faces, model.landmarks)
    return FlameOutput(vertices, posed_joints, landmarks)


def rotate_about_root(output: FlameOutput, rotation: jax.Array) -> FlameOutput:
    """`output` turned rigidly by the (3, 3) `rotation` about its posed root joint c = output.joints[0]:
    x' = R (x - c) + c for every vertex, joint and landmark (None stays None). Pure; batch with `jax.vmap`."""
    root, rotation = output.joints[0], jnp.asarray(rotation, jnp.float32)

    def turn(points):  # (N, 3) -> (N, 3)
        return None if points is None else lbs.small_matmul(points - root, rotation.T) + root

    return FlameOutput(turn(output.vertices), turn(output.joints), turn(output.landmarks))


def albedo(texture_model: TextureModel, coefficients: jax.Array) -> jax.Array:
    """Albedo for (K',) coefficients in std units (K' <= K, zero-padded).

    Returns (H, W, 3) for a UV model or (V, 3) for a per-vertex model, RGB clipped to [0, 1].
    """
    coefficients = pad_coefficients(coefficients, texture_model.num_components, "texture")
    value = texture_model.mean + jnp.einsum(
        "...k,k->...", texture_model.basis, coefficients * texture_model.std
    )
    return jnp.clip(value, 0.0, 1.0)

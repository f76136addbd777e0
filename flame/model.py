"""FLAME-format model containers: immutable pytrees of arrays plus static topology.

Array fields are traced pytree leaves; topology and metadata (`parents`, names) are static
(`pytree_node=False`), so `jax.jit` specializes on them and never traces them.

Shapes use V vertices, F triangles, J joints (5 for FLAME), S shape components, E expression
components, P pose-corrective features (36 = 9 * (J - 1) for FLAME), L landmarks, K albedo
components, T UV coordinates.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Optional

import jax
import numpy as np
from flax import struct

FLAME_JOINT_NAMES = ("global", "neck", "jaw", "left_eye", "right_eye")
FLAME_PARENTS = (-1, 0, 1, 1, 1)
_PROVENANCE = ("source", "license")  # text about where a model came from, not what it computes


@struct.dataclass
class LandmarkEmbedding:
    """Landmarks as points on the mesh surface: a triangle and barycentric weights each.

    Attributes:
      face_idx: (L,) int32 triangle index of each landmark.
      bary_coords: (L, 3) float32 barycentric weights (rows sum to 1).
      dynamic_face_idx: optional (Y, C) int32 yaw-dependent contour triangles (DECA's
        dynamic embedding, Y yaw bins of C contour landmarks), kept for users; `forward`
        uses the static part only.
      dynamic_bary_coords: optional (Y, C, 3) float32 weights for `dynamic_face_idx`.
      layout: static name of the landmark layout, e.g. "ibug68" or "flame51".
    """

    face_idx: jax.Array
    bary_coords: jax.Array
    dynamic_face_idx: Optional[jax.Array] = None
    dynamic_bary_coords: Optional[jax.Array] = None
    layout: str = struct.field(pytree_node=False, default="unknown")

    @property
    def num_landmarks(self) -> int:
        return int(self.face_idx.shape[0])


@struct.dataclass
class FlameModel:
    """A FLAME-format head model (linear blendshapes + linear blend skinning).

    Attributes:
      v_template: (V, 3) float32 rest-pose vertices, metres.
      shapedirs: (V, 3, S) float32 identity basis; coefficients in standard deviations.
      exprdirs: (V, 3, E) float32 expression basis; coefficients in standard deviations.
      posedirs: (P, 3V) float32 pose-corrective basis, row p holds the flattened (V*3)
        offsets for pose feature p (FLAME's `posedirs (V,3,P)` reshaped to (3V, P) and
        transposed).
      J_regressor: (J, V) float32 dense joint regressor.
      lbs_weights: (V, J) float32 skinning weights (rows sum to 1).
      faces: (F, 3) int32 triangle vertex indices, counter-clockwise seen from outside.
      parents: static tuple of J parent indices; the root's parent is -1.
      uv_coords: optional (T, 2) float32 UV coordinates in [0, 1], v up.
      uv_faces: optional (F, 3) int32 indices into `uv_coords` per triangle corner.
      landmarks: optional LandmarkEmbedding.
      name, source, license: static metadata strings.
    """

    v_template: jax.Array
    shapedirs: jax.Array
    exprdirs: jax.Array
    posedirs: jax.Array
    J_regressor: jax.Array
    lbs_weights: jax.Array
    faces: jax.Array
    parents: tuple = struct.field(pytree_node=False, default=FLAME_PARENTS)
    uv_coords: Optional[jax.Array] = None
    uv_faces: Optional[jax.Array] = None
    landmarks: Optional[LandmarkEmbedding] = None
    name: str = struct.field(pytree_node=False, default="flame")
    source: str = struct.field(pytree_node=False, default="")
    license: str = struct.field(pytree_node=False, default="")

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def num_shape(self) -> int:
        return int(self.shapedirs.shape[-1])

    @property
    def num_expression(self) -> int:
        return int(self.exprdirs.shape[-1])

    def leading_components(self, num_shape: int, num_expression: int) -> "FlameModel":
        """The model with only its first `num_shape` identity and `num_expression` expression components
        (contiguous copies): the same head for coefficient vectors no longer than those."""
        return self.replace(shapedirs=np.ascontiguousarray(np.asarray(self.shapedirs)[..., :num_shape]),
                            exprdirs=np.ascontiguousarray(np.asarray(self.exprdirs)[..., :num_expression]))


@struct.dataclass
class TextureModel:
    """A linear albedo model, in UV space (H, W, 3) or per vertex (V, 3); RGB in [0, 1].

    albedo = clip(mean + sum_k basis[..., k] * std[k] * coeffs[k], 0, 1), so coefficients
    are in standard deviations.

    Attributes:
      mean: (H, W, 3) or (V, 3) float32 mean albedo, RGB in [0, 1].
      basis: (H, W, 3, K) or (V, 3, K) float32 unit-scale components.
      std: (K,) float32 standard deviation of each component.
      name, source, license: static metadata strings.
    """

    mean: jax.Array
    basis: jax.Array
    std: jax.Array
    name: str = struct.field(pytree_node=False, default="texture")
    source: str = struct.field(pytree_node=False, default="")
    license: str = struct.field(pytree_node=False, default="")

    @property
    def is_uv(self) -> bool:
        return self.mean.ndim == 3

    @property
    def num_components(self) -> int:
        return int(self.basis.shape[-1])

    def leading_components(self, count: int) -> "TextureModel":
        """The model with only its first `count` components (contiguous copies): the same albedo for
        coefficient vectors no longer than that."""
        return self.replace(basis=np.ascontiguousarray(np.asarray(self.basis)[..., :count]),
                            std=np.asarray(self.std)[:count])


def to_numpy(tree):
    """Returns `tree` with every array leaf as a numpy array (for saving/inspection)."""
    return jax.tree_util.tree_map(np.asarray, tree)


def _digest(hasher, value) -> None:
    """Feeds `value` to `hasher`: a model container field by field in declaration order (provenance text left
    out), an array as dtype, shape and bytes, anything else (a name, parents, None) as its repr."""
    if dataclasses.is_dataclass(value):
        hasher.update(type(value).__name__.encode())
        for field in dataclasses.fields(value):
            if field.name not in _PROVENANCE:
                hasher.update(f";{field.name}=".encode())
                _digest(hasher, getattr(value, field.name))
    elif value is None or isinstance(value, (str, int, float, tuple)):
        hasher.update(repr(value).encode())
    else:
        array = np.ascontiguousarray(value)
        hasher.update(f"{array.dtype.str}{array.shape}".encode())
        hasher.update(array.data)


def fingerprint(value) -> str:
    """A FlameModel's, TextureModel's or LandmarkEmbedding's content fingerprint: 16 hex digits of sha256 over
    every array (dtype, shape, bytes), the name and the topology, in field order. Any changed array gives another;
    the same content loaded again (under any file name, source or license text) the same."""
    hasher = hashlib.sha256()
    _digest(hasher, value)
    return hasher.hexdigest()[:16]

"""What the readers share: `FlameFileError`, the field checks (one field of a file -> a validated array), the
landmark-embedding and texture-model constructors, and `attach_landmarks`.

Every problem with a field (missing, wrong shape or dtype, NaN/Inf, indices out of range) raises
`FlameFileError` naming the file and the field.
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np

from flame.model import FlameModel, LandmarkEmbedding, TextureModel

PathLike = Union[str, os.PathLike]


class FlameFileError(ValueError):
    """A FLAME-format file cannot be used; the message names the file and the field."""

    def __init__(self, path: PathLike, field: str, problem: str):
        self.path = os.fspath(path)
        self.field = field
        super().__init__(f"{self.path}: field '{field}': {problem}")


def file_name(path: PathLike) -> str:
    """The file name of `path` (recorded as a model's name and source)."""
    return os.path.basename(os.fspath(path))


def checked_field(path, values: dict, field: str, *, kind: str, shape: tuple, optional: bool = False):
    """Fetches `values[field]` as a numpy array and checks its dtype kind and shape.

    kind: "float" (finite floating point), "int" (signed/unsigned integers) or "str".
    shape: expected shape; None entries match any size. Returns None for a missing optional field.
    """
    if field not in values:
        if optional:
            return None
        raise FlameFileError(path, field, "missing")
    try:
        value = np.asarray(values[field])
    except (ValueError, TypeError) as e:
        raise FlameFileError(path, field, f"not an array ({e})") from None
    expected_kinds = {"float": "f", "int": "iu", "str": "U"}[kind]
    if value.dtype.kind not in expected_kinds:
        raise FlameFileError(path, field, f"dtype {value.dtype} is not {kind}")
    if len(shape) != value.ndim or any(s is not None and s != v for s, v in zip(shape, value.shape)):
        pattern = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise FlameFileError(path, field, f"shape {value.shape} does not match {pattern}")
    if kind == "float" and not np.all(np.isfinite(value)):
        raise FlameFileError(path, field, "contains NaN or Inf")
    return value


def checked_indices(path, values, field, upper: int, shape: tuple, optional: bool = False):
    """An integer index array with every entry in [0, upper), as int32."""
    value = checked_field(path, values, field, kind="int", shape=shape, optional=optional)
    if value is None:
        return None
    if value.size and (value.min() < 0 or value.max() >= upper):
        raise FlameFileError(path, field, f"indices out of range [0, {upper})")
    return value.astype(np.int32)


def checked_parents(path, values, field, num_joints) -> tuple:
    """Parents from a (J,) array or FLAME's kintree_table (2, J) (row 0 = parents)."""
    table = checked_field(path, values, field, kind="int", shape=(None,) * stored_ndim(values, field))
    row = table[0] if table.ndim == 2 else table
    if table.ndim not in (1, 2) or row.shape[0] != num_joints:
        raise FlameFileError(path, field, f"shape {table.shape} does not describe {num_joints} joints")
    row = row.astype(np.int64)
    parents = tuple(-1 if j == 0 else int(p) for j, p in enumerate(row))
    # The root's own entry is a sentinel (e.g. 2**32 - 1 or -1); every other joint must come after its parent.
    if any(not 0 <= p < j for j, p in enumerate(parents) if j > 0):
        raise FlameFileError(path, field, f"invalid kinematic tree {row.tolist()}")
    return parents


def metadata(values: dict, key: str, default: str) -> str:
    """A string field of the project's format, or `default` when it is missing or not a string."""
    value = values.get(key)
    return str(np.asarray(value)) if value is not None and np.asarray(value).dtype.kind == "U" else default


def stored_ndim(values, field) -> int:
    """The rank of `values[field]` (1 when missing), for checks that accept any shape of that rank."""
    return np.ndim(values[field]) if field in values else 1


def landmark_embedding(path, values, face_field, bary_field, layout, prefix="",
                       dynamic=None) -> LandmarkEmbedding:
    """A LandmarkEmbedding from the fields `prefix` + `face_field` ((L,) triangles, any shape) and + `bary_field`
    ((L, 3) weights); `dynamic`: optional (face field, weight field) names of the (Y, C) contour tables."""
    face_field, bary_field = prefix + face_field, prefix + bary_field
    face_idx = checked_field(path, values, face_field, kind="int",
                             shape=(None,) * stored_ndim(values, face_field)).reshape(-1)
    bary = checked_field(path, values, bary_field, kind="float", shape=(None,) * stored_ndim(values, bary_field))
    bary = bary.reshape(-1, 3) if bary.size % 3 == 0 else bary
    if bary.shape != (face_idx.shape[0], 3):
        raise FlameFileError(path, bary_field, f"shape {bary.shape} does not match ({face_idx.shape[0]}, 3)")
    if face_idx.size and face_idx.min() < 0:
        raise FlameFileError(path, face_field, "negative triangle index")
    dyn_faces = dyn_bary = None
    if dynamic is not None:
        dyn_faces = checked_field(path, values, prefix + dynamic[0], kind="int", shape=(None, None), optional=True)
        if dyn_faces is not None:
            dyn_bary = checked_field(path, values, prefix + dynamic[1], kind="float", shape=dyn_faces.shape + (3,))
            if dyn_faces.size and dyn_faces.min() < 0:
                raise FlameFileError(path, prefix + dynamic[0], "negative triangle index")
            dyn_faces, dyn_bary = dyn_faces.astype(np.int32), dyn_bary.astype(np.float32)
    return LandmarkEmbedding(
        face_idx=face_idx.astype(np.int32),
        bary_coords=bary.astype(np.float32),
        dynamic_face_idx=dyn_faces,
        dynamic_bary_coords=dyn_bary,
        layout=layout,
    )


def texture_model(mean, basis, std, name, source, license_) -> TextureModel:
    """A TextureModel of contiguous float32 arrays."""
    return TextureModel(
        mean=np.ascontiguousarray(mean, np.float32),
        basis=np.ascontiguousarray(basis, np.float32),
        std=np.asarray(std, np.float32),
        name=name,
        source=source,
        license=license_,
    )


def attach_landmarks(model: FlameModel, embedding: LandmarkEmbedding, path: PathLike = "<landmarks>",
                     prefix: str = "") -> FlameModel:
    """Returns `model` with `embedding`, after checking its triangle indices against the model
    (errors name `path` and the field `prefix` + 'face_idx' / 'dynamic_face_idx')."""
    num_faces = model.num_faces
    for field, idx in ((prefix + "face_idx", embedding.face_idx),
                       (prefix + "dynamic_face_idx", embedding.dynamic_face_idx)):
        if idx is not None and np.size(idx) and int(np.max(idx)) >= num_faces:
            raise FlameFileError(path, field, f"triangle index {int(np.max(idx))} >= the model's {num_faces}")
    return model.replace(landmarks=embedding)

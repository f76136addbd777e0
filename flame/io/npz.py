"""The project's own .npz format: a model (+ UVs, landmarks), a texture model or a landmark embedding under a
`format` / `format_version` / `kind` header; its readers and `save_npz`, which writes equal bytes for equal
arrays on any machine."""
from __future__ import annotations

import io
import os
import zipfile
from typing import Union

import numpy as np

from flame.atomic import write_bytes_atomic
from flame.io.fields import (FlameFileError, PathLike, attach_landmarks, checked_field, checked_indices,
                             checked_parents, landmark_embedding, metadata, stored_ndim, texture_model)
from flame.model import FlameModel, LandmarkEmbedding, TextureModel, to_numpy

FORMAT_NAME = "simadv-flame-npz"
FORMAT_VERSION = 1


def check_header(path, values) -> None:
    """The header names this format, in a version no newer than this code reads."""
    name = checked_field(path, values, "format", kind="str", shape=())
    if str(name) != FORMAT_NAME:
        raise FlameFileError(path, "format", f"'{name}' is not '{FORMAT_NAME}'")
    version = checked_field(path, values, "format_version", kind="int", shape=())
    if int(version) > FORMAT_VERSION:
        raise FlameFileError(path, "format_version", f"{int(version)} is newer than supported ({FORMAT_VERSION})")


def model_from_npz(path, values: dict) -> FlameModel:
    """A FlameModel (+ UVs, + the embedding stored under 'landmarks.') from the project's fields."""
    v_template = checked_field(path, values, "v_template", kind="float", shape=(None, 3))
    num_vertices = v_template.shape[0]
    faces = checked_indices(path, values, "faces", num_vertices, (None, 3))
    weights = checked_field(path, values, "lbs_weights", kind="float", shape=(num_vertices, None))
    num_joints = weights.shape[1]
    uv_coords = checked_field(path, values, "uv_coords", kind="float", shape=(None, 2), optional=True)
    uv_faces = None
    if uv_coords is not None:
        uv_faces = checked_indices(path, values, "uv_faces", uv_coords.shape[0], faces.shape)

    def floats(field, shape):
        return checked_field(path, values, field, kind="float", shape=shape).astype(np.float32)

    model = FlameModel(
        v_template=v_template.astype(np.float32),
        shapedirs=floats("shapedirs", (num_vertices, 3, None)),
        exprdirs=floats("exprdirs", (num_vertices, 3, None)),
        posedirs=floats("posedirs", (9 * (num_joints - 1), 3 * num_vertices)),
        J_regressor=floats("J_regressor", (num_joints, num_vertices)),
        lbs_weights=weights.astype(np.float32),
        faces=faces,
        parents=checked_parents(path, values, "parents", num_joints),
        uv_coords=None if uv_coords is None else uv_coords.astype(np.float32),
        uv_faces=uv_faces,
        name=metadata(values, "name", "flame"),
        source=metadata(values, "source", ""),
        license=metadata(values, "license", ""),
    )
    if "landmarks.face_idx" in values:
        model = attach_landmarks(model, landmarks_from_npz(path, values, "landmarks."), path, "landmarks.")
    return model


def texture_from_npz(path, values) -> TextureModel:
    """A TextureModel, UV (H, W, 3) or per vertex (V, 3), from the project's fields."""
    mean = checked_field(path, values, "mean", kind="float", shape=(None,) * stored_ndim(values, "mean"))
    if mean.ndim not in (2, 3) or mean.shape[-1] != 3:
        raise FlameFileError(path, "mean", f"shape {mean.shape} is not (H, W, 3) or (V, 3)")
    basis = checked_field(path, values, "basis", kind="float", shape=mean.shape + (None,))
    std = checked_field(path, values, "std", kind="float", shape=(basis.shape[-1],))
    return texture_model(mean, basis, std, metadata(values, "name", "texture"), metadata(values, "source", ""),
                         metadata(values, "license", ""))


def landmarks_from_npz(path, values: dict, prefix: str = "") -> LandmarkEmbedding:
    """The embedding stored under `prefix` ('landmarks.' inside a model file)."""
    layout = metadata(values, prefix + "layout", "unknown")
    return landmark_embedding(path, values, "face_idx", "bary_coords", layout, prefix,
                      dynamic=("dynamic_face_idx", "dynamic_bary_coords"))


def _embedding_arrays(embedding: LandmarkEmbedding, prefix: str) -> dict:
    arrays = {
        prefix + "face_idx": np.asarray(embedding.face_idx, np.int32),
        prefix + "bary_coords": np.asarray(embedding.bary_coords, np.float32),
        prefix + "layout": np.array(embedding.layout),
    }
    if embedding.dynamic_face_idx is not None:
        arrays[prefix + "dynamic_face_idx"] = np.asarray(embedding.dynamic_face_idx, np.int32)
        arrays[prefix + "dynamic_bary_coords"] = np.asarray(embedding.dynamic_bary_coords, np.float32)
    return arrays


def save_npz(path: PathLike, value: Union[FlameModel, TextureModel, LandmarkEmbedding]) -> None:
    """Writes a model, texture model or landmark embedding to the project's .npz (atomically:
    a temporary file in the same directory, then `os.replace`)."""
    value = to_numpy(value)
    if isinstance(value, FlameModel):
        arrays = {
            "kind": np.array("model"),
            "v_template": value.v_template, "shapedirs": value.shapedirs, "exprdirs": value.exprdirs,
            "posedirs": value.posedirs, "J_regressor": value.J_regressor, "lbs_weights": value.lbs_weights,
            "faces": value.faces, "parents": np.asarray(value.parents, np.int32),
            "name": np.array(value.name), "source": np.array(value.source), "license": np.array(value.license),
        }
        if value.uv_coords is not None:
            arrays.update(uv_coords=value.uv_coords, uv_faces=value.uv_faces)
        if value.landmarks is not None:
            arrays.update(_embedding_arrays(value.landmarks, "landmarks."))
    elif isinstance(value, TextureModel):
        arrays = {
            "kind": np.array("texture"), "mean": value.mean, "basis": value.basis, "std": value.std,
            "name": np.array(value.name), "source": np.array(value.source), "license": np.array(value.license),
        }
    elif isinstance(value, LandmarkEmbedding):
        arrays = {"kind": np.array("landmarks"), **_embedding_arrays(value, "")}
    else:
        raise TypeError(f"save_npz: cannot save a {type(value).__name__}")
    arrays.update(format=np.array(FORMAT_NAME), format_version=np.array(FORMAT_VERSION, np.int32))
    write_bytes_atomic(os.fspath(path), _npz_bytes(arrays))


def _npz_bytes(arrays: dict) -> bytes:
    """An .npz (zip of .npy members, readable by `np.load`) of `arrays`, bzip2-compressed with fixed timestamps:
    equal arrays give equal bytes on any machine (bzip2's output does not depend on the library build, unlike
    deflate's)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for key, value in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_BZIP2
            info.external_attr = 0o600 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()

"""Reading any supported file: the format from the file's first bytes, the kind from its header or keys, then
the official (`official.py`) or the project's (`npz.py`) reader; the public `load*` functions."""
from __future__ import annotations

from typing import Optional, Union

from flame.io.fields import FlameFileError, PathLike, checked_field, attach_landmarks
from flame.io.npz import check_header, landmarks_from_npz, model_from_npz, texture_from_npz
from flame.io.official import landmarks_from_official, model_from_official, texture_from_official, load_uv
from flame.io.unpickle import load_values
from flame.model import FlameModel, LandmarkEmbedding, TextureModel


def _detect_kind(path, values: dict) -> str:
    """'model', 'texture' or 'landmarks' from the project header or the official keys."""
    if "format" in values:
        return str(checked_field(path, values, "kind", kind="str", shape=()))
    if "v_template" in values:
        return "model"
    if {"tex_dir", "MU", "PC"} & set(values):
        return "texture"
    if {"lmk_face_idx", "static_lmk_faces_idx", "full_lmk_faces_idx"} & set(values):
        return "landmarks"
    raise FlameFileError(path, "file", "holds no known FLAME model, texture or landmark layout")


def _read(path: PathLike, kind: Optional[str] = None):
    """Reads any supported file as `kind` ('model', 'texture', 'landmarks'; None: detect)."""
    values = load_values(path)
    stored = _detect_kind(path, values) if kind is None or "format" in values else kind
    if kind is not None and stored != kind:
        raise FlameFileError(path, "kind", f"file holds a {stored}, not a {kind}")
    if "format" in values:
        check_header(path, values)
    if stored == "model":
        return model_from_npz(path, values) if "format" in values else model_from_official(path, values)
    if stored == "texture":
        return texture_from_npz(path, values) if "format" in values else texture_from_official(path, values)
    if stored == "landmarks":
        return landmarks_from_npz(path, values) if "face_idx" in values else landmarks_from_official(path, values)
    raise FlameFileError(path, "kind", f"unknown kind '{stored}'")


def load(path: PathLike, kind: Optional[str] = None) -> Union[FlameModel, TextureModel, LandmarkEmbedding]:
    """Reads a model, texture model or landmark embedding from any supported file; `kind`
    ('model', 'texture', 'landmarks') is detected from the content when None."""
    return _read(path, kind)


def load_model(path: PathLike, landmarks: Optional[PathLike] = None, uv: Optional[PathLike] = None) -> FlameModel:
    """Reads a head model: an official `generic_model.pkl` or the project's .npz.

    Args:
      path: model file.
      landmarks: optional landmark file (`load_landmarks`) to attach, replacing any in `path`.
      uv: optional file with `vt`/`ft` UVs (e.g. FLAME_texture.npz) to attach.
    Returns:
      FlameModel with numpy leaves (float32 / int32); `jax.device_put` it to pin it on device.
    """
    model = _read(path, "model")
    if landmarks is not None:
        model = attach_landmarks(model, load_landmarks(landmarks), landmarks)
    if uv is not None:
        uv_coords, uv_faces = load_uv(uv, model.num_faces)
        model = model.replace(uv_coords=uv_coords, uv_faces=uv_faces)
    return model


def load_texture(path: PathLike) -> TextureModel:
    """Reads an albedo model: FLAME_texture.npz, FLAME_albedo_from_BFM.npz or the project's .npz.

    Returns a TextureModel in RGB [0, 1]; UV maps are (H, W, 3) with image row 0 at the top.
    """
    return _read(path, "texture")


def load_landmarks(path: PathLike) -> LandmarkEmbedding:
    """Reads a landmark embedding: `flame_static_embedding.pkl` (layout "flame51"), DECA's
    `landmark_embedding.npy` (its 68-point `full` embedding, layout "ibug68", plus the dynamic
    contour tables) or the project's .npz. Triangle indices are checked against a model only
    when attached to one (`attach_landmarks`)."""
    return _read(path, "landmarks")

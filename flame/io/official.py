"""Readers of the official files: FLAME's `generic_model.pkl`, `FLAME_texture.npz`, `FLAME_albedo_from_BFM.npz`,
`flame_static_embedding.pkl` and DECA's `landmark_embedding.npy` (their values as `load_values` returns them)."""
from __future__ import annotations

import os

import numpy as np

from flame.io.fields import (FlameFileError, PathLike, checked_field, checked_indices, checked_parents, file_name,
                             landmark_embedding, stored_ndim, texture_model)
from flame.io.unpickle import load_values
from flame.model import FlameModel, LandmarkEmbedding, TextureModel

NUM_FLAME_SHAPE = 300  # FLAME's shapedirs: the first 300 columns are identity, the rest expression.


def model_from_official(path, values: dict) -> FlameModel:
    """generic_model.pkl: shapedirs split into identity (the first NUM_FLAME_SHAPE) and expression, posedirs
    (V, 3, P) -> (P, 3V), parents from kintree_table."""
    v_template = checked_field(path, values, "v_template", kind="float", shape=(None, 3))
    num_vertices = v_template.shape[0]
    faces = checked_indices(path, values, "f", num_vertices, (None, 3))
    shapedirs = checked_field(path, values, "shapedirs", kind="float", shape=(num_vertices, 3, None))
    weights = checked_field(path, values, "weights", kind="float", shape=(num_vertices, None))
    num_joints = weights.shape[1]
    parents = checked_parents(path, values, "kintree_table", num_joints)
    regressor = checked_field(path, values, "J_regressor", kind="float", shape=(num_joints, num_vertices))
    num_pose = 9 * (num_joints - 1)
    posedirs = checked_field(path, values, "posedirs", kind="float", shape=(num_vertices, 3, num_pose))
    num_shape = min(NUM_FLAME_SHAPE, shapedirs.shape[2])
    return FlameModel(
        v_template=v_template.astype(np.float32),
        shapedirs=np.ascontiguousarray(shapedirs[:, :, :num_shape], np.float32),
        exprdirs=np.ascontiguousarray(shapedirs[:, :, num_shape:], np.float32),
        posedirs=np.ascontiguousarray(posedirs.reshape(-1, num_pose).T, np.float32),
        J_regressor=regressor.astype(np.float32),
        lbs_weights=weights.astype(np.float32),
        faces=faces,
        parents=parents,
        name=os.path.splitext(file_name(path))[0],
        source=file_name(path),
        license="FLAME model license (https://flame.is.tue.mpg.de); not redistributable",
    )


def load_uv(path: PathLike, num_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """UV layout from a file with `vt (T, 2)` and `ft (F, 3)` (e.g. FLAME_texture.npz)."""
    values = load_values(path)
    uv = checked_field(path, values, "vt", kind="float", shape=(None, 2))
    return uv.astype(np.float32), checked_indices(path, values, "ft", uv.shape[0], (num_faces, 3))


def _texture_from_flame(path, values) -> TextureModel:
    """FLAME_texture.npz: `mean` (..., H, W, 3), `tex_dir` (..., H, W, 3, K), BGR, 0-255.

    Choice: coefficients keep FLAME's own units (as DECA and the FLAME fitting code use them,
    with a unit Gaussian prior), so `std` is 1 and `basis = tex_dir / 255` in RGB.
    """
    mean = checked_field(path, values, "mean", kind="float", shape=(None,) * stored_ndim(values, "mean"))
    tex_dir = checked_field(path, values, "tex_dir", kind="float", shape=(None,) * stored_ndim(values, "tex_dir"))
    if mean.ndim < 3 or mean.shape[-1] != 3 or mean.size != int(np.prod(mean.shape[-3:])):
        raise FlameFileError(path, "mean", f"shape {mean.shape} is not ([1,] H, W, 3)")
    height, width = mean.shape[-3:-1]
    if tex_dir.ndim < 2 or tex_dir.size != height * width * 3 * tex_dir.shape[-1]:
        raise FlameFileError(path, "tex_dir", f"shape {tex_dir.shape} is not ([1,] {height}, {width}, 3, K)")
    mean = mean.reshape(height, width, 3)[..., ::-1] / 255.0
    basis = tex_dir.reshape(height, width, 3, -1)[:, :, ::-1] / 255.0
    return texture_model(mean, basis, np.ones(basis.shape[-1]), "flame_texture", file_name(path),
                    "FLAME texture model license (https://flame.is.tue.mpg.de); not redistributable")


def _texture_from_bfm(path, values) -> TextureModel:
    """FLAME_albedo_from_BFM.npz: `MU (H*W*3,)`, `PC (H*W*3, K)`, BGR, 0-1, PCs already scaled
    by sqrt(variance), so `std` is 1 and the coefficients are in standard deviations."""
    mu = checked_field(path, values, "MU", kind="float", shape=(None,) * stored_ndim(values, "MU")).reshape(-1)
    pcs = checked_field(path, values, "PC", kind="float", shape=(mu.size, None))
    side = int(round(np.sqrt(mu.size / 3)))
    if side * side * 3 != mu.size:
        raise FlameFileError(path, "MU", f"{mu.size} values are not a square H x W x 3 map")
    mean = mu.reshape(side, side, 3)[..., ::-1]
    basis = pcs.reshape(side, side, 3, -1)[:, :, ::-1]
    return texture_model(mean, basis, np.ones(basis.shape[-1]), "flame_albedo_from_bfm", file_name(path),
                    "Basel Face Model license (BFM, registration required); not redistributable")


def texture_from_official(path, values) -> TextureModel:
    """FLAME_texture.npz or FLAME_albedo_from_BFM.npz, told apart by their keys."""
    if "tex_dir" in values:
        return _texture_from_flame(path, values)
    if "PC" in values or "MU" in values:
        return _texture_from_bfm(path, values)
    raise FlameFileError(path, "tex_dir", "missing (neither FLAME_texture nor BFM albedo layout)")


def landmarks_from_official(path, values: dict) -> LandmarkEmbedding:
    """DECA's landmark_embedding.npy (its 68-point `full` embedding), a 51-point static embedding, or
    flame_static_embedding.pkl, told apart by their keys."""
    if "full_lmk_faces_idx" in values:  # DECA landmark_embedding.npy: the 68-point iBUG layout
        return landmark_embedding(path, values, "full_lmk_faces_idx", "full_lmk_bary_coords", "ibug68",
                          dynamic=("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords"))
    if "static_lmk_faces_idx" in values:
        return landmark_embedding(path, values, "static_lmk_faces_idx", "static_lmk_bary_coords", "flame51",
                          dynamic=("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords"))
    if "lmk_face_idx" in values:  # flame_static_embedding.pkl
        return landmark_embedding(path, values, "lmk_face_idx", "lmk_b_coords", "flame51")
    raise FlameFileError(path, "lmk_face_idx", "missing (no known landmark embedding in this file)")

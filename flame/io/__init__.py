"""Reading and writing FLAME-format files: the official FLAME files and the project's own .npz format.

Supported inputs (the format is recognised from the file's first bytes, not its name):
  * `generic_model.pkl` (FLAME 2017/2019/2020/2023): a pickled dict whose arrays may be
    chumpy objects and whose `J_regressor` is a scipy sparse matrix. It is read WITHOUT
    chumpy or scipy through `_RestrictedUnpickler`, an allow-list that maps those classes to
    data-only stand-ins; any other class is refused (a pickle is code, so nothing outside the
    allow-list is ever imported or called).
  * `FLAME_texture.npz` (`mean`, `tex_dir`; BGR, 0-255) and `FLAME_albedo_from_BFM.npz`
    (`MU`, `PC`; BGR, 0-1, PCs scaled by sqrt(variance)), read with `allow_pickle=False`.
  * landmark embeddings: `flame_static_embedding.pkl` (51 points) and DECA's
    `landmark_embedding.npy` (a pickled dict whose dynamic entries are torch tensors, decoded
    here without torch).
  * the project's own .npz (`save_npz`), holding a model (+ UVs, landmarks), a texture model or
    a landmark embedding, with a `format` / `format_version` / `kind` header.

Every problem with a file (missing key, wrong shape or dtype, truncation, NaN/Inf, indices out
of range, refused class) raises `FlameFileError` naming the file and the field.

Layout: `unpickle.py` (the allow-list unpickler, reading any file into a dict of values), `fields.py`
(`FlameFileError` and the field checks), `official.py` (the official files), `npz.py` (the project's format),
`read.py` (format and kind detection, the `load*` functions), `export.py` (OBJ and PPM for other tools).
"""
from flame.io.export import obj_text, write_obj, write_ppm
from flame.io.fields import FlameFileError, attach_landmarks
from flame.io.npz import FORMAT_NAME, FORMAT_VERSION, save_npz
from flame.io.official import NUM_FLAME_SHAPE, load_uv
from flame.io.read import load, load_landmarks, load_model, load_texture

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "NUM_FLAME_SHAPE",
    "FlameFileError",
    "attach_landmarks",
    "load",
    "load_landmarks",
    "load_model",
    "load_texture",
    "load_uv",
    "obj_text",
    "save_npz",
    "write_obj",
    "write_ppm",
]

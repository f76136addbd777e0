"""Loaders for the official FLAME files and the project's own .npz format.

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
"""
from __future__ import annotations

import collections
import functools
import io
import os
import pickle
import zipfile
from typing import Any, Optional, Union

import numpy as np

from flame.model import FlameModel, LandmarkEmbedding, TextureModel, to_numpy
from flame.atomic import write_bytes_atomic

FORMAT_NAME = "simadv-flame-npz"
FORMAT_VERSION = 1
NUM_FLAME_SHAPE = 300  # FLAME's shapedirs: the first 300 columns are identity, the rest expression.

PathLike = Union[str, os.PathLike]


class FlameFileError(ValueError):
    """A FLAME-format file cannot be used; the message names the file and the field."""

    def __init__(self, path: PathLike, field: str, problem: str):
        self.path = os.fspath(path)
        self.field = field
        super().__init__(f"{self.path}: field '{field}': {problem}")


# ----------------------------------------------------------------------------------------------
# Restricted unpickling.


class _StandIn:
    """Data-only stand-in for an allow-listed foreign class: it only records its pickled state."""

    original = ""  # "module.Name" of the class it stands for (set on generated subclasses)
    state: Any = None  # NEWOBJ does not call __init__; BUILD sets the state

    def __setstate__(self, state):
        self.state = state


class _ChumpyStandIn(_StandIn):
    """Any `chumpy.*` class (data only); a `Ch` holds its array in state['x']."""


class _SparseStandIn(_StandIn):
    """scipy.sparse csc/csr/coo matrix; state holds data/indices/indptr (or row/col) and shape."""


class _TorchStorageType:
    """Marker for `torch.<X>Storage`: only carries the element dtype."""

    def __init__(self, name: str, dtype: np.dtype):
        self.name, self.dtype = name, np.dtype(dtype)


class _TorchStorage:
    """A deserialized legacy torch storage: a flat array of `numel` elements of `dtype`."""

    def __init__(self, dtype: np.dtype, numel: int):
        self.dtype, self.numel = dtype, numel
        self.data: Optional[np.ndarray] = None


class _TorchTensor:
    """Result of `torch._utils._rebuild_tensor[_v2]`; resolved to numpy once storages are read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


_TORCH_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_SPARSE_MODULES = {
    "scipy.sparse",
    "scipy.sparse.csc",
    "scipy.sparse._csc",
    "scipy.sparse.csr",
    "scipy.sparse._csr",
    "scipy.sparse.coo",
    "scipy.sparse._coo",
    "scipy.sparse.compressed",
    "scipy.sparse._compressed",
}
_SPARSE_NAMES = {"csc_matrix", "csr_matrix", "coo_matrix", "csc_array", "csr_array", "coo_array"}
_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_TORCH_LEGACY_PROTOCOL = 1001


def _np_reconstruct(subtype, shape, dtype):
    """numpy's `_reconstruct`, restricted to plain ndarrays."""
    if subtype is not np.ndarray:
        raise pickle.UnpicklingError(f"array subtype {subtype!r} is not allowed")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _np_frombuffer(buf, dtype, shape, order, axis_order=None):
    """numpy's `_frombuffer` (protocol 5 arrays), restricted to non-object dtypes."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise pickle.UnpicklingError("object arrays are not allowed")
    array = np.frombuffer(buf, dtype=dtype).copy()
    if order == "K" and axis_order is not None:
        return array.reshape(shape, order="C").transpose(axis_order)
    return array.reshape(shape, order=order)


def _np_scalar(dtype, data=None):
    """numpy's `multiarray.scalar`: a numpy scalar from its dtype and raw bytes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("only numeric numpy scalars are allowed")
    if isinstance(data, str):
        data = data.encode("latin1")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _codecs_encode(text, encoding="utf-8"):
    """`_codecs.encode` as protocol-2 pickles use it for bytes: str -> bytes only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise pickle.UnpicklingError("_codecs.encode is only allowed on str with latin1/utf-8")
    return text.encode(encoding)


def _reconstructor(cls, base, state):
    """`copyreg._reconstructor` (protocol 0/1 objects) for stand-in classes only."""
    if not (isinstance(cls, type) and issubclass(cls, _StandIn)) or base is not object:
        raise pickle.UnpicklingError(f"copyreg._reconstructor on {cls!r} is not allowed")
    return cls()


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    """`torch._utils._rebuild_tensor[_v2]`: a lazy view of a torch storage."""
    if not isinstance(storage, _TorchStorage):
        raise pickle.UnpicklingError("tensor storage is not a torch storage")
    return _TorchTensor(storage, int(storage_offset), tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals (see `find_class`).

    Python 2 module names arrive unmapped (e.g. `copy_reg`, `__builtin__`). Functions and
    stand-in classes are handed out fresh per unpickler, so a file cannot alter (BUILD) objects
    that a later load would use.
    """

    def __init__(self, file, path: PathLike):
        super().__init__(file, encoding="latin1")
        self.path = os.fspath(path)
        self._classes: dict[str, type] = {}

    def _stand_in(self, base: type, original: str) -> type:
        if original not in self._classes:
            self._classes[original] = type(original.rsplit(".", 1)[-1], (base,), {"original": original})
        return self._classes[original]

    def find_class(self, module: str, name: str):
        found = self._allowed(module, name)
        return functools.partial(found) if callable(found) and not isinstance(found, type) else found

    def _allowed(self, module: str, name: str):
        key = (module, name)
        if key in (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")):
            return _np_reconstruct
        if key in (("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")):
            return _np_frombuffer
        if key in (("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")):
            return _np_scalar
        if key == ("numpy", "ndarray"):
            return np.ndarray
        if key == ("numpy", "dtype"):
            return np.dtype
        if key == ("_codecs", "encode"):
            return _codecs_encode
        if key == ("copyreg", "_reconstructor") or key == ("copy_reg", "_reconstructor"):
            return _reconstructor
        if key in (("builtins", "object"), ("__builtin__", "object")):
            return object
        if key == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "chumpy" or module.startswith("chumpy."):
            return self._stand_in(_ChumpyStandIn, f"{module}.{name}")
        if module in _SPARSE_MODULES and name in _SPARSE_NAMES:
            return self._stand_in(_SparseStandIn, f"{module}.{name}")
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if key == ("torch.storage", "_load_from_bytes"):
            return functools.partial(_load_torch_legacy, path=self.path)
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return _TorchStorageType(name, _TORCH_STORAGE_DTYPES[name])
        raise FlameFileError(
            self.path, "pickle", f"refusing to unpickle class '{module}.{name}' (not on the allow-list)"
        )


class _TorchLegacyUnpickler(_RestrictedUnpickler):
    """Reads the object part of a legacy (non-zip) torch file; storages are persistent ids."""

    def __init__(self, file, path: PathLike):
        super().__init__(file, path)
        self.storages: dict[str, _TorchStorage] = {}

    def persistent_load(self, saved_id):
        if not (isinstance(saved_id, tuple) and len(saved_id) >= 5 and saved_id[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported torch persistent id {saved_id!r:.80}")
        storage_type, key, _location, numel = saved_id[1:5]
        if not isinstance(storage_type, _TorchStorageType):
            raise pickle.UnpicklingError("torch storage type is not an allowed storage class")
        if len(saved_id) > 5 and saved_id[5] is not None:
            raise pickle.UnpicklingError("torch storage views are not supported")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _TorchStorage(storage_type.dtype, int(numel))
        return self.storages[key]


def _load_torch_legacy(data: bytes, path: PathLike):
    """`torch.storage._load_from_bytes`: decodes a legacy `torch.save` stream without torch.

    Layout: pickled magic number, protocol version (1001), sys-info dict, the object (storages
    as persistent ids ('storage', type, key, location, numel, view)), the sorted storage keys;
    then per key an int64 element count followed by the raw elements, both little-endian
    whatever the writing machine (torch's THPStorage_writeFileRaw converts).
    """
    if isinstance(data, str):
        data = data.encode("latin1")
    stream = io.BytesIO(data)
    header = _RestrictedUnpickler(stream, path)
    if header.load() != _TORCH_MAGIC:
        raise pickle.UnpicklingError("embedded torch data has a wrong magic number")
    if header.load() != _TORCH_LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("embedded torch data has an unsupported protocol version")
    if not isinstance(header.load(), dict):
        raise pickle.UnpicklingError("embedded torch data has no sys-info record")
    body = _TorchLegacyUnpickler(stream, path)
    result = body.load()
    keys = _RestrictedUnpickler(stream, path).load()
    for key in keys:
        storage = body.storages.get(str(key))
        if storage is None:
            raise pickle.UnpicklingError(f"embedded torch data lists unknown storage {key!r}")
        count_bytes = stream.read(8)
        if len(count_bytes) != 8:
            raise EOFError("embedded torch storage is truncated")
        count = int.from_bytes(count_bytes, "little", signed=True)
        dtype = storage.dtype.newbyteorder("<")
        raw = stream.read(count * dtype.itemsize)
        if count != storage.numel or len(raw) != count * dtype.itemsize:
            raise EOFError("embedded torch storage is truncated or has a wrong size")
        storage.data = np.frombuffer(raw, dtype=dtype).astype(storage.dtype)
    return result


def _read_pickle(path: PathLike, data: bytes) -> Any:
    return _resolve(_RestrictedUnpickler(io.BytesIO(data), path).load(), path, "pickle")


def _dense_from_sparse(obj: _SparseStandIn, path: PathLike, field: str) -> np.ndarray:
    state = obj.state if isinstance(obj.state, dict) else {}
    shape = state.get("_shape", state.get("shape"))
    kind = obj.original.rsplit(".", 1)[-1][:3]
    try:
        rows, cols = (int(s) for s in shape)
        data = np.asarray(state["data"])
        dense = np.zeros((rows, cols), dtype=np.float64)
        if kind == "coo":  # scipy >= 1.13 stores `coords`, older versions `row` and `col`
            coords = state["coords"] if "coords" in state else (state["row"], state["col"])
            r, c = (np.asarray(a) for a in coords)
        else:
            indices, indptr = np.asarray(state["indices"]), np.asarray(state["indptr"])
            outer = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            r, c = (indices, outer) if kind == "csc" else (outer, indices)
        np.add.at(dense, (r, c), data)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise FlameFileError(path, field, f"malformed sparse matrix ({obj.original}): {e}") from None
    return dense


def _chumpy_value(obj: _ChumpyStandIn, path: PathLike, field: str) -> np.ndarray:
    """A chumpy object's value: `Ch` (and its array subclasses) store it in state['x']. Derived
    chumpy expressions (reordering, arithmetic) carry no value of their own and are refused."""
    state = obj.state if isinstance(obj.state, dict) else {}
    if "x" not in state:
        raise FlameFileError(path, field, f"chumpy object '{obj.original}' carries no stored array")
    return np.asarray(_resolve(state["x"], path, field))


def _resolve(obj: Any, path: PathLike, field: str) -> Any:
    """Replaces stand-ins (chumpy, sparse, torch tensors) by numpy arrays, recursively."""
    if isinstance(obj, dict):
        return {k: _resolve(v, path, k if isinstance(k, str) else field) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(v, path, field) for v in obj)
    if isinstance(obj, _ChumpyStandIn):
        return _chumpy_value(obj, path, field)
    if isinstance(obj, _SparseStandIn):
        return _dense_from_sparse(obj, path, field)
    if isinstance(obj, _TorchTensor):
        storage = obj.storage
        if storage.data is None:
            raise FlameFileError(path, field, "torch tensor without storage data")
        itemsize = storage.data.itemsize
        if obj.size and (
            obj.offset < 0
            or min(obj.stride) < 0
            or obj.offset + sum((n - 1) * s for n, s in zip(obj.size, obj.stride)) >= storage.data.size
        ):
            raise FlameFileError(path, field, "torch tensor view lies outside its storage")
        return np.lib.stride_tricks.as_strided(
            storage.data[obj.offset :], obj.size, tuple(s * itemsize for s in obj.stride)
        ).copy()
    if isinstance(obj, (_StandIn, _TorchStorage, _TorchStorageType)):
        raise FlameFileError(path, field, f"unexpected object {type(obj).__name__} in the file")
    if isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        if obj.ndim == 0:
            return _resolve(obj.item(), path, field)
        raise FlameFileError(path, field, "object arrays are not supported")
    return obj


# ----------------------------------------------------------------------------------------------
# Reading files and validating fields.

_NPZ_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


def _read_bytes(path: PathLike) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise FlameFileError(path, "file", f"cannot read: {e.strerror or e}") from None


def _load_any(path: PathLike) -> dict:
    """Reads a pickle, .npy (object array of a dict) or .npz into a dict of numpy values."""
    data = _read_bytes(path)
    try:
        if data.startswith(_NPZ_MAGIC):
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                return {key: npz[key] for key in npz.files}
        if data.startswith(_NPY_MAGIC):
            return _read_npy(path, data)
        if data[:1] == b"\x80" or data[:1] in (b"(", b"}", b"c"):
            value = _read_pickle(path, data)
            if not isinstance(value, dict):
                raise FlameFileError(path, "pickle", f"expected a dict, found {type(value).__name__}")
            return value
    except FlameFileError:
        raise
    except Exception as e:  # untrusted bytes: EOFError, UnpicklingError, BadZipFile, RecursionError, ...
        raise FlameFileError(path, "file", f"truncated or corrupt ({type(e).__name__}: {e})") from None
    raise FlameFileError(path, "file", "not a pickle, .npy or .npz file")


def _read_npy(path: PathLike, data: bytes) -> dict:
    """An .npy holding a 0-d object array of a dict (DECA); the pickle part goes through the
    restricted unpickler, never through `np.load(allow_pickle=True)`."""
    stream = io.BytesIO(data)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        _, _, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        _, _, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise FlameFileError(path, "file", f"unsupported .npy version {version}")
    if not dtype.hasobject:
        raise FlameFileError(path, "file", "expected an .npy holding a dict (object array)")
    value = _resolve(_RestrictedUnpickler(stream, path).load(), path, "pickle")
    if not isinstance(value, dict):
        raise FlameFileError(path, "file", f"expected a dict, found {type(value).__name__}")
    return value


def _field(path, values: dict, field: str, *, kind: str, shape: tuple, optional: bool = False):
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


def _indices(path, values, field, upper: int, shape: tuple, optional: bool = False):
    """An integer index array with every entry in [0, upper), as int32."""
    value = _field(path, values, field, kind="int", shape=shape, optional=optional)
    if value is None:
        return None
    if value.size and (value.min() < 0 or value.max() >= upper):
        raise FlameFileError(path, field, f"indices out of range [0, {upper})")
    return value.astype(np.int32)


def _parents(path, values, field, num_joints) -> tuple:
    """Parents from a (J,) array or FLAME's kintree_table (2, J) (row 0 = parents)."""
    table = _field(path, values, field, kind="int", shape=(None,) * _ndim(values, field))
    row = table[0] if table.ndim == 2 else table
    if table.ndim not in (1, 2) or row.shape[0] != num_joints:
        raise FlameFileError(path, field, f"shape {table.shape} does not describe {num_joints} joints")
    row = row.astype(np.int64)
    parents = tuple(-1 if j == 0 else int(p) for j, p in enumerate(row))
    # The root's own entry is a sentinel (e.g. 2**32 - 1 or -1); every other joint must come after its parent.
    if any(not 0 <= p < j for j, p in enumerate(parents) if j > 0):
        raise FlameFileError(path, field, f"invalid kinematic tree {row.tolist()}")
    return parents


def _metadata(values: dict, key: str, default: str) -> str:
    value = values.get(key)
    return str(np.asarray(value)) if value is not None and np.asarray(value).dtype.kind == "U" else default


# ----------------------------------------------------------------------------------------------
# Landmarks.


def _embedding(path, values, face_field, bary_field, layout, prefix="", dynamic=None) -> LandmarkEmbedding:
    face_field, bary_field = prefix + face_field, prefix + bary_field
    face_idx = _field(path, values, face_field, kind="int", shape=(None,) * _ndim(values, face_field)).reshape(-1)
    bary = _field(path, values, bary_field, kind="float", shape=(None,) * _ndim(values, bary_field))
    bary = bary.reshape(-1, 3) if bary.size % 3 == 0 else bary
    if bary.shape != (face_idx.shape[0], 3):
        raise FlameFileError(path, bary_field, f"shape {bary.shape} does not match ({face_idx.shape[0]}, 3)")
    if face_idx.size and face_idx.min() < 0:
        raise FlameFileError(path, face_field, "negative triangle index")
    dyn_faces = dyn_bary = None
    if dynamic is not None:
        dyn_faces = _field(path, values, prefix + dynamic[0], kind="int", shape=(None, None), optional=True)
        if dyn_faces is not None:
            dyn_bary = _field(path, values, prefix + dynamic[1], kind="float", shape=dyn_faces.shape + (3,))
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


def _ndim(values, field) -> int:
    return np.ndim(values[field]) if field in values else 1


def _landmarks_from_values(path, values: dict, prefix: str = "") -> LandmarkEmbedding:
    if prefix + "face_idx" in values:  # the project's own format
        layout = _metadata(values, prefix + "layout", "unknown")
        return _embedding(path, values, "face_idx", "bary_coords", layout, prefix,
                          dynamic=("dynamic_face_idx", "dynamic_bary_coords"))
    if "full_lmk_faces_idx" in values:  # DECA landmark_embedding.npy: the 68-point iBUG layout
        return _embedding(path, values, "full_lmk_faces_idx", "full_lmk_bary_coords", "ibug68",
                          dynamic=("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords"))
    if "static_lmk_faces_idx" in values:
        return _embedding(path, values, "static_lmk_faces_idx", "static_lmk_bary_coords", "flame51",
                          dynamic=("dynamic_lmk_faces_idx", "dynamic_lmk_bary_coords"))
    if "lmk_face_idx" in values:  # flame_static_embedding.pkl
        return _embedding(path, values, "lmk_face_idx", "lmk_b_coords", "flame51")
    raise FlameFileError(path, "lmk_face_idx", "missing (no known landmark embedding in this file)")


def load_landmarks(path: PathLike) -> LandmarkEmbedding:
    """Reads a landmark embedding: `flame_static_embedding.pkl` (layout "flame51"), DECA's
    `landmark_embedding.npy` (its 68-point `full` embedding, layout "ibug68", plus the dynamic
    contour tables) or the project's .npz. Triangle indices are checked against a model only
    when attached to one (`attach_landmarks`)."""
    return _read(path, "landmarks")


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


# ----------------------------------------------------------------------------------------------
# Head models.


def _model_from_official(path, values: dict) -> FlameModel:
    v_template = _field(path, values, "v_template", kind="float", shape=(None, 3))
    num_vertices = v_template.shape[0]
    faces = _indices(path, values, "f", num_vertices, (None, 3))
    shapedirs = _field(path, values, "shapedirs", kind="float", shape=(num_vertices, 3, None))
    weights = _field(path, values, "weights", kind="float", shape=(num_vertices, None))
    num_joints = weights.shape[1]
    parents = _parents(path, values, "kintree_table", num_joints)
    regressor = _field(path, values, "J_regressor", kind="float", shape=(num_joints, num_vertices))
    num_pose = 9 * (num_joints - 1)
    posedirs = _field(path, values, "posedirs", kind="float", shape=(num_vertices, 3, num_pose))
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
        name=os.path.splitext(_basename(path))[0],
        source=_basename(path),
        license="FLAME model license (https://flame.is.tue.mpg.de); not redistributable",
    )


def _model_from_npz(path, values: dict) -> FlameModel:
    v_template = _field(path, values, "v_template", kind="float", shape=(None, 3))
    num_vertices = v_template.shape[0]
    faces = _indices(path, values, "faces", num_vertices, (None, 3))
    weights = _field(path, values, "lbs_weights", kind="float", shape=(num_vertices, None))
    num_joints = weights.shape[1]
    uv_coords = _field(path, values, "uv_coords", kind="float", shape=(None, 2), optional=True)
    uv_faces = None
    if uv_coords is not None:
        uv_faces = _indices(path, values, "uv_faces", uv_coords.shape[0], faces.shape)

    def floats(field, shape):
        return _field(path, values, field, kind="float", shape=shape).astype(np.float32)

    model = FlameModel(
        v_template=v_template.astype(np.float32),
        shapedirs=floats("shapedirs", (num_vertices, 3, None)),
        exprdirs=floats("exprdirs", (num_vertices, 3, None)),
        posedirs=floats("posedirs", (9 * (num_joints - 1), 3 * num_vertices)),
        J_regressor=floats("J_regressor", (num_joints, num_vertices)),
        lbs_weights=weights.astype(np.float32),
        faces=faces,
        parents=_parents(path, values, "parents", num_joints),
        uv_coords=None if uv_coords is None else uv_coords.astype(np.float32),
        uv_faces=uv_faces,
        name=_metadata(values, "name", "flame"),
        source=_metadata(values, "source", ""),
        license=_metadata(values, "license", ""),
    )
    if "landmarks.face_idx" in values:
        model = attach_landmarks(model, _landmarks_from_values(path, values, "landmarks."), path, "landmarks.")
    return model


def load_uv(path: PathLike, num_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """UV layout from a file with `vt (T, 2)` and `ft (F, 3)` (e.g. FLAME_texture.npz)."""
    values = _load_any(path)
    uv = _field(path, values, "vt", kind="float", shape=(None, 2))
    return uv.astype(np.float32), _indices(path, values, "ft", uv.shape[0], (num_faces, 3))


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


# ----------------------------------------------------------------------------------------------
# Texture models.


def _texture_from_flame(path, values) -> TextureModel:
    """FLAME_texture.npz: `mean` (..., H, W, 3), `tex_dir` (..., H, W, 3, K), BGR, 0-255.

    Choice: coefficients keep FLAME's own units (as DECA and the FLAME fitting code use them,
    with a unit Gaussian prior), so `std` is 1 and `basis = tex_dir / 255` in RGB.
    """
    mean = _field(path, values, "mean", kind="float", shape=(None,) * _ndim(values, "mean"))
    tex_dir = _field(path, values, "tex_dir", kind="float", shape=(None,) * _ndim(values, "tex_dir"))
    if mean.ndim < 3 or mean.shape[-1] != 3 or mean.size != int(np.prod(mean.shape[-3:])):
        raise FlameFileError(path, "mean", f"shape {mean.shape} is not ([1,] H, W, 3)")
    height, width = mean.shape[-3:-1]
    if tex_dir.ndim < 2 or tex_dir.size != height * width * 3 * tex_dir.shape[-1]:
        raise FlameFileError(path, "tex_dir", f"shape {tex_dir.shape} is not ([1,] {height}, {width}, 3, K)")
    mean = mean.reshape(height, width, 3)[..., ::-1] / 255.0
    basis = tex_dir.reshape(height, width, 3, -1)[:, :, ::-1] / 255.0
    return _texture(mean, basis, np.ones(basis.shape[-1]), "flame_texture", _basename(path),
                    "FLAME texture model license (https://flame.is.tue.mpg.de); not redistributable")


def _texture_from_bfm(path, values) -> TextureModel:
    """FLAME_albedo_from_BFM.npz: `MU (H*W*3,)`, `PC (H*W*3, K)`, BGR, 0-1, PCs already scaled
    by sqrt(variance), so `std` is 1 and the coefficients are in standard deviations."""
    mu = _field(path, values, "MU", kind="float", shape=(None,) * _ndim(values, "MU")).reshape(-1)
    pcs = _field(path, values, "PC", kind="float", shape=(mu.size, None))
    side = int(round(np.sqrt(mu.size / 3)))
    if side * side * 3 != mu.size:
        raise FlameFileError(path, "MU", f"{mu.size} values are not a square H x W x 3 map")
    mean = mu.reshape(side, side, 3)[..., ::-1]
    basis = pcs.reshape(side, side, 3, -1)[:, :, ::-1]
    return _texture(mean, basis, np.ones(basis.shape[-1]), "flame_albedo_from_bfm", _basename(path),
                    "Basel Face Model license (BFM, registration required); not redistributable")


def _texture(mean, basis, std, name, source, license_) -> TextureModel:
    return TextureModel(
        mean=np.ascontiguousarray(mean, np.float32),
        basis=np.ascontiguousarray(basis, np.float32),
        std=np.asarray(std, np.float32),
        name=name,
        source=source,
        license=license_,
    )


def load_texture(path: PathLike) -> TextureModel:
    """Reads an albedo model: FLAME_texture.npz, FLAME_albedo_from_BFM.npz or the project's .npz.

    Returns a TextureModel in RGB [0, 1]; UV maps are (H, W, 3) with image row 0 at the top.
    """
    return _read(path, "texture")


def _texture_from_values(path, values) -> TextureModel:
    if "format" in values:
        mean = _field(path, values, "mean", kind="float", shape=(None,) * _ndim(values, "mean"))
        if mean.ndim not in (2, 3) or mean.shape[-1] != 3:
            raise FlameFileError(path, "mean", f"shape {mean.shape} is not (H, W, 3) or (V, 3)")
        basis = _field(path, values, "basis", kind="float", shape=mean.shape + (None,))
        std = _field(path, values, "std", kind="float", shape=(basis.shape[-1],))
        return _texture(mean, basis, std, _metadata(values, "name", "texture"),
                        _metadata(values, "source", ""), _metadata(values, "license", ""))
    if "tex_dir" in values:
        return _texture_from_flame(path, values)
    if "PC" in values or "MU" in values:
        return _texture_from_bfm(path, values)
    raise FlameFileError(path, "tex_dir", "missing (neither FLAME_texture nor BFM albedo layout)")


# ----------------------------------------------------------------------------------------------
# The project's own .npz.


def _basename(path: PathLike) -> str:
    return os.path.basename(os.fspath(path))


def _detect_kind(path, values: dict) -> str:
    """'model', 'texture' or 'landmarks' from the project header or the official keys."""
    if "format" in values:
        return str(_field(path, values, "kind", kind="str", shape=()))
    if "v_template" in values:
        return "model"
    if {"tex_dir", "MU", "PC"} & set(values):
        return "texture"
    if {"lmk_face_idx", "static_lmk_faces_idx", "full_lmk_faces_idx"} & set(values):
        return "landmarks"
    raise FlameFileError(path, "file", "holds no known FLAME model, texture or landmark layout")


def _read(path: PathLike, kind: Optional[str] = None):
    """Reads any supported file as `kind` ('model', 'texture', 'landmarks'; None: detect)."""
    values = _load_any(path)
    stored = _detect_kind(path, values) if kind is None or "format" in values else kind
    if kind is not None and stored != kind:
        raise FlameFileError(path, "kind", f"file holds a {stored}, not a {kind}")
    if "format" in values:
        _check_header(path, values)
    if stored == "model":
        return _model_from_npz(path, values) if "format" in values else _model_from_official(path, values)
    if stored == "texture":
        return _texture_from_values(path, values)
    if stored == "landmarks":
        return _landmarks_from_values(path, values)
    raise FlameFileError(path, "kind", f"unknown kind '{stored}'")


def load(path: PathLike, kind: Optional[str] = None) -> Union[FlameModel, TextureModel, LandmarkEmbedding]:
    """Reads a model, texture model or landmark embedding from any supported file; `kind`
    ('model', 'texture', 'landmarks') is detected from the content when None."""
    return _read(path, kind)


def _check_header(path, values) -> None:
    name = _field(path, values, "format", kind="str", shape=())
    if str(name) != FORMAT_NAME:
        raise FlameFileError(path, "format", f"'{name}' is not '{FORMAT_NAME}'")
    version = _field(path, values, "format_version", kind="int", shape=())
    if int(version) > FORMAT_VERSION:
        raise FlameFileError(path, "format_version", f"{int(version)} is newer than supported ({FORMAT_VERSION})")


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


"""Reading untrusted FLAME files into plain values: the allow-list unpickler and `load_values`.

A pickle is code, so official pickles (`generic_model.pkl`, `flame_static_embedding.pkl`, DECA's
`landmark_embedding.npy`) are read by `_RestrictedUnpickler`, an allow-list that maps chumpy arrays, scipy sparse
matrices and legacy torch tensors to data-only stand-ins and refuses every other class; `_resolve` then turns the
stand-ins into numpy arrays. `load_values` reads a pickle, .npy or .npz (by its first bytes) into a dict of numpy
values.
"""
from __future__ import annotations

import collections
import functools
import io
import os
import pickle
from typing import Any, Optional

import numpy as np

from flame.io.fields import FlameFileError, PathLike


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


_NPZ_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"


def _read_pickle(path: PathLike, data: bytes) -> Any:
    """A pickle's object through the allow-list, stand-ins resolved to numpy arrays."""
    return _resolve(_RestrictedUnpickler(io.BytesIO(data), path).load(), path, "pickle")


def _read_bytes(path: PathLike) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise FlameFileError(path, "file", f"cannot read: {e.strerror or e}") from None


def load_values(path: PathLike) -> dict:
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

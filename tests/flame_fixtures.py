"""Synthetic FLAME-format test data: a small random model and writers for the official layouts.

The official-layout writers pickle stand-in classes registered under the real class paths
(`chumpy.ch.Ch`, `scipy.sparse.csc.csc_matrix`, `torch._utils._rebuild_tensor_v2`,
`torch.storage._load_from_bytes`, `torch.FloatStorage`, ...), so the files carry the same
globals and opcodes as real FLAME/DECA files, while neither chumpy nor torch is installed.
"""
from __future__ import annotations

import collections
import contextlib
import io
import pickle
import struct
import sys
import types

import numpy as np

from flame.model import FLAME_PARENTS, FlameModel, LandmarkEmbedding

PARENTS = FLAME_PARENTS  # (-1, 0, 1, 1, 1)
ROOT_SENTINEL = 4294967295  # kintree_table[0, 0] in the official files (uint32 -1)


def random_official(rng: np.random.Generator, num_vertices=40, num_faces=60, num_shape=400) -> dict:
    """Arrays of a small random model in the official `generic_model.pkl` layout (numpy)."""
    weights = rng.dirichlet(np.ones(5) * 0.5, size=num_vertices)
    regressor = rng.random((5, num_vertices)) * (rng.random((5, num_vertices)) < 0.3)
    regressor[:, 0] += 1e-3
    regressor /= regressor.sum(1, keepdims=True)
    return {
        "v_template": rng.normal(scale=0.1, size=(num_vertices, 3)),
        "f": rng.integers(0, num_vertices, size=(num_faces, 3)).astype(np.uint32),
        "shapedirs": rng.normal(scale=0.01, size=(num_vertices, 3, num_shape)),
        "posedirs": rng.normal(scale=0.01, size=(num_vertices, 3, 36)),
        "J_regressor": regressor,
        "kintree_table": np.array([[ROOT_SENTINEL, 0, 1, 1, 1], [0, 1, 2, 3, 4]], np.int64),
        "weights": weights,
        "J": regressor @ rng.normal(size=(num_vertices, 3)),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }


def random_model(rng: np.random.Generator, num_vertices=40, num_faces=60, num_shape=6, num_expression=4,
                 posedirs=True) -> FlameModel:
    """A small random FlameModel with a 7-point landmark embedding."""
    official = random_official(rng, num_vertices, num_faces, num_shape + num_expression)
    pose_basis = official["posedirs"].reshape(-1, 36).T
    return FlameModel(
        v_template=official["v_template"].astype(np.float32),
        shapedirs=official["shapedirs"][:, :, :num_shape].astype(np.float32),
        exprdirs=official["shapedirs"][:, :, num_shape:].astype(np.float32),
        posedirs=(pose_basis if posedirs else np.zeros_like(pose_basis)).astype(np.float32),
        J_regressor=official["J_regressor"].astype(np.float32),
        lbs_weights=official["weights"].astype(np.float32),
        faces=official["f"].astype(np.int32),
        parents=PARENTS,
        landmarks=LandmarkEmbedding(
            face_idx=rng.integers(0, num_faces, 7).astype(np.int32),
            bary_coords=rng.dirichlet(np.ones(3), 7).astype(np.float32),
            layout="test7",
        ),
    )


# ----------------------------------------------------------------------------------------------
# Stand-ins that pickle under real (absent) module paths.


def named(obj, module: str, name: str):
    obj.__module__, obj.__qualname__, obj.__name__ = module, name, name
    return obj


@contextlib.contextmanager
def registered(*objects):
    """Temporarily makes each object importable as `obj.__module__`.`obj.__qualname__`, so
    `pickle` writes a reference to that path (the way the real class would be written)."""
    saved = {}
    try:
        for obj in objects:
            parts = obj.__module__.split(".")
            for depth in range(1, len(parts) + 1):  # parents too: `import a.b` imports `a`
                module = ".".join(parts[:depth])
                if module not in saved and (depth == len(parts) or module not in sys.modules):
                    saved[module] = sys.modules.get(module)
                    sys.modules[module] = types.ModuleType(module)
            setattr(sys.modules[obj.__module__], obj.__qualname__, obj)
        yield
    finally:
        for module, previous in saved.items():
            if previous is None:
                del sys.modules[module]
            else:
                sys.modules[module] = previous


Ch = named(type("Ch", (), {}), "chumpy.ch", "Ch")
LegacyCsc = named(type("csc_matrix", (), {}), "scipy.sparse.csc", "csc_matrix")


def chumpy_array(array: np.ndarray):
    """A stand-in `chumpy.ch.Ch` holding `array` the way chumpy pickles it (state['x'])."""
    ch = Ch.__new__(Ch)
    ch.__dict__.update({"x": np.asarray(array), "label": None, "_depends_on_deps": {}})
    return ch


def legacy_csc(dense: np.ndarray):
    """A stand-in `scipy.sparse.csc.csc_matrix` with scipy's pickled state layout."""
    rows, cols = np.nonzero(dense.T)  # column-major order: (column, row) pairs
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=dense.shape[1]))])
    matrix = LegacyCsc.__new__(LegacyCsc)
    matrix.__dict__.update({
        "_shape": dense.shape, "maxprint": 50, "format": "csc",
        "indices": cols.astype(np.int32), "indptr": indptr.astype(np.int32), "data": dense.T[rows, cols],
    })
    return matrix


def numpy1_paths(data: bytes) -> bytes:
    """Rewrites numpy 2's `numpy._core` globals to the `numpy.core` paths of older files."""
    return data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_official_pkl(path, values: dict, sparse: str = "legacy", protocol: int = 2) -> None:
    """Writes `values` as a FLAME generic_model.pkl: protocol 2, chumpy arrays for v_template,
    shapedirs, posedirs, weights and J; J_regressor as a scipy sparse matrix (`sparse`: "legacy" =
    scipy.sparse.csc.csc_matrix stand-in, else the name of a current scipy.sparse class). Protocol 0/1
    pickles reference `copy_reg._reconstructor` for the chumpy objects."""
    out = dict(values)
    for key in ("v_template", "shapedirs", "posedirs", "weights", "J"):
        if key in out and isinstance(out[key], np.ndarray):
            out[key] = chumpy_array(out[key])
    if isinstance(out.get("J_regressor"), np.ndarray):
        if sparse == "legacy":
            out["J_regressor"] = legacy_csc(out["J_regressor"])
        else:
            import scipy.sparse

            out["J_regressor"] = getattr(scipy.sparse, sparse)(out["J_regressor"])
    with registered(Ch, LegacyCsc):
        data = pickle.dumps(out, protocol=protocol)
    with open(path, "wb") as f:
        f.write(numpy1_paths(data))


def write_static_embedding(path, face_idx, bary) -> None:
    """flame_static_embedding.pkl: {'lmk_face_idx': (L,) uint32, 'lmk_b_coords': (L, 3)}."""
    with open(path, "wb") as f:
        f.write(numpy1_paths(pickle.dumps(
            {"lmk_face_idx": np.asarray(face_idx, np.uint32), "lmk_b_coords": np.asarray(bary, np.float64)},
            protocol=2)))


# Torch stand-ins: a plain pickle of a CPU tensor is
#   REDUCE(torch._utils._rebuild_tensor_v2, (storage, offset, size, stride, requires_grad, OrderedDict()))
# where the storage pickles as REDUCE(torch.storage._load_from_bytes, (bytes,)) and the bytes are a
# legacy torch.save stream of the storage alone.
def _rebuild_tensor_v2(*args):
    raise AssertionError("never called: stand-in for pickling only")


def _load_from_bytes(data):
    raise AssertionError("never called: stand-in for pickling only")


named(_rebuild_tensor_v2, "torch._utils", "_rebuild_tensor_v2")
named(_load_from_bytes, "torch.storage", "_load_from_bytes")
TORCH_STORAGE_CLASSES = {
    np.dtype(np.float32): named(type("FloatStorage", (), {}), "torch", "FloatStorage"),
    np.dtype(np.float64): named(type("DoubleStorage", (), {}), "torch", "DoubleStorage"),
    np.dtype(np.int64): named(type("LongStorage", (), {}), "torch", "LongStorage"),
}


def legacy_torch_bytes(flat: np.ndarray, key: str = "94358270560880", payload=None) -> bytes:
    """A legacy (non-zip) torch.save stream of one storage holding `flat`; `payload`, when given,
    is pickled in place of the storage reference (for malicious-content tests)."""
    flat = np.ascontiguousarray(flat)
    buf = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, buf, protocol=2)
    pickle.dump(1001, buf, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, buf, protocol=2)
    marker = object()

    class LegacyPickler(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is marker:
                return ("storage", TORCH_STORAGE_CLASSES[flat.dtype], key, "cpu", flat.size, None)
            return None

    LegacyPickler(buf, protocol=2).dump(marker if payload is None else payload)
    pickle.dump([key], buf, protocol=2)
    buf.write(struct.pack("<q", flat.size))
    buf.write(flat.astype(flat.dtype.newbyteorder("<")).tobytes())
    return buf.getvalue()


class TorchStorage:
    def __init__(self, flat, payload=None):
        self.flat, self.payload = flat, payload

    def __reduce__(self):
        return (_load_from_bytes, (legacy_torch_bytes(self.flat, payload=self.payload),))


class TorchTensor:
    """Pickles like a contiguous CPU `torch.Tensor` holding `array`."""

    def __init__(self, array, payload=None):
        self.array, self.payload = np.ascontiguousarray(array), payload

    def __reduce__(self):
        strides = tuple(s // self.array.itemsize for s in self.array.strides)
        storage = TorchStorage(self.array.reshape(-1), self.payload)
        return (_rebuild_tensor_v2,
                (storage, 0, self.array.shape, strides, False, collections.OrderedDict()))


def write_deca_embedding(path, values: dict) -> None:
    """DECA's landmark_embedding.npy: np.save of a 0-d object array of a dict; values that are
    TorchTensor stand-ins pickle as torch tensors."""
    with registered(_rebuild_tensor_v2, _load_from_bytes, *TORCH_STORAGE_CLASSES.values()):
        np.save(path, np.array(values, dtype=object), allow_pickle=True)


def deca_values(rng, num_faces: int) -> dict:
    """Arrays of a DECA landmark_embedding.npy (dynamic ones as torch tensor stand-ins)."""
    return {
        "static_lmk_faces_idx": rng.integers(0, num_faces, 51).astype(np.int64),
        "static_lmk_bary_coords": rng.dirichlet(np.ones(3), 51),
        "full_lmk_faces_idx": rng.integers(0, num_faces, (1, 68)).astype(np.int64),
        "full_lmk_bary_coords": rng.dirichlet(np.ones(3), (1, 68)),
        "dynamic_lmk_faces_idx": TorchTensor(rng.integers(0, num_faces, (79, 17)).astype(np.int64)),
        "dynamic_lmk_bary_coords": TorchTensor(rng.dirichlet(np.ones(3), (79, 17)).astype(np.float32)),
    }

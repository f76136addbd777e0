"""dlib's own face recognition code as a Recognizer, through `jax.pure_callback`.

The reference the Flax port (`dlib_resnet`) is checked against, and an example of a non-JAX
black-box recognizer. Needs the `dlib-bin` package (a test/dev dependency); slow (~18 chips/s
on a 2-core CPU) and not differentiable.
"""
from __future__ import annotations

import os
import threading
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from simadv_jax.recognizers import dlib_format
from simadv_jax.recognizers.base import Recognizer
from simadv_jax.recognizers.dlib_resnet import DISTANCE_THRESHOLD, model_path
from simadv_jax.report.images import to_uint8

SIZE = dlib_format.INPUT_SIZE
DIM = dlib_format.EMBEDDING_DIM


def _import_dlib():
    try:
        import dlib
    except ImportError:
        raise ImportError("dlib_reference needs dlib's Python bindings from the 'dlib-bin' "
                          "package (import name 'dlib'): pip install dlib-bin") from None
    return dlib


def build(argument: Optional[str] = None) -> Recognizer:
    """The "dlib_reference" recognizer; `argument` optionally names another .dat file.

    embed: (B, 150, 150, 3) float32 RGB in [0, 1] -> (B, 128) float32; each image is rounded to
    uint8 and passed to dlib's `face_recognition_model_v1.compute_face_descriptor` (the batch
    overload taking a list of aligned 150x150 chips). Works under jit and vmap.
    """
    dlib = _import_dlib()
    path = os.fspath(argument) if argument else model_path()
    try:
        model = dlib.face_recognition_model_v1(path)
    except RuntimeError as e:
        raise dlib_format.DlibFormatError(f"{path}: dlib cannot load it as a face recognition "
                                          f"network: {str(e).strip()}") from None
    lock = threading.Lock()  # one dlib network object; its forward pass is not reentrant

    def host_embed(images: np.ndarray) -> np.ndarray:
        chips = to_uint8(images)
        flat = chips.reshape((-1, SIZE, SIZE, 3))
        if flat.shape[0] == 0:
            return np.zeros(chips.shape[:-3] + (DIM,), np.float32)
        with lock:
            descriptors = model.compute_face_descriptor([np.ascontiguousarray(c) for c in flat])
        out = np.asarray([np.asarray(d) for d in descriptors], np.float32)
        return out.reshape(chips.shape[:-3] + (DIM,))

    def apply_fn(params, images):
        del params  # dlib holds its own weights
        if images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
            raise ValueError(f"dlib_reference: images must be (B, {SIZE}, {SIZE}, 3), got {images.shape}")
        result = jax.ShapeDtypeStruct((images.shape[0], DIM), jnp.float32)
        return jax.pure_callback(host_embed, result, images.astype(jnp.float32),
                                 vmap_method="broadcast_all")

    return Recognizer(params={}, name="dlib_reference", input_size=SIZE, template="dlib150",
                      apply_fn=apply_fn, metric="euclidean", threshold=-DISTANCE_THRESHOLD)

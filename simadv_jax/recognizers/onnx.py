"""ONNX face recognizers (`--recognizer=onnx:PATH[:options]`) read with the `onnx` package and run as pure JAX.

The op set of insightface's IR-ResNet and MobileFaceNet exports (and of most CNN recognizers): Conv (grouped and
depthwise; pads, auto_pad, strides, dilations), BatchNormalization (inference), PRelu, Relu, LeakyRelu, Sigmoid,
Add, Sub, Mul, Div, Flatten, Gemm, MatMul, MaxPool, AveragePool, GlobalAveragePool, Reshape, Transpose, Concat,
Identity, Dropout (inference: identity), Constant, Shape, Gather, Unsqueeze, ReduceMean, Pad. Activations are
NCHW as in the graph; float initializers are traced parameters, integer ones (shapes, axes) stay static. An
unsupported op is an error naming the op and the node. Options: see `simadv_jax.recognizers.imported` (the
channel order and normalization insightface's exports expect: `channels=rgb,mean=127.5,std=127.5`).
"""
from __future__ import annotations

import functools
import os
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from simadv_jax.recognizers import imported, ops
from simadv_jax.recognizers.base import Recognizer


class OnnxFormatError(ValueError):
    """A file is not an ONNX model this importer supports; the message names the file and node."""


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ImportError("--recognizer=onnx:... needs the 'onnx' package: pip install onnx") from None
    return onnx, numpy_helper


def _attributes(onnx, node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pads(attrs: dict, node) -> Any:
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER",):
        return "SAME"
    if auto == "VALID":
        return "VALID"
    if auto == "SAME_LOWER":
        raise OnnxFormatError(f"node {node.name!r} ({node.op_type}): auto_pad SAME_LOWER is not supported")
    p = list(attrs.get("pads", [0, 0, 0, 0]))
    return ((p[0], p[2]), (p[1], p[3]))


def _conv(node, attrs, x, w, b=None):
    groups, dilations = attrs.get("group", 1), tuple(attrs.get("dilations", (1, 1)))
    if groups == x.shape[1] == w.shape[0] and w.shape[1] == 1 and dilations == (1, 1):  # depthwise
        y = ops.depthwise_conv2d(x, jnp.transpose(w[:, 0], (1, 2, 0)), attrs.get("strides", (1, 1)),
                                 _pads(attrs, node), layout="NCHW")
        return y if b is None else y + b[None, :, None, None]
    y = ops.conv2d(x, w, attrs.get("strides", (1, 1)), _pads(attrs, node), attrs.get("dilations", (1, 1)),
                   groups=attrs.get("group", 1), layout="NCHW")
    return y if b is None else y + b[None, :, None, None]


def _batch_norm(node, attrs, x, scale, bias, mean, var):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = scale / jnp.sqrt(var + attrs.get("epsilon", 1e-5))
    return (x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)


def _prelu(node, attrs, x, slope):
    if slope.ndim == 1 and x.ndim == 4:  # per channel, as exporters write it
        slope = slope.reshape(1, -1, 1, 1)
    return ops.prelu(x, slope)


def _gemm(node, attrs, a, b, c=None):
    a = a.T if attrs.get("transA", 0) else a
    b = b.T if attrs.get("transB", 0) else b
    y = attrs.get("alpha", 1.0) * ops.matmul(a, b)
    return y if c is None else y + attrs.get("beta", 1.0) * c


def _pool(kind):
    def pool(node, attrs, x):
        if attrs.get("ceil_mode", 0):
            raise OnnxFormatError(f"node {node.name!r} ({node.op_type}): ceil_mode=1 is not supported")
        return ops.pool2d(x, kind, attrs["kernel_shape"], attrs.get("strides", (1, 1)), _pads(attrs, node),
                          layout="NCHW", count_include_pad=bool(attrs.get("count_include_pad", 0)))
    return pool


def _flatten(node, attrs, x):
    axis = attrs.get("axis", 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _reshape(node, attrs, x, shape):
    shape = [int(s) for s in np.asarray(shape)]
    shape = [x.shape[i] if s == 0 and not attrs.get("allowzero", 0) else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _unsqueeze(node, attrs, x, axes=None):
    axes = attrs["axes"] if axes is None else [int(a) for a in np.asarray(axes)]
    for axis in sorted(a % (x.ndim + len(axes)) for a in axes):
        x = jnp.expand_dims(x, axis) if isinstance(x, jax.Array) else np.expand_dims(x, axis)
    return x


def _reduce_mean(node, attrs, x, axes=None):
    axes = attrs.get("axes") if axes is None else [int(a) for a in np.asarray(axes)]
    return jnp.mean(x, axis=tuple(axes) if axes is not None else None, keepdims=bool(attrs.get("keepdims", 1)))


def _pad(node, attrs, x, pads, value=None):
    p = [int(v) for v in np.asarray(pads)]
    half = len(p) // 2
    return jnp.pad(x, list(zip(p[:half], p[half:])), constant_values=0.0 if value is None else value)


def _gather(node, attrs, x, index):
    if isinstance(x, np.ndarray) and isinstance(index, np.ndarray):
        return np.take(x, index, axis=attrs.get("axis", 0))
    return jnp.take(x, index, axis=attrs.get("axis", 0))


# op -> f(node, attrs, *inputs); shape arithmetic (Shape, Gather, Unsqueeze, Concat of shapes) stays numpy.
OPS: dict[str, Callable[..., Any]] = {
    "Conv": _conv,
    "BatchNormalization": _batch_norm,
    "PRelu": _prelu,
    "Relu": lambda node, attrs, x: jax.nn.relu(x),
    "LeakyRelu": lambda node, attrs, x: jnp.where(x >= 0, x, attrs.get("alpha", 0.01) * x),
    "Sigmoid": lambda node, attrs, x: jax.nn.sigmoid(x),
    "Add": lambda node, attrs, a, b: a + b,
    "Sub": lambda node, attrs, a, b: a - b,
    "Mul": lambda node, attrs, a, b: a * b,
    "Div": lambda node, attrs, a, b: a / b,
    "Flatten": _flatten,
    "Gemm": _gemm,
    "MatMul": lambda node, attrs, a, b: ops.matmul(a, b),
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda node, attrs, x: jnp.mean(x, axis=(2, 3), keepdims=True),
    "Reshape": _reshape,
    "Transpose": lambda node, attrs, x: jnp.transpose(x, attrs.get("perm")),
    "Concat": lambda node, attrs, *xs: (np.concatenate if all(isinstance(x, np.ndarray) for x in xs)
                                        else jnp.concatenate)(xs, axis=attrs["axis"]),
    "Identity": lambda node, attrs, x: x,
    "Dropout": lambda node, attrs, x, *rest: x,
    "Shape": lambda node, attrs, x: np.asarray(x.shape, np.int64),
    "Gather": _gather,
    "Unsqueeze": _unsqueeze,
    "ReduceMean": _reduce_mean,
    "Pad": _pad,
}


@functools.lru_cache(maxsize=4)
def read(path: str):
    """(graph function f(params, images NCHW) -> outputs dict, params, declared input (C, H, W) or None, output
    names) of the ONNX file `path`. Raises OnnxFormatError naming the file and the first unsupported node."""
    onnx, numpy_helper = _onnx()
    try:
        model = onnx.load(path)
    except Exception as e:  # protobuf raises DecodeError and others on a non-ONNX file
        raise OnnxFormatError(f"{path}: cannot read it as an ONNX model: {e}") from None
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type not in OPS and node.op_type != "Constant":
            raise OnnxFormatError(f"{path}: node {node.name or node.output[0]!r}: op {node.op_type!r} is not "
                                  f"supported; supported: {', '.join(sorted(OPS))}, Constant")
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(_attributes(onnx, node)["value"])
    inputs = [i for i in graph.input if i.name not in constants]
    if len(inputs) != 1:
        raise OnnxFormatError(f"{path}: expected one image input, found {[i.name for i in inputs]}")
    dims = [d.dim_value or None for d in inputs[0].type.tensor_type.shape.dim]
    params = {k: jnp.asarray(v) for k, v in constants.items() if np.issubdtype(v.dtype, np.floating)}
    static = {k: v for k, v in constants.items() if k not in params}
    nodes = [(n, _attributes(onnx, n)) for n in graph.node if n.op_type != "Constant"]
    input_name, output_names = inputs[0].name, tuple(o.name for o in graph.output)

    def apply(weights: dict, images: jax.Array) -> dict:
        values = {input_name: images, **static, **weights}
        for node, attrs in nodes:
            args = [values[i] if i else None for i in node.input]
            while args and args[-1] is None:
                args.pop()
            try:
                out = OPS[node.op_type](node, attrs, *args)
            except (KeyError, TypeError, ValueError) as e:
                raise OnnxFormatError(f"{path}: node {node.name or node.output[0]!r} ({node.op_type}): {e}") from None
            values[node.output[0]] = out
        return {name: values[name] for name in output_names}

    return apply, params, (tuple(dims[1:]) if len(dims) == 4 else None), output_names


def build(argument: Optional[str]) -> Recognizer:
    """`onnx:PATH[:options]`: the ONNX model at PATH as a Recognizer (NCHW input from aligned NHWC crops)."""
    path, text = imported.split_spec(argument, "--recognizer=onnx")
    flag = f"--recognizer=onnx:{argument}"
    if not os.path.isfile(path):
        raise ValueError(f"{flag}: {path} does not exist")
    options = imported.parse_options(text, flag, "NCHW")
    graph, params, declared, outputs = read(os.path.abspath(path))
    size = options.size or (declared[1] if declared and declared[1] else None)
    if not size:
        raise ValueError(f"{flag}: the model declares no input size; give size=S")
    output = options.output or outputs[0]
    if output not in outputs:
        raise ValueError(f"{flag}: output {output!r} is not a graph output; outputs: {', '.join(outputs)}")
    preprocess = options.preprocess

    @jax.jit
    def apply_fn(weights, images):
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise ValueError(f"onnx:{path}: images must be (B, {size}, {size}, 3), got {images.shape}")
        embedding = graph(weights, preprocess(images))[output]
        return embedding.reshape(embedding.shape[0], -1)

    return Recognizer(params=params, name=f"onnx:{argument}", input_size=size,
                      template=options.template_for(size, flag), apply_fn=apply_fn, metric=options.metric,
                      threshold=options.threshold)

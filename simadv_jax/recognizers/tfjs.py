"""TensorFlow.js graph models (`model.json` + weight shards) read with numpy and run as pure JAX functions.

Format (tfjs-converter "graph-model"): model.json holds `modelTopology.node` (a TensorFlow GraphDef as JSON:
name, op, input ["node", "node:1", "^control"], attr) and `weightsManifest` [{paths: [shards], weights: [{name,
shape, dtype, quantization?}]}]; each group's shards concatenated hold its weights in order, little-endian.
Quantized weights are dequantized exactly as tfjs-core's `decodeWeight` does: float16 -> float32 (exact); uint8 /
uint16 -> q * scale + min computed in float64 (JavaScript numbers) and rounded once to float32 (int32 weights:
rounded to the nearest integer).

`read_model(path)` gives a `TfjsModel`; `graph_function(model, outputs)` gives `f(params, *inputs)`, pure and
jittable: params are the float weights (traced), integer constants (shapes, axes, paddings) stay static. Every
op of OPS is implemented; any other is an error naming the op and the node.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from simadv_jax.recognizers import ops

_NUMPY_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_QUANTIZED = {"uint8": np.uint8, "uint16": np.uint16, "float16": np.float16}


class TfjsFormatError(ValueError):
    """A file is not a TFJS graph model this reader supports; the message names the file, node or weight."""


@dataclasses.dataclass(frozen=True)
class Node:
    """One GraphDef node: name, op, inputs (data inputs as (node name, output index); control inputs dropped),
    attr (the JSON attr map)."""

    name: str
    op: str
    inputs: tuple[tuple[str, int], ...]
    attr: dict


@dataclasses.dataclass(frozen=True)
class TfjsModel:
    """path: the model.json read; nodes: {name: Node}; weights: {name: np.ndarray} (dequantized); inputs: the
    Placeholder names in graph order; signature: model.json's signature ({} if none)."""

    path: str
    nodes: dict
    weights: dict
    inputs: tuple[str, ...]
    signature: dict


def dequantize(raw: bytes, spec: dict, where: str) -> np.ndarray:
    """One manifest entry's bytes -> its array, dequantized as tfjs-core does (see the module docstring)."""
    dtype, shape = spec["dtype"], tuple(int(d) for d in spec["shape"])
    quantization = spec.get("quantization")
    if quantization is None:
        if dtype not in _NUMPY_DTYPES:
            raise TfjsFormatError(f"{where}: weight {spec['name']!r}: dtype {dtype!r} is not supported")
        return np.frombuffer(raw, np.dtype(_NUMPY_DTYPES[dtype]).newbyteorder("<")).reshape(shape).copy()
    kind = quantization["dtype"]
    if kind not in _QUANTIZED:
        raise TfjsFormatError(f"{where}: weight {spec['name']!r}: quantization {kind!r} is not supported")
    q = np.frombuffer(raw, np.dtype(_QUANTIZED[kind]).newbyteorder("<")).reshape(shape)
    if kind == "float16":
        return q.astype(np.float32)
    values = q.astype(np.float64) * float(quantization["scale"]) + float(quantization["min"])
    return np.rint(values).astype(np.int32) if dtype == "int32" else values.astype(np.float32)


def _entry_bytes(spec: dict) -> int:
    """Bytes one manifest entry takes in its shard."""
    count = int(np.prod([int(d) for d in spec["shape"]], dtype=np.int64))
    kind = spec.get("quantization", {}).get("dtype", spec["dtype"])
    size = {**_NUMPY_DTYPES, **_QUANTIZED}.get(kind)
    if size is None:
        raise TfjsFormatError(f"weight {spec['name']!r}: dtype {kind!r} is not supported")
    return count * np.dtype(size).itemsize


def read_weights(path: str, manifest: list) -> dict:
    """{name: array} of every weight in `manifest`, its shards read relative to model.json's folder."""
    folder, weights = os.path.dirname(os.path.abspath(path)), {}
    for group in manifest:
        data = b""
        for shard in group["paths"]:
            shard_path = os.path.join(folder, shard)
            try:
                with open(shard_path, "rb") as f:
                    data += f.read()
            except OSError as e:
                raise TfjsFormatError(f"{path}: weight shard {shard_path}: {e.strerror or e}") from None
        offset = 0
        for spec in group["weights"]:
            size = _entry_bytes(spec)
            if offset + size > len(data):
                raise TfjsFormatError(f"{path}: weight {spec['name']!r} runs past the end of its shards "
                                      f"({len(data)} bytes)")
            weights[spec["name"]] = dequantize(data[offset:offset + size], spec, path)
            offset += size
    return weights


def _parse_input(text: str) -> tuple[str, int]:
    name, _, index = text.partition(":")
    return name, int(index) if index else 0


def read_model(path: str) -> TfjsModel:
    """Reads a TFJS graph model (model.json and its shards). Raises TfjsFormatError naming the file."""
    try:
        with open(path) as f:
            document = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise TfjsFormatError(f"{path}: cannot read it as a TFJS model.json: {e}") from None
    if document.get("format") not in (None, "graph-model") or "node" not in document.get("modelTopology", {}):
        raise TfjsFormatError(f"{path}: not a TFJS graph model (format {document.get('format')!r}); layers "
                              "models are not supported")
    nodes = {}
    for raw in document["modelTopology"]["node"]:
        inputs = tuple(_parse_input(i) for i in raw.get("input", []) if not i.startswith("^"))
        nodes[raw["name"]] = Node(raw["name"], raw["op"], inputs, raw.get("attr", {}))
    weights = read_weights(path, document.get("weightsManifest", []))
    placeholders = tuple(n.name for n in nodes.values() if n.op == "Placeholder")
    return TfjsModel(os.fspath(path), nodes, weights, placeholders, document.get("signature", {}))


# --- attributes -----------------------------------------------------------------------------------------------

def attr_ints(node: Node, key: str, default: Sequence[int] = ()) -> tuple[int, ...]:
    return tuple(int(v) for v in node.attr.get(key, {}).get("list", {}).get("i", default))


def attr_string(node: Node, key: str, default: str = "") -> str:
    value = node.attr.get(key, {}).get("s")
    return base64.b64decode(value).decode() if value is not None else default


def attr_strings(node: Node, key: str) -> tuple[str, ...]:
    return tuple(base64.b64decode(v).decode() for v in node.attr.get(key, {}).get("list", {}).get("s", []))


def attr_bool(node: Node, key: str, default: bool = False) -> bool:
    return bool(node.attr.get(key, {}).get("b", default))


def attr_float(node: Node, key: str, default: float = 0.0) -> float:
    return float(node.attr.get(key, {}).get("f", default))


def _nhwc(node: Node) -> None:
    layout = attr_string(node, "data_format", "NHWC")
    if layout != "NHWC":
        raise TfjsFormatError(f"node {node.name!r} ({node.op}): data_format {layout!r} is not supported (NHWC only)")


def _padding(node: Node):
    padding = attr_string(node, "padding", "VALID")
    if padding == "EXPLICIT":
        p = attr_ints(node, "explicit_paddings")
        return ((p[2], p[3]), (p[4], p[5]))
    return padding


def _spatial_attr(node: Node, key: str) -> tuple[int, int]:
    values = attr_ints(node, key, (1, 1, 1, 1))
    return values[1], values[2]


# --- ops --------------------------------------------------------------------------------------------------------

def _conv(node: Node, x, kernel, depthwise: bool):
    _nhwc(node)
    if depthwise and kernel.shape[3] == 1 and _spatial_attr(node, "dilations") == (1, 1):
        return ops.depthwise_conv2d(x, kernel[..., 0], _spatial_attr(node, "strides"), _padding(node))
    groups = x.shape[-1] if depthwise else 1
    kernel = ops.depthwise_kernel_hwio(kernel) if depthwise else kernel
    return ops.conv2d(x, kernel, _spatial_attr(node, "strides"), _padding(node), _spatial_attr(node, "dilations"),
                      groups=groups)


def _activation(node: Node, name: str, x, extra):
    """A fused activation of _FusedConv2D / FusedDepthwiseConv2dNative / _FusedMatMul."""
    if name == "Relu":
        return jax.nn.relu(x)
    if name == "Relu6":
        return jnp.clip(x, 0.0, 6.0)
    if name == "Prelu":
        return ops.prelu(x, extra[0])
    if name == "LeakyRelu":
        return jnp.where(x >= 0, x, attr_float(node, "leakyrelu_alpha", 0.2) * x)
    if name == "Elu":
        return jax.nn.elu(x)
    if name == "Sigmoid":
        return jax.nn.sigmoid(x)
    raise TfjsFormatError(f"node {node.name!r} ({node.op}): fused op {name!r} is not supported")


def _fused(node: Node, y, args):
    """Applies a fused node's `fused_ops` ("BiasAdd" and/or one activation) with its extra inputs `args`."""
    fused, args = list(attr_strings(node, "fused_ops")), list(args)
    if fused and fused[0] == "BiasAdd":
        y, fused = y + args.pop(0), fused[1:]
    elif fused and fused[0] == "FusedBatchNorm":
        raise TfjsFormatError(f"node {node.name!r} ({node.op}): fused batch norm is not supported")
    for name in fused:
        y = _activation(node, name, y, args)
    return y


def _reduce(fn):
    def reduce(node, x, axes):
        return fn(x, axis=tuple(int(a) for a in np.atleast_1d(axes)), keepdims=attr_bool(node, "keep_dims"))
    return reduce


def _matmul(node, a, b, *rest):
    a = a.T if attr_bool(node, "transpose_a") else a
    b = b.T if attr_bool(node, "transpose_b") else b
    return ops.matmul(a, b)


def _pool(kind):
    def pool(node, x):
        _nhwc(node)
        return ops.pool2d(x, kind, _spatial_attr(node, "ksize"), _spatial_attr(node, "strides"), _padding(node))
    return pool


def _softmax(node, x):
    return jax.nn.softmax(x, axis=-1)


def _pad(node, x, paddings, value=0.0):
    return jnp.pad(x, [(int(a), int(b)) for a, b in np.asarray(paddings)], constant_values=value)


def _squeeze(node, x):
    axes = attr_ints(node, "squeeze_dims")
    return jnp.squeeze(x, axis=axes or None)


# op -> f(node, *inputs); inputs are jax arrays (float weights, activations) or numpy arrays (integer constants).
OPS: dict[str, Callable[..., Any]] = {
    "Identity": lambda node, x: x,
    "Add": lambda node, a, b: a + b,
    "AddV2": lambda node, a, b: a + b,
    "BiasAdd": lambda node, a, b: a + b,
    "Sub": lambda node, a, b: a - b,
    "Mul": lambda node, a, b: a * b,
    "RealDiv": lambda node, a, b: a / b,
    "Maximum": lambda node, a, b: jnp.maximum(a, b),
    "Minimum": lambda node, a, b: jnp.minimum(a, b),
    "Relu": lambda node, x: jax.nn.relu(x),
    "Relu6": lambda node, x: jnp.clip(x, 0.0, 6.0),
    "Sigmoid": lambda node, x: jax.nn.sigmoid(x),
    "Tanh": lambda node, x: jnp.tanh(x),
    "Prelu": lambda node, x, alpha: ops.prelu(x, alpha),
    "Softmax": _softmax,
    "Mean": _reduce(jnp.mean),
    "Sum": _reduce(jnp.sum),
    "Max": _reduce(jnp.max),
    "Pad": _pad,
    "PadV2": _pad,
    "Reshape": lambda node, x, shape: jnp.reshape(x, tuple(int(s) for s in np.asarray(shape))),
    "Squeeze": _squeeze,
    "ConcatV2": lambda node, *xs: jnp.concatenate(xs[:-1], axis=int(xs[-1])),
    "Transpose": lambda node, x, perm: jnp.transpose(x, tuple(int(p) for p in np.asarray(perm))),
    "Conv2D": lambda node, x, k: _conv(node, x, k, False),
    "DepthwiseConv2dNative": lambda node, x, k: _conv(node, x, k, True),
    "_FusedConv2D": lambda node, x, k, *rest: _fused(node, _conv(node, x, k, False), rest),
    "FusedDepthwiseConv2dNative": lambda node, x, k, *rest: _fused(node, _conv(node, x, k, True), rest),
    "MatMul": _matmul,
    "_FusedMatMul": lambda node, a, b, *rest: _fused(node, _matmul(node, a, b), rest),
    "MaxPool": _pool("max"),
    "AvgPool": _pool("avg"),
}


def _order(model: TfjsModel, outputs: Sequence[str]) -> list[str]:
    """Names of the nodes `outputs` depend on, each after its inputs (iterative depth-first search)."""
    order, state, stack = [], {}, [(name, False) for name in reversed(outputs)]
    while stack:
        name, done = stack.pop()
        if done:
            state[name] = 2
            order.append(name)
            continue
        if state.get(name):
            continue
        if name not in model.nodes:
            raise TfjsFormatError(f"{model.path}: node {name!r} is referenced but not defined")
        state[name] = 1
        stack.append((name, True))
        stack.extend((source, False) for source, _ in reversed(model.nodes[name].inputs) if not state.get(source))
    return order


def float_params(model: TfjsModel) -> dict:
    """The traced parameters of `graph_function`: every float weight as a jax array."""
    return {name: jnp.asarray(w) for name, w in model.weights.items() if w.dtype == np.float32}


def graph_function(model: TfjsModel, outputs: Sequence[str]) -> Callable[..., tuple]:
    """A pure function `f(params, *inputs) -> tuple of outputs` computing the nodes `outputs` ("name" or
    "name:0") from the Placeholders in `model.inputs` order; params as `float_params(model)`.

    Raises TfjsFormatError naming the node of the first unsupported op (checked now, not at trace time).
    """
    names = [_parse_input(o)[0] for o in outputs]
    order = _order(model, names)
    for name in order:
        node = model.nodes[name]
        if node.op not in OPS and node.op not in ("Const", "Placeholder"):
            raise TfjsFormatError(f"{model.path}: node {name!r}: op {node.op!r} is not supported; supported: "
                                  f"{', '.join(sorted(OPS))}")
        if node.op == "Const" and name not in model.weights:
            raise TfjsFormatError(f"{model.path}: node {name!r}: constant without a weight in the manifest")
        if any(index for _, index in node.inputs):
            raise TfjsFormatError(f"{model.path}: node {name!r} ({node.op}) reads a second output of a node; "
                                  "multi-output ops are not supported")
    static = {name: w for name, w in model.weights.items() if w.dtype != np.float32}

    def apply(params: dict, *inputs):
        if len(inputs) != len(model.inputs):
            raise ValueError(f"{model.path}: expected {len(model.inputs)} input(s) {model.inputs}, got {len(inputs)}")
        values = dict(zip(model.inputs, inputs))
        for name in order:
            node = model.nodes[name]
            if node.op == "Const":
                values[name] = static[name] if name in static else params[name]
            elif node.op != "Placeholder":
                values[name] = OPS[node.op](node, *(values[source] for source, _ in node.inputs))
        return tuple(values[name] for name in names)

    return apply

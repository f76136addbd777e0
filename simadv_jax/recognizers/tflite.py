"""TensorFlow Lite flatbuffers (`.tflite`) read with the `tflite` parser and run as pure JAX functions.

A model is one subgraph of operators over numbered tensors; constant tensors hold data in the model's buffers.
Float32 constants (and float16 ones, which DEQUANTIZE turns into float32 exactly) become traced parameters;
int32 constants (shapes, paddings) stay static. TFLite's layouts: activations NHWC, CONV_2D filters OHWI,
DEPTHWISE_CONV_2D filters (1, H, W, C * M). Every op of OPS is implemented (the op set of MediaPipe's BlazeFace and
face-landmark models); any other is an error naming the op and the operator's index and output tensor.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from simadv_jax.recognizers import ops


class TfliteFormatError(ValueError):
    """A file is not a TFLite model this reader supports; the message names the file and operator."""


def _tflite():
    try:
        import tflite
    except ImportError:
        raise ImportError("reading .tflite models needs the 'tflite' flatbuffer parser: pip install tflite") from None
    return tflite


@dataclasses.dataclass(frozen=True)
class Operator:
    """index in the subgraph, op (builtin name, e.g. "CONV_2D"), inputs / outputs (tensor indices, -1 = none),
    options (the builtin options' fields by name)."""

    index: int
    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict


@dataclasses.dataclass(frozen=True)
class TfliteModel:
    """path; operators in execution order; constants {tensor index: np.ndarray}; names {tensor index: name};
    shapes {tensor index: shape}; inputs / outputs: tensor indices of the subgraph's inputs and outputs."""

    path: str
    operators: tuple[Operator, ...]
    constants: dict
    names: dict
    shapes: dict
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


_OPTION_FIELDS = ("Padding", "StrideW", "StrideH", "DilationWFactor", "DilationHFactor", "FusedActivationFunction",
                  "DepthMultiplier", "FilterWidth", "FilterHeight", "Axis", "NewShapeAsNumpy")


def _options(tflite, op) -> dict:
    """The builtin options table of `op` as {field: value} for the fields in _OPTION_FIELDS it has."""
    table = op.BuiltinOptions()
    kind = op.BuiltinOptionsType()
    if table is None or kind == 0:
        return {}
    names = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}
    cls = getattr(tflite, names[kind], None)
    if cls is None:
        return {}
    options = cls()
    options.Init(table.Bytes, table.Pos)
    found = {}
    for field in _OPTION_FIELDS:
        if hasattr(options, field):
            value = getattr(options, field)()
            found[field.replace("AsNumpy", "")] = value
    return found


def read_model(path: str) -> TfliteModel:
    """Reads subgraph 0 of a .tflite file. Raises TfliteFormatError naming the file."""
    tflite = _tflite()
    try:
        with open(path, "rb") as f:
            buf = f.read()
        model = tflite.Model.GetRootAsModel(buf, 0)
        graph = model.Subgraphs(0)
    except Exception as e:  # the flatbuffer accessors raise anything on a non-model file
        raise TfliteFormatError(f"{path}: cannot read it as a TFLite model: {e}") from None
    builtin = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    types = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
    numpy_types = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32}
    constants, names, shapes = {}, {}, {}
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        names[i], shapes[i] = tensor.Name().decode(), tuple(int(d) for d in tensor.ShapeAsNumpy())
        data = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, np.ndarray) and data.size:
            kind = types[tensor.Type()]
            if kind not in numpy_types:
                raise TfliteFormatError(f"{path}: tensor {names[i]!r}: constant type {kind} is not supported")
            constants[i] = data.view(np.dtype(numpy_types[kind]).newbyteorder("<")).reshape(shapes[i]).copy()
    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = builtin.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        operators.append(Operator(i, name, tuple(int(t) for t in op.InputsAsNumpy()),
                                  tuple(int(t) for t in op.OutputsAsNumpy()), _options(tflite, op)))
    return TfliteModel(path, tuple(operators), constants, names, shapes,
                       tuple(int(t) for t in graph.InputsAsNumpy()), tuple(int(t) for t in graph.OutputsAsNumpy()))


# --- ops --------------------------------------------------------------------------------------------------------

def _activate(op: Operator, x):
    kind = op.options.get("FusedActivationFunction", 0)
    if kind == 0:
        return x
    if kind == 1:
        return jax.nn.relu(x)
    if kind == 3:
        return jnp.clip(x, 0.0, 6.0)
    raise TfliteFormatError(f"operator {op.index} ({op.op}): fused activation {kind} is not supported")


def _padding(op: Operator) -> str:
    return "SAME" if op.options.get("Padding", 0) == 0 else "VALID"


def _strides(op: Operator) -> tuple[int, int]:
    return op.options.get("StrideH", 1), op.options.get("StrideW", 1)


def _dilations(op: Operator) -> tuple[int, int]:
    return op.options.get("DilationHFactor", 1), op.options.get("DilationWFactor", 1)


def _conv(op, x, kernel, bias=None):
    y = ops.conv2d(x, jnp.transpose(kernel, (1, 2, 3, 0)), _strides(op), _padding(op), _dilations(op))
    return _activate(op, y if bias is None else y + bias)


def _depthwise(op, x, kernel, bias=None):
    channels = x.shape[-1]
    if kernel.shape[3] == channels and _dilations(op) == (1, 1):  # depth multiplier 1
        y = ops.depthwise_conv2d(x, kernel[0], _strides(op), _padding(op))
    else:
        hwio = jnp.transpose(kernel, (1, 2, 0, 3))  # (1, H, W, C*M) -> (H, W, 1, C*M)
        y = ops.conv2d(x, hwio, _strides(op), _padding(op), _dilations(op), groups=channels)
    return _activate(op, y if bias is None else y + bias)


def _max_pool(op, x):
    window = (op.options["FilterHeight"], op.options["FilterWidth"])
    return _activate(op, ops.pool2d(x, "max", window, _strides(op), _padding(op)))


def _reshape(op, x, shape=None):
    target = np.asarray(shape) if shape is not None else np.asarray(op.options.get("NewShape"))
    return jnp.reshape(x, tuple(int(s) for s in target))


OPS: dict[str, Callable[..., Any]] = {
    "DEQUANTIZE": lambda op, x: x.astype(jnp.float32),
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _depthwise,
    "ADD": lambda op, a, b: _activate(op, a + b),
    "MUL": lambda op, a, b: _activate(op, a * b),
    "RELU": lambda op, x: jax.nn.relu(x),
    "RELU6": lambda op, x: jnp.clip(x, 0.0, 6.0),
    "PRELU": lambda op, x, alpha: ops.prelu(x, alpha),
    "MAX_POOL_2D": _max_pool,
    "PAD": lambda op, x, pads: jnp.pad(x, [(int(a), int(b)) for a, b in np.asarray(pads)]),
    "RESHAPE": _reshape,
    "CONCATENATION": lambda op, *xs: _activate(op, jnp.concatenate(xs, axis=op.options.get("Axis", 0))),
}


def params(model: TfliteModel) -> dict:
    """The traced parameters of `graph_function`: {tensor name: jax array} of every float constant (float16 ones
    as float16: their DEQUANTIZE op converts them)."""
    return {model.names[i]: jnp.asarray(c) for i, c in model.constants.items() if c.dtype != np.int32}


def graph_function(model: TfliteModel) -> Callable[..., tuple]:
    """A pure function `f(params, *inputs) -> outputs` (tuple in the subgraph's output order) for inputs in the
    subgraph's input order (each with the batch dimension the model declares, or any batch: the model's
    RESHAPEs are rewritten to keep the leading axis). Raises TfliteFormatError at the first unsupported op."""
    for op in model.operators:
        if op.op not in OPS:
            raise TfliteFormatError(f"{model.path}: operator {op.index} (output "
                                    f"{model.names.get(op.outputs[0], '?')!r}): op {op.op} is not supported; "
                                    f"supported: {', '.join(sorted(OPS))}")
    static = {i: c for i, c in model.constants.items() if c.dtype == np.int32}

    def apply(weights: dict, *inputs):
        batch = inputs[0].shape[0]
        values = {i: x for i, x in zip(model.inputs, inputs)}
        for op in model.operators:
            args = []
            for t in op.inputs:
                if t < 0:
                    args.append(None)
                elif t in static:
                    args.append(static[t])
                elif t in model.constants:
                    args.append(weights[model.names[t]])
                else:
                    args.append(values[t])
            if op.op == "RESHAPE":  # keep the caller's batch size
                args = [args[0], np.asarray((batch,) + model.shapes[op.outputs[0]][1:])]
            values[op.outputs[0]] = OPS[op.op](op, *[a for a in args if a is not None])
        return tuple(values[t] for t in model.outputs)

    return apply

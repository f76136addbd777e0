"""Pure-numpy reader of dlib's serialized face recognition network (`*.dat`).

dlib writes a network with its own binary serialization (dlib/serialize.h):

- integers: one control byte (low 4 bits = number of following little-endian magnitude
  bytes, 1..8; bit 0x80 = negative; bits 0x70 are zero) then the magnitude bytes;
- floats/doubles: two integers, mantissa then exponent, value = mantissa * 2**exponent;
- strings: an integer length then the raw bytes; bools: the ASCII byte '0' or '1';
- tensors: integer version 2, integer dims (n, k, rows, cols), then n*k*rows*cols raw
  little-endian float32; alias tensors (shape views into a parameter tensor): version 1 and
  4 dims, no data.

A network `add_loss_layer<LOSS, add_layer<L1, add_layer<L2, ... INPUT>>>` is written
recursively: the loss layer (version, details), then for each wrapper from the output
inwards only its version integer, then the input layer, then the details of every layer
from the input outwards, each followed by its bookkeeping fields (three bools, empty
gradient tensors). So the parameter tensors appear in input-to-output order: stem conv
first, the final 256->128 matrix last.

`read_network(path)` validates the whole file against the architecture of
`dlib_face_recognition_resnet_model_v1` (layer names, filter counts, kernel sizes, strides,
paddings, tensor shapes) and returns its 59 parameter tensors; `flax_params` maps them onto
the parameter tree of `simadv_jax.recognizers.dlib_resnet.DlibResNet`.

One module of ~420 lines on purpose: the byte-level reader and the network's layer table describe one file format,
and neither half can be read or checked without the other.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import numpy as np

# (features, downsample) of the 14 residual blocks, input to output (dlib's alevel4..alevel0).
BLOCKS = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)
STEM_FEATURES = 32
STEM_KERNEL = 7
EMBEDDING_DIM = 128
INPUT_SIZE = 150


class DlibFormatError(ValueError):
    """A file is not, or is not a complete, dlib face recognition network."""


def decode_int(buf: bytes, offset: int = 0) -> tuple[int, int]:
    """Decodes one dlib-serialized integer at `offset`.

    Returns:
      (value, next_offset).
    Raises:
      DlibFormatError: on a bad control byte or when the bytes run out.
    """
    if offset >= len(buf):
        raise DlibFormatError(f"truncated: integer expected at byte {offset}, found end of data")
    control = buf[offset]
    size = control & 0x0F
    if control & 0x70 or not 1 <= size <= 8:
        raise DlibFormatError(f"bad integer control byte 0x{control:02x} at byte {offset}")
    end = offset + 1 + size
    if end > len(buf):
        raise DlibFormatError(f"truncated: integer at byte {offset} needs {size} bytes, found end of data")
    value = int.from_bytes(buf[offset + 1:end], "little")
    return (-value if control & 0x80 else value), end


@dataclasses.dataclass(frozen=True)
class DlibNetwork:
    """The contents of a dlib face recognition network file.

    Attributes:
      path: the file read.
      margin, distance_threshold: the `loss_metric_2` settings (training margin; same person
        iff the Euclidean distance is below `distance_threshold`).
      mean_rgb: per-channel means subtracted from 0-255 RGB pixels before dividing by 256.
      input_size: side length in pixels of the square input chip.
      layers: the layer detail names, input to output (e.g. "con_4", "affine_", "relu_").
      tensors: the 59 flat float32 parameter tensors in file order (input to output): per
        conv its filters then biases, per affine gamma then beta, then the fc matrix.
      conv: 29 views (filters (n_out, n_in, h, w), biases (n_out,)), stem first.
      affine: 29 views (gamma (k,), beta (k,)): y = x * gamma + beta per channel.
      fc: (256, 128) view: embedding = pooled features @ fc.
    """

    path: str
    margin: float
    distance_threshold: float
    mean_rgb: tuple[float, float, float]
    input_size: int
    layers: tuple[str, ...]
    tensors: tuple[np.ndarray, ...]
    conv: tuple[tuple[np.ndarray, np.ndarray], ...]
    affine: tuple[tuple[np.ndarray, np.ndarray], ...]
    fc: np.ndarray

    @property
    def num_values(self) -> int:
        return sum(int(t.size) for t in self.tensors)


class Reader:
    """Sequential reader over the bytes of a dlib file; every failure names the file, the byte offset and the file
    kind `expected` (also used for `shape_predictor_5_face_landmarks.dat`, `simadv_jax.recognizers.shape_predictor`)."""

    def __init__(self, data: bytes, path: str, expected: str = "dlib_face_recognition_resnet_model_v1.dat"):
        self.data = data
        self.path = path
        self.expected = expected
        self.pos = 0

    @classmethod
    def open(cls, path: str | os.PathLike, what: str, expected: str = "dlib_face_recognition_resnet_model_v1.dat"):
        """A Reader over the whole file at `path`; DlibFormatError naming the file (a `what` file) when it cannot
        be read."""
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise DlibFormatError(f"{path}: cannot read {what} file: {e.strerror}") from None
        return cls(data, path, expected)

    def expect_end(self, what: str) -> None:
        """Raises unless every byte has been read (`what`: what the file holds)."""
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} unexpected bytes after the {what}")

    def fail(self, message: str) -> DlibFormatError:
        return DlibFormatError(f"{self.path}: {message} (at byte {self.pos} of {len(self.data)}); "
                               f"not a valid {self.expected}")

    def int(self, what: str) -> int:
        try:
            value, self.pos = decode_int(self.data, self.pos)
        except DlibFormatError as e:
            raise self.fail(f"reading {what}: {e}") from None
        return value

    def float(self, what: str) -> float:
        mantissa = self.int(f"{what} (mantissa)")
        exponent = self.int(f"{what} (exponent)")
        if exponent >= 32000:  # dlib's float_details codes for inf, -inf, nan
            raise self.fail(f"{what} is not finite")
        return float(np.ldexp(float(mantissa), exponent))

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"truncated: {what} needs {n} bytes")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def string(self, what: str) -> str:
        n = self.int(f"length of {what}")
        if n > 64:
            raise self.fail(f"{what}: implausible string length {n}")
        raw = self.take(n, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"{what}: not a text string: {raw!r}") from None

    def name(self, what: str, allowed: tuple[str, ...]) -> str:
        start = self.pos
        try:
            value = self.string(what)
        except DlibFormatError:
            self.pos = start
            raise self.fail(f"expected {what} {' or '.join(map(repr, allowed))}") from None
        if value not in allowed:
            self.pos = start
            raise self.fail(f"expected {what} {' or '.join(map(repr, allowed))}, found {value!r}")
        return value

    def bool(self, what: str) -> bool:
        raw = self.take(1, what)
        if raw not in (b"0", b"1"):
            self.pos -= 1
            raise self.fail(f"{what}: expected bool byte '0' or '1', found {raw!r}")
        return raw == b"1"

    def expect_int(self, what: str, allowed: tuple[int, ...]) -> int:
        start = self.pos
        value = self.int(what)
        if value not in allowed:
            self.pos = start
            raise self.fail(f"{what}: expected {' or '.join(map(str, allowed))}, found {value}")
        return value

    def dims(self, what: str, version: int) -> tuple[int, int, int, int]:
        self.expect_int(f"{what} version", (version,))
        dims = tuple(self.int(f"{what} dimension {i}") for i in range(4))
        if min(dims) < 0:
            raise self.fail(f"{what}: negative dimension in {dims}")
        return dims

    def tensor(self, what: str) -> np.ndarray:
        dims = self.dims(what, 2)
        count = int(np.prod(dims))
        raw = self.take(4 * count, f"{what} data ({count} float32 values of shape {dims})")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias(self, what: str, expected: tuple[int, int, int, int]) -> None:
        dims = self.dims(what, 1)
        if dims != expected:
            raise self.fail(f"{what}: expected shape {expected}, found {dims}")

    def doubles(self, what: str, n: int) -> None:
        for i in range(n):
            self.float(f"{what} {i}")


# ---------------------------------------------------------------------------------------
# The architecture, outermost wrapper first, as in dlib's C++ type:
#   loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<...<alevel4<
#     max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>
# Tokens: ("layer", kind, config) for add_layer, ("tag", id) / ("skip", id) for tag/skip.


def _block(features: int, downsample: bool) -> list[tuple]:
    stride = 2 if downsample else 1
    body = [("layer", "affine", features), ("layer", "con", (features, 3, 1)),
            ("layer", "relu", None), ("layer", "affine", features),
            ("layer", "con", (features, 3, stride)), ("tag", 1)]
    if downsample:  # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,2,tag1<...>>>>>>>
        return [("layer", "relu", None), ("layer", "add_prev", 2),
                ("layer", "avg_pool", (2, 2)), ("skip", 1), ("tag", 2)] + body
    return [("layer", "relu", None), ("layer", "add_prev", 1)] + body  # relu<add_prev1<block<tag1>>>


def _architecture() -> list[tuple]:
    tokens = [("layer", "fc", EMBEDDING_DIM), ("layer", "avg_pool", (0, 1))]
    for features, downsample in reversed(BLOCKS):
        tokens += _block(features, downsample)
    tokens += [("layer", "max_pool", (3, 2)), ("layer", "relu", None),
               ("layer", "affine", STEM_FEATURES),
               ("layer", "con", (STEM_FEATURES, STEM_KERNEL, 2))]
    return tokens


def _default_padding(kernel: int, stride: int) -> int:
    """dlib's default padding for con_/max_pool_/avg_pool_: kernel//2 at stride 1, else 0."""
    return kernel // 2 if stride == 1 else 0


class _Parser:
    """Reads layer details, tracking the channel count flowing up the network."""

    def __init__(self, reader: Reader):
        self.r = reader
        self.channels = 3
        self.shortcut_channels: list[int] = []  # channels at each tag1, for add_prev
        self.layers: list[str] = []
        self.tensors: list[np.ndarray] = []
        self.conv: list[tuple[np.ndarray, np.ndarray]] = []
        self.affine: list[tuple[np.ndarray, np.ndarray]] = []
        self.fc: np.ndarray | None = None

    def window(self, what: str, kernel: int, stride: int) -> None:
        r = self.r
        for axis in ("rows", "cols"):
            r.expect_int(f"{what} {axis}", (kernel,))
        for axis in ("y", "x"):
            r.expect_int(f"{what} stride_{axis}", (stride,))
        for axis in ("y", "x"):
            r.expect_int(f"{what} padding_{axis}", (_default_padding(kernel, stride),))

    def layer(self, kind: str, config: Any, index: int) -> None:
        r = self.r
        what = f"layer {index} ({kind})"
        if kind == "con":
            features, kernel, stride = config
            self.layers.append(r.name(f"{what} name", ("con_4", "con_5", "con_6")))
            version = self.layers[-1]
            params = r.tensor(f"{what} parameters")
            n_in = self.channels
            n_filter = features * n_in * kernel * kernel
            if params.size != n_filter + features:
                raise r.fail(f"{what}: expected {n_filter + features} parameters "
                             f"({features} filters of {n_in}x{kernel}x{kernel} + biases), found {params.size}")
            r.expect_int(f"{what} num_filters", (features,))
            self.window(what, kernel, stride)
            r.alias(f"{what} filters", (features, n_in, kernel, kernel))
            r.alias(f"{what} biases", (1, features, 1, 1))
            r.doubles(f"{what} learning-rate multipliers", 4)
            if version in ("con_5", "con_6") and not r.bool(f"{what} use_bias"):
                raise r.fail(f"{what}: expected a convolution with bias")
            if version == "con_6" and r.bool(f"{what} use_relu"):
                raise r.fail(f"{what}: expected a convolution without fused relu")
            flat = params.reshape(-1)
            self.tensors.append(flat)
            self.conv.append((flat[:n_filter].reshape(features, n_in, kernel, kernel), flat[n_filter:]))
            self.channels = features
        elif kind == "affine":
            self.layers.append(r.name(f"{what} name", ("affine_", "affine_2")))
            params = r.tensor(f"{what} parameters")
            if params.size != 2 * config:
                raise r.fail(f"{what}: expected {2 * config} parameters (gamma, beta), found {params.size}")
            r.alias(f"{what} gamma", (1, config, 1, 1))
            r.alias(f"{what} beta", (1, config, 1, 1))
            r.expect_int(f"{what} mode", (0,))  # CONV_MODE: one gamma/beta per channel
            if self.layers[-1] == "affine_2" and r.bool(f"{what} disabled"):
                raise r.fail(f"{what}: layer is disabled")
            flat = params.reshape(-1)
            self.tensors.append(flat)
            self.affine.append((flat[:config], flat[config:]))
        elif kind == "relu":
            self.layers.append(r.name(f"{what} name", ("relu_", "relu_2")))
            if self.layers[-1] == "relu_2" and r.bool(f"{what} disabled"):
                raise r.fail(f"{what}: layer is disabled")
        elif kind in ("max_pool", "avg_pool"):
            self.layers.append(r.name(f"{what} name", (f"{kind}_2",)))
            kernel, stride = config
            self.window(what, kernel, stride)
        elif kind == "add_prev":
            self.layers.append(r.name(f"{what} name", ("add_prev_",)))
            self.channels = max(self.channels, self.shortcut_channels.pop())
        else:  # "fc", the 256 -> 128 matrix without bias
            self.layers.append(r.name(f"{what} name", ("fc_2", "fc_3")))
            r.expect_int(f"{what} num_outputs", (config,))
            r.expect_int(f"{what} num_inputs", (self.channels,))
            params = r.tensor(f"{what} parameters")
            if params.size != self.channels * config:
                raise r.fail(f"{what}: expected {self.channels * config} weights, found {params.size}")
            r.alias(f"{what} weights", (self.channels, config, 1, 1))
            r.alias(f"{what} biases", (0, 0, 0, 0))
            r.expect_int(f"{what} bias mode", (1,))  # FC_NO_BIAS
            r.doubles(f"{what} learning-rate multipliers", 4)
            if self.layers[-1] == "fc_3":
                r.bool(f"{what} use_bias")
            flat = params.reshape(-1)
            self.tensors.append(flat)
            self.fc = flat.reshape(self.channels, config)

    def trailer(self, what: str, version: int, innermost: bool) -> None:
        """add_layer bookkeeping after the details: three bools and gradient buffers."""
        r = self.r
        for field in ("this_layer_setup_called", "gradient_input_is_stale",
                      "get_output_and_gradient_input_disabled"):
            r.bool(f"{what} {field}")
        n_tensors = 3 if innermost or version == 2 else 2
        for i in range(n_tensors):
            r.tensor(f"{what} buffer {i}")
        if innermost and version == 3:
            r.int(f"{what} sample_expansion_factor")


def read_network(path: str | os.PathLike) -> DlibNetwork:
    """Reads and validates `dlib_face_recognition_resnet_model_v1.dat`.

    Raises:
      DlibFormatError: naming the file, the byte offset and what was expected, when the
        file is missing, truncated, or is not this network.
    """
    r = Reader.open(path, "dlib network")

    r.expect_int("loss layer version", (1,))
    r.name("loss layer name", ("loss_metric_2",))
    margin = r.float("loss margin")
    distance_threshold = r.float("loss distance threshold")

    tokens = _architecture()
    layer_tokens = [t for t in tokens if t[0] == "layer"]
    versions = []
    for token in tokens:  # the wrappers' version integers, outermost first
        if token[0] == "layer":
            innermost = len(versions) == len(layer_tokens) - 1
            versions.append(r.expect_int(f"version of the {token[1]} layer wrapper",
                                         (2, 3) if innermost else (1, 2)))
        else:
            r.expect_int(f"version of the {token[0]}{token[1]} layer", (1,))

    r.name("input layer name", ("input_rgb_image_sized",))
    mean_rgb = tuple(r.float(f"input mean {c}") for c in ("red", "green", "blue"))
    r.expect_int("input rows", (INPUT_SIZE,))
    r.expect_int("input cols", (INPUT_SIZE,))

    p = _Parser(r)
    # Details come input to output; a tag1 marks a block's input, which its add_prev adds.
    index = 0
    for token in reversed(tokens):
        if token[0] == "tag":
            if token[1] == 1:
                p.shortcut_channels.append(p.channels)
            continue
        if token[0] == "skip":
            continue
        _, kind, config = token
        version = versions[len(layer_tokens) - 1 - index]
        p.layer(kind, config, index)
        p.trailer(f"layer {index} ({kind})", version, innermost=index == 0)
        index += 1

    r.expect_end("network")
    return DlibNetwork(
        path=path, margin=margin, distance_threshold=distance_threshold,
        mean_rgb=mean_rgb, input_size=INPUT_SIZE, layers=tuple(p.layers),
        tensors=tuple(p.tensors), conv=tuple(p.conv), affine=tuple(p.affine), fc=p.fc)


def _conv(filters: np.ndarray, biases: np.ndarray) -> dict:
    # dlib correlates (no flip) with filters [n_out, n_in, h, w]; Flax wants HWIO.
    return {"kernel": np.ascontiguousarray(filters.transpose(2, 3, 1, 0)), "bias": biases.copy()}


def _affine(gamma: np.ndarray, beta: np.ndarray) -> dict:
    return {"scale": gamma.copy(), "bias": beta.copy()}


def flax_params(network: DlibNetwork) -> dict:
    """Maps the network's tensors onto `DlibResNet`'s parameter tree (float32 numpy leaves).

    Returns:
      {"params": {"stem_conv", "stem_affine", "block_0".."block_13" (each with
      "conv_a", "affine_a", "conv_b", "affine_b"), "fc": {"kernel": (256, 128)}}}.
    """
    params = {"stem_conv": _conv(*network.conv[0]), "stem_affine": _affine(*network.affine[0])}
    for i in range(len(BLOCKS)):
        params[f"block_{i}"] = {
            "conv_a": _conv(*network.conv[1 + 2 * i]), "affine_a": _affine(*network.affine[1 + 2 * i]),
            "conv_b": _conv(*network.conv[2 + 2 * i]), "affine_b": _affine(*network.affine[2 + 2 * i]),
        }
    params["fc"] = {"kernel": network.fc.copy()}
    return {"params": params}

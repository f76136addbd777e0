"""The ONNX importer against onnxruntime, on small graphs built here with the op patterns of insightface's
IR-ResNet and MobileFaceNet exports."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from simadv_jax.recognizers import load  # noqa: E402
from simadv_jax.recognizers import onnx as importer  # noqa: E402
from tests import model_fixtures  # noqa: E402

TOLERANCE = 1e-4
SIZE = 16


def _save(tmp_path, name, nodes, initializers, output_dim, extra_outputs=()):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.asarray(v(rng) if callable(v) else v), k) for k, v in initializers.items()]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("data", TensorProto.FLOAT, [None, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [None, output_dim]), *extra_outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    path = str(tmp_path / f"{name}.onnx")
    onnx.save(model, path)
    return path


def _normal(*shape, scale=0.3):
    return lambda rng: (rng.normal(size=shape) * scale).astype(np.float32)


def _positive(*shape):
    return lambda rng: rng.uniform(0.5, 1.5, shape).astype(np.float32)


def ir_block(tmp_path):
    """IR-ResNet pattern: mean/scale preprocessing, conv + BN + PReLU stem, a stride-2 unit BN-conv-BN-PReLU-conv-BN
    with a conv1x1 + BN shortcut, Add, BN, Flatten, Gemm, BN (the embedding)."""
    n = helper.make_node
    bn = lambda x, p, y: n("BatchNormalization", [x, f"{p}_g", f"{p}_b", f"{p}_m", f"{p}_v"], [y], name=y,  # noqa
                           epsilon=2e-5)
    nodes = [
        n("Sub", ["data", "mean"], ["centred"], name="sub"), n("Mul", ["centred", "scale"], ["x0"], name="mul"),
        n("Conv", ["x0", "w_stem"], ["c0"], name="stem", pads=[1, 1, 1, 1]), bn("c0", "bn0", "b0"),
        n("PRelu", ["b0", "a0"], ["p0"], name="prelu0"),
        bn("p0", "bn1", "b1"), n("Conv", ["b1", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        bn("c1", "bn2", "b2"), n("PRelu", ["b2", "a1"], ["p1"], name="prelu1"),
        n("Conv", ["p1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]), bn("c2", "bn3", "b3"),
        n("Conv", ["p0", "w_sc"], ["sc"], name="shortcut", strides=[2, 2]), bn("sc", "bn4", "b4"),
        n("Add", ["b3", "b4"], ["u"], name="add"), bn("u", "bn5", "b5"),
        n("Flatten", ["b5"], ["f"], name="flatten", axis=1),
        n("Gemm", ["f", "fc_w", "fc_b"], ["g"], name="fc", transB=1), bn("g", "bn6", "embedding"),
    ]
    inits = {"mean": np.float32(127.5), "scale": np.float32(1 / 128), "w_stem": _normal(8, 3, 3, 3),
             "a0": _normal(8, 1, 1, scale=0.1), "w1": _normal(8, 8, 3, 3), "a1": _normal(8, 1, 1, scale=0.1),
             "w2": _normal(8, 8, 3, 3), "w_sc": _normal(8, 8, 1, 1), "fc_w": _normal(12, 8 * 8 * 8, scale=0.05),
             "fc_b": _normal(12)}
    for p, c in (("bn0", 8), ("bn1", 8), ("bn2", 8), ("bn3", 8), ("bn4", 8), ("bn5", 8), ("bn6", 12)):
        inits.update({f"{p}_g": _positive(c), f"{p}_b": _normal(c), f"{p}_m": _normal(c), f"{p}_v": _positive(c)})
    return _save(tmp_path, "ir_block", nodes, inits, 12)


def mobilefacenet_block(tmp_path):
    """MobileFaceNet pattern: conv stride 2, depthwise (group = channels) and grouped convs, Relu, max and average
    pooling, a global depthwise conv, GlobalAveragePool, Concat, Transpose, Reshape, MatMul, Div."""
    n = helper.make_node
    nodes = [
        n("Conv", ["data", "w0", "b0"], ["c0"], name="conv0", pads=[1, 1, 1, 1], strides=[2, 2]),
        n("Relu", ["c0"], ["r0"], name="relu0"),
        n("Conv", ["r0", "w_dw"], ["dw"], name="depthwise", pads=[1, 1, 1, 1], group=8),
        n("Conv", ["dw", "w_g"], ["gc"], name="grouped", group=2),
        n("MaxPool", ["gc"], ["mp"], name="maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("AveragePool", ["gc"], ["ap"], name="avgpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("Concat", ["mp", "ap"], ["cat"], name="concat", axis=1),
        n("Conv", ["cat", "w_gdc"], ["gdc"], name="gdc", group=16),
        n("GlobalAveragePool", ["cat"], ["gap"], name="gap"),
        n("Add", ["gdc", "gap"], ["s"], name="add"),
        n("Transpose", ["s"], ["t"], name="transpose", perm=[0, 2, 3, 1]),
        n("Reshape", ["t", "shape"], ["flat"], name="reshape"),
        n("MatMul", ["flat", "proj"], ["m"], name="matmul"),
        n("Div", ["m", "two"], ["embedding"], name="div"),
    ]
    inits = {"w0": _normal(8, 3, 3, 3, scale=0.01), "b0": _normal(8), "w_dw": _normal(8, 1, 3, 3),
             "w_g": _normal(8, 4, 1, 1), "w_gdc": _normal(16, 1, 4, 4), "shape": np.array([-1, 16], np.int64),
             "proj": _normal(16, 10), "two": np.float32(2.0)}
    return _save(tmp_path, "mobilefacenet_block", nodes, inits, 10)


@pytest.mark.parametrize("make", [ir_block, mobilefacenet_block])
def test_matches_onnxruntime(make, tmp_path):
    """Random 0-255 images and 8-bit rendered chips (resized to 16x16 by taking every 7th pixel): max |delta|."""
    path = make(tmp_path)
    recognizer = load(f"onnx:{path}:size={SIZE},template=arcface112,scale=255")
    rng = np.random.default_rng(1)
    chips = model_fixtures.rendered_chips("arcface112", 2)[:, ::7, ::7][:, :SIZE, :SIZE]
    images = np.concatenate([rng.uniform(0, 1, (3, SIZE, SIZE, 3)), chips]).astype(np.float32)
    ours = np.asarray(recognizer.embed(recognizer.params, images))
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    reference = session.run(["embedding"], {"data": np.transpose(images * 255.0, (0, 3, 1, 2))})[0]
    delta = np.abs(ours - reference).max()
    print(f"{make.__name__}: max |delta| {delta:.3g}, max |value| {np.abs(reference).max():.3g}")
    assert ours.shape == reference.shape and delta <= TOLERANCE


def test_unsupported_op_names_op_and_node(tmp_path):
    node = helper.make_node("Einsum", ["data", "data"], ["embedding"], name="mystery", equation="bchw,bchw->bc")
    path = _save(tmp_path, "bad", [node], {}, 3)
    with pytest.raises(importer.OnnxFormatError, match="node 'mystery': op 'Einsum' is not supported"):
        load(f"onnx:{path}:size={SIZE}")


def test_options_and_errors(tmp_path):
    path = mobilefacenet_block(tmp_path)
    recognizer = load(f"onnx:{path}:size={SIZE},channels=bgr,mean=127.5,std=128,threshold=0.25,template=arcface112")
    assert (recognizer.input_size, recognizer.threshold, recognizer.metric) == (SIZE, 0.25, "cosine")
    with pytest.raises(ValueError, match="option channels=gbr"):
        load(f"onnx:{path}:channels=gbr")
    with pytest.raises(ValueError, match="no default alignment template for input size 16"):
        load(f"onnx:{path}")
    with pytest.raises(ValueError, match="does not exist"):
        load(f"onnx:{tmp_path / 'missing.onnx'}")

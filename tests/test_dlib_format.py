"""dlib's .dat reader: integer coding, the real network file, and rejection of bad files."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simadv_jax.recognizers import dlib_format
from simadv_jax.recognizers.dlib_format import DlibFormatError, decode_int
from simadv_jax.recognizers.dlib_resnet import DlibResNet, model_path


@pytest.fixture(scope="module")
def path():
    return model_path()


@pytest.fixture(scope="module")
def raw(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def network(path):
    return dlib_format.read_network(path)


@pytest.mark.parametrize("data, value, end", [
    (b"\x01\x00", 0, 2),
    (b"\x01\x96", 150, 2),
    (b"\x02\x80\x12", 0x1280, 3),          # 4736 = 32*3*7*7 + 32, the stem conv's parameter count
    (b"\x81\x05", -5, 2),
    (b"\x81\x1c", -28, 2),
    (b"\x03\x0a\xd7\xa3", 0xA3D70A, 4),     # mantissa of float32(0.04): 10737418 * 2**-28
    (b"\x88" + b"\xff" * 7 + b"\x7f", -(2**63 - 1), 9),
    (b"\x01\x07\x02", 7, 2),               # stops after its own bytes
])
def test_decode_int_hand_computed(data, value, end):
    assert decode_int(data) == (value, end)


def test_decode_int_offset():
    assert decode_int(b"\xff\x02\x01\x01", 1) == (257, 4)


@pytest.mark.parametrize("data, message", [
    (b"", "truncated: integer expected at byte 0"),
    (b"\x00", "control byte 0x00"),
    (b"\x09" + b"\x00" * 9, "control byte 0x09"),
    (b"\x11\x00", "control byte 0x11"),
    (b"\x03\x01\x02", "truncated: integer at byte 0 needs 3 bytes"),
])
def test_decode_int_rejects(data, message):
    with pytest.raises(DlibFormatError, match=message):
        decode_int(data)


def test_header_fields(network, path):
    assert network.path == path
    assert network.input_size == 150
    # loss_metric_2 stores float32 values: margin 0.04, distance threshold 0.6.
    assert network.margin == float(np.float32(0.04))
    assert network.distance_threshold == float(np.float32(0.6))
    np.testing.assert_array_equal(np.float32(network.mean_rgb), np.float32([122.782, 117.001, 104.298]))


def test_tensor_counts_and_shapes(network):
    assert len(network.tensors) == 59
    assert network.num_values == 5_614_592
    assert all(t.dtype == np.float32 for t in network.tensors)
    assert len(network.conv) == 29 and len(network.affine) == 29
    assert network.conv[0][0].shape == (32, 3, 7, 7)
    expected_in = [32] * 7 + [64] * 8 + [128] * 6 + [256] * 8
    expected_out = [32] * 6 + [64] * 8 + [128] * 6 + [256] * 8
    assert [f.shape for f, _ in network.conv[1:]] == [(o, i, 3, 3) for i, o in
                                                      zip(expected_in[:-1], expected_out)]
    assert [b.shape for _, b in network.conv] == [(f.shape[0],) for f, _ in network.conv]
    assert [g.shape for g, _ in network.affine] == [b.shape for _, b in network.conv]
    assert network.fc.shape == (256, 128)
    assert all(np.isfinite(t).all() for t in network.tensors)


def test_layer_sequence(network):
    layers = network.layers
    assert len(layers) == 108  # 29 con, 29 affine, 29 relu, 14 add_prev, 5 avg_pool, max_pool, fc
    assert layers[:4] == ("con_4", "affine_", "relu_", "max_pool_2")
    # a plain block, then the first downsampling block (its shortcut pools after the convs)
    assert layers[4:11] == ("con_4", "affine_", "relu_", "con_4", "affine_", "add_prev_", "relu_")
    assert layers[25:33] == ("con_4", "affine_", "relu_", "con_4", "affine_", "avg_pool_2", "add_prev_", "relu_")
    assert layers[-2:] == ("avg_pool_2", "fc_2")


def test_tensors_are_read_from_the_right_bytes(network, raw):
    # The stem conv's parameter tensor follows its "con_4" name and the tensor header
    # version 2, dims (4736, 1, 1, 1); located here by hand, independent of the reader.
    header = b"\x05con_4" + b"\x01\x02" + b"\x02\x80\x12" + b"\x01\x01" * 3
    start = raw.index(header) + len(header)
    expected = np.frombuffer(raw[start:start + 4 * 4736], "<f4")
    np.testing.assert_array_equal(network.tensors[0], expected)
    np.testing.assert_array_equal(network.conv[0][0].reshape(-1), expected[:4704])
    np.testing.assert_array_equal(network.conv[0][1], expected[4704:])
    # The 256x128 fc matrix is the last parameter tensor: 131072 floats after its header.
    # "fc_2", num_outputs 128, num_inputs 256, tensor version 2 and dims (256, 128, 1, 1).
    fc_header = b"\x04fc_2\x01\x80\x02\x00\x01" + b"\x01\x02" + b"\x02\x00\x01\x01\x80" + b"\x01\x01" * 2
    start = raw.index(fc_header) + len(fc_header)
    np.testing.assert_array_equal(network.fc.reshape(-1), np.frombuffer(raw[start:start + 4 * 256 * 128], "<f4"))


def test_flax_params_match_module_and_layouts(network):
    params = dlib_format.flax_params(network)
    abstract = jax.eval_shape(DlibResNet().init, jax.random.key(0), jnp.zeros((1, 150, 150, 3)))
    assert jax.tree.structure(params) == jax.tree.structure(abstract)
    for leaf, ref in zip(jax.tree.leaves(params), jax.tree.leaves(abstract)):
        assert leaf.shape == ref.shape and leaf.dtype == np.float32
    p = params["params"]
    filters, biases = network.conv[2 * 9 + 1]  # block 9, first conv: (128, 128, 3, 3)
    kernel = p["block_9"]["conv_a"]["kernel"]  # HWIO
    assert kernel[2, 0, 5, 7] == filters[7, 5, 2, 0] and kernel[1, 2, 100, 3] == filters[3, 100, 1, 2]
    np.testing.assert_array_equal(p["block_9"]["conv_a"]["bias"], biases)
    gamma, beta = network.affine[4]  # block 1, second affine
    np.testing.assert_array_equal(p["block_1"]["affine_b"]["scale"], gamma)
    np.testing.assert_array_equal(p["block_1"]["affine_b"]["bias"], beta)
    np.testing.assert_array_equal(p["fc"]["kernel"], network.fc)


@pytest.mark.parametrize("keep", [2, 120, 400, 20_000, -1])
def test_rejects_truncated_copy(raw, tmp_path, keep):
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(raw[:keep])
    with pytest.raises(DlibFormatError, match="truncated") as info:
        dlib_format.read_network(truncated)
    assert str(truncated) in str(info.value)


def test_rejects_other_dlib_file(tmp_path):
    # A real dlib file of another kind: the 5-point shape predictor from the same package.
    from importlib.resources import files

    other = str(files("face_recognition_models") / "models" / "shape_predictor_5_face_landmarks.dat")
    with pytest.raises(DlibFormatError, match="loss") as info:
        dlib_format.read_network(other)
    assert other in str(info.value)


def test_rejects_garbage_missing_and_trailing(raw, tmp_path):
    garbage = tmp_path / "garbage.dat"
    garbage.write_bytes(b"not a dlib network at all")
    with pytest.raises(DlibFormatError, match="garbage.dat.*loss layer version"):
        dlib_format.read_network(garbage)
    with pytest.raises(DlibFormatError, match="missing.dat.*cannot read"):
        dlib_format.read_network(tmp_path / "missing.dat")
    longer = tmp_path / "longer.dat"
    longer.write_bytes(raw + b"\x01\x00")
    with pytest.raises(DlibFormatError, match="2 unexpected bytes after the network"):
        dlib_format.read_network(longer)


def test_rejects_wrong_architecture(raw, tmp_path):
    # input_rgb_image_sized rows 150 -> 151, and the stem's 32 filters -> 33.
    marker = b"input_rgb_image_sized"
    rows = raw.index(b"\x01\x96\x01\x96", raw.index(marker))
    bad = tmp_path / "rows.dat"
    bad.write_bytes(raw[:rows] + b"\x01\x97" + raw[rows + 2:])
    with pytest.raises(DlibFormatError, match="input rows: expected 150, found 151"):
        dlib_format.read_network(bad)
    params_end = raw.index(b"\x05con_4") + 6 + 11 + 4 * 4736
    assert raw[params_end:params_end + 2] == b"\x01\x20"  # num_filters = 32
    bad = tmp_path / "filters.dat"
    bad.write_bytes(raw[:params_end] + b"\x01\x21" + raw[params_end + 2:])
    with pytest.raises(DlibFormatError, match="num_filters: expected 32, found 33"):
        dlib_format.read_network(bad)

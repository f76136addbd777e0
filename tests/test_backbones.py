"""IR-ResNet (+SE/CBAM) and MobileFaceNet: parameter counts against their definitions, shapes, attention blocks."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simadv_jax.recognizers import zoo
from simadv_jax.recognizers.iresnet import ChannelAttention, IResNet, SpatialAttention, SqueezeExcitation
from simadv_jax.recognizers.mobilefacenet import BOTTLENECKS

TINY_IR = {"stage_widths": (8, 16), "stage_units": (1, 2), "stem_width": 8, "embedding_dim": 24, "reduction": 4}
TINY_MFN = {"bottlenecks": ((2, 8, 2, 2), (2, 16, 1, 2), (2, 16, 1, 1)), "stem_width": 8, "conv_width": 32,
            "embedding_dim": 16}


def param_count(model, size):
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes["params"])), shapes


def ir_count(units, widths=(64, 128, 256, 512), attention="ir", kernel=3, feature=7, dim=512):
    """Parameters of the insightface IR definition, counted by hand (BN = scale + bias, PReLU per channel)."""
    n = 3 * 3 * 3 * 64 + 2 * 64 + 64  # stem conv, BN, PReLU
    c_in = 64
    for count, c in zip(units, widths):
        for unit in range(count):
            n += 2 * c_in + 9 * c_in * c + 2 * c + c + 9 * c * c + 2 * c  # BN conv BN PReLU conv BN
            if unit == 0:
                n += c_in * c + 2 * c  # 1x1 shortcut conv + BN
            if attention in ("ir_se", "ir_cbam_se"):
                n += 2 * c * (c // 16)
            if attention in ("ir_cbam", "ir_cbam_se"):
                n += 2 * c * (c // 16) + 2 * kernel * kernel
            c_in = c
    return n + 2 * c_in + (feature * feature * c_in * dim + dim) + 2 * dim  # BN, Dense, BN


def mobilefacenet_count(dim=128):
    n = 27 * 64 + 3 * 64 + 9 * 64 + 3 * 64  # stem conv/BN/PReLU, depthwise/BN/PReLU
    c_in = 64
    for t, c, repeats, _ in BOTTLENECKS:
        for _ in range(repeats):
            h = c_in * t
            n += c_in * h + 3 * h + 9 * h + 3 * h + h * c + 2 * c
            c_in = c
    return n + 128 * 512 + 3 * 512 + 49 * 512 + 2 * 512 + 512 * dim + 2 * dim


@pytest.mark.parametrize("name", ["ir50", "ir_se50", "ir_cbam50", "ir_cbam_se50", "ir100"])
def test_iresnet_parameter_count_matches_definition(name):
    units = (3, 13, 30, 3) if name.endswith("100") else (3, 4, 14, 3)
    count, shapes = param_count(zoo.create(name), 112)
    assert count == ir_count(units, attention=name[:-3] if name.endswith("100") else name[:-2])
    assert shapes["params"]["fc"]["kernel"].shape == (7 * 7 * 512, 512)


def test_ir50_is_insightface_size():
    count, _ = param_count(zoo.create("ir50"), 112)
    assert abs(count - 43.6e6) < 0.05e6  # insightface iresnet50: 43.6M


def test_cbam_spatial_kernel_7():
    count, _ = param_count(zoo.create("ir_cbam50", spatial_kernel=7), 112)
    assert count == ir_count((3, 4, 14, 3), attention="ir_cbam", kernel=7)


@pytest.mark.parametrize("dim", [128, 512])
def test_mobilefacenet_parameter_count(dim):
    count, _ = param_count(zoo.create("mobilefacenet", embedding_dim=dim), 112)
    assert count == mobilefacenet_count(dim)
    if dim == 128:
        assert 0.95e6 < count < 1.05e6  # "about 1M"


def test_full_size_output_shapes():
    for name in ("ir_cbam50", "mobilefacenet"):
        model = zoo.create(name)
        out = jax.eval_shape(
            lambda: model.init_with_output(jax.random.key(0), jnp.zeros((2, 112, 112, 3)))[0]
        )
        chex.assert_shape(out, (2, 512 if name != "mobilefacenet" else 128))


@pytest.fixture(scope="module")
def tiny_images():
    return jax.random.uniform(jax.random.key(1), (3, 32, 32, 3))


@pytest.mark.parametrize("name", ["ir50", "ir_se50", "ir_cbam50", "ir_cbam_se50", "mobilefacenet"])
def test_tiny_forward_train_and_eval(name, tiny_images):
    model = zoo.create(name, **(TINY_MFN if name == "mobilefacenet" else TINY_IR))
    variables = model.init(jax.random.key(0), tiny_images)  # eager: op compilations are shared across tests
    dim = TINY_MFN["embedding_dim"] if name == "mobilefacenet" else TINY_IR["embedding_dim"]
    out = model.apply(variables, tiny_images)
    chex.assert_shape(out, (3, dim))
    chex.assert_type(out, jnp.float32)
    chex.assert_tree_all_finite(out)
    chex.assert_trees_all_equal(out, model.apply(variables, tiny_images))  # eval: deterministic
    train_out, updates = model.apply(
        variables, tiny_images, train=True, rngs={"dropout": jax.random.key(2)}, mutable=["batch_stats"]
    )
    chex.assert_shape(train_out, (3, dim))
    assert not np.allclose(out, train_out)  # batch statistics (and dropout) instead of running averages
    batch_stats = updates["batch_stats"]
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables["batch_stats"], batch_stats)
    assert all(jax.tree.leaves(changed))  # every BN updated its running statistics


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def test_squeeze_excitation_by_hand():
    x = np.arange(2 * 2 * 2 * 4, dtype=np.float32).reshape(2, 2, 2, 4) / 10 - 1
    w1 = np.array([[0.5, -1.0], [0.25, 0.5], [-0.5, 1.0], [1.0, 0.0]], np.float32)  # C=4 -> 2
    w2 = np.array([[1.0, -1.0, 0.5, 0.0], [0.0, 2.0, -1.0, 1.0]], np.float32)  # 2 -> 4
    params = {"params": {"fc1": {"kernel": w1}, "fc2": {"kernel": w2}}}
    out = SqueezeExcitation(reduction=2).apply(params, x)
    pooled = x.mean(axis=(1, 2))  # (B, C)
    gate = sigmoid(np.maximum(pooled @ w1, 0) @ w2)
    np.testing.assert_allclose(out, x * gate[:, None, None, :], rtol=1e-6)


def test_cbam_by_hand():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 3, 4, 4)).astype(np.float32)
    w1 = rng.normal(size=(4, 2)).astype(np.float32)
    w2 = rng.normal(size=(2, 4)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, 2, 1)).astype(np.float32)
    channel = ChannelAttention(reduction=2).apply({"params": {"fc1": {"kernel": w1}, "fc2": {"kernel": w2}}}, x)
    mlp = lambda v: np.maximum(v @ w1, 0) @ w2  # noqa: E731
    expected = x * sigmoid(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))[:, None, None, :]
    np.testing.assert_allclose(channel, expected, rtol=1e-5, atol=1e-6)

    spatial = SpatialAttention(kernel=3).apply({"params": {"conv": {"kernel": kernel}}}, expected)
    stats = np.stack([expected.mean(-1), expected.max(-1)], axis=-1)[0]  # (H, W, 2)
    padded = np.pad(stats, ((1, 1), (1, 1), (0, 0)))
    logit = np.zeros((3, 4))
    for i in range(3):
        for j in range(4):
            logit[i, j] = np.sum(padded[i : i + 3, j : j + 3, :] * kernel[..., 0])
    np.testing.assert_allclose(spatial[0], expected[0] * sigmoid(logit)[..., None], rtol=1e-5, atol=1e-6)


def test_bad_options_are_clear_errors(tiny_images):
    with pytest.raises(ValueError, match="unknown name 'ir_foo50'"):
        zoo.create("ir_foo50")
    with pytest.raises(ValueError, match="unknown option"):
        zoo.create("ir50", widths=(1, 2))
    with pytest.raises(ValueError, match="spatial_kernel"):
        IResNet(attention="ir_cbam", spatial_kernel=5).init(jax.random.key(0), tiny_images)
    with pytest.raises(ValueError, match="attention"):
        IResNet(attention="cbam").init(jax.random.key(0), tiny_images)

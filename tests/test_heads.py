"""ArcFace / CosFace margin heads against logits computed by hand, jitted and not."""
import functools
import math

import chex

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simadv_jax.training.heads import MarginHead, arcface_logits, cosface_logits

COSINE = np.array([[0.8, 0.3, -0.2], [0.1, -0.95, 0.6], [-0.3, 0.0, 0.9]], np.float32)
LABELS = np.array([0, 1, 0], np.int32)  # row 1: theta = acos(-0.95) = 2.82 rad, theta + 0.5 > pi


def arcface_by_hand(cosine, labels, s, m, easy=False):
    out = s * cosine.astype(np.float64)
    for i, label in enumerate(labels):
        c = float(cosine[i, label])
        theta = math.acos(c)
        if easy:
            target = math.cos(theta + m) if c > 0 else c
        elif theta + m <= math.pi:  # cos(theta + m) still decreasing in theta
            target = math.cos(theta + m)
        else:  # wrap-around: CosFace-like margin sin(pi - m) * m
            target = c - math.sin(math.pi - m) * m
        out[i, label] = s * target
    return out


class MarginLogitsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_arcface_logits_with_wraparound(self):
        logits = self.variant(arcface_logits)(jnp.asarray(COSINE), jnp.asarray(LABELS))
        chex.assert_shape(logits, COSINE.shape)
        expected = arcface_by_hand(COSINE, LABELS, 64.0, 0.5)
        np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-4)
        # the wrap-around row: s * (cos - sin(pi - m) m), not s * cos(theta + m) (which would *raise* the logit)
        assert float(logits[1, 1]) == pytest.approx(64 * (-0.95 - math.sin(math.pi - 0.5) * 0.5), rel=1e-5)
        assert 64 * math.cos(math.acos(-0.95) + 0.5) > float(logits[1, 1])
        # non-target entries are s * cos
        np.testing.assert_allclose(logits[0, 1:], 64 * COSINE[0, 1:], rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_arcface_easy_margin_and_custom_values(self):
        easy = functools.partial(arcface_logits, scale=32.0, margin=0.3, easy_margin=True)
        logits = self.variant(easy)(jnp.asarray(COSINE), jnp.asarray(LABELS))
        np.testing.assert_allclose(logits, arcface_by_hand(COSINE, LABELS, 32.0, 0.3, easy=True), rtol=1e-5,
                                   atol=1e-4)
        assert float(logits[1, 1]) == pytest.approx(32 * -0.95)  # cos <= 0: no margin

    @chex.variants(with_jit=True, without_jit=True)
    def test_cosface_logits(self):
        logits = self.variant(cosface_logits)(jnp.asarray(COSINE), jnp.asarray(LABELS))
        chex.assert_shape(logits, COSINE.shape)
        expected = 64.0 * COSINE.astype(np.float64)
        expected[np.arange(3), LABELS] -= 64.0 * 0.35
        np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-4)

    @chex.variants(with_jit=True, without_jit=True)
    def test_margin_head_apply(self):
        rng = np.random.default_rng(1)
        embeddings = rng.normal(size=(3, 5)).astype(np.float32)
        kernel = rng.normal(size=(4, 5)).astype(np.float32)
        labels = np.array([3, 0, 2], np.int32)
        head = MarginHead(4)
        logits, cosine = self.variant(head.apply)({"params": {"kernel": kernel}}, embeddings, labels)
        chex.assert_shape([logits, cosine], (3, 4))
        np.testing.assert_allclose(logits, arcface_by_hand(np.asarray(cosine), labels, 64.0, 0.5), rtol=1e-5,
                                   atol=1e-4)


def test_arcface_gradient_is_finite_at_cos_one():
    grad = jax.grad(lambda c: arcface_logits(c, jnp.array([0, 1])).sum())(jnp.array([[1.0, -1.0], [1.0, -1.0]]))
    assert bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.parametrize("kind,margin", [("arcface", 0.5), ("cosface", 0.35)])
def test_margin_head_normalizes_and_uses_defaults(kind, margin):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(3, 5)).astype(np.float32) * 7.0
    kernel = rng.normal(size=(4, 5)).astype(np.float32) * 0.1
    labels = np.array([3, 0, 2], np.int32)
    logits, cosine = MarginHead(4, kind).apply({"params": {"kernel": kernel}}, embeddings, labels)
    x_hat = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    w_hat = kernel / np.linalg.norm(kernel, axis=1, keepdims=True)
    expected_cosine = x_hat @ w_hat.T
    np.testing.assert_allclose(cosine, expected_cosine, rtol=1e-5, atol=1e-6)
    if kind == "arcface":
        expected = arcface_by_hand(expected_cosine, labels, 64.0, margin)
    else:
        expected = 64.0 * expected_cosine
        expected[np.arange(3), labels] -= 64.0 * margin
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-3)


def test_margin_head_init_shape_and_bad_kind():
    variables = MarginHead(7).init(jax.random.key(0), jnp.ones((2, 5)), jnp.zeros((2,), jnp.int32))
    assert variables["params"]["kernel"].shape == (7, 5)
    with pytest.raises(ValueError, match="head"):
        MarginHead(7, "sphereface").init(jax.random.key(0), jnp.ones((2, 5)), jnp.zeros((2,), jnp.int32))

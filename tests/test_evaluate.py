"""evaluate: the batched rho -> scores path against an unbatched reference computation."""
import functools
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simadv_jax import simulator
from simadv_jax.batching import map_batches
from simadv_jax.evaluate import make_evaluate, make_renderer
from tests.search_fixtures import TINY_SIZE, head, space, tiny_recognizer
from tests.subprocesses import last_line, run_script

SPEC = "shape[0:2]=-2:2,texture[0:2]=-2:2,yaw=-1:1"
RHO = np.array([[0, 0, 0, 0, 0], [1, -1, 2, 0.5, 0.6], [-2, 2, -1, 1, -1], [0.5, 0.5, 0.5, 0.5, 0.2]], np.float32)


@jax.jit
def _render_one(head, scene):
    return simulator.render_pair(*head, scene, "arcface112", TINY_SIZE)


def _manual_similarity(sp, recognizer, rho):
    """Independent path: render one pair on its own (unbatched), embed each image, cosine in numpy."""
    ref, probe = _render_one(head(), sp.decode(rho))
    a = np.asarray(recognizer.embed(recognizer.params, ref.image[None]))[0]
    b = np.asarray(recognizer.embed(recognizer.params, probe.image[None]))[0]
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@functools.lru_cache(None)
def _genuine():
    return make_evaluate(space(SPEC), *head(), tiny_recognizer())


def test_genuine_scores_match_unbatched_pairs():
    sp, recognizer = space(SPEC), tiny_recognizer()
    evaluation = _genuine()
    scores, valid = evaluation.evaluate(jnp.asarray(RHO))
    assert scores.shape == (4,) and bool(jnp.all(valid))
    for i in (0, 1):
        assert abs(float(scores[i]) - _manual_similarity(sp, recognizer, RHO[i])) < 1e-4
    assert abs(float(scores[0]) - 1.0) < 1e-5  # frontal probe == reference
    assert evaluation.loss_threshold == evaluation.similarity_threshold == recognizer.threshold
    assert evaluation.scenario.sign == 1.0


def test_constant_reference_is_embedded_once_and_matches():
    sp = space("yaw=-1:1")
    evaluation = make_evaluate(sp, *head(), tiny_recognizer())
    assert sp.reference_is_constant and evaluation.data.reference is not None
    scores, valid = evaluation.evaluate(jnp.asarray(RHO[:, -1:]))
    assert bool(jnp.all(valid))
    # The same scenes through the per-sample reference path (identity 0 searched in SPEC).
    same_scenes = np.concatenate([np.zeros((4, 4), np.float32), RHO[:, -1:]], axis=1)
    expected = _genuine().evaluate(jnp.asarray(same_scenes)).loss
    np.testing.assert_allclose(np.asarray(scores), np.asarray(expected), atol=1e-5)


def test_impostor_negates_and_needs_two_identities():
    recognizer = tiny_recognizer()
    with pytest.raises(ValueError, match="--scenario=impostor"):
        make_evaluate(space(SPEC), *head(), recognizer, scenario="impostor")
    with pytest.raises(ValueError, match="--scenario"):
        make_evaluate(space(SPEC), *head(), recognizer, scenario="twins")
    sp = space("shape[0:2]=-2:2,ref.shape[0:2]=-2:2")
    evaluation = make_evaluate(sp, *head(), recognizer, scenario="impostor")
    scores, valid = evaluation.evaluate(jnp.asarray([[1, 1, 1, 1], [2, -2, -2, 2]], jnp.float32))
    assert evaluation.loss_threshold == -recognizer.threshold and evaluation.scenario.sign == -1.0
    assert evaluation.similarity_threshold == recognizer.threshold and bool(jnp.all(valid))
    host = evaluation.score_points(np.asarray([[1, 1, 1, 1], [2, -2, -2, 2]], np.float32))
    np.testing.assert_allclose(host.similarity, -np.asarray(scores), atol=1e-6)  # the sign undone in one place
    np.testing.assert_array_equal(host.adversarial, host.similarity > recognizer.threshold)
    assert abs(float(scores[0]) + 1.0) < 1e-5  # same identity twice: similarity 1, loss -1
    assert float(scores[0]) < float(scores[1]) <= 1.0


def test_non_finite_embeddings_are_invalid():
    recognizer = tiny_recognizer()
    nan_row_1 = recognizer.replace(apply_fn=lambda p, x: jnp.where(
        jnp.arange(x.shape[0])[:, None] == 1, jnp.nan, recognizer.apply_fn(p, x)))
    # One embed call on the pairs, interleaved: rows 2i and 2i + 1 are sample i's reference and probe, so
    # row 1 is sample 0's probe.
    scores, valid = make_evaluate(space(SPEC), *head(), nan_row_1).evaluate(jnp.asarray(RHO[:3]))
    np.testing.assert_array_equal(np.asarray(valid), [False, True, True])
    assert not np.isfinite(float(scores[0]))


def test_sharded_over_four_devices_matches():
    # B = 3 is padded to 4 inside the call; the 4-device result must equal the 1-device one.
    script = f"""
import json, jax, jax.numpy as jnp, numpy as np
from simadv_jax.evaluate import make_evaluate
from tests.search_fixtures import TINY_SIZE, head, space, tiny_recognizer
assert len(jax.devices()) == 4
rho = jnp.asarray(np.array({RHO[:3].tolist()}, np.float32))
out = [make_evaluate(space({SPEC!r}), *head(), tiny_recognizer(), devices=d).evaluate(rho)
       for d in (jax.devices()[:1], None)]
host = make_evaluate(space({SPEC!r}), *head(), tiny_recognizer()).score_points(np.asarray(rho))
print(json.dumps([[np.asarray(o.loss).tolist(), np.asarray(o.valid).tolist()] for o in out]
                 + [[host.loss.tolist(), host.valid.tolist()]]))
"""
    out = run_script(script, devices=4, timeout=300)
    (single, single_valid), (sharded, sharded_valid), (host, host_valid) = json.loads(last_line(out))
    np.testing.assert_allclose(host, single, atol=1e-5)
    assert all(host_valid)
    np.testing.assert_allclose(sharded, single, atol=1e-5)
    assert all(sharded_valid) and all(single_valid)


# ---- the host batcher -------------------------------------------------------------------------------------


def test_map_batches_pads_chunks_and_drops_padding():
    calls = []

    def fn(x, y):
        calls.append(x.shape)
        return {"sum": x + y, "first": x[:, 0]}

    x = np.arange(14, dtype=np.float32).reshape(7, 2)
    out = map_batches(fn, [x, 2 * x], batch_size=3)
    np.testing.assert_array_equal(out["sum"], 3 * x)
    np.testing.assert_array_equal(out["first"], x[:, 0])
    assert calls == [(3, 2)] * 3  # 7 rows: 3 + 3 + 1 padded to 3, always the compiled shape
    empty = map_batches(fn, [x[:0], x[:0]], batch_size=3)
    assert empty["sum"].shape == (0, 2) and empty["first"].shape == (0,)
    with pytest.raises(ValueError, match="differ in length"):
        map_batches(fn, [x, x[:3]], batch_size=3)


def test_score_points_equals_evaluate_for_any_count():
    evaluation = _genuine()
    rho = np.concatenate([RHO, RHO[::-1] * 0.5, RHO[:1]])  # 9 points: not a multiple of the batch
    direct = evaluation.evaluate(jnp.asarray(rho))
    for batch in (8, 32):
        small = make_evaluate(space(SPEC), *head(), tiny_recognizer(), batch_size=batch)
        host = small.score_points(rho)
        chex.assert_shape([host.loss, host.similarity, host.valid, host.adversarial], (9,))
        np.testing.assert_allclose(host.loss, np.asarray(direct.loss), atol=1e-6)
        np.testing.assert_array_equal(host.valid, np.asarray(direct.valid))
        np.testing.assert_array_equal(host.adversarial, host.valid & (host.loss < small.loss_threshold))
    assert evaluation.score_points(rho[:0]).loss.shape == (0,)


def test_images_are_the_crops_that_were_scored():
    evaluation = _genuine()
    pairs = evaluation.images(RHO)
    chex.assert_shape([pairs.reference, pairs.probe], (4, TINY_SIZE, TINY_SIZE, 3))
    assert pairs.valid.all()
    # The same pixels as an independent single render (float rounding of a different program aside) ...
    ref, probe = _render_one(head(), space(SPEC).decode(RHO[1]))
    np.testing.assert_allclose(pairs.probe[1], np.asarray(probe.image), atol=2e-5)
    np.testing.assert_allclose(pairs.reference[1], np.asarray(ref.image), atol=2e-5)
    # ... and scoring exactly these images gives the points' scores.
    rescored = evaluation.score_images(pairs.reference, pairs.probe)
    np.testing.assert_allclose(rescored.loss, evaluation.score_points(RHO).loss, atol=1e-6)
    embeddings = evaluation.embed_images(np.concatenate([pairs.reference, pairs.probe]))
    a, b = embeddings[:4], embeddings[4:]
    cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(cosine, rescored.similarity, atol=1e-5)


def test_framed_renderer_matches_the_simulator():
    sp = space(SPEC)
    view = simulator.View.framed(32, face_width_px=14.0)
    images = make_renderer(sp, *head(), view).images(RHO[:2])
    model, texture = head()
    one = simulator.render_framed(model, texture, sp.decode(RHO[1]).probe, resolution=32, face_width_px=14.0)
    np.testing.assert_allclose(images.probe[1], np.asarray(one.image), atol=2e-5)
    assert images.probe.shape == (2, 32, 32, 3) and images.valid.all()

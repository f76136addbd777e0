"""evaluate: the batched rho -> scores path against an unbatched reference computation."""
import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simadv_jax import simulator
from simadv_jax.evaluate import make_evaluate
from tests.search_fixtures import TINY_SIZE, head, space, tiny_recognizer

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
    assert evaluation.threshold == recognizer.threshold and evaluation.sign == 1.0


def test_constant_reference_is_embedded_once_and_matches():
    sp = space("yaw=-1:1")
    evaluation = make_evaluate(sp, *head(), tiny_recognizer())
    assert sp.reference_is_constant and evaluation.data[2] is not None
    scores, valid = evaluation.evaluate(jnp.asarray(RHO[:, -1:]))
    assert bool(jnp.all(valid))
    # The same scenes through the per-sample reference path (identity 0 searched in SPEC).
    same_scenes = np.concatenate([np.zeros((4, 4), np.float32), RHO[:, -1:]], axis=1)
    expected = _genuine().evaluate(jnp.asarray(same_scenes)).scores
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
    assert evaluation.threshold == -recognizer.threshold and evaluation.sign == -1.0 and bool(jnp.all(valid))
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
print(json.dumps([[np.asarray(o.scores).tolist(), np.asarray(o.valid).tolist()] for o in out]))
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (single, single_valid), (sharded, sharded_valid) = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(sharded, single, atol=1e-5)
    assert all(sharded_valid) and all(single_valid)

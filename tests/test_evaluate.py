"""evaluate: the batched rho -> scores path against an unbatched reference computation."""
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
from tests.search_fixtures import head, space, tiny_recognizer

SPEC = "shape[0:2]=-2:2,texture[0:2]=-2:2,yaw=-1:1"
RHO = np.array([[0, 0, 0, 0, 0], [1, -1, 2, 0.5, 0.6], [-2, 2, -1, 1, -1], [0.5, 0.5, 0.5, 0.5, 0.2]], np.float32)


def _manual_similarity(sp, recognizer, rho):
    """Independent path: render each pair on its own, embed, cosine in numpy."""
    model, texture = head()
    ref, probe = simulator.render_pair(model, texture, sp.decode(rho), recognizer.template, recognizer.input_size)
    a = np.asarray(recognizer.embed(recognizer.params, ref.image[None]))[0]
    b = np.asarray(recognizer.embed(recognizer.params, probe.image[None]))[0]
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_genuine_scores_match_unbatched_pairs():
    sp, recognizer = space(SPEC), tiny_recognizer()
    evaluation = make_evaluate(sp, *head(), recognizer)
    scores, valid = evaluation.evaluate(jnp.asarray(RHO))
    assert scores.shape == (4,) and bool(jnp.all(valid))
    for i in (0, 1):
        assert abs(float(scores[i]) - _manual_similarity(sp, recognizer, RHO[i])) < 1e-4
    assert abs(float(scores[0]) - 1.0) < 1e-5  # frontal probe == reference
    assert evaluation.threshold == recognizer.threshold and evaluation.sign == 1.0


def test_constant_reference_is_embedded_once_and_matches():
    sp, recognizer = space("yaw=-1:1,jaw=0:0.3"), tiny_recognizer()
    evaluation = make_evaluate(sp, *head(), recognizer)
    assert sp.reference_is_constant and evaluation.data[2] is not None
    rho = np.array([[0.0, 0.0], [0.7, 0.2]], np.float32)
    scores, valid = evaluation.evaluate(jnp.asarray(rho))
    assert bool(jnp.all(valid))
    assert abs(float(scores[1]) - _manual_similarity(sp, recognizer, rho[1])) < 1e-4


def test_impostor_negates_and_needs_two_identities():
    recognizer = tiny_recognizer()
    with pytest.raises(ValueError, match="--scenario=impostor"):
        make_evaluate(space(SPEC), *head(), recognizer, scenario="impostor")
    with pytest.raises(ValueError, match="--scenario"):
        make_evaluate(space(SPEC), *head(), recognizer, scenario="twins")
    sp = space("shape[0:2]=-2:2,ref.shape[0:2]=-2:2")
    evaluation = make_evaluate(sp, *head(), recognizer, scenario="impostor")
    rho = np.array([[1, 1, -1, -1]], np.float32)
    scores, _ = evaluation.evaluate(jnp.asarray(rho))
    assert evaluation.threshold == -recognizer.threshold
    assert abs(float(scores[0]) + _manual_similarity(sp, recognizer, rho[0])) < 1e-4


def test_non_finite_embeddings_are_invalid():
    recognizer = tiny_recognizer()
    nan_first = recognizer.replace(apply_fn=lambda p, x: jnp.where(
        jnp.arange(x.shape[0])[:, None] == 1, jnp.nan, recognizer.apply_fn(p, x)))
    scores, valid = make_evaluate(space("yaw=-1:1"), *head(), nan_first).evaluate(jnp.zeros((3, 1)))
    # The reference (embedded alone, row 0) is finite; probe row 1 is NaN.
    np.testing.assert_array_equal(np.asarray(valid), [True, False, True])


def test_sharded_over_four_devices_matches(tmp_path):
    sp, recognizer = space(SPEC), tiny_recognizer()
    expected = np.asarray(make_evaluate(sp, *head(), recognizer).evaluate(jnp.asarray(RHO[:3])).scores)
    script = f"""
import json, jax, jax.numpy as jnp, numpy as np
from simadv_jax.evaluate import make_evaluate
from tests.search_fixtures import head, space, tiny_recognizer
assert len(jax.devices()) == 4
ev = make_evaluate(space({SPEC!r}), *head(), tiny_recognizer())
scores, valid = ev.evaluate(jnp.asarray(np.array({RHO[:3].tolist()}, np.float32)))
print(json.dumps([np.asarray(scores).tolist(), np.asarray(valid).tolist()]))
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    scores, valid = json.loads(out.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert all(valid)

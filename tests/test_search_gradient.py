"""The white-box strategy and the gradient hand-over of the run loop: value_and_gradient against analytic
gradients, one tell against projected Adam by hand, smoothing, restarts, and the evaluation's gradient against
finite differences on the tiny recognizer (texture and light exactly; geometry finite: autodiff does not see a
silhouette sweep over pixels)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from simadv_jax import search
from simadv_jax.search.config import SearchConfig
from simadv_jax.setup import build_setup
from tests.search_fixtures import head, tiny_recognizer

LOWS, HIGHS = jnp.array([-2.0, -1.0, 0.0]), jnp.array([2.0, 1.0, 4.0])
A = jnp.array([0.5, -1.0, 2.0])


def quadratic(rho):
    """score = sum_d a_d rho_d^2, gradient 2 a rho; rho[0] > 1.5 gives a NaN score (reported valid)."""
    score = jnp.sum(A * rho**2, axis=-1)
    return jnp.where(rho[:, 0] > 1.5, jnp.nan, score), jnp.ones(rho.shape[0], bool)


def test_value_and_gradient_is_each_rows_own_gradient():
    rho = jax.random.uniform(jax.random.key(0), (7, 3), minval=LOWS, maxval=HIGHS).at[2, 0].set(1.9)
    scores, valid, grads = jax.jit(search.value_and_gradient(quadratic))(rho)
    nan = np.asarray(rho[:, 0] > 1.5)
    assert 0 < nan.sum() < 7 and bool(jnp.all(valid))
    np.testing.assert_allclose(grads[~nan], (2 * A * rho)[~nan], rtol=1e-6)
    assert bool(jnp.all(jnp.isnan(scores[nan]))) and bool(jnp.all(grads[nan] == 0))  # NaN scores contribute nothing


def test_gradient_tell_is_projected_adam_in_box_units():
    strategy = search.make("gradient", population_size=4, learning_rate=0.2)
    state = strategy.init(jax.random.key(0), LOWS, HIGHS)
    rho, asked = strategy.ask(jax.random.key(1), state)
    half = (HIGHS - LOWS) / 2
    np.testing.assert_allclose(rho, (LOWS + HIGHS) / 2 + half * state.z, rtol=1e-6)  # S = 1: the chain points
    scores, valid, grads = search.value_and_gradient(lambda r: (jnp.sum(A * r**2, -1), jnp.ones(4, bool)))(rho)
    told = strategy.tell(asked, rho, scores, valid, grads)
    adam = optax.adam(0.2)
    for c in range(4):
        g = grads[c] * half  # d loss / d z
        update, _ = adam.update(g, adam.init(state.z[c]))
        np.testing.assert_allclose(told.z[c], jnp.clip(state.z[c] + update, -1, 1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(told.best, scores, rtol=1e-6)
    assert strategy.needs_gradient and not search.make("reinforce", population_size=4).needs_gradient


def test_smoothing_averages_the_valid_samples_of_each_chain():
    strategy = search.make("gradient", population_size=6, smoothing_samples=3, smoothing_std=0.1, learning_rate=0.1)
    state = strategy.init(jax.random.key(0), LOWS, HIGHS)
    rho, asked = strategy.ask(jax.random.key(1), state)
    z = (rho - (LOWS + HIGHS) / 2) / ((HIGHS - LOWS) / 2)
    np.testing.assert_allclose(z.reshape(2, 3, 3)[:, 0], state.z, rtol=1e-5, atol=1e-6)  # sample 0: the point
    assert float(jnp.abs(z.reshape(2, 3, 3)[:, 1:] - state.z[:, None]).max()) > 0.01
    grads = jnp.arange(18.0).reshape(6, 3)
    valid = jnp.array([True, False, True, True, True, True])
    told = strategy.tell(asked, rho, jnp.ones(6), valid, grads.at[1].set(jnp.nan))
    half = (HIGHS - LOWS) / 2
    means = [(grads[0] + grads[2]) / 2 * half, grads[3:].mean(0) * half]
    adam = optax.adam(0.1)
    for c, g in enumerate(means):
        update, _ = adam.update(g, adam.init(state.z[c]))
        np.testing.assert_allclose(told.z[c], jnp.clip(state.z[c] + update, -1, 1), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="^--strategy=gradient: smoothing_samples must be >= 1 and divide"):
        search.make("gradient", population_size=6, smoothing_samples=4)


def test_a_chain_without_progress_restarts_where_ask_drew():
    strategy = search.make("gradient", population_size=2, patience=3)
    state = strategy.init(jax.random.key(0), LOWS, HIGHS)
    flat = lambda r: (jnp.zeros(r.shape[0]), jnp.ones(r.shape[0], bool))  # no improvement after the first
    for i in range(4):
        rho, asked = strategy.ask(jax.random.key(i + 1), state)
        state = strategy.tell(asked, rho, *search.value_and_gradient(flat)(rho))
        if i < 3:
            assert int(state.stall.max()) == i and bool(jnp.all(jnp.isfinite(state.best)))
    # Iteration 0 improved on +inf; 1, 2, 3 did not: the chains restarted at the points the last ask drew.
    np.testing.assert_array_equal(state.z, asked.restart_z)
    assert bool(jnp.all(state.stall == 0)) and bool(jnp.all(jnp.isinf(state.best)))
    assert int(state.opt_state[0].count[0]) == 0


def test_the_search_hands_gradients_only_to_strategies_that_need_them():
    strategy = search.make("gradient", population_size=2)
    runs = search.init_runs(strategy, jax.random.key(0), LOWS, HIGHS, 3)
    asked = search.ask_runs(strategy, runs)
    with pytest.raises(ValueError, match="needs gradients"):
        search.tell_runs(strategy, runs, asked, jnp.zeros(6), jnp.ones(6, bool), threshold=0.0, stop_at_first=True)
    runs, record = jax.jit(lambda r: search.step(strategy, r, quadratic, threshold=0.05, stop_at_first=True))(runs)
    assert int(runs.queries.sum()) == 6  # one query per sample, gradient or not


@pytest.fixture(scope="module")
def evaluation():
    config = SearchConfig(recognizer="tiny", space="shape[0:2]=-2:2,texture[0:3]=-2:2,yaw=-0.6:0.6,"
                          "light_azimuth=-0.5:0.5,ambient=0.2:0.5")
    return build_setup(config, recognizer=tiny_recognizer(), head=head()).evaluation


def test_evaluation_gradient_matches_finite_differences_on_the_tiny_recognizer(evaluation):
    space = evaluation.space
    rho = jnp.asarray(np.random.default_rng(0).uniform(space.lows, space.highs, (4, space.size)), jnp.float32)
    gradient = jax.jit(lambda data, r: search.value_and_gradient(lambda x: evaluation.apply(data, x))(r))
    scores, valid, grads = gradient(evaluation.data, rho)
    assert bool(jnp.all(valid)) and bool(jnp.all(jnp.isfinite(grads)))  # geometry too (zero normals of the background)
    smooth = [i for i, name in enumerate(space.names) if name.startswith(("texture", "light", "ambient"))]
    step = 3e-3  # small enough not to cross where shading clips at full brightness (at 1e-2 ambient did on one sample)
    for d in smooth:
        move = jnp.zeros(space.size).at[d].set(step)
        numeric = (evaluation.evaluate(rho + move).loss - evaluation.evaluate(rho - move).loss) / (2 * step)
        np.testing.assert_allclose(grads[:, d], numeric, rtol=0.03, atol=2e-3, err_msg=space.names[d])
    geometry = [i for i in range(space.size) if i not in smooth]
    assert float(jnp.abs(grads[:, geometry]).min()) > 0  # shape and yaw move the image


def test_a_recognizer_without_gradient_is_refused_naming_the_flag(tmp_path):
    import jax.numpy as jnp

    from simadv_jax.search.experiment import run_search
    from tests.search_fixtures import tiny_config

    base = tiny_recognizer()
    opaque = base.replace(apply_fn=lambda p, x: jax.pure_callback(
        lambda e: e, jax.ShapeDtypeStruct((x.shape[0], 16), jnp.float32), base.apply_fn(p, x),
        vmap_method="broadcast_all"))
    config = tiny_config(strategies=("gradient",), max_iterations=1)
    setup = build_setup(config, recognizer=opaque, head=head())
    with pytest.raises(ValueError, match="^--strategy=gradient: needs the gradient of the score, which "
                                         "--recognizer=tiny does not give"):
        run_search(config, str(tmp_path / "run"), setup=setup)
    assert not (tmp_path / "run").exists()  # refused before anything is written

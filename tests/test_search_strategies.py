"""The black-box additions against analytic references: centred ranks, antithetic pairs, the policy in box units,
the cross-entropy update; and the paper's REINFORCE is unchanged by them (its default path)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from simadv_jax import search
from simadv_jax.search.reinforce import centered_ranks

LOWS, HIGHS = jnp.array([-2.0, 0.4]), jnp.array([2.0, 0.65])


def test_centered_ranks_of_the_valid_losses():
    scores = jnp.array([3.0, -1.0, 7.0, jnp.nan, 0.5])
    valid = jnp.array([True, True, True, False, True])
    # valid losses ranked -1 < 0.5 < 3 < 7: ranks 0, 1, 2, 3 of K' = 4 -> rank / 3 - 1/2
    np.testing.assert_allclose(centered_ranks(scores, valid), [1 / 6, -0.5, 0.5, 0.0, -1 / 6], rtol=1e-6)
    np.testing.assert_array_equal(centered_ranks(jnp.array([2.0, 1.0]), jnp.array([True, False])), [0.0, 0.0])


def test_ranked_reinforce_samples_mirrored_pairs_in_box_units():
    strategy = search.make("reinforce_ranked", population_size=20_000, sigma2=0.04)
    state = strategy.init(jax.random.key(0), LOWS, HIGHS)
    np.testing.assert_array_equal(state.mu, [0.0, 0.0])  # the box centre, box-normalized
    rho, _ = strategy.ask(jax.random.key(1), state)
    centre, half = (LOWS + HIGHS) / 2, (HIGHS - LOWS) / 2
    np.testing.assert_allclose(rho[:10_000] + rho[10_000:], 2 * jnp.broadcast_to(centre, (10_000, 2)), atol=1e-5)
    np.testing.assert_allclose(rho.std(0), 0.2 * half, rtol=0.02)  # sigma = 0.2 of each half-width


def test_ranked_reinforce_tell_is_one_optimizer_step_on_the_ranked_policy_gradient():
    strategy = search.make("reinforce_ranked", population_size=6, optimizer=optax.sgd(0.5))
    state = strategy.init(jax.random.key(0), LOWS, HIGHS)
    rho, _ = strategy.ask(jax.random.key(1), state)
    scores = rho[:, 0] ** 2 + 10 * rho[:, 1]
    valid = jnp.ones(6, bool)
    told = strategy.tell(state, rho, scores, valid)
    z = (rho - (LOWS + HIGHS) / 2) / ((HIGHS - LOWS) / 2)
    g_mu, _ = search.policy_gradient(state.mu, state.log_sigma, z, centered_ranks(scores, valid), valid, 0.0)
    np.testing.assert_allclose(told.mu, jnp.clip(state.mu - 0.5 * g_mu, -1, 1), rtol=1e-5, atol=1e-6)


def test_the_papers_reinforce_is_the_default():
    strategy = search.make("reinforce", population_size=4000)
    state = strategy.init(jax.random.key(0), LOWS, HIGHS)
    rho, _ = strategy.ask(jax.random.key(1), state)
    np.testing.assert_allclose(rho.std(0), [np.sqrt(0.05)] * 2, rtol=0.03)  # paper units, sigma^2 = 0.05
    assert not np.allclose(rho[:2000] + rho[2000:], 2 * state.mu)  # independent samples


def test_cem_moves_towards_the_elites():
    strategy = search.make("cem", population_size=8, elite_fraction=0.25, smoothing=0.5, min_std=0.01)
    state = strategy.init(jax.random.key(0), LOWS, HIGHS)
    rho, _ = strategy.ask(jax.random.key(1), state)
    scores = jnp.arange(8.0)[::-1]  # samples 7 and 6 are the elites; 7 is invalid
    valid = jnp.ones(8, bool).at[7].set(False)
    told = strategy.tell(state, rho, scores, valid)
    z = (rho - (LOWS + HIGHS) / 2) / ((HIGHS - LOWS) / 2)
    elites = z[jnp.array([6, 5])]
    np.testing.assert_allclose(told.mean, 0.5 * state.mean + 0.5 * elites.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(told.std, jnp.maximum(0.5 * state.std + 0.5 * elites.std(0), 0.01), rtol=1e-5)
    with pytest.raises(ValueError, match="^--strategy=cem: elite_fraction and smoothing must be in"):
        search.make("cem", population_size=8, smoothing=0.0)

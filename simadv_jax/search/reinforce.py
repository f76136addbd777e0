"""REINFORCE over a Gaussian policy (Algorithm 1 of Ruiz et al., CVPR 2022).

Policy pi = N(mu, sigma^2 I) over rho (paper units). Each iteration draws K samples
x_k = mu + sigma * eps_k, receives their losses l_k (reward R_k = -l_k), and follows the
score-function (REINFORCE) estimate of the gradient of the expected loss,

    g_mu        = 1/K' sum_k (l_k - b) (x_k - mu) / sigma^2
    g_log_sigma = 1/K' sum_k (l_k - b) (||x_k - mu||^2 / sigma^2 - n)

(the negated gradient of E[R] with advantage A_k = R_k - beta, beta = -b), averaged over the K'
valid samples, with an optax optimizer (Adam by default). The baseline b is the batch mean of the
valid losses ("mean"), an exponential moving average of past batch means ("moving_average", the
first batch initializes it), or 0 ("none"). sigma is fixed (sigma^2 = 0.05 as in the paper) unless
`learn_sigma`. After each update mu is projected onto the box, so the policy stays centred where
samples are evaluated. A batch without valid samples leaves the state unchanged.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import optax
from flax import struct

from simadv_jax.search.base import Strategy

BASELINES = ("mean", "moving_average", "none")
MEAN_INITS = ("center", "random")


@struct.dataclass
class ReinforceState:
    """mu: (n,) float32 policy mean. log_sigma: () float32. opt_state: optax state of
    {"mu", "log_sigma"}. baseline: () float32 moving-average loss. has_baseline: () bool.
    lows, highs: (n,) float32 box."""

    mu: jax.Array
    log_sigma: jax.Array
    opt_state: optax.OptState
    baseline: jax.Array
    has_baseline: jax.Array
    lows: jax.Array
    highs: jax.Array


def policy_gradient(
    mu: jax.Array, log_sigma: jax.Array, rho: jax.Array, scores: jax.Array, valid: jax.Array, baseline: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Score-function estimate of d E_{x ~ N(mu, sigma^2 I)}[loss(x)] / d(mu, log_sigma).

    Args: mu (n,), log_sigma (), rho (K, n) the samples, scores (K,) their losses, valid (K,) bool,
      baseline () subtracted from the losses.
    Returns: (g_mu (n,), g_log_sigma ()), averaged over valid samples (zeros if none).
    """
    sigma = jnp.exp(log_sigma)
    eps = (rho - mu) / sigma  # (K, n) standard normal draws
    advantage = jnp.where(valid, scores - baseline, 0.0)  # (K,)
    count = jnp.maximum(jnp.sum(valid), 1)
    g_mu = advantage @ eps / (sigma * count)
    g_log_sigma = jnp.sum(advantage * (jnp.sum(eps * eps, axis=-1) - mu.shape[-1])) / count
    return g_mu, g_log_sigma


def reinforce(
    *,
    population_size: int,
    sigma2: float = 0.05,
    learning_rate: float = 0.1,
    optimizer: optax.GradientTransformation | None = None,
    baseline: str = "mean",
    baseline_decay: float = 0.9,
    mean_init: str = "center",
    learn_sigma: bool = False,
) -> Strategy:
    """REINFORCE with a Gaussian policy.

    Args:
      population_size: K samples per iteration.
      sigma2: policy variance sigma^2 in paper units (the paper's 0.05); the initial one if learned.
      learning_rate: Adam's step size (ignored when `optimizer` is given).
      optimizer: optax transformation for {"mu", "log_sigma"} (default Adam(learning_rate)).
      baseline: "mean" | "moving_average" | "none" (see module docstring).
      baseline_decay: moving-average decay.
      mean_init: "center" (mu = box centre) or "random" (uniform in the box).
      learn_sigma: also follow the gradient for log sigma.
    """
    if population_size < 1:
        raise ValueError(f"--samples_per_iteration: must be >= 1, got {population_size}")
    if not sigma2 > 0:
        raise ValueError(f"--strategy=reinforce: sigma2 must be > 0, got {sigma2}")
    if baseline not in BASELINES:
        raise ValueError(f"--strategy=reinforce: baseline must be one of {BASELINES}, got {baseline!r}")
    if mean_init not in MEAN_INITS:
        raise ValueError(f"--strategy=reinforce: mean_init must be one of {MEAN_INITS}, got {mean_init!r}")
    optimizer = optimizer if optimizer is not None else optax.adam(learning_rate)
    log_sigma0 = 0.5 * math.log(sigma2)

    def init(key, lows, highs):
        if mean_init == "center":
            mu = (lows + highs) / 2
        else:
            mu = jax.random.uniform(key, lows.shape, minval=lows, maxval=highs)
        log_sigma = jnp.asarray(log_sigma0, jnp.float32)
        return ReinforceState(
            mu=mu,
            log_sigma=log_sigma,
            opt_state=optimizer.init({"mu": mu, "log_sigma": log_sigma}),
            baseline=jnp.zeros((), jnp.float32),
            has_baseline=jnp.zeros((), bool),
            lows=lows,
            highs=highs,
        )

    def ask(key, state):
        eps = jax.random.normal(key, (population_size,) + state.mu.shape)
        return state.mu + jnp.exp(state.log_sigma) * eps, state

    def tell(state, rho, scores, valid):
        any_valid = jnp.any(valid)
        batch_mean = jnp.sum(jnp.where(valid, scores, 0.0)) / jnp.maximum(jnp.sum(valid), 1)
        if baseline == "mean":
            b = batch_mean
        elif baseline == "moving_average":
            b = jnp.where(state.has_baseline, state.baseline, batch_mean)
        else:
            b = jnp.zeros(())
        g_mu, g_log_sigma = policy_gradient(state.mu, state.log_sigma, rho, scores, valid, b)
        grads = {"mu": g_mu, "log_sigma": g_log_sigma if learn_sigma else jnp.zeros_like(g_log_sigma)}
        params = {"mu": state.mu, "log_sigma": state.log_sigma}
        updates, opt_state = optimizer.update(grads, state.opt_state, params)
        params = optax.apply_updates(params, updates)
        decayed = baseline_decay * state.baseline + (1 - baseline_decay) * batch_mean
        running = jnp.where(state.has_baseline, decayed, batch_mean)
        new = state.replace(
            mu=jnp.clip(params["mu"], state.lows, state.highs),
            log_sigma=params["log_sigma"],
            opt_state=opt_state,
            baseline=running,
            has_baseline=jnp.ones((), bool),
        )
        return jax.tree.map(lambda told, kept: jnp.where(any_valid, told, kept), new, state)

    return Strategy(init, ask, tell)

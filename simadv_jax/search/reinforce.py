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

Options beyond the paper (off by default; the `reinforce_ranked` preset of the registry turns them on):
  - fitness_shaping="centered_ranks": the losses are replaced by their centred ranks among the valid samples,
    l_k -> rank_k / (K' - 1) - 1/2 in [-1/2, 1/2] (0 for K' = 1), so the step does not depend on the loss's
    scale or outliers (as in OpenAI-ES);
  - antithetic: samples come in mirrored pairs x = mu +- sigma eps (for an odd K the last one unpaired), which
    cancels the estimate's odd-order noise;
  - box_units: the policy lives in box-normalized coordinates z = (rho - centre) / (w_p / 2), the box being
    [-1, 1]^n, so sigma2 is relative to each dimension's half-width (the paper's sigma^2 = 0.05 in paper units
    is wider than a narrow band of yaw and narrower than a wide identity range).
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
FITNESS_SHAPINGS = ("none", "centered_ranks")


@struct.dataclass
class ReinforceState:
    """mu: (n,) float32 policy mean (box-normalized with box_units). log_sigma: () float32. opt_state: optax state
    of {"mu", "log_sigma"}. baseline: () float32 moving-average loss. has_baseline: () bool.
    lows, highs: (n,) float32 box (paper units)."""

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


def centered_ranks(scores: jax.Array, valid: jax.Array) -> jax.Array:
    """(K,) losses -> (K,) their centred ranks among the valid ones, rank / (K' - 1) - 1/2 (lowest loss -1/2;
    0 for a single valid sample, and for the invalid ones)."""
    masked = jnp.where(valid, scores, jnp.inf)
    ranks = jnp.argsort(jnp.argsort(masked)).astype(jnp.float32)  # invalid ones rank last
    count = jnp.sum(valid)
    return jnp.where(valid & (count > 1), ranks / jnp.maximum(count - 1, 1) - 0.5, 0.0)


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
    fitness_shaping: str = "none",
    antithetic: bool = False,
    box_units: bool = False,
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
      fitness_shaping: "none" (the paper's) or "centered_ranks" (module docstring).
      antithetic: mirrored sample pairs.
      box_units: the policy in box-normalized coordinates (sigma2 relative to each half-width).
    """
    if population_size < 1:
        raise ValueError(f"--samples_per_iteration: must be >= 1, got {population_size}")
    if not sigma2 > 0:
        raise ValueError(f"--strategy=reinforce: sigma2 must be > 0, got {sigma2}")
    if baseline not in BASELINES:
        raise ValueError(f"--strategy=reinforce: baseline must be one of {BASELINES}, got {baseline!r}")
    if mean_init not in MEAN_INITS:
        raise ValueError(f"--strategy=reinforce: mean_init must be one of {MEAN_INITS}, got {mean_init!r}")
    if fitness_shaping not in FITNESS_SHAPINGS:
        raise ValueError(f"--strategy=reinforce: fitness_shaping must be one of {FITNESS_SHAPINGS}, "
                         f"got {fitness_shaping!r}")
    optimizer = optimizer if optimizer is not None else optax.adam(learning_rate)
    log_sigma0 = 0.5 * math.log(sigma2)

    def policy_box(lows, highs):
        """The box mu lives in: the paper's units, or [-1, 1]^n with box_units."""
        return (-jnp.ones_like(lows), jnp.ones_like(highs)) if box_units else (lows, highs)

    def init(key, lows, highs):
        low, high = policy_box(lows, highs)
        if mean_init == "center":
            mu = (low + high) / 2
        else:
            mu = jax.random.uniform(key, lows.shape, minval=low, maxval=high)
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
        if antithetic:
            half = jax.random.normal(key, ((population_size + 1) // 2,) + state.mu.shape)
            eps = jnp.concatenate([half, -half])[:population_size]
        else:
            eps = jax.random.normal(key, (population_size,) + state.mu.shape)
        x = state.mu + jnp.exp(state.log_sigma) * eps
        if box_units:
            x = (state.lows + state.highs) / 2 + (state.highs - state.lows) / 2 * x
        return x, state

    def tell(state, rho, scores, valid):
        if box_units:
            rho = (rho - (state.lows + state.highs) / 2) / ((state.highs - state.lows) / 2)
        if fitness_shaping == "centered_ranks":
            scores = centered_ranks(scores, valid)
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
            mu=jnp.clip(params["mu"], *policy_box(state.lows, state.highs)),
            log_sigma=params["log_sigma"],
            opt_state=opt_state,
            baseline=running,
            has_baseline=jnp.ones((), bool),
        )
        return jax.tree.map(lambda told, kept: jnp.where(any_valid, told, kept), new, state)

    return Strategy(init, ask, tell)

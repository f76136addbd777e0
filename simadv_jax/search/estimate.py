"""How often would it fail in deployment: P(adversarial) under the space's uniform distribution, with a CI.

Uniform sampling needs ~(1 - p) / (p r^2) queries for a relative standard error r (10,000 for r = 0.1 at p = 1%).
Importance sampling spends the queries where the search found failures instead. In box-normalized coordinates
u = (rho - lows) / (highs - lows) in [0, 1]^n, where the space's uniform distribution has density 1, the proposal
is a defensive kernel mixture around J centres c_j (the search's adversarials, and its best samples when there
are few), each a product of normals of bandwidth h_d truncated to [0, 1]:

    q(u) = alpha + (1 - alpha) / J sum_j prod_d k(u_d; c_jd, h_d),
    k(x; c, h) = phi((x - c) / h) / (h (Phi((1 - c) / h) - Phi(-c / h)))

and N fresh samples u_i ~ q give the unbiased estimate (for any fixed q that is positive wherever failures are;
the uniform part alpha guarantees it, and bounds every weight by 1 / alpha)

    p_hat = 1/N sum_i 1[u_i adversarial] w_i,    w_i = 1 / q(u_i),    se^2 = Var_i(1[.] w_i) / N.

The interval is Korn and Graubard's for weighted proportions: a Clopper-Pearson interval at the effective sample
size n* = p_hat (1 - p_hat) / se^2 with p_hat n* successes, which stays inside [0, 1] and is honest with few
hits (unlike in their survey setting, n* may exceed N: a good proposal has a smaller variance than uniform
sampling). Without any hit, P(no hit) = (1 - P_q(F))^N with P_q(F) >= p alpha gives the upper bound
(1 - tail^(1/N)) / alpha, tail = (1 - confidence) / 2. `wilson_interval` is the interval for plain uniform counts.
"""
from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.scipy.special import logsumexp, ndtr

DEFAULT_ALPHA = 0.3
MIN_BANDWIDTH = 0.05
MIN_CENTERS, MAX_CENTERS = 8, 512
MAX_EFFECTIVE = 1e12  # n* when every sample carries the same value (zero variance)


def wilson_interval(hits: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a binomial proportion hits / n: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) /
    (1 + z^2/n); (0, 1) for n = 0."""
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@struct.dataclass
class KernelProposal:
    """The defensive mixture q (module docstring) in box-normalized coordinates.

    centers: (J, n) float32 in [0, 1]. bandwidth: (n,) float32 h_d. alpha: () float32 weight of the uniform part.
    """

    centers: jax.Array
    bandwidth: jax.Array
    alpha: jax.Array


def kernel_proposal(centers: np.ndarray, alpha: float = DEFAULT_ALPHA,
                    min_bandwidth: float = MIN_BANDWIDTH) -> KernelProposal:
    """The proposal around (J, n) centres in [0, 1]^n: per dimension Scott's bandwidth std_d J^(-1/(n + 4)),
    at least min_bandwidth (also for J = 1)."""
    centers = np.asarray(centers, np.float32).reshape(-1, np.shape(centers)[-1])
    count, dims = centers.shape
    spread = centers.std(axis=0) * count ** (-1.0 / (dims + 4)) if count > 1 else np.zeros(dims)
    return KernelProposal(jnp.asarray(centers), jnp.asarray(np.maximum(spread, min_bandwidth), jnp.float32),
                          jnp.asarray(alpha, jnp.float32))


@functools.partial(jax.jit, static_argnames="count")
def sample(key: jax.Array, proposal: KernelProposal, count: int) -> jax.Array:
    """(count, n) float32 points u ~ q: uniform with probability alpha, else a truncated kernel around a centre
    drawn uniformly."""
    pick, which, noise, flat = jax.random.split(key, 4)
    centers = proposal.centers[jax.random.randint(which, (count,), 0, proposal.centers.shape[0])]
    lower, upper = -centers / proposal.bandwidth, (1 - centers) / proposal.bandwidth
    kernel = centers + proposal.bandwidth * jax.random.truncated_normal(noise, lower, upper)
    uniform = jax.random.uniform(flat, centers.shape)
    use_uniform = jax.random.uniform(pick, (count, 1)) < proposal.alpha
    return jnp.clip(jnp.where(use_uniform, uniform, kernel), 0.0, 1.0)


@jax.jit
def log_density(proposal: KernelProposal, u: jax.Array) -> jax.Array:
    """(N, n) points in [0, 1]^n -> (N,) log q(u)."""
    h = proposal.bandwidth
    c = proposal.centers  # (J, n)
    mass = ndtr((1 - c) / h) - ndtr(-c / h)  # (J, n) truncation mass of each kernel
    z = (u[:, None, :] - c[None]) / h  # (N, J, n)
    log_kernel = jnp.sum(-0.5 * z * z - 0.5 * math.log(2 * math.pi) - jnp.log(h) - jnp.log(mass), axis=-1)
    log_mixture = logsumexp(log_kernel, axis=-1) - math.log(c.shape[0])
    return jnp.logaddexp(jnp.log(proposal.alpha), jnp.log1p(-proposal.alpha) + log_mixture)


class Estimate(NamedTuple):
    """P(adversarial) under the uniform distribution of the box.

    rate: the estimate. low, high: its interval. confidence: its level. queries: samples it evaluated.
    hits: adversarials among them. effective_queries: n* of the interval. max_weight: 1 / alpha, the largest
    weight a sample can carry.
    """

    rate: float
    low: float
    high: float
    confidence: float
    queries: int
    hits: int
    effective_queries: float
    max_weight: float


def weighted_estimate(adversarial: np.ndarray, weights: np.ndarray, max_weight: float,
                      confidence: float = 0.95) -> Estimate:
    """The importance-sampling estimate of (N,) adversarial flags with (N,) weights u / q, and its Korn-Graubard
    interval (module docstring)."""
    from scipy.stats import beta

    values = np.where(adversarial, weights, 0.0).astype(np.float64)
    n, hits = values.size, int(np.sum(adversarial))
    rate = float(values.mean()) if n else 0.0
    tail = (1 - confidence) / 2
    if hits == 0:
        return Estimate(0.0, 0.0, min(1.0, (1 - tail ** (1 / max(n, 1))) * max_weight), confidence, n, 0, float(n),
                        max_weight)
    variance = float(values.var(ddof=1)) / n if n > 1 else rate * rate
    if rate >= 1:  # weights above 1 on (nearly) every sample: the normal interval, cut at 1
        from scipy.stats import norm

        low = max(0.0, rate - float(norm.ppf(1 - tail)) * math.sqrt(variance))
        return Estimate(1.0, low, 1.0, confidence, n, hits, 0.0, max_weight)
    effective = rate * (1 - rate) / variance if variance > 0 else MAX_EFFECTIVE
    x = rate * effective
    low = float(beta.ppf(tail, x, effective - x + 1)) if x > 0 else 0.0
    high = float(beta.ppf(1 - tail, x + 1, effective - x)) if effective > x else 1.0
    return Estimate(rate, low, high, confidence, n, hits, float(effective), max_weight)


def proposal_centers(adversarial_rho: np.ndarray, best_rho: np.ndarray, best_loss: np.ndarray,
                     min_centers: int = MIN_CENTERS, max_centers: int = MAX_CENTERS) -> np.ndarray:
    """The (J, n) kernel centres from a search: every adversarial (an evenly spaced subset past max_centers), and
    when there are fewer than min_centers, the best samples (lowest `best_loss`) to make up the count."""
    adversarial_rho = np.asarray(adversarial_rho, np.float32).reshape(-1, np.shape(best_rho)[-1])
    if len(adversarial_rho) > max_centers:
        adversarial_rho = adversarial_rho[np.linspace(0, len(adversarial_rho) - 1, max_centers).astype(int)]
    missing = max(0, min_centers - len(adversarial_rho))
    best = np.asarray(best_rho, np.float32)[np.argsort(np.asarray(best_loss))[:missing]]
    return np.concatenate([adversarial_rho, best])


def estimate_failure_rate(adversarial_fn: Callable[[np.ndarray], np.ndarray], lows, highs, centers_rho,
                          key: jax.Array, queries: int, alpha: float = DEFAULT_ALPHA,
                          confidence: float = 0.95) -> Estimate:
    """P(adversarial) under the uniform distribution of the box [lows, highs] by importance sampling around
    `centers_rho` ((J, n) paper units, e.g. a search's adversarials; J = 0 samples uniformly).

    adversarial_fn: (N, n) rho -> (N,) bool, e.g. `lambda r: evaluation.score_points(r).adversarial`.
    """
    lows, highs = np.asarray(lows, np.float32), np.asarray(highs, np.float32)
    centers = (np.asarray(centers_rho, np.float32).reshape(-1, lows.size) - lows) / (highs - lows)
    if not len(centers):  # nothing to centre on: the uniform distribution itself
        alpha, centers = 1.0, np.full((1, lows.size), 0.5, np.float32)
    proposal = kernel_proposal(np.clip(centers, 0.0, 1.0), alpha)
    u = sample(key, proposal, queries)
    weights = np.exp(-np.asarray(log_density(proposal, u), np.float64))
    adversarial = np.asarray(adversarial_fn(np.asarray(lows + u * (highs - lows), np.float32)), bool)
    return weighted_estimate(adversarial, weights, 1.0 / alpha, confidence)

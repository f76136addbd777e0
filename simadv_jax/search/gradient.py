"""A white-box strategy: projected Adam on d(loss)/d(rho) with random restarts (`--strategy=gradient`).

The renderer's barycentrics, shading and alignment and the recognizers are differentiable, so the run loop hands
this strategy the gradient of every evaluated sample's loss (`Strategy.needs_gradient`; each sample is one query).
A run holds C = K / S chains; the chains work in box-normalized coordinates z = (rho - centre) / (w_p / 2), the
box being [-1, 1]^n, so one step size suits dimensions of different widths. Each iteration evaluates S samples
per chain: the chain point z_c itself and S - 1 perturbed copies z_c + s eps (eps ~ N(0, I), clipped to the
box), and follows their mean gradient

    g_c = 1/S' sum_{valid k of chain c} d loss_k / d z,     d loss / d z = (w_p / 2) d loss / d rho

with Adam and a projection onto the box, z_c <- clip(z_c - lr * adam(g_c), -1, 1) (one optax Adam state per
chain). S > 1 smooths the gradient over the kinks that visibility leaves in it: the autodiff gradient sees how
shading, texture and landmarks move, not how a silhouette edge sweeps over pixels (triangle ids and coverage are
piecewise constant), so it is a biased guide wherever that matters. A chain whose own loss has not improved by
more than `min_improvement` for `patience` iterations restarts at a uniform random point with a fresh Adam state
(the points are drawn in ask, since tell takes no key); chains start uniform in the box. A chain without valid
samples keeps its point and counts as not improving.

Defaults from the 0.1% rung of `launch.bench --what=efficiency` (R = 16, K = 8): Adam's step 0.1 / 0.3 / 0.5 / 1.0
needed a median of 50.5 / 46.5 / 30.5 / 37 queries to a first adversarial (every run found one); patience 2
instead of 4 changed nothing.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import struct

from simadv_jax.search.base import Strategy

FLAG = "--strategy=gradient"


def _per_chain(mask: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    """(C,) mask -> new where it holds, else old, for arrays with a leading (C,) axis."""
    return jnp.where(mask.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)


@struct.dataclass
class GradientState:
    """One run's C chains in box-normalized coordinates (n dimensions).

    z: (C, n) float32 chain points in [-1, 1]. opt_state: optax Adam state per chain (leading (C,) axis).
    best: (C,) float32 lowest loss of each chain's own point since its (re)start, +inf before one.
    stall: (C,) int32 iterations without improvement. restart_z: (C, n) float32 points a restarting chain moves
    to (drawn in ask). center, half_width: (n,) float32 box.
    """

    z: jax.Array
    opt_state: optax.OptState
    best: jax.Array
    stall: jax.Array
    restart_z: jax.Array
    center: jax.Array
    half_width: jax.Array


def gradient(*, population_size: int, learning_rate: float = 0.5, smoothing_samples: int = 1,
             smoothing_std: float = 0.05, patience: int = 4, min_improvement: float = 1e-3) -> Strategy:
    """Projected Adam on the loss gradient with restarts (module docstring).

    Args:
      population_size: K samples per iteration = chains x smoothing_samples.
      learning_rate: Adam's step size in box-normalized units (0.5 = a quarter of each dimension's width).
      smoothing_samples: S samples per chain (the chain point and S - 1 perturbed copies); divides K.
      smoothing_std: s, the perturbations' std in box-normalized units.
      patience: iterations without improvement before a chain restarts.
      min_improvement: the loss decrease that counts as an improvement.
    """
    if population_size < 1:
        raise ValueError(f"--samples_per_iteration: must be >= 1, got {population_size}")
    if smoothing_samples < 1 or population_size % smoothing_samples:
        raise ValueError(f"{FLAG}: smoothing_samples must be >= 1 and divide --samples_per_iteration="
                         f"{population_size}, got {smoothing_samples}")
    if not learning_rate > 0 or not smoothing_std >= 0:
        raise ValueError(f"{FLAG}: learning_rate must be > 0 and smoothing_std >= 0, got {learning_rate}, "
                         f"{smoothing_std}")
    if patience < 1:
        raise ValueError(f"{FLAG}: patience must be >= 1, got {patience}")
    chains = population_size // smoothing_samples
    optimizer = optax.adam(learning_rate)

    def uniform_points(key, dims):
        return jax.random.uniform(key, (chains, dims), minval=-1.0, maxval=1.0)

    def init(key, lows, highs):
        start, restart = jax.random.split(key)
        z = uniform_points(start, lows.shape[-1])
        return GradientState(z=z, opt_state=jax.vmap(optimizer.init)(z), best=jnp.full((chains,), jnp.inf),
                             stall=jnp.zeros((chains,), jnp.int32), restart_z=uniform_points(restart, lows.shape[-1]),
                             center=(lows + highs) / 2, half_width=(highs - lows) / 2)

    def ask(key, state):
        noise, restart = jax.random.split(key)
        eps = jax.random.normal(noise, (chains, smoothing_samples) + state.z.shape[1:]).at[:, 0].set(0.0)
        z = jnp.clip(state.z[:, None] + smoothing_std * eps, -1.0, 1.0)  # (C, S, n); sample 0 is the chain point
        rho = state.center + state.half_width * z.reshape(population_size, -1)
        return rho, state.replace(restart_z=uniform_points(restart, state.z.shape[-1]))

    def tell(state, rho, scores, valid, grads):
        valid = valid.reshape(chains, smoothing_samples)
        g = jnp.where(valid[..., None] & jnp.isfinite(grads.reshape(chains, smoothing_samples, -1)),
                      grads.reshape(chains, smoothing_samples, -1) * state.half_width, 0.0)
        g = jnp.sum(g, axis=1) / jnp.maximum(jnp.sum(valid, axis=1), 1)[:, None]  # (C, n)
        updates, opt_state = jax.vmap(optimizer.update)(g, state.opt_state)
        moved = jnp.any(valid, axis=1)
        z = _per_chain(moved, jnp.clip(state.z + updates, -1.0, 1.0), state.z)
        opt_state = jax.tree.map(lambda new, old: _per_chain(moved, new, old), opt_state, state.opt_state)
        own = jnp.where(valid[:, 0], scores.reshape(chains, smoothing_samples)[:, 0], jnp.inf)
        improved = own < state.best - min_improvement
        stall = jnp.where(improved, 0, state.stall + 1)
        restart = stall >= patience
        fresh = jax.vmap(optimizer.init)(state.restart_z)
        return state.replace(
            z=_per_chain(restart, state.restart_z, z),
            opt_state=jax.tree.map(lambda new, old: _per_chain(restart, new, old), fresh, opt_state),
            best=jnp.where(restart, jnp.inf, jnp.minimum(own, state.best)), stall=jnp.where(restart, 0, stall))

    return Strategy(init, ask, tell, needs_gradient=True)

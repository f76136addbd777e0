"""The paper's baselines: uniform and Gaussian random sampling, and random optimization.

Widths w_p = highs - lows per dimension (paper units; see simadv_jax.params).
- uniform: K samples uniform in the box; learns nothing.
- gaussian: K samples N(centre, (w_p / 2)^2) per dimension; learns nothing (the run loop clips
  samples that leave the box, and counts them).
- random_opt: an incumbent x (initially the centre, or uniform in the box); K candidates
  clip(x + N(0, (w_p / 10)^2)); the best valid candidate replaces x when its loss is lower.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from simadv_jax.search.base import Strategy

INCUMBENT_INITS = ("center", "random")


@struct.dataclass
class BoxState:
    """lows, highs: (n,) float32 box."""

    lows: jax.Array
    highs: jax.Array


@struct.dataclass
class RandomOptState:
    """incumbent: (n,) float32 current point. incumbent_score: () float32 its loss (+inf before the
    first valid sample). lows, highs: (n,) float32 box."""

    incumbent: jax.Array
    incumbent_score: jax.Array
    lows: jax.Array
    highs: jax.Array


def _check(population_size: int) -> None:
    if population_size < 1:
        raise ValueError(f"--samples_per_iteration: must be >= 1, got {population_size}")


def _init_box(key, lows, highs):
    return BoxState(lows=lows, highs=highs)


def _tell_nothing(state, rho, scores, valid):
    return state


def uniform(*, population_size: int) -> Strategy:
    """Uniform random sampling in the box."""
    _check(population_size)

    def ask(key, state):
        shape = (population_size,) + state.lows.shape
        return jax.random.uniform(key, shape, minval=state.lows, maxval=state.highs), state

    return Strategy(_init_box, ask, _tell_nothing)


def gaussian(*, population_size: int, relative_std: float = 0.5) -> Strategy:
    """Gaussian random sampling around the box centre, std = relative_std * w_p (paper: w_p / 2)."""
    _check(population_size)

    def ask(key, state):
        eps = jax.random.normal(key, (population_size,) + state.lows.shape)
        center = (state.lows + state.highs) / 2
        return center + relative_std * (state.highs - state.lows) * eps, state

    return Strategy(_init_box, ask, _tell_nothing)


def random_opt(*, population_size: int, relative_std: float = 0.1, incumbent_init: str = "center") -> Strategy:
    """Random optimization: Gaussian steps of std = relative_std * w_p (paper: w_p / 10), keep if better."""
    _check(population_size)
    if incumbent_init not in INCUMBENT_INITS:
        raise ValueError(
            f"--strategy=random_opt: incumbent_init must be one of {INCUMBENT_INITS}, got {incumbent_init!r}"
        )

    def init(key, lows, highs):
        if incumbent_init == "center":
            incumbent = (lows + highs) / 2
        else:
            incumbent = jax.random.uniform(key, lows.shape, minval=lows, maxval=highs)
        return RandomOptState(incumbent, jnp.full((), jnp.inf, jnp.float32), lows, highs)

    def ask(key, state):
        eps = jax.random.normal(key, (population_size,) + state.lows.shape)
        candidates = state.incumbent + relative_std * (state.highs - state.lows) * eps
        return jnp.clip(candidates, state.lows, state.highs), state

    def tell(state, rho, scores, valid):
        masked = jnp.where(valid, scores, jnp.inf)
        best = jnp.argmin(masked)
        better = masked[best] < state.incumbent_score
        return state.replace(
            incumbent=jnp.where(better, rho[best], state.incumbent),
            incumbent_score=jnp.where(better, masked[best], state.incumbent_score),
        )

    return Strategy(init, ask, tell)

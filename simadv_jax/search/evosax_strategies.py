"""Evolution strategies from evosax (distribution-based algorithms) behind the Strategy interface.

evosax minimizes fitness, as we minimize the loss. The algorithm works in box-normalized
coordinates z = (rho - centre) / (w_p / 2), so the box is [-1, 1]^n and one step size suits
dimensions of different widths; `std_init` is in those units (0.5 = a quarter of each width).
Invalid samples are handed to evosax as NaN fitness, which its algorithms rank last and keep out
of their best-solution archive; a batch without valid samples leaves the state unchanged.
Algorithms that unpickle checkpoints when built (the learned ES variants) are not offered.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from simadv_jax.search.base import Strategy

# Learned ES variants unpickle their weights when built; GuidedES needs a surrogate gradient;
# the rest need constructor arguments without a sensible default here.
_EXCLUDED = ("CMAAnchoredLES", "EvoTF_ES", "GuidedES", "LES", "RandomSearch", "SV_CMA_ES", "SV_Open_ES")


@functools.cache
def _algorithm_classes() -> dict:
    """{name: evosax class} offered here (imported on first use: importing evosax.algorithms runs JAX
    computations, which would fix the process's devices before `simadv_jax.devices.configure`)."""
    from evosax.algorithms import distribution_based_algorithms

    return {name: cls for name, cls in sorted(distribution_based_algorithms.items()) if name not in _EXCLUDED}


def algorithms() -> tuple[str, ...]:
    """Names of the evosax algorithms `evosax_strategy` accepts, sorted."""
    return tuple(_algorithm_classes())

MEAN_INITS = ("center", "random")


@struct.dataclass
class EvosaxState:
    """inner: the evosax algorithm's state (z coordinates). center, half_width: (n,) float32 box.
    tell_key: PRNG key evosax's tell receives (drawn in ask)."""

    inner: Any
    center: jax.Array
    half_width: jax.Array
    tell_key: jax.Array


def evosax_strategy(
    algorithm: str,
    *,
    population_size: int,
    std_init: float = 0.5,
    learning_rate: float | None = None,
    mean_init: str = "center",
) -> Strategy:
    """Wraps evosax's `algorithm` (a name in `algorithms()`, e.g. "CMA_ES", "SNES", "xNES", "Open_ES").

    Args:
      population_size: K samples per iteration (some algorithms need it even).
      std_init: initial search std in box-normalized units (through the algorithm's `std_init`
        parameter or a constant `std_schedule`).
      learning_rate: when given, the algorithm's optimizer becomes optax.adam(learning_rate)
        (only for algorithms that take an optimizer).
      mean_init: "center" or "random" (uniform in the box).
    """
    flag = f"--strategy=evosax:{algorithm}"
    if algorithm not in algorithms():
        raise ValueError(f"--strategy: unknown evosax algorithm {algorithm!r}; known: {', '.join(algorithms())}")
    if mean_init not in MEAN_INITS:
        raise ValueError(f"{flag}: mean_init must be one of {MEAN_INITS}, got {mean_init!r}")
    cls = _algorithm_classes()[algorithm]
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {}
    if "std_schedule" in accepted:
        kwargs["std_schedule"] = optax.constant_schedule(std_init)
    if learning_rate is not None:
        if "optimizer" not in accepted:
            raise ValueError(f"{flag}: this algorithm takes no learning_rate")
        kwargs["optimizer"] = optax.adam(learning_rate)

    @functools.lru_cache(maxsize=None)
    def build(num_dims: int):
        # Built eagerly (outside any trace) so the cached object and params hold no tracers.
        with jax.ensure_compile_time_eval():
            try:
                algo = cls(population_size=population_size, solution=jnp.zeros(num_dims), **kwargs)
            except AssertionError as error:
                raise ValueError(f"{flag} with --samples_per_iteration={population_size}: {error}") from None
            params = algo.default_params
            if "std_init" in params.__dataclass_fields__:
                params = params.replace(std_init=jnp.asarray(std_init, jnp.float32))
        return algo, params

    def init(key, lows, highs):
        algo, params = build(lows.shape[-1])
        mean_key, init_key, tell_key = jax.random.split(key, 3)
        if mean_init == "center":
            mean = jnp.zeros(lows.shape, jnp.float32)
        else:
            mean = jax.random.uniform(mean_key, lows.shape, minval=-1.0, maxval=1.0)
        return EvosaxState(
            inner=algo.init(init_key, mean, params),
            center=(lows + highs) / 2,
            half_width=(highs - lows) / 2,
            tell_key=tell_key,
        )

    def ask(key, state):
        algo, params = build(state.center.shape[-1])
        ask_key, tell_key = jax.random.split(key)
        z, inner = algo.ask(ask_key, state.inner, params)
        return state.center + state.half_width * z, state.replace(inner=inner, tell_key=tell_key)

    def tell(state, rho, scores, valid):
        algo, params = build(state.center.shape[-1])
        z = (rho - state.center) / state.half_width
        fitness = jnp.where(valid, scores, jnp.nan)
        inner, _ = algo.tell(state.tell_key, z, fitness, state.inner, params)
        return jax.tree.map(lambda told, kept: jnp.where(jnp.any(valid), told, kept), state.replace(inner=inner), state)

    return Strategy(init, ask, tell)

"""Strategies by name (the `--strategy` flag): reinforce, reinforce_ranked, uniform, gaussian, random_opt, cem,
gradient, evosax:<Algorithm>.

reinforce is the paper's (sigma^2 = 0.05 in paper units, mean baseline), kept exactly as published;
reinforce_ranked is the same estimator with centred-rank fitness shaping, antithetic pairs, the policy in
box-normalized units (`simadv_jax.search.reinforce`) and Adam's step 0.2 (at the 0.1% rung of `launch.bench
--what=efficiency`, R = 16, K = 8, 256 queries: 13/16 runs found an adversarial with step 0.1, median 186 queries;
16/16 with 0.2, median 138; learning sigma or sigma^2 = 0.1 did worse); gradient is the white-box strategy
(`simadv_jax.search.gradient`).
"""
from __future__ import annotations

import functools
import inspect

from simadv_jax.search.base import Strategy
from simadv_jax.search.cem import cem
from simadv_jax.search.evosax_strategies import algorithms as evosax_algorithms, evosax_strategy
from simadv_jax.search.gradient import gradient
from simadv_jax.search.random_search import gaussian, random_opt, uniform
from simadv_jax.search.reinforce import reinforce

_BUILDERS = {
    "reinforce": reinforce,
    "reinforce_ranked": functools.partial(reinforce, fitness_shaping="centered_ranks", antithetic=True,
                                          box_units=True, learning_rate=0.2),
    "uniform": uniform, "gaussian": gaussian, "random_opt": random_opt, "cem": cem, "gradient": gradient,
}


def names() -> list[str]:
    """Every strategy name `make` accepts."""
    return list(_BUILDERS) + [f"evosax:{name}" for name in evosax_algorithms()]


def make(name: str, *, population_size: int, **config) -> Strategy:
    """Builds the strategy `name` with K = population_size samples per iteration.

    config: the builder's keyword options (see reinforce, gaussian, random_opt, cem, gradient, evosax_strategy).
    Raises ValueError naming `--strategy` for an unknown name or option.
    """
    prefix, _, algorithm = name.partition(":")
    if prefix == "evosax" and algorithm:
        builder, args = evosax_strategy, (algorithm,)
    elif name in _BUILDERS:
        builder, args = _BUILDERS[name], ()
    else:
        raise ValueError(
            f"--strategy: unknown strategy {name!r}; known: {', '.join(_BUILDERS)}, evosax:<Algorithm> "
            f"with Algorithm one of {', '.join(evosax_algorithms())}"
        )
    options = [p for p in inspect.signature(builder).parameters if p not in ("algorithm", "population_size")]
    unknown = sorted(set(config) - set(options))
    if unknown:
        raise ValueError(f"--strategy={name}: unknown option(s) {unknown}; options: {options}")
    return builder(*args, population_size=population_size, **config)

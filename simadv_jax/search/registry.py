"""Strategies by name (the `--strategy` flag): reinforce, uniform, gaussian, random_opt, evosax:<Algorithm>."""
from __future__ import annotations

import inspect

from simadv_jax.search.base import Strategy
from simadv_jax.search.evosax_strategies import algorithms as evosax_algorithms, evosax_strategy
from simadv_jax.search.random_search import gaussian, random_opt, uniform
from simadv_jax.search.reinforce import reinforce

_BUILDERS = {"reinforce": reinforce, "uniform": uniform, "gaussian": gaussian, "random_opt": random_opt}


def names() -> list[str]:
    """Every strategy name `make` accepts."""
    return list(_BUILDERS) + [f"evosax:{name}" for name in evosax_algorithms()]


def make(name: str, *, population_size: int, **config) -> Strategy:
    """Builds the strategy `name` with K = population_size samples per iteration.

    config: the builder's keyword options (see reinforce, gaussian, random_opt, evosax_strategy).
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

"""Search strategies (init / ask / tell) and the shared run loop; `make(name, ...)` builds one by name.

Names (the `--strategy` flag): reinforce, reinforce_ranked, uniform, gaussian, random_opt, cem, gradient,
evosax:<Algorithm> (e.g. evosax:CMA_ES, evosax:SNES; see evosax_strategies.algorithms()).
"""
from __future__ import annotations

from simadv_jax.search.base import (Asked, EvaluateFn, RunState, StepRecord, Strategy, ask_runs, init_run, init_runs,
                                    run, step, tell_runs, value_and_gradient)
from simadv_jax.search.cem import cem
from simadv_jax.search.evosax_strategies import algorithms as evosax_algorithms, evosax_strategy
from simadv_jax.search.gradient import gradient
from simadv_jax.search.random_search import gaussian, random_opt, uniform
from simadv_jax.search.registry import make, names
from simadv_jax.search.reinforce import policy_gradient, reinforce

__all__ = [
    "Asked",
    "EvaluateFn",
    "RunState",
    "StepRecord",
    "Strategy",
    "ask_runs",
    "cem",
    "evosax_algorithms",
    "evosax_strategy",
    "gaussian",
    "gradient",
    "init_run",
    "init_runs",
    "make",
    "names",
    "policy_gradient",
    "random_opt",
    "reinforce",
    "run",
    "step",
    "tell_runs",
    "uniform",
    "value_and_gradient",
]

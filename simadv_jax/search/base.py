"""The Strategy interface and the run loop every strategy shares.

A strategy proposes K samples per iteration and learns from their scores. Scores are losses to
*minimize*: the recognizer's similarity between reference and probe in the default scenario (a
sample is adversarial iff it is valid and its score < threshold); a scenario hunting the opposite
error passes the negated score and threshold.

Bookkeeping lives here, not in strategies, so every strategy is counted identically:
  - a query is one sample asked and evaluated; all K samples of an iteration of an active run count
    (also the invalid ones, and the ones after the first adversarial in that iteration);
  - a run that has stopped (`done`) is masked: its samples are still computed in the shared batch
    (static shapes, no recompilation) but are not counted, and its state does not change;
  - samples are clipped to the box before evaluation (strategies learn from what they asked for);
  - invalid samples (valid=False or non-finite score) are counted as invalid, never as adversarial,
    never as the best;
  - a white-box strategy (`needs_gradient`) also receives d(score)/d(rho) of every evaluated sample: the loop
    computes value and gradient in one pass (`value_and_gradient`); each sample is still one query, whatever
    the gradient costs (about 3.5 forward passes on a CPU; `launch.bench --what=efficiency` reports it).

Example (R runs, N iterations, one jitted call per iteration batch):
    strategy = search.make("reinforce", population_size=K)
    runs = search.init_runs(strategy, jax.random.key(0), space.lows, space.highs, num_runs=R)
    runs, records = jax.jit(lambda r: search.run(strategy, r, evaluate_fn, threshold=T,
                                                 stop_at_first=True, iterations=N))(runs)
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from simadv_jax.params import clip_to_box

PyTree = Any
EvaluateFn = Callable[[jax.Array], tuple[jax.Array, jax.Array]]


class Strategy(NamedTuple):
    """A search strategy: three pure functions; options are bound when it is built (`make`).

    init(key, lows (n,), highs (n,)) -> state          one run's state (a pytree)
    ask(key, state) -> (rho (K, n) float32, state)      K samples, paper units, maybe outside the box
    tell(state, rho (K, n), scores (K,), valid (K,) bool) -> state
        rho exactly as asked (unclipped); scores are losses (lower = more adversarial); samples
        with valid=False carry no information and must not move the state towards them.
    needs_gradient: when True, tell takes a fifth argument, grads (K, n) float32 = d(score_k)/d(rho_k) at
        the evaluated (clipped) sample, non-finite or meaningless where valid is False.
    """

    init: Callable[[jax.Array, jax.Array, jax.Array], PyTree]
    ask: Callable[[jax.Array, PyTree], tuple[jax.Array, PyTree]]
    tell: Callable[..., PyTree]
    needs_gradient: bool = False


def value_and_gradient(evaluate_fn: EvaluateFn) -> Callable[[jax.Array], tuple[jax.Array, ...]]:
    """`rho (B, n) -> (scores (B,), valid (B,), grads (B, n), *extra)`, grads[b] = d scores[b] / d rho[b]; extra:
    whatever evaluate_fn returns after (scores, valid) (e.g. the pipeline's acquired flags), not differentiated.

    One reverse pass of sum_b scores[b] (non-finite scores masked out): each score depends on its own row of rho
    only, so the gradient of the sum holds every row's own gradient.
    """

    def total(rho):
        scores, *rest = evaluate_fn(rho)
        return jnp.sum(jnp.where(jnp.isfinite(scores), scores, 0.0)), (scores, *rest)

    def evaluate(rho):
        (_, (scores, valid, *extra)), grads = jax.value_and_grad(total, has_aux=True)(rho)
        return scores, valid, grads, *extra

    return evaluate


@struct.dataclass
class RunState:
    """One run (leading (R,) axis on every field when batched by `init_runs`).

    strategy: the strategy's own state. key: this run's PRNG key.
    lows, highs: (n,) float32 box. done: () bool, stopped at an adversarial (stop_at_first).
    iterations: () int32 iterations counted. queries: () int32 samples counted.
    adversarials, invalid, clipped: () int32 counts over counted samples (clipped: samples with at
      least one coordinate outside the box).
    first_adversarial_query: () int32 1-based query index of the first adversarial, -1 if none.
    best_score: () float32 lowest valid score, +inf if none. best_rho: (n,) the evaluated (clipped)
      sample that scored it (the box centre until one exists). best_query: () int32, -1 if none.
    """

    strategy: PyTree
    key: jax.Array
    lows: jax.Array
    highs: jax.Array
    done: jax.Array
    iterations: jax.Array
    queries: jax.Array
    adversarials: jax.Array
    invalid: jax.Array
    clipped: jax.Array
    first_adversarial_query: jax.Array
    best_score: jax.Array
    best_rho: jax.Array
    best_query: jax.Array


@struct.dataclass
class StepRecord:
    """What one iteration evaluated, for logs and adversarial collection (R runs, K samples).

    rho: (R, K, n) evaluated (clipped) samples. scores: (R, K) as returned (NaN possible).
    valid: (R, K) bool, finite and reported valid. adversarial: (R, K) bool, counted adversarials.
    counted: (R,) bool, the run was active (its samples are queries). query: (R, K) int32 1-based
    query index of each sample within its run.
    """

    rho: jax.Array
    scores: jax.Array
    valid: jax.Array
    adversarial: jax.Array
    counted: jax.Array
    query: jax.Array


def init_run(strategy: Strategy, key: jax.Array, lows: jax.Array, highs: jax.Array) -> RunState:
    """One run's initial state; lows/highs (n,) paper units."""
    lows = jnp.asarray(lows, jnp.float32)
    highs = jnp.asarray(highs, jnp.float32)
    init_key, run_key = jax.random.split(key)
    int0 = jnp.zeros((), jnp.int32)
    # Strong dtypes, so the state after a step has the same types and a jitted step compiles once.
    strategy_state = jax.tree.map(lambda x: x.astype(x.dtype), strategy.init(init_key, lows, highs))
    return RunState(
        strategy=strategy_state,
        key=run_key,
        lows=lows,
        highs=highs,
        done=jnp.zeros((), bool),
        iterations=int0,
        queries=int0,
        adversarials=int0,
        invalid=int0,
        clipped=int0,
        first_adversarial_query=int0 - 1,
        best_score=jnp.full((), jnp.inf, jnp.float32),
        best_rho=(lows + highs) / 2,
        best_query=int0 - 1,
    )


def init_runs(strategy: Strategy, key: jax.Array, lows: jax.Array, highs: jax.Array, num_runs: int) -> RunState:
    """R = num_runs independent runs; run r is seeded by fold_in(key, r), so it does not depend on R."""
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(num_runs))
    return jax.vmap(init_run, in_axes=(None, 0, None, None))(strategy, keys, lows, highs)


def _update(strategy, run, asked, key, rho, rho_eval, n_clipped, scores, valid, grads, threshold, stop_at_first):
    """One run's bookkeeping after evaluation; masked when the run is done (grads: (K, n) or None)."""
    num_samples = scores.shape[0]
    active = ~run.done
    adversarial = valid & (scores < threshold)
    query = run.queries + jnp.arange(1, num_samples + 1, dtype=jnp.int32)
    found = jnp.any(adversarial)
    first = jnp.where(found, query[jnp.argmax(adversarial)], -1)
    masked = jnp.where(valid, scores, jnp.inf)
    best = jnp.argmin(masked)
    improved = masked[best] < run.best_score
    updated = run.replace(
        strategy=strategy.tell(asked, rho, scores, valid, *(() if grads is None else (grads,))),
        key=key,
        done=run.done | (stop_at_first & found),
        iterations=run.iterations + 1,
        queries=run.queries + num_samples,
        adversarials=run.adversarials + jnp.sum(adversarial, dtype=jnp.int32),
        invalid=run.invalid + jnp.sum(~valid, dtype=jnp.int32),
        clipped=run.clipped + jnp.sum(n_clipped > 0, dtype=jnp.int32),
        first_adversarial_query=jnp.where(run.first_adversarial_query < 0, first, run.first_adversarial_query),
        best_score=jnp.where(improved, masked[best], run.best_score),
        best_rho=jnp.where(improved, rho_eval[best], run.best_rho),
        best_query=jnp.where(improved, query[best], run.best_query),
    )
    new = jax.tree.map(lambda a, b: jnp.where(active, a, b), updated, run)
    record = StepRecord(
        rho=rho_eval, scores=scores, valid=valid, adversarial=adversarial & active, counted=active, query=query
    )
    return new, record


class Asked(NamedTuple):
    """What `ask_runs` proposed for R runs of K samples (n dimensions).

    rho: (R, K, n) as asked (maybe outside the box). rho_eval: (R, K, n) clipped to the box (what is evaluated).
    clipped: (R, K) int32 coordinates clipped per sample. strategy: the strategy states after ask. keys: the
    runs' next PRNG keys.
    """

    rho: jax.Array
    rho_eval: jax.Array
    clipped: jax.Array
    strategy: PyTree
    keys: jax.Array

    def flat(self) -> jax.Array:
        """(R * K, n) rho_eval, the batch `evaluate_fn` scores."""
        return self.rho_eval.reshape(-1, self.rho_eval.shape[-1])


def ask_runs(strategy: Strategy, runs: RunState) -> Asked:
    """The first half of a step: every run's K samples (vmapped ask), clipped to its box."""

    def ask(run):
        key, ask_key = jax.random.split(run.key)
        rho, asked = strategy.ask(ask_key, run.strategy)
        rho_eval, n_clipped = clip_to_box(rho, run.lows, run.highs)
        return Asked(rho, rho_eval, n_clipped, asked, key)

    return jax.vmap(ask)(runs)


def tell_runs(strategy: Strategy, runs: RunState, asked: Asked, scores: jax.Array, valid: jax.Array,
              grads: jax.Array | None = None, *, threshold: float | jax.Array,
              stop_at_first: bool | jax.Array) -> tuple[RunState, StepRecord]:
    """The second half of a step: (R * K,) scores and validity of `asked.flat()` (and, for a strategy that
    `needs_gradient`, their (R * K, n) gradients) -> (runs, record) (vmapped tell and the bookkeeping)."""
    num_runs, num_samples, dims = asked.rho.shape
    if strategy.needs_gradient != (grads is not None):
        raise ValueError(f"tell_runs: the strategy {'needs' if strategy.needs_gradient else 'takes no'} gradients")
    scores = jnp.reshape(scores, (num_runs, num_samples))
    valid = jnp.reshape(valid, (num_runs, num_samples)).astype(bool) & jnp.isfinite(scores)
    if grads is not None:
        grads = jnp.reshape(grads, (num_runs, num_samples, dims))
    update = jax.vmap(_update, in_axes=(None, 0, 0, 0, 0, 0, 0, 0, 0, 0, None, None))
    return update(strategy, runs, asked.strategy, asked.keys, asked.rho, asked.rho_eval, asked.clipped, scores,
                  valid, grads, threshold, stop_at_first)


def step(
    strategy: Strategy,
    runs: RunState,
    evaluate_fn: EvaluateFn,
    *,
    threshold: float | jax.Array,
    stop_at_first: bool | jax.Array,
) -> tuple[RunState, StepRecord]:
    """One iteration of R runs: `ask_runs`, ONE evaluate_fn call on (R*K, n) (with its gradient when the strategy
    `needs_gradient`: `value_and_gradient`), `tell_runs`.

    Args:
      strategy: the strategy.
      runs: RunState batched over R runs.
      evaluate_fn: pure `rho (B, n) -> (scores (B,), valid (B,) bool)`, B = R*K; rho is clipped; differentiable
        for a strategy that `needs_gradient`.
      threshold: adversarial iff valid and score < threshold.
      stop_at_first: a run stops after the iteration of its first adversarial.
    Returns:
      (runs, record); pure and `lax.scan`-friendly.
    """
    asked = ask_runs(strategy, runs)
    evaluated = (value_and_gradient(evaluate_fn) if strategy.needs_gradient else evaluate_fn)(asked.flat())
    return tell_runs(strategy, runs, asked, *evaluated, threshold=threshold, stop_at_first=stop_at_first)


def run(
    strategy: Strategy,
    runs: RunState,
    evaluate_fn: EvaluateFn,
    *,
    threshold: float | jax.Array,
    stop_at_first: bool | jax.Array,
    iterations: int,
) -> tuple[RunState, StepRecord]:
    """`iterations` steps under `lax.scan`; records are stacked with a leading (iterations,) axis."""

    def body(carry, _):
        return step(strategy, carry, evaluate_fn, threshold=threshold, stop_at_first=stop_at_first)

    return jax.lax.scan(body, runs, None, length=iterations)

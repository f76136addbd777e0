"""Search efficiency where failures are rare: `python -m launch.bench --what=efficiency [--out=FILE.json]`.

The ladder. Three spaces of the quickstart's identity (shape[0:5] and texture[0:5] in [-2, 2], both images) with
the probe's yaw in a narrower band each, so that uniform sampling fails about 10%, 1% and 0.1% of the time against
dlib's ResNet (reference frontal). The bands come from the simulator's own failure profile on the embedded head
v2.1: 8,192 uniform samples with yaw in [0, 1] failed at yaw [0.9, 1] 75.4%, [0.8, 0.9) 23.9%, [0.7, 0.8) 4.4%,
[0.6, 0.7) 0.97%, [0.5, 0.6) 0.51% and never below 0.5 (0 of 4,074); brute force then gave yaw 0.7:0.87 12.5%
(4,096 samples), 0.5:0.75 0.99% (2,013) and 0.3:0.58 0.085% (8,192). Each rung's uniform failure rate is measured
again here by brute force (`uniform_queries` samples, Wilson interval).

Per rung and strategy: R runs of K samples, `stop_at_first=false` (a run's samples up to its first adversarial are
the same as with stop_at_first=true, so one pass gives both the queries to the first adversarial and the
adversarials per 1,000 queries, counted over the rung's first `window` iterations), until every run has found one
(and at least `window` iterations) or the rung's budget. Per run: the queries to its first adversarial and the wall
time until then (the steps' summed seconds; every run steps in the same batched call, as in launch.search);
medians over the runs with bootstrap percentile intervals (a run that found none counts as infinitely long, so a
median needs more than half the runs to find one). Ratios of medians: to REINFORCE (the paper's; where fewer than
half its runs found one within the budget its median exceeds the budget, and the ratio is an upper bound, "<") and
to uniform sampling (the uniform strategy's median, or ln 2 / p for the geometric distribution at the brute-force
rate when fewer than half its runs found one). `forward_equivalents` is a strategy's step time over uniform's, so
the white-box strategy's gradient evaluations are priced in forward passes.

The failure-rate estimator (`simadv_jax.search.estimate`) is validated at the ~1% rung: each run of
ESTIMATE_STRATEGY supplies its adversarials (and best samples) as the proposal's centres, and ESTIMATE_QUERIES
importance samples give an estimate and its 95% interval; coverage is the share of intervals that hold the
brute-force rate, at (search + importance queries) / brute-force queries of the cost.

`write_report(rows, stem)` writes the table (`STEM_efficiency.md`) and the plot (`STEM_efficiency.png`).
"""
from __future__ import annotations

import math
import time
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import numpy as np

from simadv_jax.report.files import write_bytes_atomic
from simadv_jax.report.plots import figure_png, pyplot
from simadv_jax.search import estimate, experiment
from simadv_jax.search.config import SearchConfig
from simadv_jax.setup import build_setup

IDENTITY = "shape[0:5]=-2:2,texture[0:5]=-2:2"


class Rung(NamedTuple):
    """name: the nominal uniform failure rate. space: --space. window: the iterations adversarials per 1,000
    queries are counted over. max_iterations: the budget (a strategy stops after its window once every run has
    found an adversarial). uniform_queries: brute-force samples."""

    name: str
    space: str
    window: int
    max_iterations: int
    uniform_queries: int


RUNGS = (Rung("10%", f"{IDENTITY},yaw=0.7:0.87", 8, 16, 2048),
         Rung("1%", f"{IDENTITY},yaw=0.5:0.75", 16, 48, 16384),
         Rung("0.1%", f"{IDENTITY},yaw=0.3:0.58", 24, 96, 16384))
STRATEGIES = ("reinforce", "reinforce_ranked", "uniform", "gaussian", "random_opt", "cem", "gradient",
              "evosax:CMA_ES", "evosax:SNES")
RUNS, SAMPLES = 16, 8
ESTIMATE_RUNG, ESTIMATE_STRATEGY, ESTIMATE_QUERIES = "1%", "reinforce_ranked", 1024
RESAMPLES = 2000


class Trace(NamedTuple):
    """One strategy's R runs of I iterations of K samples (host arrays).

    first: (R,) int 1-based query of each run's first adversarial, -1 if none. seconds_to_first: (R,) float
    (inf if none). queries, adversarials: totals over the first `window` iterations. step_s: (I,) seconds per
    step. rho: (I, R, K, n) evaluated
    samples. scores: (I, R, K) losses. valid, adversarial: (I, R, K) bool.
    """

    first: np.ndarray
    seconds_to_first: np.ndarray
    queries: int
    adversarials: int
    step_s: np.ndarray
    rho: np.ndarray
    scores: np.ndarray
    valid: np.ndarray
    adversarial: np.ndarray


def timed_search(setup, config: SearchConfig, name: str, window: int) -> Trace:
    """Runs strategy `name` with the run loop's own step, timing each step, for at least `window` iterations and
    until every run has found an adversarial or config.max_iterations."""
    strategy, runs = experiment.initial_runs(setup, config, name)
    data, runs = experiment.place(setup.evaluation, setup.evaluation.data, runs)
    step = experiment.compiled_step(setup, config, name, strategy, data, runs)
    seconds, records = [], []
    while len(seconds) < config.max_iterations:
        start = time.perf_counter()
        runs, record, _ = jax.block_until_ready(step(data, runs))
        seconds.append(time.perf_counter() - start)
        records.append(jax.device_get(record))
        if len(seconds) >= window and bool(np.all(np.asarray(runs.first_adversarial_query) > 0)):
            break
    first = np.asarray(jax.device_get(runs.first_adversarial_query))
    elapsed = np.cumsum(seconds)
    at = np.maximum(first - 1, 0) // config.samples_per_iteration
    stack = lambda field: np.stack([getattr(r, field) for r in records])
    adversarial = stack("adversarial")
    return Trace(first, np.where(first > 0, elapsed[at], np.inf), int(adversarial[:window].size),
                 int(np.sum(adversarial[:window])), np.asarray(seconds), stack("rho"), stack("scores"),
                 stack("valid"), adversarial)


def bootstrap_median(values: np.ndarray, seed: int = 0, resamples: int = RESAMPLES,
                     confidence: float = 0.95) -> tuple[Optional[float], Optional[float], Optional[float]]:
    """(median, low, high) of `values` (inf = censored) with a bootstrap percentile interval; None where a
    median is infinite."""
    values = np.asarray(values, np.float64)
    draws = np.random.default_rng(seed).choice(values, (resamples, values.size))
    medians = np.median(draws, axis=1)
    tail = 100 * (1 - confidence) / 2
    finite = lambda x: float(x) if np.isfinite(x) else None
    # Order statistics, not interpolation (which would subtract infinities): the outer one on each side.
    return (finite(np.median(values)), finite(np.percentile(medians, tail, method="lower")),
            finite(np.percentile(medians, 100 - tail, method="higher")))


def _ratio(a, b) -> Optional[float]:
    return None if a is None or not b else round(a / b, 4)


def uniform_rate(setup, rung: Rung, seed: int) -> dict:
    """The rung's row: brute-force uniform failure rate with its Wilson interval and the forward cost."""
    space = setup.space
    points = np.random.default_rng(seed).uniform(space.lows, space.highs, (rung.uniform_queries, space.size))
    start = time.perf_counter()
    hits = int(np.sum(setup.evaluation.score_points(points.astype(np.float32)).adversarial))
    seconds = time.perf_counter() - start
    low, high = estimate.wilson_interval(hits, rung.uniform_queries)
    return {"what": "efficiency_rung", "rung": rung.name, "space": rung.space, "uniform_queries": rung.uniform_queries,
            "uniform_hits": hits, "uniform_rate": hits / rung.uniform_queries, "uniform_rate_ci": [low, high],
            "seconds": round(seconds, 2), "seconds_per_query": round(seconds / rung.uniform_queries, 5)}


def strategy_row(rung_row: dict, name: str, config: SearchConfig, trace: Trace, seed: int) -> dict:
    queries = np.where(trace.first > 0, trace.first, np.inf)
    median, low, high = bootstrap_median(queries, seed)
    seconds, seconds_low, seconds_high = bootstrap_median(trace.seconds_to_first, seed)
    return {"what": "efficiency", "rung": rung_row["rung"], "strategy": name, "runs": config.runs,
            "samples_per_iteration": config.samples_per_iteration, "iterations": len(trace.step_s),
            "budget_iterations": config.max_iterations,
            "runs_found": int(np.sum(trace.first > 0)), "median_queries_to_first": median,
            "queries_to_first_ci": [low, high], "median_seconds_to_first": seconds,
            "seconds_to_first_ci": [seconds_low, seconds_high], "window_queries": trace.queries,
            "window_adversarials": trace.adversarials,
            "adversarials_per_1000": round(1000 * trace.adversarials / trace.queries, 3),
            "step_s": round(float(np.median(trace.step_s)), 4), "uniform_rate": rung_row["uniform_rate"],
            "queries_per_run": len(trace.step_s) * config.samples_per_iteration,
            "seconds_run": round(float(np.sum(trace.step_s)), 2),
            "device": str(jax.devices()[0].device_kind), "devices": len(jax.devices())}


def _median_or_bound(row: dict, key: str, bound: str) -> tuple[Optional[float], bool]:
    """(a row's median, False), or when fewer than half its runs found one within the budget, (the budget, True):
    the median is then larger than it."""
    if not row or row[key] is not None:
        return (row or {}).get(key), False
    return row[bound], True


def add_ratios(rows: list[dict]) -> None:
    """Fills each strategy row's ratios to reinforce and uniform (same rung) in place. Where REINFORCE's median
    lies past its budget, the ratios to it are upper bounds (`ratio_to_reinforce_is_bound`)."""
    for row in rows:
        same = {r["strategy"]: r for r in rows if r["rung"] == row["rung"]}
        reinforce, uniform = same.get("reinforce", {}), same.get("uniform", {})
        rate = row["uniform_rate"]
        geometric = math.log(2) / rate if rate else None
        uniform_median = uniform.get("median_queries_to_first") or geometric
        row["uniform_median_queries"] = uniform_median
        row["ratio_queries_to_uniform"] = _ratio(row["median_queries_to_first"], uniform_median)
        queries, bound = _median_or_bound(reinforce, "median_queries_to_first", "queries_per_run")
        seconds, _ = _median_or_bound(reinforce, "median_seconds_to_first", "seconds_run")
        row["ratio_queries_to_reinforce"] = _ratio(row["median_queries_to_first"], queries)
        row["ratio_seconds_to_reinforce"] = _ratio(row["median_seconds_to_first"], seconds)
        row["ratio_to_reinforce_is_bound"] = bound
        row["forward_equivalents"] = _ratio(row["step_s"], uniform.get("step_s"))


def estimate_rows(setup, rung_row: dict, config: SearchConfig, trace: Trace, window: int, seed: int,
                  queries: int) -> list[dict]:
    """One failure-rate estimate per run of `trace` (its samples of the first `window` iterations as the proposal)
    and the coverage summary."""
    truth = rung_row["uniform_rate"]
    space, evaluation = setup.space, setup.evaluation
    rho, adversarial = trace.rho[:window], trace.adversarial[:window]
    rows = []
    for r in range(trace.first.shape[0]):
        losses = np.where(trace.valid[:window, r], trace.scores[:window, r], np.inf)  # (I, K)
        best = np.argmin(losses, axis=1)
        iterations = np.arange(window)
        centers = estimate.proposal_centers(rho[:, r][adversarial[:, r]], rho[iterations, r, best],
                                            losses[iterations, best])
        result = estimate.estimate_failure_rate(lambda rho: evaluation.score_points(rho).adversarial, space.lows,
                                                space.highs, centers, jax.random.fold_in(jax.random.key(seed), r),
                                                queries)
        rows.append({"what": "failure_rate_estimate", "rung": rung_row["rung"], "run": r, "rate": result.rate,
                     "ci": [result.low, result.high], "hits": result.hits, "queries": result.queries,
                     "search_queries": window * config.samples_per_iteration,
                     "covers": bool(result.low <= truth <= result.high)})
    cost = rows[0]["queries"] + rows[0]["search_queries"]
    rates = [row["rate"] for row in rows]
    rows.append({"what": "failure_rate_coverage", "rung": rung_row["rung"], "strategy": ESTIMATE_STRATEGY,
                 "repeats": len(rates), "coverage": float(np.mean([row["covers"] for row in rows])),
                 "mean_rate": float(np.mean(rates)), "relative_sd": float(np.std(rates) / truth) if truth else None,
                 "brute_force_rate": truth, "brute_force_queries": rung_row["uniform_queries"],
                 "queries_per_estimate": cost, "ratio_to_brute_force": round(cost / rung_row["uniform_queries"], 4)})
    return rows


def default_setup(space: str, batch_size: int, recognizer: str = "dlib_resnet"):
    return build_setup(SearchConfig(space=space, recognizer=recognizer), batch_size=batch_size)


def run(batches: Optional[Sequence[int]] = None, rungs: Sequence[Rung] = RUNGS,
        strategies: Sequence[str] = STRATEGIES, runs: int = RUNS, samples: int = SAMPLES, seed: int = 0,
        estimate_queries: int = ESTIMATE_QUERIES, make_setup: Callable = default_setup) -> list[dict]:
    """Rows: per rung one "efficiency_rung" (brute-force uniform rate), per rung and strategy one "efficiency"
    (module docstring), and at ESTIMATE_RUNG the "failure_rate_estimate" rows and their "failure_rate_coverage".

    batches: (B,) samples per iteration over all runs (runs = B // samples; default runs x samples).
    make_setup: (space, batch_size) -> Setup (default dlib_resnet on the embedded head).
    """
    if batches:
        runs = max(batches[0] // samples, 1)
    rows = []
    for rung in rungs:
        setup = make_setup(rung.space, runs * samples)
        rung_row = uniform_rate(setup, rung, seed)
        rows.append(rung_row)
        config = SearchConfig(strategies=tuple(strategies), runs=runs, samples_per_iteration=samples,
                              max_iterations=rung.max_iterations, stop_at_first=False, seed=seed, space=rung.space)
        found = []
        for name in strategies:
            trace = timed_search(setup, config, name, rung.window)
            found.append(strategy_row(rung_row, name, config, trace, seed))
            if rung.name == ESTIMATE_RUNG and name == ESTIMATE_STRATEGY:
                estimates = estimate_rows(setup, rung_row, config, trace, rung.window, seed, estimate_queries)
        add_ratios(found)
        rows += found
        if rung.name == ESTIMATE_RUNG and ESTIMATE_STRATEGY in strategies:
            rows += estimates
    return rows


def _interval(value, ci, fmt: str) -> str:
    if value is None:
        return "-"
    low, high = ("-" if x is None else format(x, fmt) for x in ci)
    return f"{value:{fmt}} [{low}, {high}]"


def table_markdown(rows: list[dict]) -> str:
    """The efficiency table: one line per rung and strategy."""
    rungs = {r["rung"]: r for r in rows if r["what"] == "efficiency_rung"}
    lines = ["| rung | uniform rate [95% CI] | strategy | runs found | median queries to first [95% CI] | x uniform "
             "| x reinforce | median s to first [95% CI] | x reinforce (s) | adversarials / 1000 q | step (fwd eq.) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in (r for r in rows if r["what"] == "efficiency"):
        rung = rungs[row["rung"]]
        bounded = lambda value: ("< " if row["ratio_to_reinforce_is_bound"] and value is not None else "") + \
            _number(value)
        rate = _interval(100 * rung["uniform_rate"], [100 * x for x in rung["uniform_rate_ci"]], ".3f") + "%"
        cells = [row["rung"], rate, row["strategy"], f"{row['runs_found']}/{row['runs']}",
                 _interval(row["median_queries_to_first"], row["queries_to_first_ci"], ".0f"),
                 _number(row["ratio_queries_to_uniform"]), bounded(row["ratio_queries_to_reinforce"]),
                 _interval(row["median_seconds_to_first"], row["seconds_to_first_ci"], ".1f"),
                 bounded(row["ratio_seconds_to_reinforce"]), f"{row['adversarials_per_1000']:.1f}",
                 _number(row["forward_equivalents"], ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    for row in (r for r in rows if r["what"] == "failure_rate_coverage"):
        lines += ["", f"Failure-rate estimates at the {row['rung']} rung ({row['repeats']} repeats, proposal from "
                      f"one {row['strategy']} run each): coverage of the brute-force rate "
                      f"{100 * row['brute_force_rate']:.3f}% by the 95% intervals {100 * row['coverage']:.0f}%, "
                      f"mean estimate {100 * row['mean_rate']:.3f}%, relative sd {row['relative_sd']:.2f}, "
                      f"{row['queries_per_estimate']} queries each = {row['ratio_to_brute_force']:.3f}x brute force's "
                      f"{row['brute_force_queries']}."]
    return "\n".join(lines) + "\n"


def _number(value, fmt: str = ".3f") -> str:
    return "-" if value is None else format(value, fmt)


def plot_png(rows: list[dict]) -> bytes:
    """Median queries and seconds to a first adversarial against the rung's uniform failure rate, per strategy,
    with the bootstrap intervals (runs that found none: not drawn)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    strategies = list(dict.fromkeys(r["strategy"] for r in rows if r["what"] == "efficiency"))
    for name in strategies:
        mine = sorted((r for r in rows if r["what"] == "efficiency" and r["strategy"] == name),
                      key=lambda r: -r["uniform_rate"])
        for ax, key, ci in ((axes[0], "median_queries_to_first", "queries_to_first_ci"),
                            (axes[1], "median_seconds_to_first", "seconds_to_first_ci")):
            shown = [r for r in mine if r[key] is not None and r["uniform_rate"] > 0]
            if not shown:
                continue
            x = [r["uniform_rate"] for r in shown]
            y = [r[key] for r in shown]
            low = [y_ - (r[ci][0] if r[ci][0] is not None else y_) for y_, r in zip(y, shown)]
            high = [(r[ci][1] if r[ci][1] is not None else y_) - y_ for y_, r in zip(y, shown)]
            ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=name)
    for ax, label in ((axes[0], "median queries to first adversarial"), (axes[1], "median seconds to first")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("uniform failure rate of the space (rarer to the right)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


def write_report(rows: list[dict], stem: str) -> None:
    """STEM_efficiency.md (the table) and STEM_efficiency.png (the plot), atomically."""
    write_bytes_atomic(f"{stem}_efficiency.md", table_markdown(rows).encode())
    write_bytes_atomic(f"{stem}_efficiency.png", plot_png(rows))

"""A finished (or interrupted) search's results: the results.json payload and what the report shows.

Scores in results are the recognizer's similarity (the scenario's sign undone); `threshold` is the recognizer's
decision threshold on it. Accuracy is the verification accuracy over every valid counted sample (correct iff not
adversarial); queries count every sample of an active run (see simadv_jax.search.base). `timing` is the only part
that varies between reruns of the same configuration.

`write_outputs` renders the saved adversarials, the grid and one run's sequence through the evaluation's own
renderer (`Evaluation.images`: the crops that were scored), re-scores with `--rescore_with` through a second
evaluation, groups the adversarials into failure modes with `--stop_at_first=false` (`search.modes`), estimates
the failure rate with `--estimate_failure_rate` (`search.estimate`), and hands plain arrays and dicts to
`simadv_jax.report`, which writes the files.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import jax
import numpy as np

from simadv_jax.report import images as report_images
from simadv_jax.report.outputs import ADVERSARIALS_DIR, PairTile, RunSequence, write_search_report
from simadv_jax.search import estimate
from simadv_jax.search.modes import failure_modes
from simadv_jax.setup import head_record

SCHEMA_VERSION = 1
GRID_PAIRS = 12
SEQUENCE_FRAMES = 10
ESTIMATE_STREAM = 0x5EED  # the failure-rate estimate's samples: fold_in(key(seed), ESTIMATE_STREAM)


def _ratio(a: float, b: float) -> Optional[float]:
    return float(a) / float(b) if b else None


def adversarial_rhos(events: list[dict]) -> np.ndarray:
    """(A, n) float32: every counted adversarial's rho, in event order (the order of `adversarial_list`)."""
    return np.asarray([entry["rho"] for line in events for entry in line["adversarials"]], np.float32)


def adversarial_list(space, events: list[dict]) -> list[dict]:
    """Every counted adversarial in event order: run, iteration, query, named params, score (similarity)."""
    found = []
    for line in events:
        for entry in line["adversarials"]:
            found.append({
                "run": line["run"],
                "iteration": line["iteration"],
                "query": entry["query"],
                "params": space.to_dict(np.asarray(entry["rho"], np.float32)),
                "score": line["scores"][entry["k"]],
            })
    return found


def strategy_summary(runs, events: list[dict], iterations: int, space) -> dict:
    """One strategy's numbers from its final RunState (host arrays, (R,) leading axis) and its events."""
    scores = [s for line in events for s, v in zip(line["scores"], line["valid"]) if v and s is not None]
    queries = int(np.sum(runs.queries))
    adversarials = int(np.sum(runs.adversarials))
    first = np.asarray(runs.first_adversarial_query)
    found = first > 0
    return {
        "queries": queries,
        "adversarials_found": adversarials,
        "accuracy": _ratio(len(scores) - adversarials, len(scores)),
        "mean_score": float(np.mean(scores)) if scores else None,
        "queries_per_adversarial": _ratio(queries, adversarials),
        "runs": int(first.shape[0]),
        "runs_with_adversarial": int(np.sum(found)),
        "fraction_runs_with_adversarial": float(np.mean(found)),
        "median_queries_to_first_adversarial": float(np.median(first[found])) if np.any(found) else None,
        "valid_samples": len(scores),
        "invalid": int(np.sum(runs.invalid)),
        "clipped": int(np.sum(runs.clipped)),
        "iterations": iterations,
        "adversarials": adversarial_list(space, events),
    }


def build_results(setup, config, finals: dict, events: dict, completed: dict, seconds: dict) -> dict[str, Any]:
    """The results.json payload (schema_version 1) of a search `setup` ran with `config`."""
    recognizer, space, evaluation = setup.recognizer, setup.space, setup.evaluation
    strategies = {name: strategy_summary(finals[name], events[name], completed[name], space)
                  for name in config.strategies}
    return {
        "schema_version": SCHEMA_VERSION,
        "config": config.to_json(),
        "scenario": config.scenario,
        "recognizer": {"name": recognizer.name, "template": recognizer.template, "input_size": recognizer.input_size,
                       "metric": recognizer.metric, "threshold": evaluation.similarity_threshold},
        "alignment": {"name": evaluation.renderer.alignment, "box_source": evaluation.renderer.box_source,
                      "note": None if evaluation.renderer.box_source is None else
                      "a pair whose face the pipeline did not acquire is a failure to acquire: counted in `invalid`, "
                      "never an adversarial, and apart in `acquisition`"},
        "head": head_record(setup.model, setup.texture_model),
        "space": {"spec": space.spec, "names": list(space.names), "lows": space.lows.tolist(),
                  "highs": space.highs.tolist()},
        "strategies": strategies,
        "where_it_breaks": where_it_breaks(space, strategies),
        "timing": {name: {"seconds": round(seconds[name], 3),
                          "queries_per_second": _ratio(strategies[name]["queries"], seconds[name])}
                   for name in config.strategies},
    }


BREAK_BINS = 10  # where_it_breaks: a parameter's searched range in this many equal bins


def _extent(values: list) -> Optional[dict]:
    return {"count": len(values), "range": [float(min(values)), float(max(values))]} if values else None


def _intervals(values: list, low: float, high: float) -> tuple[list, float]:
    """The adversarial values grouped by runs of occupied bins of [low, high]: ([[min, max] of each run],
    fraction of the BREAK_BINS bins occupied)."""
    bins = np.clip(((np.asarray(values) - low) / (high - low) * BREAK_BINS).astype(int), 0, BREAK_BINS - 1)
    runs, current = [], []
    for b in range(BREAK_BINS + 1):
        if b < BREAK_BINS and np.any(bins == b):
            current.append(b)
        elif current:
            inside = [v for v, vb in zip(values, bins) if current[0] <= vb <= current[-1]]
            runs.append([float(min(inside)), float(max(inside))])
            current = []
    return runs, len(set(bins.tolist())) / BREAK_BINS


def where_it_breaks(space, strategies: dict) -> dict:
    """Per searched parameter, where the adversarials lie against the searched range (results.json's
    "where_it_breaks").

    {"parameters": {name: {"searched": [lo, hi], "adversarials": {"count", "range"} | None, "by_strategy":
    {strategy: {"count", "range"} | None}, "intervals": [[a, b], ...] the adversarial values grouped by runs of
    occupied bins (BREAK_BINS equal bins of the searched range), "occupied_fraction": the fraction of bins holding
    an adversarial (None without adversarials)}}, "summary": one line per parameter, most concentrated first}.
    strategies: results.json's per-strategy summaries (their "adversarials" with named "params").
    """
    parameters = {}
    for name, low, high in zip(space.names, space.lows.tolist(), space.highs.tolist()):
        values = [a["params"][name] for summary in strategies.values() for a in summary["adversarials"]]
        intervals, occupied = _intervals(values, low, high) if values else ([], None)
        parameters[name] = {
            "searched": [low, high], "adversarials": _extent(values),
            "by_strategy": {s: _extent([a["params"][name] for a in summary["adversarials"]])
                            for s, summary in strategies.items()},
            "intervals": intervals, "occupied_fraction": occupied}
    order = sorted(parameters, key=lambda n: (parameters[n]["occupied_fraction"] is None,
                                              parameters[n]["occupied_fraction"] or 0.0))
    summary = []
    for name in order:
        entry = parameters[name]
        low, high = entry["searched"]
        if entry["adversarials"] is None:
            summary.append(f"{name}: no adversarial found, searched [{low:g}, {high:g}]")
            continue
        where = " and ".join(f"[{a:.2f}, {b:.2f}]" for a, b in entry["intervals"])
        summary.append(f"{name}: adversarials in {where} ({entry['adversarials']['count']} found), searched "
                       f"[{low:g}, {high:g}] ({100 * entry['occupied_fraction']:.0f}% of its range holds them)")
    return {"parameters": parameters, "summary": summary}


def sample_record(setup, config, strategy: str, entry: dict) -> dict:
    """The saved NNNN.json of one sample: what `simadv_jax.samples` needs to re-render and re-score it exactly."""
    view, evaluation = setup.evaluation.renderer.view, setup.evaluation
    return {
        "strategy": strategy, "run": entry["run"], "iteration": entry["iteration"], "query": entry["query"],
        "score": entry["score"], "threshold": evaluation.similarity_threshold, "scenario": config.scenario,
        "recognizer": config.recognizer, "template": view.template, "resolution": view.resolution,
        "supersample": view.supersample, "background": list(view.background), "alignment": config.alignment,
        "box_source": evaluation.renderer.box_source, "head": config.head,
        "texture": config.texture, "space": setup.space.spec, "params": entry["params"],
    }


def quantized(images: np.ndarray) -> np.ndarray:
    """Float RGB in [0, 1] -> the float image of its 8-bit PNG (what a user re-reads from disk)."""
    return report_images.to_uint8(images).astype(np.float32) / 255.0


def rescore(setup, name: str, rhos: np.ndarray, strategies: list[str]) -> dict:
    """Re-scores the saved adversarials with recognizer `name` (rendered for its own template, quantized to 8 bits
    like the PNGs) and counts how many are still adversarial there."""
    other = setup.evaluation_for(name)
    pairs = other.images(rhos)
    scores = other.score_images(quantized(pairs.reference), quantized(pairs.probe))
    still = [bool(a) for a in scores.adversarial]
    per_strategy = {}
    for strategy in dict.fromkeys(strategies):
        mine = [k for k, s in zip(still, strategies) if s == strategy]
        per_strategy[strategy] = {"rescored": len(mine), "still_adversarial": int(sum(mine))}
    return {"recognizer": other.recognizer.name, "threshold": other.similarity_threshold, "rescored": len(still),
            "still_adversarial": int(sum(still)),
            "fraction_still_adversarial": (sum(still) / len(still)) if still else None,
            "scores": [float(s) for s in scores.similarity], "strategies": per_strategy}


def transfer_matrix(setup, targets, rhos: np.ndarray, strategies: list[str]) -> dict:
    """results.json's "transfer": the saved adversarials re-scored by each target recognizer (`rescore`).

    {"targets": {target: rescore(...)}, "matrix": {strategy: {target: fraction still adversarial}}}.
    """
    rescored = {name: rescore(setup, name, rhos, strategies) for name in targets}
    matrix = {strategy: {name: _ratio(r["strategies"][strategy]["still_adversarial"],
                                      r["strategies"][strategy]["rescored"]) for name, r in rescored.items()}
              for strategy in dict.fromkeys(strategies)}
    return {"targets": rescored, "matrix": matrix}


def acquisition(evaluation, events: dict, strategies) -> dict:
    """results.json's "acquisition" with --alignment=pipeline: per strategy, of its invalid samples, the failures
    to acquire (the pipeline found no face in the reference or the probe) and the renders that failed otherwise:
    {name: {"invalid", "failures_to_acquire", "invalid_renders"}}. The failures to acquire are the events'
    "not_acquired", as the search step found them; lines written before that field have their "invalid" samples
    re-scored (`PointScores.acquired`), and lines written before the "invalid" field count as failed renders."""
    out = {}
    for name in strategies:
        lines = events[name]
        rho = np.asarray([entry["rho"] for line in lines if "not_acquired" not in line
                          for entry in line.get("invalid", [])], np.float32)
        invalid = sum(line["valid"].count(False) for line in lines)
        lost = sum(len(line.get("not_acquired", [])) for line in lines)
        lost += int(np.sum(~evaluation.score_points(rho).acquired)) if len(rho) else 0
        out[name] = {"invalid": invalid, "failures_to_acquire": lost, "invalid_renders": invalid - lost}
    return out


def failure_rate(setup, config, events: dict, rhos: np.ndarray) -> dict:
    """results.json's "failure_rate": P(adversarial) under the space's uniform distribution by importance sampling
    around the search's adversarials `rhos` (A, n) and best samples (`search.estimate`), with its interval.

    {"rate", "interval": [low, high], "confidence", "queries" (the estimate's own samples), "hits",
    "search_queries", "centers", "uniform_equivalent_queries" (uniform samples for the same standard error)}.
    """
    evaluation, space = setup.evaluation, setup.space
    lines = [line for name in config.strategies for line in events[name] if line["best"] is not None]
    best_rho = np.asarray([line["best"]["rho"] for line in lines], np.float32).reshape(-1, space.size)
    best_loss = np.asarray([evaluation.scenario.loss(line["scores"][line["best"]["k"]]) for line in lines])
    centers = estimate.proposal_centers(rhos, best_rho, best_loss)
    result = estimate.estimate_failure_rate(
        lambda rho: evaluation.score_points(rho).adversarial, space.lows, space.highs, centers,
        jax.random.fold_in(jax.random.key(config.seed), ESTIMATE_STREAM), config.estimate_queries)
    return {"rate": result.rate, "interval": [result.low, result.high], "confidence": result.confidence,
            "queries": result.queries, "hits": result.hits,
            "search_queries": sum(len(line["scores"]) for name in config.strategies for line in events[name]),
            "centers": len(centers), "uniform_equivalent_queries": round(result.effective_queries)}


def best_curves(events: list[dict], runs: int, scenario) -> list[np.ndarray]:
    """Per run, the iteration's best (most adversarial) similarity per iteration."""
    curves = [dict() for _ in range(runs)]
    for line in events:
        valid = [s for s, v in zip(line["scores"], line["valid"]) if v and s is not None]
        if valid:
            curves[line["run"]][line["iteration"]] = min(valid) if scenario.sign > 0 else max(valid)
    return [np.asarray([c[i] for i in sorted(c)]) for c in curves]


def _sequence(evaluation, name: str, events: list[dict]) -> RunSequence:
    """Run 0 of strategy `name` over time: the best probe of up to SEQUENCE_FRAMES iterations, every score."""
    run0 = [line for line in events if line["run"] == 0]
    chosen = [run0[i] for i in sorted(set(np.linspace(0, len(run0) - 1, SEQUENCE_FRAMES).astype(int)))] if run0 else []
    chosen = [line for line in chosen if line["best"] is not None]
    frames = evaluation.images(np.asarray([line["best"]["rho"] for line in chosen], np.float32)).probe
    titles = [f"it {line['iteration']}: {line['scores'][line['best']['k']]:.3f}" for line in chosen]
    points = [(line["iteration"], s) for line in run0 for s, v in zip(line["scores"], line["valid"])
              if v and s is not None]
    return RunSequence(list(frames), titles, [p[0] for p in points], [p[1] for p in points], f"{name}, run 0")


def write_outputs(setup, config, output_dir: str, finals: dict, events: dict, completed: dict, seconds: dict,
                  missing_events: Optional[dict] = None) -> dict:
    """Writes adversarials/, the figures, table.md, report.html and (last) results.json; returns results.

    missing_events: {strategy: [(iteration, run), ...]} event lines lost below a checkpoint (listed in results).
    """
    evaluation, space = setup.evaluation, setup.space
    results = build_results(setup, config, finals, events, completed, seconds)
    if missing_events:
        results["missing_events"] = {name: [list(pair) for pair in pairs] for name, pairs in missing_events.items()}

    # Saved adversarials, numbered across strategies in order.
    found = [(name, entry) for name in config.strategies for entry in results["strategies"][name]["adversarials"]]
    saved = found[:config.max_saved_adversarials]
    every = np.concatenate([adversarial_rhos(events[name]).reshape(-1, space.size) for name in config.strategies])
    rhos = every[:len(saved)]
    pairs = evaluation.images(rhos)
    directory = os.path.join(output_dir, ADVERSARIALS_DIR)
    for index, ((name, entry), ref, probe) in enumerate(zip(saved, pairs.reference, pairs.probe)):
        entry["index"] = index
        entry["files"] = report_images.write_adversarial_files(directory, index, ref, probe,
                                                               sample_record(setup, config, name, entry))
    if config.rescore_with and saved:
        results["rescore"] = rescore(setup, config.rescore_with, rhos, [name for name, _ in saved])
    if config.transfer_to and saved:
        results["transfer"] = transfer_matrix(setup, config.transfer_to, rhos, [name for name, _ in saved])
    if evaluation.renderer.box_source is not None:
        results["acquisition"] = acquisition(evaluation, events, config.strategies)
    if not config.stop_at_first and found:
        def similarity(rho):
            scores = evaluation.score_points(rho)
            return np.where(scores.valid, scores.similarity, np.nan)

        results["failure_modes"] = failure_modes(space, found, every, similarity)
    if config.estimate_failure_rate:
        results["failure_rate"] = failure_rate(setup, config, events, every)

    # The grid: adversarial pairs first, then the best sample of runs that found none.
    grid = [PairTile(ref, probe, f"{name} run {e['run']}: {e['score']:.3f}", True)
            for (name, e), ref, probe in list(zip(saved, pairs.reference, pairs.probe))[:GRID_PAIRS]]
    fill = []
    for name in config.strategies:
        runs = finals[name]
        for r in np.flatnonzero((runs.first_adversarial_query < 0) & np.isfinite(runs.best_score)):
            fill.append((name, int(r), np.asarray(runs.best_rho[r]),
                         float(evaluation.scenario.similarity(float(runs.best_score[r])))))
    fill = fill[:GRID_PAIRS - len(grid)]
    if fill:
        best = evaluation.images(np.stack([f[2] for f in fill]))
        grid += [PairTile(a, b, f"{name} run {r} best: {s:.3f}", False)
                 for (name, r, _, s), a, b in zip(fill, best.reference, best.probe)]

    curves = {name: best_curves(events[name], config.runs, evaluation.scenario) for name in config.strategies}
    first = config.strategies[0]
    write_search_report(output_dir, results, grid, curves, _sequence(evaluation, first, events[first]))
    return results

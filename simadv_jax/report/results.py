"""results.json and table.md of an adversarial search, built from events and the final run states.

Scores in results are the recognizer's similarity (the scenario's sign undone); `threshold` is the
recognizer's decision threshold on it. Accuracy is the verification accuracy over every valid counted sample
(correct iff not adversarial); queries count every sample of an active run (see simadv_jax.search.base).
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

SCHEMA_VERSION = 1


def _ratio(a: float, b: float) -> Optional[float]:
    return float(a) / float(b) if b else None


def adversarial_list(space, events: list[dict]) -> list[dict]:
    """Every counted adversarial in event order: run, iteration, query, named params, score."""
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
    """The results.json payload (schema_version 1). `timing` is the only part that varies between reruns."""
    recognizer, space, evaluation = setup.recognizer, setup.space, setup.evaluation
    strategies = {name: strategy_summary(finals[name], events[name], completed[name], space)
                  for name in config.strategies}
    return {
        "schema_version": SCHEMA_VERSION,
        "config": config.to_json(),
        "scenario": config.scenario,
        "recognizer": {"name": recognizer.name, "template": recognizer.template, "input_size": recognizer.input_size,
                       "metric": recognizer.metric, "threshold": evaluation.sign * evaluation.threshold},
        "head": {"model": setup.model.name, "texture": setup.texture_model.name},
        "space": {"spec": space.spec, "names": list(space.names), "lows": space.lows.tolist(),
                  "highs": space.highs.tolist()},
        "strategies": strategies,
        "timing": {name: {"seconds": round(seconds[name], 3),
                          "queries_per_second": _ratio(strategies[name]["queries"], seconds[name])}
                   for name in config.strategies},
    }


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, fmt)


def table_markdown(results: dict) -> str:
    """The paper's Table 2/3 layout: one row per strategy."""
    recognizer = results["recognizer"]
    lines = [
        f"Recognizer `{recognizer['name']}` (threshold {recognizer['threshold']:.3f}, {recognizer['metric']}), "
        f"scenario {results['scenario']}, space `{results['space']['spec']}`",
        "",
        "| Strategy | Queries | Adversarials | Accuracy (%) | Mean score | Queries / adversarial "
        "| Runs with adversarial | Median queries to first | Invalid | Clipped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in results["strategies"].items():
        accuracy = None if s["accuracy"] is None else 100 * s["accuracy"]
        lines.append(
            f"| {name} | {s['queries']} | {s['adversarials_found']} | {_cell(accuracy, '.1f')} "
            f"| {_cell(s['mean_score'], '.3f')} | {_cell(s['queries_per_adversarial'], '.1f')} "
            f"| {s['runs_with_adversarial']}/{s['runs']} | {_cell(s['median_queries_to_first_adversarial'], '.0f')} "
            f"| {s['invalid']} | {s['clipped']} |"
        )
    if "rescore" in results:
        r = results["rescore"]
        lines += ["", f"Rescored with `{r['recognizer']}` (threshold {r['threshold']:.3f}): "
                      f"{r['still_adversarial']}/{r['rescored']} saved adversarials are still adversarial."]
    return "\n".join(lines) + "\n"

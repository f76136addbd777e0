"""events.jsonl: the append-only log of a search, one line per iteration per active run."""
from __future__ import annotations

import math
import os
from typing import Optional

import numpy as np

from simadv_jax.report.files import cut_torn_line, read_jsonl

EVENTS = "events.jsonl"


def _finite(value: float) -> Optional[float]:
    value = float(value)
    return value if math.isfinite(value) else None


def events_records(strategy: str, iteration: int, record, runs, scenario,
                   acquired: Optional[np.ndarray] = None) -> list[dict]:
    """One events.jsonl line per run active in this iteration (host numpy StepRecord and RunState; scenario: the
    evaluation's Scenario, which turns the losses back into similarities; acquired: (R, K) bool, the pipeline
    found both faces, given with --alignment=pipeline only).

    Fields: strategy, iteration (0-based), run, queries (the run's total after it), scores (K recognizer
    similarities, null when non-finite), valid (K bools), adversarial (indices k), adversarials
    ([{k, query, rho}]), invalid ([{k, query, rho}] of the samples that were not valid), not_acquired (indices k
    of the failures to acquire, a subset of invalid's; only with `acquired`), best ({k, query, rho} of the lowest
    valid loss, or null), done, clipped (total).
    """
    lines = []
    for r in np.flatnonzero(record.counted):
        valid = record.valid[r]
        losses = np.where(valid, record.scores[r], np.inf)
        best = int(np.argmin(losses))
        line = {
            "strategy": strategy,
            "iteration": iteration,
            "run": int(r),
            "queries": int(runs.queries[r]),
            "scores": [_finite(scenario.similarity(s)) for s in record.scores[r]],
            "valid": [bool(v) for v in valid],
            "adversarial": [int(k) for k in np.flatnonzero(record.adversarial[r])],
            "adversarials": [{"k": int(k), "query": int(record.query[r, k]), "rho": record.rho[r, k].tolist()}
                             for k in np.flatnonzero(record.adversarial[r])],
            "invalid": [{"k": int(k), "query": int(record.query[r, k]), "rho": record.rho[r, k].tolist()}
                        for k in np.flatnonzero(~valid)],
            "best": ({"k": best, "query": int(record.query[r, best]), "rho": record.rho[r, best].tolist()}
                     if np.isfinite(losses[best]) else None),
            "done": bool(runs.done[r]),
            "clipped": int(runs.clipped[r]),
        }
        if acquired is not None:
            line["not_acquired"] = [int(k) for k in np.flatnonzero(~acquired[r])]
        lines.append(line)
    return lines


def read_events(output_dir: str, completed: dict[str, int]) -> dict[str, list[dict]]:
    """Events per strategy, deduplicated by (iteration, run), only iterations < completed[strategy]."""
    seen: dict[str, dict[tuple[int, int], dict]] = {name: {} for name in completed}
    for line in read_jsonl(os.path.join(output_dir, EVENTS)):
        name = line.get("strategy")
        if name in seen and line["iteration"] < completed[name]:
            seen[name][(line["iteration"], line["run"])] = line
    return {name: [lines[k] for k in sorted(lines)] for name, lines in seen.items()}


def repair(path: str) -> int:
    """Cuts the event log back to its last complete line (`report.files.cut_torn_line`); returns the bytes cut."""
    return cut_torn_line(path)


def missing(events: list[dict], counted_iterations: np.ndarray) -> list[tuple[int, int]]:
    """(iteration, run) pairs below a checkpoint with no event line: run r was active in iterations
    0 .. counted_iterations[r] - 1 (RunState.iterations), and each such iteration has one line."""
    present = {(line["iteration"], line["run"]) for line in events}
    return [(i, r) for r, count in enumerate(np.asarray(counted_iterations)) for i in range(int(count))
            if (i, r) not in present]

"""What kinds of failure: a search's adversarials grouped into failure modes (results.json's "failure_modes").

Points are compared in box-normalized coordinates u = (rho - lows) / (highs - lows) in [0, 1]^n, by their RMS
distance per coordinate d(a, b) = ||u_a - u_b|| / sqrt(n), so a cut-off means the same in any number of
dimensions. Modes are the clusters of average-linkage agglomerative clustering cut at CUTOFF (two adversarials
whose groups lie on average more than 15% of each range apart are different modes), largest first. Per mode:
its size by strategy and run, its centre and spread per parameter, a representative (the medoid: the least mean
distance to the rest of the mode; among the saved pairs when the mode has any), and which parameters matter
there: the loss's sensitivity at up to SENSITIVITY_POINTS of its points nearest the medoid, by central differences
of the similarity for a move of +-SENSITIVITY_STEP of each parameter's range,

    s_p(x) = (similarity(x + delta_p e_p) - similarity(x - delta_p e_p)) / 2,    delta_p = 0.05 (hi_p - lo_p)

(clipped to the box). Differences, not autodiff gradients, so that silhouettes sweeping over pixels count and
any recognizer (dlib's own code too) can be measured; the cost is 2 n evaluations per point, of the adversarial
list already in hand.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

CUTOFF = 0.15
MAX_MODES = 8  # modes described one by one; the rest are counted
SENSITIVITY_POINTS = 3
SENSITIVITY_STEP = 0.05
MATTERS = 3  # parameters named per mode


def normalized(rho: np.ndarray, lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
    """(A, n) paper units -> (A, n) box-normalized coordinates in [0, 1]."""
    return (np.asarray(rho, np.float64) - lows) / (highs - lows)


def cluster(u: np.ndarray, cutoff: float = CUTOFF) -> np.ndarray:
    """(A, n) normalized points -> (A,) int mode labels 0, 1, ... by decreasing size (ties: first appearance)."""
    if len(u) < 2:
        return np.zeros(len(u), int)
    from scipy.cluster.hierarchy import fcluster, linkage

    labels = fcluster(linkage(u / np.sqrt(u.shape[1]), method="average"), cutoff, criterion="distance")
    order = sorted(set(labels), key=lambda label: (-np.sum(labels == label), np.argmax(labels == label)))
    return np.asarray([order.index(label) for label in labels])


def medoid(u: np.ndarray, candidates: np.ndarray) -> int:
    """Index into u of the candidate with the least mean distance to every point of u."""
    distances = np.linalg.norm(u[candidates][:, None] - u[None], axis=-1).mean(axis=1)
    return int(candidates[np.argmin(distances)])


def sensitivities(similarity_fn: Callable[[np.ndarray], np.ndarray], rho: np.ndarray, lows: np.ndarray,
                  highs: np.ndarray, step: float = SENSITIVITY_STEP) -> np.ndarray:
    """(M, n) points -> (M, n) s_p(x) (module docstring; NaN where either side is invalid).

    similarity_fn: (N, n) rho -> (N,) similarity, NaN for invalid samples.
    """
    rho = np.asarray(rho, np.float32)
    count, dims = rho.shape
    delta = (step * (highs - lows)).astype(np.float32)
    moves = np.eye(dims, dtype=np.float32) * delta  # (n, n)
    up = np.clip(rho[:, None] + moves, lows, highs).reshape(-1, dims)
    down = np.clip(rho[:, None] - moves, lows, highs).reshape(-1, dims)
    values = similarity_fn(np.concatenate([up, down]))
    return ((values[:count * dims] - values[count * dims:]) / 2).reshape(count, dims)


def failure_modes(space, found: list[tuple[str, dict]], rho: np.ndarray,
                  similarity_fn: Callable[[np.ndarray], np.ndarray]) -> dict:
    """results.json's "failure_modes" from the adversarials `found` ((strategy, results entry) pairs, in the
    order of their (A, n) `rho`).

    {"cutoff", "count": modes, "modes": [{"mode", "count", "by_strategy", "runs", "center", "spread",
    "representative": {"strategy", "run", "iteration", "query", "score", "index" (saved pair, or None),
    "params"}, "sensitivity": {parameter: {"mean_abs", "mean"}}, "matters": [most sensitive parameters]}]
    (the MAX_MODES largest), "other_modes", "other_adversarials", "summary": one line per described mode}.
    """
    lows, highs = space.lows.astype(np.float64), space.highs.astype(np.float64)
    u = normalized(rho, lows, highs)
    labels = cluster(u)
    modes, summary = [], []
    for mode in range(min(MAX_MODES, labels.max(initial=-1) + 1)):
        members = np.flatnonzero(labels == mode)
        saved = np.asarray([i for i in members if "index" in found[i][1]], int)
        candidates = np.searchsorted(members, saved) if saved.size else np.arange(members.size)
        representative = members[medoid(u[members], candidates)]
        nearest = members[np.argsort(np.linalg.norm(u[members] - u[representative], axis=-1))[:SENSITIVITY_POINTS]]
        values = sensitivities(similarity_fn, rho[nearest], lows, highs)
        sensitivity = {name: {"mean_abs": _mean(np.abs(values[:, p])), "mean": _mean(values[:, p])}
                       for p, name in enumerate(space.names)}
        ranked = sorted(space.names, key=lambda n: -(sensitivity[n]["mean_abs"] or 0.0))[:MATTERS]
        strategy, entry = found[representative]
        by_strategy = {}
        for i in members:
            by_strategy[found[i][0]] = by_strategy.get(found[i][0], 0) + 1
        points = rho[members]
        modes.append({
            "mode": mode, "count": int(members.size), "by_strategy": by_strategy,
            "runs": len({(found[i][0], found[i][1]["run"]) for i in members}),
            "center": dict(zip(space.names, points.mean(axis=0).tolist())),
            "spread": dict(zip(space.names, points.std(axis=0).tolist())),
            "representative": {"strategy": strategy, "run": entry["run"], "iteration": entry["iteration"],
                               "query": entry["query"], "score": entry["score"], "index": entry.get("index"),
                               "params": entry["params"]},
            "sensitivity": sensitivity, "matters": ranked})
        where = ", ".join(f"{name} ~ {points[:, space.names.index(name)].mean():.2f}" for name in ranked)
        effect = ", ".join(f"{name} {sensitivity[name]['mean']:+.3f}" for name in ranked
                           if sensitivity[name]["mean"] is not None)
        summary.append(f"mode {mode}: {members.size} adversarial(s) in {modes[-1]['runs']} run(s) around {where}; "
                       f"similarity change for +5% of the range: {effect}")
    described = sum(m["count"] for m in modes)
    return {"cutoff": CUTOFF, "count": int(labels.max(initial=-1) + 1), "modes": modes,
            "other_modes": max(0, int(labels.max(initial=-1) + 1) - len(modes)),
            "other_adversarials": int(len(labels) - described), "summary": summary}


def _mean(values: np.ndarray) -> float | None:
    """The mean of the finite values, None without any."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None

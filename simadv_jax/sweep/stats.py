"""The statistics of a sweep, as pure numpy functions of score arrays (NaN marks an invalid point).

Scales (`scaled`): "score" (the recognizer's similarity), "margin" (similarity minus its threshold: 0 is the
decision boundary, > 0 "same person"), "rank" (the similarity's rank among all valid points of that recognizer's
sweep, scaled to [0, 1], ties averaged). Margin and rank put recognizers with different score scales (dlib's
negative distance, cosines) side by side.

Curves are means over identities with a 95% t-interval of the mean. The area between two curves a, b over
[lo, hi] is the integral of |a - b| (and of a - b, "signed") of their piecewise-linear interpolation over the
grid, computed exactly (also across a sign change); units: score x parameter units (paper units: yaw 1 = 90 deg).
Paired comparisons at one grid value use the identities valid for both recognizers: the mean difference, the
paired t-test and the Wilcoxon signed-rank test (scipy.stats, two-sided).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import stats as scipy_stats

SCALES = ("score", "margin", "rank")
CONFIDENCE = 0.95


def rank_normalised(scores: np.ndarray) -> np.ndarray:
    """Any-shape scores (NaN: invalid) -> their ranks among the finite ones in [0, 1] (ties: mean rank); NaN
    stays NaN."""
    out = np.full(scores.shape, np.nan)
    finite = np.isfinite(scores)
    count = int(finite.sum())
    if count:
        ranks = scipy_stats.rankdata(scores[finite])
        out[finite] = (ranks - 1) / max(count - 1, 1)
    return out


def scaled(similarity: np.ndarray, threshold: float, scale: str) -> np.ndarray:
    """One recognizer's similarities (NaN: invalid) on `scale` (a SCALES name)."""
    if scale == "score":
        return np.asarray(similarity, np.float64)
    if scale == "margin":
        return np.asarray(similarity, np.float64) - threshold
    if scale == "rank":
        return rank_normalised(np.asarray(similarity, np.float64))
    raise ValueError(f"scale: expected one of {SCALES}, got {scale!r}")


def mean_curve(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(I, ...) scores (NaN: invalid) -> (mean, low, high), each (...): the mean over identities and its 95%
    t-interval (NaN where fewer than 2 identities are valid)."""
    scores = np.asarray(scores, np.float64)
    count = np.sum(np.isfinite(scores), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(scores, axis=0) / count
        spread = np.sqrt(np.nansum((scores - mean) ** 2, axis=0) / (count - 1))
        half = scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, np.maximum(count - 1, 1)) * spread / np.sqrt(count)
    half = np.where(count >= 2, half, np.nan)
    mean = np.where(count >= 1, mean, np.nan)
    return mean, mean - half, mean + half


def _segment_abs_integral(d0: np.ndarray, d1: np.ndarray, width: np.ndarray) -> np.ndarray:
    """Exact integral of |d| for d linear from d0 to d1 over `width` (elementwise)."""
    same_sign = d0 * d1 >= 0
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = width * (d0 ** 2 + d1 ** 2) / (2 * (np.abs(d0) + np.abs(d1)))
    return np.where(same_sign, width * (np.abs(d0) + np.abs(d1)) / 2, crossing)


def area_between(values: np.ndarray, a: np.ndarray, b: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """(V,) increasing grid values and two (V,) curves -> (integral of |a - b|, integral of a - b) over
    [lo, hi] of their linear interpolation (NaN when a curve is NaN there)."""
    values = np.asarray(values, np.float64)
    inside = values[(values > lo) & (values < hi)]
    xs = np.concatenate([[lo], inside, [hi]])
    d = np.interp(xs, values, np.asarray(a, np.float64) - np.asarray(b, np.float64))
    if not np.all(np.isfinite(d)):
        return float("nan"), float("nan")
    width = np.diff(xs)
    absolute = float(np.sum(_segment_abs_integral(d[:-1], d[1:], width)))
    return absolute, float(np.sum(width * (d[:-1] + d[1:]) / 2))


def _p_value(test, *args) -> Optional[float]:
    """The p-value of a scipy test, None where it is undefined (NaN, or scipy refuses the data)."""
    try:
        p = float(test(*args).pvalue)
    except ValueError:
        return None
    return p if np.isfinite(p) else None


def paired_comparison(a: np.ndarray, b: np.ndarray, alpha: float) -> dict:
    """Two recognizers' (I,) scores of the same identities at one value (NaN: invalid) -> {"n", "mean_difference"
    (mean of a - b), "t_test_p", "wilcoxon_p" (two-sided; None when undefined, e.g. all differences 0),
    "significant_t", "significant_wilcoxon" (p < alpha)}."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    a, b = a[both], b[both]
    differences = a - b
    enough = len(differences) >= 2 and np.any(differences != differences[0])
    t_p = _p_value(scipy_stats.ttest_rel, a, b) if enough else None
    w_p = _p_value(scipy_stats.wilcoxon, a, b) if enough else None
    return {"n": int(len(differences)), "mean_difference": float(differences.mean()) if len(differences) else None,
            "t_test_p": t_p, "wilcoxon_p": w_p,
            "significant_t": t_p is not None and t_p < alpha,
            "significant_wilcoxon": w_p is not None and w_p < alpha}


def below_intervals(values: np.ndarray, curve: np.ndarray, level: float) -> list[list[float]]:
    """(V,) grid values, (V,) curve -> the intervals [start, end] where the curve is below `level`, their ends
    interpolated linearly between grid values (the sweep's ends where it starts or ends below)."""
    values, curve = np.asarray(values, np.float64), np.asarray(curve, np.float64)
    below = curve < level
    intervals = []
    i = 0
    while i < len(values):
        if not below[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(values) and below[j + 1]:
            j += 1
        intervals.append([_crossing(values, curve, level, i - 1, i) if i > 0 else float(values[0]),
                          _crossing(values, curve, level, j, j + 1) if j + 1 < len(values) else float(values[-1])])
        i = j + 1
    return intervals


def _crossing(values: np.ndarray, curve: np.ndarray, level: float, i: int, j: int) -> float:
    """Where the line from (values[i], curve[i]) to (values[j], curve[j]) meets `level` (the midpoint when a
    curve value is NaN)."""
    if not (np.isfinite(curve[i]) and np.isfinite(curve[j])):
        return float((values[i] + values[j]) / 2)
    return float(values[i] + (level - curve[i]) * (values[j] - values[i]) / (curve[j] - curve[i]))


def failure_rate(fails: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(I, ...) bool failures and validity -> (...) share of the valid identities that fail (NaN: none valid)."""
    count = np.sum(valid, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.sum(fails & valid, axis=0) / count, np.nan)


def failure_to_acquire_rate(acquired: np.ndarray) -> np.ndarray:
    """(I, ...) bool acquired -> (...) share of the identities whose face the pipeline did not acquire (invalid
    pairs, so never among `failure_rate`'s failures)."""
    return np.mean(~np.asarray(acquired, bool), axis=0)


def group_labels(values: np.ndarray, groups: int) -> tuple[np.ndarray, list[list[float]]]:
    """Any-shape values -> (int labels of that shape, [lo, hi] per group): each distinct value its own group
    when there are at most `groups`, else `groups` equal-width bins over [min, max] (the last one closed)."""
    distinct = np.unique(values)
    if len(distinct) <= groups:
        return np.searchsorted(distinct, values), [[float(v), float(v)] for v in distinct]
    edges = np.linspace(distinct[0], distinct[-1], groups + 1)
    labels = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, groups - 1)
    return labels, [[float(edges[g]), float(edges[g + 1])] for g in range(groups)]


def group_rates(fails: np.ndarray, valid: np.ndarray, labels: np.ndarray, num_groups: int,
                rng: np.random.Generator, resamples: int = 2000) -> list[dict]:
    """(I, ...) failures, validity and group labels -> per group {"identities", "pairs", "fnmr", "ci95"}: the
    share of its valid pairs that fail and a 95% percentile bootstrap interval over identities (a cluster
    bootstrap: one identity's pairs are not independent); fnmr and ci95 None for a group without pairs."""
    count = len(fails)
    per_identity = lambda mask: mask.reshape(count, -1).sum(axis=1).astype(np.float64)  # noqa: E731
    weights = rng.multinomial(count, np.full(count, 1.0 / count), size=resamples).astype(np.float64)  # (B, I)
    out = []
    for g in range(num_groups):
        member = valid & (labels == g)
        pairs, failed = per_identity(member), per_identity(member & fails)
        entry = {"identities": int(np.sum(pairs > 0)), "pairs": int(pairs.sum()), "fnmr": None, "ci95": None}
        if pairs.sum() > 0:
            with np.errstate(invalid="ignore", divide="ignore"):
                boot = (weights @ failed) / (weights @ pairs)
            boot = boot[np.isfinite(boot)]
            entry["fnmr"] = float(failed.sum() / pairs.sum())
            entry["ci95"] = [float(q) for q in np.quantile(boot, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])]
        out.append(entry)
    return out

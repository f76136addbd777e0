"""sweep.json's payload and sweep.npz's arrays from a sweep's scores (plain data; `stats` does the numbers).

payload (schema SCHEMA_VERSION):
  params, grid {param: values}, identities {spec, count, components}, space, fixed
  alignment {name: "oracle" | "pipeline", box_source: where the pipeline's face box came from, None for oracle}
  recognizers {label: {spec, metric, threshold, valid_fraction, failure_fraction, failure_to_acquire_fraction}}
  scales {name: meaning}; shown: the scale of the figure and table.md
  curves {scale: {label: {mean, ci95_low, ci95_high}}}                               one-parameter sweeps
  recognizer_failures {label: {below_threshold: [[start, end], ...] (the mean below the threshold),
                       failure_rate: per value (share of the valid identities failing: false non-matches),
                       failure_to_acquire_rate: per value (share of identities whose face the pipeline did not
                       acquire: invalid, so never among the failures), worst: {value, failure_rate}}}
                       two-parameter sweeps: failure_rate, failure_to_acquire_rate and mean_score as V_1 x V_2 lists
  comparisons [{first: A, second: B, scale: {areas: [{interval, area, signed_area}], at: [{requested, value, n,
               mean_difference (A - B), t_test_p, wilcoxon_p, significant_t, significant_wilcoxon}]}}]
  groups {param, bins, alpha, rates {label: [{identities, pairs, fnmr, ci95, failures_to_acquire}]}}  --group_by
  summary: sentences, the answer first
"""
from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from simadv_jax.sweep import stats
from simadv_jax.sweep.config import SweepConfig
from simadv_jax.sweep.grid import Plan

SCHEMA_VERSION = 1
SCALE_MEANINGS = {
    "score": "the recognizer's own similarity (cosine, or negative Euclidean distance for dlib); same person "
             "iff score >= its threshold",
    "margin": "score minus the recognizer's threshold: 0 is its decision boundary, below 0 a false non-match",
    "rank": "the score's rank among all valid points of that recognizer's sweep, scaled to [0, 1]",
}


class Scores(NamedTuple):
    """One recognizer's sweep, each (I, V_1[, V_2]): similarity float32 (NaN where invalid), valid,
    adversarial (valid and below the threshold: a false non-match) and acquired (the pipeline found both faces;
    always True with oracle alignment; a pair not acquired is a failure to acquire, not valid) bool."""

    similarity: np.ndarray
    valid: np.ndarray
    adversarial: np.ndarray
    acquired: np.ndarray


class RecognizerInfo(NamedTuple):
    """label (the name in outputs), spec (its registry name), metric, threshold (on the similarity)."""

    label: str
    spec: str
    metric: str
    threshold: float


def shown_scale(config: SweepConfig, recognizers: list[RecognizerInfo]) -> str:
    """The figure's scale: --plot_scale, or for "auto" raw scores when every recognizer has the same metric."""
    if config.plot_scale != "auto":
        return config.plot_scale
    return "score" if len({r.metric for r in recognizers}) == 1 else "margin"


def _finite(values) -> list:
    """Floats with NaN -> None (JSON null), any nesting."""
    array = np.asarray(values, np.float64)
    return np.where(np.isfinite(array), array, None).tolist()


def _nearest(axis: np.ndarray, value: float) -> int:
    return int(np.argmin(np.abs(axis - value)))


def _curves(recognizers, scores) -> dict:
    out = {}
    for scale in stats.SCALES:
        out[scale] = {}
        for r in recognizers:
            mean, low, high = stats.mean_curve(stats.scaled(scores[r.label].similarity, r.threshold, scale))
            out[scale][r.label] = {"mean": _finite(mean), "ci95_low": _finite(low), "ci95_high": _finite(high)}
    return out


def _failures_1d(axis: np.ndarray, recognizer: RecognizerInfo, scores: Scores) -> dict:
    mean, _, _ = stats.mean_curve(scores.similarity)
    rate = stats.failure_rate(scores.adversarial, scores.valid)
    worst = int(np.nanargmax(rate)) if np.isfinite(rate).any() else 0
    return {"below_threshold": stats.below_intervals(axis, mean, recognizer.threshold), "failure_rate": _finite(rate),
            "failure_to_acquire_rate": _finite(stats.failure_to_acquire_rate(scores.acquired)),
            "worst": {"value": float(axis[worst]), "failure_rate": _finite(rate[worst])}}


def _failures_2d(recognizer: RecognizerInfo, scores: Scores) -> dict:
    mean, _, _ = stats.mean_curve(scores.similarity)
    return {"failure_rate": _finite(stats.failure_rate(scores.adversarial, scores.valid)),
            "failure_to_acquire_rate": _finite(stats.failure_to_acquire_rate(scores.acquired)),
            "mean_score": _finite(mean),
            "cells_below_threshold": float(np.mean(mean < recognizer.threshold))}


def _comparisons(config: SweepConfig, axis: np.ndarray, recognizers, scores) -> list[dict]:
    out = []
    for a, b in itertools.combinations(recognizers, 2):
        entry = {"first": a.label, "second": b.label}
        for scale in stats.SCALES:
            sa = stats.scaled(scores[a.label].similarity, a.threshold, scale)
            sb = stats.scaled(scores[b.label].similarity, b.threshold, scale)
            mean_a, mean_b = stats.mean_curve(sa)[0], stats.mean_curve(sb)[0]
            areas = [dict(zip(("area", "signed_area"), map(_finite, stats.area_between(axis, mean_a, mean_b, lo, hi))),
                          interval=[lo, hi]) for lo, hi in config.interval_bounds]
            at = []
            for requested in config.comparison_values:
                k = _nearest(axis, requested)
                at.append({"requested": requested, "value": float(axis[k]),
                           **stats.paired_comparison(sa[:, k], sb[:, k], config.alpha)})
            entry[scale] = {"areas": areas, "at": at}
        out.append(entry)
    return out


def _groups(config: SweepConfig, plan: Plan, recognizers, scores) -> dict:
    group_of, bins = stats.group_labels(plan.values(config.group_by), config.groups)
    rates = {}
    for r in recognizers:
        mine = scores[r.label]
        fnmr = stats.group_rates(mine.adversarial, mine.valid, group_of, len(bins), np.random.default_rng(config.seed))
        rates[r.label] = [{**rate, "failures_to_acquire": int(np.sum(~mine.acquired & (group_of == g)))}
                          for g, rate in enumerate(fnmr)]
    return {"param": config.group_by, "bins": bins, "rates": rates,
            "meaning": "false non-match rate: share of a group's valid genuine pairs scored below the recognizer's "
                       "threshold; ci95: 95% percentile bootstrap over identities; failures to acquire: the "
                       "group's pairs whose face the pipeline did not acquire (invalid: not among its pairs)"}


def _interval_text(intervals: list) -> str:
    return " and ".join(f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in intervals)


def _summary(config: SweepConfig, payload: dict, scale: str) -> list[str]:
    param = " x ".join(config.params)
    lines = []
    for label, failures in payload["recognizer_failures"].items():
        if len(config.params) == 2:
            lines.append(f"{label}: mean score below its threshold in {failures['cells_below_threshold']:.0%} of "
                         f"the {param} grid")
            continue
        below = failures["below_threshold"]
        where = f"for {param} in {_interval_text(below)}" if below else "nowhere in the sweep"
        worst = failures["worst"]
        rate = "-" if worst["failure_rate"] is None else f"{worst['failure_rate']:.0%}"
        lines.append(f"{label}: mean score below its threshold {where}; at worst ({param} = {worst['value']:+.2f}) "
                     f"{rate} of identities fail")
    for label, r in payload["recognizers"].items():
        if r["failure_to_acquire_fraction"]:
            lines.append(f"{label}: the pipeline did not acquire the face in {r['failure_to_acquire_fraction']:.0%} "
                         "of the pairs (failures to acquire, never counted as false non-matches)")
    for entry in payload.get("comparisons", []):
        for at in entry[scale]["at"]:
            if at["significant_t"] or at["significant_wilcoxon"]:
                sign = "above" if at["mean_difference"] > 0 else "below"
                lines.append(f"{entry['first']} is {sign} {entry['second']} at {param} = {at['value']:+.2f}: mean "
                             f"difference {at['mean_difference']:+.3f} ({scale}), p = {p_text(at['t_test_p'])} (t), "
                             f"{p_text(at['wilcoxon_p'])} (Wilcoxon), n = {at['n']}")
    return lines


def p_text(p) -> str:
    """A p-value for people: two significant digits, "-" when undefined."""
    return "-" if p is None else f"{p:.2g}"


def payload(config: SweepConfig, plan: Plan, recognizers: list[RecognizerInfo], scores: dict[str, Scores],
            alignment: dict) -> dict:
    """sweep.json's payload (module docstring; alignment: {"name", "box_source"} of the evaluations' Renderer,
    what ran); ValueError naming --group_by for a parameter the sweep holds fixed."""
    scale = shown_scale(config, recognizers)
    out = {
        "schema": SCHEMA_VERSION,
        "params": list(config.params),
        "grid": {name: axis.tolist() for name, axis in zip(config.params, plan.axes)},
        "identities": {"spec": config.identities, "count": len(plan.identities),
                       "components": list(plan.identity_names)},
        "space": plan.space.spec,
        "fixed": config.fixed,
        "alignment": alignment,
        "recognizers": {r.label: {"spec": r.spec, "metric": r.metric, "threshold": r.threshold,
                                  "valid_fraction": float(np.mean(scores[r.label].valid)),
                                  "failure_fraction": float(np.mean(scores[r.label].adversarial)),
                                  "failure_to_acquire_fraction": float(np.mean(~scores[r.label].acquired))}
                        for r in recognizers},
        "scales": SCALE_MEANINGS,
        "shown": {"scale": scale, "figure": "sweep.png" if len(config.params) == 1 else "failure_maps.png"},
    }
    if len(config.params) == 1:
        axis = plan.axes[0]
        out["curves"] = _curves(recognizers, scores)
        out["recognizer_failures"] = {r.label: _failures_1d(axis, r, scores[r.label]) for r in recognizers}
        out["comparisons"] = _comparisons(config, axis, recognizers, scores)
        out["alpha"] = config.alpha
    else:
        out["recognizer_failures"] = {r.label: _failures_2d(r, scores[r.label]) for r in recognizers}
    if config.group_by:
        out["groups"] = _groups(config, plan, recognizers, scores)
    out["summary"] = _summary(config, out, scale)
    return out


def arrays(plan: Plan, recognizers: list[RecognizerInfo], scores: dict[str, Scores]) -> dict[str, np.ndarray]:
    """sweep.npz: similarity / valid / adversarial / acquired (I, V_1[, V_2], R); thresholds (R,); labels, specs
    (R,); identities (I, k) with identity_names (k,); params and per parameter `grid_<j>` (V_j,)."""
    stack = lambda field: np.stack([getattr(scores[r.label], field) for r in recognizers], axis=-1)  # noqa: E731
    out = {"similarity": stack("similarity"), "valid": stack("valid"), "adversarial": stack("adversarial"),
           "acquired": stack("acquired"),
           "thresholds": np.asarray([r.threshold for r in recognizers], np.float64),
           "labels": np.asarray([r.label for r in recognizers]), "specs": np.asarray([r.spec for r in recognizers]),
           "identities": plan.identities, "identity_names": np.asarray(plan.identity_names),
           "params": np.asarray(plan.params)}
    out.update({f"grid_{j}": axis for j, axis in enumerate(plan.axes)})
    return out

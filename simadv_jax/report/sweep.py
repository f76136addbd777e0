"""The report files of a parameter sweep, written from plain data (sweep.json's payload and sweep.npz's arrays):
the Figure 2 analogue (mean score against the parameter with 95% bands, thresholds, failure rates and, with
--alignment=pipeline, failures to acquire), failure-rate maps of two-parameter sweeps, and table.md (the paper's
Table 1 layout, per-recognizer failures, groups)."""
from __future__ import annotations

import io
import os

import numpy as np

from simadv_jax.report.files import write_bytes_atomic, write_json_atomic
from simadv_jax.report.plots import figure_png, pyplot
from simadv_jax.report.table import alignment_sentence, judged_sentence

NPZ, JSON, TABLE = "sweep.npz", "sweep.json", "table.md"


def _array(values) -> np.ndarray:
    """JSON numbers with nulls -> float array with NaN."""
    return np.asarray(values, np.float64)


def _pipeline(payload: dict) -> bool:
    """Whether the sweep ran with --alignment=pipeline (payloads written before the field: oracle)."""
    return (payload.get("alignment") or {}).get("name") == "pipeline"


def curves_figure(payload: dict) -> bytes:
    """One-parameter sweep: top, each recognizer's mean on the shown scale with its 95% band and its threshold
    (dashed; the 0 line on the margin scale, none on the rank scale); bottom, the share of identities failing
    (and, dotted, of those not acquired with --alignment=pipeline)."""
    plt = pyplot()
    scale, param = payload["shown"]["scale"], payload["params"][0]
    x = _array(payload["grid"][param])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 7), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for k, (label, curve) in enumerate(payload["curves"][scale].items()):
        color = f"C{k}"
        top.plot(x, _array(curve["mean"]), color=color, lw=1.6, label=label)
        top.fill_between(x, _array(curve["ci95_low"]), _array(curve["ci95_high"]), color=color, alpha=0.18, lw=0)
        if scale == "score":
            threshold = payload["recognizers"][label]["threshold"]
            top.axhline(threshold, color=color, ls="--", lw=1, label=f"{label} threshold {threshold:.3f}")
        failures = payload["recognizer_failures"][label]
        bottom.plot(x, _array(failures["failure_rate"]), color=color, lw=1.4, label=label)
        if _pipeline(payload):
            bottom.plot(x, _array(failures["failure_to_acquire_rate"]), color=color, ls=":", lw=1.2,
                        label=f"{label} not acquired")
    if scale == "margin":
        top.axhline(0.0, color="k", ls="--", lw=1, label="threshold (every recognizer)")
    count = payload["identities"]["count"]
    top.set_ylabel(f"mean {scale} over {count} identities")
    top.set_title(f"{param} sweep on the {scale} scale: mean and 95% band per recognizer (scales: table.md)",
                  fontsize=9)
    top.legend(fontsize=7)
    bottom.set_ylim(-0.03, 1.03)
    bottom.set_ylabel("identities failing")
    if _pipeline(payload):
        bottom.legend(fontsize=7)
    bottom.set_xlabel(f"{param} (paper units)")
    fig.tight_layout()
    return figure_png(fig)


def failure_maps_figure(payload: dict) -> bytes:
    """Two-parameter sweep: per recognizer, the share of identities failing over the grid (first parameter up,
    second across)."""
    plt = pyplot()
    first, second = payload["params"]
    y, x = _array(payload["grid"][first]), _array(payload["grid"][second])
    labels = list(payload["recognizer_failures"])
    fig, axes = plt.subplots(1, len(labels), figsize=(4.2 * len(labels), 3.8), squeeze=False)
    for ax, label in zip(axes.flat, labels):
        image = ax.imshow(_array(payload["recognizer_failures"][label]["failure_rate"]), origin="lower",
                          aspect="auto", vmin=0.0, vmax=1.0, cmap="magma",
                          extent=(x[0], x[-1], y[0], y[-1]))
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(second)
        ax.set_ylabel(first)
    fig.colorbar(image, ax=list(axes.flat), label="identities failing")
    return figure_png(fig)


def _number(value, fmt: str = "+.3f") -> str:
    return "-" if value is None else format(value, fmt)


def _p(value) -> str:
    return "-" if value is None else f"{value:.2g}"


def _stars(entry: dict) -> str:
    return "*" * (int(entry["significant_t"]) + int(entry["significant_wilcoxon"]))


def _comparison_tables(payload: dict, scale: str) -> list[str]:
    comparisons = payload["comparisons"]
    if not comparisons:
        return []
    param, alpha = payload["params"][0], payload["alpha"]
    intervals = [a["interval"] for a in comparisons[0][scale]["areas"]]
    values = [a["value"] for a in comparisons[0][scale]["at"]]
    lines = ["## Area between curves (Table 1, left)", "",
             f"Integral over each {param} interval of |A - B| between the two mean curves ({scale} x {param} units); "
             "in brackets the signed integral of A - B (> 0: A above B).", "",
             "| A vs B | " + " | ".join(f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in intervals) + " |",
             "|---|" + "---|" * len(intervals)]
    for entry in comparisons:
        cells = [f"{_number(a['area'], '.4f')} ({_number(a['signed_area'], '+.4f')})" for a in entry[scale]["areas"]]
        lines.append(f"| {entry['first']} vs {entry['second']} | " + " | ".join(cells) + " |")
    lines += ["", "## Mean differences at chosen values (Table 1, right)", "",
              f"Mean over identities of A - B ({scale}); * p < {alpha:g} in one of the paired t-test and the Wilcoxon "
              "signed-rank test, ** in both.", "",
              "| A vs B | " + " | ".join(f"{param} = {v:+.2f}" for v in values) + " |",
              "|---|" + "---|" * len(values)]
    for entry in comparisons:
        cells = [f"{_number(a['mean_difference'])}{_stars(a)}" for a in entry[scale]["at"]]
        lines.append(f"| {entry['first']} vs {entry['second']} | " + " | ".join(cells) + " |")
    lines += ["", "| A vs B | value | n | mean difference | t-test p | Wilcoxon p |", "|---|---|---|---|---|---|"]
    for entry in comparisons:
        for a in entry[scale]["at"]:
            lines.append(f"| {entry['first']} vs {entry['second']} | {a['value']:+.2f} | {a['n']} | "
                         f"{_number(a['mean_difference'])} | {_p(a['t_test_p'])} | {_p(a['wilcoxon_p'])} |")
    return lines + [""]


def _recognizer_table(payload: dict) -> list[str]:
    param = " x ".join(payload["params"])
    lines = ["## Per recognizer", ""]
    if len(payload["params"]) == 2:
        lines += ["| Recognizer | threshold | grid cells with the mean below it |", "|---|---|---|"]
        for label, f in payload["recognizer_failures"].items():
            lines.append(f"| {label} | {payload['recognizers'][label]['threshold']:.4f} | "
                         f"{f['cells_below_threshold']:.0%} |")
        return lines + [""]
    lines += [f"| Recognizer | threshold | mean below it for {param} in | worst {param} | identities failing there |",
              "|---|---|---|---|---|"]
    for label, f in payload["recognizer_failures"].items():
        below = ", ".join(f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in f["below_threshold"]) or "nowhere"
        rate = f["worst"]["failure_rate"]
        lines.append(f"| {label} | {payload['recognizers'][label]['threshold']:.4f} | {below} | "
                     f"{f['worst']['value']:+.2f} | {'-' if rate is None else format(rate, '.0%')} |")
    return lines + [""]


def _groups_table(groups: dict, pipeline: bool) -> list[str]:
    """The FNMR per group; with `pipeline` a column of the failures to acquire, apart from it."""
    extra = " failures to acquire |" if pipeline else ""
    lines = [f"## False non-match rate by {groups['param']}", "", groups["meaning"] + ".", "",
             f"| Recognizer | {groups['param']} | identities | pairs | FNMR | 95% CI |{extra}",
             "|---|---|---|---|---|---|" + "---|" * pipeline]
    for label, rates in groups["rates"].items():
        for (lo, hi), g in zip(groups["bins"], rates):
            where = f"{lo:+.2f}" if lo == hi else f"[{lo:+.2f}, {hi:+.2f}]"
            ci = "-" if g["ci95"] is None else f"[{g['ci95'][0]:.3f}, {g['ci95'][1]:.3f}]"
            lines.append(f"| {label} | {where} | {g['identities']} | {g['pairs']} | {_number(g['fnmr'], '.3f')} "
                         f"| {ci} |" + (f" {g['failures_to_acquire']} |" if pipeline else ""))
    return lines + [""]


def _alignment_text(payload: dict) -> str:
    """How the probes were cropped (`table.alignment_sentence`); with the pipeline, each recognizer's share of
    pairs not acquired."""
    text = alignment_sentence(payload)
    if not _pipeline(payload):
        return text
    shares = ", ".join(f"{label} {r['failure_to_acquire_fraction']:.1%}" for label, r in payload["recognizers"].items())
    return f"{text} Pairs not acquired: {shares}."


def table_markdown(payload: dict) -> str:
    """table.md: the setting, the summary, Table 1's two halves (one-parameter sweeps), per-recognizer failures
    and the groups, on the shown scale."""
    scale = payload["shown"]["scale"]
    names = ", ".join(f"{label} ({r['spec']}, {r['metric']}, threshold {r['threshold']:.4f})"
                      for label, r in payload["recognizers"].items())
    lines = [f"# Sweep of {' x '.join(payload['params'])}", "",
             f"{payload['identities']['count']} identities ({payload['identities']['spec']}); recognizers: {names}. "
             f"Space: `{payload['space']}`.", "", _alignment_text(payload), "",
             f"Scale of the tables and the figure: **{scale}**, "
             f"{payload['scales'][scale]} (sweep.json holds every scale).", "", "## Summary", ""]
    lines += [f"- {line}" for line in payload["summary"]] + [""]
    judged = judged_sentence(payload.get("head"), [r["spec"] for r in payload["recognizers"].values()])
    lines += [judged, ""] if judged else []
    if "comparisons" in payload:
        lines += _comparison_tables(payload, scale)
    lines += _recognizer_table(payload)
    if "groups" in payload:
        lines += _groups_table(payload["groups"], _pipeline(payload))
    return "\n".join(lines)


def write_sweep_report(output_dir: str, payload: dict, arrays: dict) -> None:
    """sweep.npz, the figure payload["shown"]["figure"], table.md, then (last, marking completion) sweep.json."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(os.path.join(output_dir, NPZ), buffer.getvalue())
    figure = curves_figure(payload) if len(payload["params"]) == 1 else failure_maps_figure(payload)
    write_bytes_atomic(os.path.join(output_dir, payload["shown"]["figure"]), figure)
    write_bytes_atomic(os.path.join(output_dir, TABLE), table_markdown(payload).encode())
    write_json_atomic(os.path.join(output_dir, JSON), payload)

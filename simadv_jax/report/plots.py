"""Matplotlib figures (Agg backend, PNG) of a search: adversarial pairs, score trajectories, one run's sequence,
where the adversarials lie per parameter."""
from __future__ import annotations

import io

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> bytes:
    """The figure as PNG bytes (100 dpi); closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    pyplot().close(fig)
    return buffer.getvalue()


def pairs_figure(references, probes, titles, wrong, columns: int = 4) -> bytes:
    """Reference/probe pairs side by side; red border where the recognizer errs (wrong[i]), green otherwise."""
    plt = pyplot()
    count = max(len(references), 1)
    rows = (count + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 1.9 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(references):
            ax.axis("off")
            continue
        ax.imshow(np.concatenate([references[i], probes[i]], axis=1))
        ax.set_title(titles[i], fontsize=8)
        ax.set_xlabel("reference  |  probe", fontsize=7)
        for spine in ax.spines.values():
            spine.set_color("red" if wrong[i] else "green")
            spine.set_linewidth(4)
    if not len(references):
        axes.flat[0].text(0.5, 0.5, "no samples", ha="center", va="center")
    fig.tight_layout()
    return figure_png(fig)


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def trajectories_figure(curves: dict[str, list[np.ndarray]], threshold: float, ylabel: str) -> bytes:
    """One panel per strategy: per run, the iteration's best score against the iteration (markers, so a run
    that stopped at iteration 0 shows as a point); the threshold line; a legend (each run up to 10, else one
    entry for all)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, max(len(curves), 1), figsize=(5 * max(len(curves), 1), 3.5), squeeze=False)
    for ax, (name, runs) in zip(axes.flat, curves.items()):
        for r, curve in enumerate(runs):
            label = f"run {r}" if len(runs) <= 10 else ("runs" if r == 0 else None)
            color = None if len(runs) <= 10 else "C0"
            ax.plot(np.arange(len(curve)), curve, lw=0.8, alpha=0.7, marker="o", markersize=3, label=label,
                    color=color)
        ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3f}")
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        _integer_ticks(ax)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return figure_png(fig)


def where_it_breaks_figure(results: dict, most: int = 16) -> bytes:
    """One strip per searched parameter (the `most` whose adversarials are most concentrated, in results.json's
    "where_it_breaks" order): its searched range on the x axis, each strategy's adversarials as points on its own
    row."""
    plt = pyplot()
    parameters = results["where_it_breaks"]["parameters"]
    names = sorted(parameters, key=lambda n: (parameters[n]["occupied_fraction"] is None,
                                              parameters[n]["occupied_fraction"] or 0.0))[:most]
    strategies = list(results["strategies"])
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 0.45 * len(strategies) * len(names) + 0.8), squeeze=False)
    for ax, name in zip(axes.flat, names):
        low, high = parameters[name]["searched"]
        for row, strategy in enumerate(strategies):
            values = [a["params"][name] for a in results["strategies"][strategy]["adversarials"]]
            ax.plot(values, np.full(len(values), row), "o", color="C3", alpha=0.6, markersize=4)
        ax.set_xlim(low - 0.02 * (high - low), high + 0.02 * (high - low))
        ax.set_ylim(-0.7, len(strategies) - 0.3)
        ax.set_yticks(range(len(strategies)), strategies, fontsize=7)
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    shown = "" if len(names) == len(parameters) else f", the {len(names)} most concentrated of {len(parameters)}"
    axes.flat[0].set_title(f"adversarials per searched parameter (x: the searched range{shown})", fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


def sequence_figure(probes, titles, iterations, scores, threshold: float, name: str) -> bytes:
    """One run over time: the best probe of selected iterations (top), every sample's score (bottom)."""
    plt = pyplot()
    count = max(len(probes), 1)
    fig = plt.figure(figsize=(max(1.6 * count, 6), 4.5))
    for i, image in enumerate(probes):
        ax = fig.add_subplot(2, count, i + 1)
        ax.imshow(image)
        ax.set_title(titles[i], fontsize=7)
        ax.axis("off")
    ax = fig.add_subplot(2, 1, 2)
    ax.scatter(iterations, scores, s=6, label="samples")
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3f}")
    ax.set_xlabel("iteration")
    ax.set_ylabel("score")
    _integer_ticks(ax)
    ax.legend(fontsize=7)
    ax.set_title(name, fontsize=9)
    fig.tight_layout()
    return figure_png(fig)

"""Matplotlib figures (Agg backend, PNG) of a search: adversarial pairs, score trajectories, one run's sequence."""
from __future__ import annotations

import io

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    _pyplot().close(fig)
    return buffer.getvalue()


def pairs_figure(references, probes, titles, wrong, columns: int = 4) -> bytes:
    """Reference/probe pairs side by side; red border where the recognizer errs (wrong[i]), green otherwise."""
    plt = _pyplot()
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
        for spine in ax.spines.values():
            spine.set_color("red" if wrong[i] else "green")
            spine.set_linewidth(4)
    if not len(references):
        axes.flat[0].text(0.5, 0.5, "no samples", ha="center", va="center")
    fig.tight_layout()
    return _save(fig)


def trajectories_figure(curves: dict[str, list[np.ndarray]], threshold: float, ylabel: str) -> bytes:
    """One panel per strategy: per run, the iteration's best score against the iteration; threshold line."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, max(len(curves), 1), figsize=(5 * max(len(curves), 1), 3.5), squeeze=False)
    for ax, (name, runs) in zip(axes.flat, curves.items()):
        for curve in runs:
            ax.plot(np.arange(len(curve)), curve, lw=0.8, alpha=0.7)
        ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.3f}")
        ax.set_title(name)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig)


def sequence_figure(probes, titles, iterations, scores, threshold: float, name: str) -> bytes:
    """One run over time: the best probe of selected iterations (top), every sample's score (bottom)."""
    plt = _pyplot()
    count = max(len(probes), 1)
    fig = plt.figure(figsize=(max(1.6 * count, 6), 4.5))
    for i, image in enumerate(probes):
        ax = fig.add_subplot(2, count, i + 1)
        ax.imshow(image)
        ax.set_title(titles[i], fontsize=7)
        ax.axis("off")
    ax = fig.add_subplot(2, 1, 2)
    ax.scatter(iterations, scores, s=6)
    ax.axhline(threshold, color="k", ls="--", lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("score")
    ax.set_title(name, fontsize=9)
    fig.tight_layout()
    return _save(fig)

"""The figures of a regions run (PNG bytes from plain arrays, matplotlib Agg via `report.plots`): the coverage
curve, the loss surface with its threshold plane (the paper's Figure 6), heat maps per recognizer on one colour
scale with the threshold contour and the region's outline (Figure 7)."""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import numpy as np

from simadv_jax.report.plots import figure_png, pyplot


class Slice(NamedTuple):
    """A region's points in a landscape's two dimensions, through its seed: points (P, 2) parameter values,
    values (P,) their similarity, spacing (2,) the grid step."""

    points: np.ndarray
    values: np.ndarray
    spacing: np.ndarray


def coverage_figure(curves: Sequence[tuple[str, np.ndarray]]) -> bytes:
    """Region points found against points scored, one line per (label, (T, 2) [evaluations, size]) curve."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, curve in curves:
        ax.plot(curve[:, 0], curve[:, 1], marker="o", markersize=2, lw=1, label=label)
    ax.set_xlabel("points scored")
    ax.set_ylabel("region points found")
    ax.set_title("coverage: when more budget stops paying, the curve flattens", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return figure_png(fig)


def _outline(ax, region: Slice) -> None:
    """The region's outline on a 2-D axis: the 0.5 contour of its occupancy on its own grid, and its points."""
    if not len(region.points):
        return
    coords = np.rint((region.points - region.points[0]) / region.spacing).astype(int)
    low = coords.min(axis=0) - 1
    shape = coords.max(axis=0) - low + 2
    mask = np.zeros(shape)
    mask[tuple((coords - low).T)] = 1.0
    x = region.points[0, 0] + (np.arange(shape[0]) + low[0]) * region.spacing[0]
    y = region.points[0, 1] + (np.arange(shape[1]) + low[1]) * region.spacing[1]
    ax.contour(x, y, mask.T, levels=[0.5], colors="red", linewidths=1.5)
    ax.plot(region.points[:, 0], region.points[:, 1], ".", color="red", markersize=2)


def surface_figure(axes: np.ndarray, values: np.ndarray, threshold: float, dims: Sequence[str], name: str,
                   region: Optional[Slice]) -> bytes:
    """Figure 6: the similarity (N, N) over axes (2, N) as a 3-D surface, the threshold plane, the region in red."""
    plt = pyplot()
    fig = plt.figure(figsize=(7, 5.5))
    ax = fig.add_subplot(projection="3d")
    a, b = np.meshgrid(axes[0], axes[1], indexing="ij")
    ax.plot_surface(a, b, np.ma.masked_invalid(values), cmap="viridis", alpha=0.75, linewidth=0)
    ax.plot_surface(a, b, np.full_like(values, threshold), color="grey", alpha=0.25, linewidth=0)
    if region is not None and len(region.points):
        ax.scatter(region.points[:, 0], region.points[:, 1], region.values, color="red", s=6, depthshade=False,
                   label="region")
        ax.legend(fontsize=7)
    ax.set_xlabel(dims[0])
    ax.set_ylabel(dims[1])
    ax.set_zlabel("score")
    ax.set_title(f"{name}: score landscape, threshold plane at {threshold:.3f}", fontsize=9)
    fig.tight_layout()
    return figure_png(fig)


def heatmaps_figure(axes: np.ndarray, margins: np.ndarray, names: Sequence[str], dims: Sequence[str],
                    region: Optional[Slice]) -> bytes:
    """Figure 7: one heat map per recognizer of its loss margin (R, N, N) (loss - loss threshold: below 0 the
    recognizer fails) on one shared colour scale, the threshold contour (black) and the region's outline (red)."""
    plt = pyplot()
    finite = margins[np.isfinite(margins)]
    scale = float(np.max(np.abs(finite))) if finite.size else 1.0
    fig, panels = plt.subplots(1, len(names), figsize=(4.2 * len(names) + 1, 3.8), squeeze=False, layout="constrained")
    for ax, name, margin in zip(panels.flat, names, margins):
        image = ax.pcolormesh(axes[0], axes[1], np.ma.masked_invalid(margin).T, cmap="RdBu", vmin=-scale,
                              vmax=scale, shading="nearest")
        if np.nanmin(margin) < 0 < np.nanmax(margin):
            ax.contour(axes[0], axes[1], margin.T, levels=[0.0], colors="black", linewidths=1)
        if region is not None:
            _outline(ax, region)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(dims[0])
        ax.set_ylabel(dims[1])
    fig.colorbar(image, ax=panels.ravel().tolist(), label="loss - threshold (< 0: fails)")
    return figure_png(fig)

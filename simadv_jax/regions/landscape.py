"""Loss landscapes (the paper's Figures 6 and 7): the full N x N grid over two dimensions, the others held at a
seed's values, scored in batches by one or several recognizers."""
from __future__ import annotations

from typing import Mapping, NamedTuple

import numpy as np


class Landscape(NamedTuple):
    """Scores on an N x N grid (numpy). Entry [r, i, j] is recognizer r at dims[0] = axes[0, i], dims[1] = axes[1, j].

    dims: the two dimension names. axes: (2, N) float32 values, paper units. recognizers: R names.
    similarity, loss: (R, N, N) float32 (NaN where invalid). similarity_thresholds, loss_thresholds: (R,) float64.
    """

    dims: tuple
    axes: np.ndarray
    recognizers: tuple
    similarity: np.ndarray
    loss: np.ndarray
    similarity_thresholds: np.ndarray
    loss_thresholds: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        """(R, N, N) loss - loss threshold: below 0 is adversarial, in every scenario (one shared scale)."""
        return self.loss - self.loss_thresholds[:, None, None].astype(np.float32)


def grid_points(seed, indices, lows, highs, points: int) -> tuple[np.ndarray, np.ndarray]:
    """((2, N) axes spanning [lows, highs] of dims `indices`, (N * N, n) float32 rho, row i * N + j at
    (axes[0, i], axes[1, j]) and every other dimension at `seed`'s value)."""
    seed = np.asarray(seed, np.float32)
    axes = np.stack([np.linspace(lows[k], highs[k], points, dtype=np.float32) for k in indices])
    rho = np.tile(seed, (points * points, 1))
    a, b = np.meshgrid(axes[0], axes[1], indexing="ij")
    rho[:, indices[0]], rho[:, indices[1]] = a.ravel(), b.ravel()
    return axes, rho


def landscape(evaluations: Mapping[str, object], seed, indices, points: int) -> Landscape:
    """The landscape of each named `Evaluation` (same space) over dims `indices` (2,) around `seed` (n,)."""
    if points < 2:
        raise ValueError(f"--landscape_points: must be >= 2, got {points}")
    space = next(iter(evaluations.values())).space
    axes, rho = grid_points(seed, indices, space.lows, space.highs, points)
    similarity, loss = [], []
    for evaluation in evaluations.values():
        scores = evaluation.score_points(rho)
        similarity.append(np.where(scores.valid, scores.similarity, np.nan).reshape(points, points))
        loss.append(np.where(scores.valid, scores.loss, np.nan).reshape(points, points))
    return Landscape(tuple(space.names[k] for k in indices), axes, tuple(evaluations),
                     np.asarray(similarity, np.float32), np.asarray(loss, np.float32),
                     np.asarray([e.similarity_threshold for e in evaluations.values()], np.float64),
                     np.asarray([e.loss_threshold for e in evaluations.values()], np.float64))

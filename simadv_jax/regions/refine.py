"""Refinement: a coarse flood, then a finer grid that pays only near the coarse region's boundary.

The fine grid has spacing nu / factor around the same seed (coarse point k is fine point factor * k). A fine point's
loss is known without scoring when
  - it is a processed coarse point: its coarse loss (nothing is scored twice), or
  - its nearest coarse point, floor((j + factor // 2) / factor), lies in the coarse region's interior (that point
    and each of its in-bounds neighbours are in the region; a neighbour a budget left unscored is not): it is
    taken as inside, with that point's loss.
Every other fine point - those around the coarse boundary, and beyond it wherever the fine flood reaches - is
scored. The inference is exact where the sublevel set contains the cross-polytope spanned by an interior point's
neighbours around the fine points it stands for (in 2-D: any convex set); holes narrower than nu inside the coarse
interior stay invisible, as they are to the coarse pass. Bookkeeping grows as factor^n times the coarse region,
so refinement is meant for few dimensions.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from simadv_jax.regions.flood import (FloodLog, Region, Step, flood_fill, keys, make_grid, neighbour_members,
                                      neighbours)


def interior_mask(coarse: Region, lower=None, upper=None) -> np.ndarray:
    """(M,) bool: the region point and each of its neighbours inside [lower, upper] are in the region."""
    grid = make_grid(coarse.seed, coarse.spacing, lower, upper)
    inside = grid.inside(neighbours(coarse.coords)).reshape(coarse.size, -1)
    return ~np.any(inside & ~neighbour_members(coarse.coords, set(keys(coarse.coords))), axis=1)


def _known(coarse: Region, factor: int, interior: np.ndarray) -> Callable:
    """The `known` function of `flood_fill` on the fine grid of `coarse` (module docstring)."""
    processed = dict(zip(keys(np.concatenate([coarse.coords, coarse.outside_coords])),
                         np.concatenate([coarse.losses, coarse.outside_losses]).tolist()))
    interior = dict(zip(keys(coarse.coords[interior]), coarse.losses[interior].tolist()))

    def known(coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        on_coarse = np.all(coords % factor == 0, axis=1)
        nearest = keys(np.floor_divide(coords + factor // 2, factor).astype(np.int32))
        found = [(processed if on else interior).get(key) for on, key in zip(on_coarse.tolist(), nearest)]
        mask = np.asarray([loss is not None for loss in found], bool)
        return mask, np.asarray([np.nan if loss is None else loss for loss in found], np.float32)

    return known


def refine(score_fn: Callable, coarse: Region, factor: int, threshold: float, *, batch_size: int,
           max_evaluations: Optional[int] = None, lower=None, upper=None, max_region_size: Optional[int] = None,
           log: Optional[FloodLog] = None, on_step: Optional[Callable[[Step], None]] = None) -> Region:
    """The region on the grid of spacing coarse.spacing / factor (module docstring); arguments as `flood_fill`'s,
    which it calls with the coarse pass as `known`. Its `evaluations` count the fine pass only, its `scored` mask
    tells scored points from known ones."""
    if factor < 2:
        raise ValueError(f"refine: factor must be >= 2, got {factor}")
    return flood_fill(score_fn, coarse.seed, coarse.spacing / factor, threshold, batch_size=batch_size,
                      max_evaluations=max_evaluations, lower=lower, upper=upper, max_region_size=max_region_size,
                      known=_known(coarse, factor, interior_mask(coarse, lower, upper)), log=log, on_step=on_step)

"""Frontier-batched flood fill on a grid: the paper's Algorithm 2, exact, batched, resumable.

The grid. Around a seed rho_0 (n,) with spacing nu (n,), grid point k (n integers) is rho_0 + k * nu; its 2n
neighbours are k +- e_d. Points outside [lower, upper] are never visited. The region is the set of grid points
connected to the seed through 2n-neighbours whose loss is below `threshold` (NaN is never below it).

The traversal. The paper pops one point at a time from a stack. Here every discovered point is appended to one
list in discovery order; the processed prefix is behind `head`, the rest is the frontier (a FIFO queue). A step
takes the frontier's next `batch_size` points that need scoring (and the points around them whose loss is already
`known`), scores them in one call of `score_fn` on a fixed (batch_size, n) batch (`batching.map_batches`: a short
last batch is padded, padding never counts), then appends every unvisited in-bounds neighbour of the points found
in the region, deduplicated, in order. A step is a contiguous prefix of the queue and neighbours are appended in
processing order, so the discovery order - and with it the set scored under a budget - is the same for every
batch size; without a budget the region is the connected component, which is what the sequential algorithm finds.

The visited set is exact: integer grid coordinates (int32) hashed as bytes, so memory grows with the points
discovered, never with the grid's volume. A flood's `FloodLog` (the losses in scoring order and the points scored
per step) determines its whole state: `flood_fill(..., log=...)` replays it without scoring and continues, which
is how an interrupted flood resumes to the same region.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import numpy as np

from simadv_jax.batching import map_batches

_FAR = np.iinfo(np.int32).max // 4  # grid index bound of an unbounded side
_EPS = 1e-9  # relative slack when a bound falls on a grid point


class FloodLog(NamedTuple):
    """What a flood scored, which rebuilds its state exactly: losses (S,) float32 in scoring order; steps (T,)
    int64, points scored per step (sum S)."""

    losses: np.ndarray
    steps: np.ndarray


class Step(NamedTuple):
    """After each scoring step: evaluations and region_size so far, frontier (points queued), losses (k,) float32
    of the points this step scored (the steps' losses, concatenated, and their counts make the FloodLog)."""

    evaluations: int
    region_size: int
    frontier: int
    losses: np.ndarray


class Region(NamedTuple):
    """A flood fill's result (numpy). M region points, K outside points, in discovery (BFS) order.

    seed: (n,) float64, the grid's origin. spacing: (n,) float64 nu.
    coords: (M, n) int32 grid coordinates (coords[0] = 0, the seed, when the seed is in the region).
    points: (M, n) float32 parameter vectors, seed + coords * spacing (clipped to the bounds).
    losses: (M,) float32. scored: (M,) bool, the loss was scored by this flood (False: given by `known`).
    boundary: (M,) bool, the point has a neighbour among the outside points: the recognizer recovers next to it.
    outside_coords (K, n) int32, outside_points (K, n) float32, outside_losses (K,) float32: the processed points
      not in the region (loss >= threshold or NaN), each a neighbour of a region point: where failure stops.
    evaluations: points scored. steps: scoring steps. coverage: (steps, 2) int64 (evaluations, region size) after
    each step. stopped_by: "" when the region is complete, else the budget that stopped it ("max_evaluations",
    "max_region_size").
    """

    seed: np.ndarray
    spacing: np.ndarray
    coords: np.ndarray
    points: np.ndarray
    losses: np.ndarray
    scored: np.ndarray
    boundary: np.ndarray
    outside_coords: np.ndarray
    outside_points: np.ndarray
    outside_losses: np.ndarray
    evaluations: int
    steps: int
    coverage: np.ndarray
    stopped_by: str

    @property
    def size(self) -> int:
        return int(self.coords.shape[0])

    @property
    def budget_stopped(self) -> bool:
        return bool(self.stopped_by)


class Grid(NamedTuple):
    """The grid of a flood: seed, spacing, lower, upper (n,) float64; low, high (n,) int64 index bounds."""

    seed: np.ndarray
    spacing: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def points(self, coords: np.ndarray) -> np.ndarray:
        """(K, n) int grid coordinates -> (K, n) float32 parameter vectors inside the bounds."""
        return np.clip(self.seed + coords * self.spacing, self.lower, self.upper).astype(np.float32)

    def inside(self, coords: np.ndarray) -> np.ndarray:
        """(K, n) -> (K,) bool, within the bounds."""
        return np.all((coords >= self.low) & (coords <= self.high), axis=1)

    def nearest(self, points: np.ndarray) -> np.ndarray:
        """(K, n) parameter vectors -> (K, n) int32 coordinates of the nearest grid point."""
        return np.rint((np.asarray(points, np.float64) - self.seed) / self.spacing).astype(np.int32)


def make_grid(seed, spacing, lower=None, upper=None) -> Grid:
    """The Grid around `seed` (n,) with `spacing` (scalar or (n,), > 0) in the box [lower, upper] (None:
    unbounded). Raises ValueError for a bad spacing or a seed outside the box."""
    seed = np.asarray(seed, np.float64).reshape(-1)
    n = seed.shape[0]
    spacing = np.broadcast_to(np.asarray(spacing, np.float64), (n,)).copy()
    if not np.all(np.isfinite(spacing) & (spacing > 0)):
        raise ValueError(f"spacing: must be finite and > 0 in every dimension, got {spacing.tolist()}")
    lower = np.full(n, -np.inf) if lower is None else np.asarray(lower, np.float64).reshape(n)
    upper = np.full(n, np.inf) if upper is None else np.asarray(upper, np.float64).reshape(n)
    if not np.all((lower <= seed) & (seed <= upper)):
        raise ValueError(f"seed: {seed.tolist()} lies outside the bounds [{lower.tolist()}, {upper.tolist()}]")
    with np.errstate(invalid="ignore"):
        low = np.where(np.isfinite(lower), np.ceil((lower - seed) / spacing - _EPS), -_FAR)
        high = np.where(np.isfinite(upper), np.floor((upper - seed) / spacing + _EPS), _FAR)
    return Grid(seed, spacing, lower, upper, low.astype(np.int64), high.astype(np.int64))


def neighbours(coords: np.ndarray) -> np.ndarray:
    """(K, n) -> (2nK, n) int32: each point's neighbours, point by point, per dimension -e_d then +e_d."""
    n = coords.shape[1]
    offsets = np.concatenate([-np.eye(n, dtype=np.int32), np.eye(n, dtype=np.int32)], axis=1).reshape(2 * n, n)
    return (coords[:, None, :] + offsets[None]).reshape(-1, n).astype(np.int32)


def keys(coords: np.ndarray) -> list:
    """(K, n) int32 -> K hashable byte strings, one per point."""
    rows = np.ascontiguousarray(coords, np.int32)
    return rows.view(np.dtype((np.void, 4 * rows.shape[1]))).ravel().tolist()


def neighbour_members(coords: np.ndarray, members: set) -> np.ndarray:
    """(M, n) coordinates -> (M, 2n) bool: neighbour j of point i (in `neighbours` order) is in `members`, a set
    of `keys`."""
    around = neighbours(coords)
    found = np.fromiter((key in members for key in keys(around)), bool, len(around))
    return found.reshape(len(coords), 2 * coords.shape[1])


class _Grown:
    """A growable (capacity, ...) array; `view` is the filled part."""

    def __init__(self, shape: tuple, dtype, fill):
        self.data, self.count, self.fill = np.full((16,) + shape, fill, dtype), 0, fill

    def extend(self, rows: np.ndarray) -> None:
        need = self.count + len(rows)
        if need > len(self.data):
            grown = np.full((max(need, 2 * len(self.data)),) + self.data.shape[1:], self.fill, self.data.dtype)
            grown[:self.count] = self.data[:self.count]
            self.data = grown
        self.data[self.count:need] = rows
        self.count = need

    @property
    def view(self) -> np.ndarray:
        return self.data[:self.count]


class _Queue:
    """The flood's bookkeeping: every discovered point in discovery order (coordinates, loss, whether the loss was
    given, whether it is in the region); points before `head` are processed, the rest is the frontier."""

    def __init__(self, grid: Grid, known: Optional[Callable]):
        n = grid.seed.shape[0]
        self.grid, self.known, self.index, self.head = grid, known, set(), 0
        self.coords = _Grown((n,), np.int32, 0)
        self.losses = _Grown((), np.float32, np.nan)
        self.given = _Grown((), bool, False)
        self.inside = _Grown((), bool, False)

    def discover(self, candidates: np.ndarray) -> None:
        """Appends the in-bounds candidates not seen before, in order (the first of duplicates)."""
        candidates = candidates[self.grid.inside(candidates)]
        fresh = []
        for i, key in enumerate(keys(candidates)):
            if key not in self.index:
                self.index.add(key)
                fresh.append(i)
        new = candidates[fresh]
        given, losses = (np.zeros(len(new), bool), np.full(len(new), np.nan, np.float32)) if self.known is None \
            else self.known(new)
        self.coords.extend(new)
        self.losses.extend(np.where(given, losses, np.nan).astype(np.float32))
        self.given.extend(np.asarray(given, bool))
        self.inside.extend(np.zeros(len(new), bool))

    def take(self, quota: int) -> int:
        """The end of the next step: the frontier up to its (quota + 1)-th point that needs scoring (exclusive)."""
        unscored = np.cumsum(~self.given.view[self.head:])
        if not len(unscored) or unscored[-1] <= quota:
            return self.coords.count
        return self.head + int(np.searchsorted(unscored, quota, side="right"))

    def process(self, end: int, scored: np.ndarray, threshold: np.float32, room: Optional[int]) -> tuple[int, bool]:
        """Sets the scored losses of [head, end), marks the region points (at most `room` more) and discovers
        their neighbours. Returns (region points found, whether `room` (>= 1) cut the step short)."""
        step = slice(self.head, end)
        losses = self.losses.view[step]
        losses[~self.given.view[step]] = scored
        found = losses < threshold
        cut = room is not None and int(found.sum()) > room
        if cut:
            last = int(np.flatnonzero(found)[room - 1])
            end, found = self.head + last + 1, found[:last + 1]
        self.inside.view[self.head:end] = found
        self.discover(neighbours(self.coords.view[self.head:end][found]))
        self.head = end
        return int(found.sum()), cut

    def region(self, evaluations: int, coverage: list, stopped_by: str) -> Region:
        done = slice(0, self.head)
        inside, coords = self.inside.view[done], self.coords.view[done]
        losses, given = self.losses.view[done], self.given.view[done]
        grid = self.grid
        boundary = neighbour_members(coords[inside], set(keys(coords[~inside]))).any(axis=1)
        return Region(grid.seed, grid.spacing, coords[inside], grid.points(coords[inside]), losses[inside],
                      ~given[inside], boundary, coords[~inside],
                      grid.points(coords[~inside]), losses[~inside], evaluations, len(coverage),
                      np.asarray(coverage, np.int64).reshape(-1, 2), stopped_by)


def flood_fill(score_fn: Callable, seed, spacing, threshold: float, *, batch_size: int,
               max_evaluations: Optional[int] = None, lower=None, upper=None, max_region_size: Optional[int] = None,
               known: Optional[Callable] = None, log: Optional[FloodLog] = None,
               on_step: Optional[Callable[[Step], None]] = None) -> Region:
    """The region of grid points around `seed` connected to it whose loss is below `threshold` (module docstring).

    Args:
      score_fn: (batch_size, n) float32 points -> (batch_size,) losses (lower = more adversarial; NaN = invalid).
      seed: (n,) the grid's origin, inside the bounds. spacing: scalar or (n,) nu > 0. threshold: loss threshold.
      batch_size: points per call of score_fn (B).
      max_evaluations: stop after scoring this many points (None: no limit); the points scored are the first
        ones of the discovery order, whatever B.
      lower, upper: (n,) bounds (None: unbounded); points outside are never visited.
      max_region_size: stop once the region holds this many points (its first ones in discovery order).
      known: optional (K, n) int32 coordinates -> ((K,) bool, (K,) float32 losses) of points whose loss is
        known without scoring (`refine` uses it); they cost no evaluation.
      log: a FloodLog of an interrupted flood of the same arguments: replayed without scoring, then continued.
      on_step: called with a Step after each scoring step (not while replaying), e.g. to append its losses to a
        checkpoint.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    for name, value in (("max_evaluations", max_evaluations), ("max_region_size", max_region_size)):
        if value is not None and value < 1:
            raise ValueError(f"{name}: must be >= 1, got {value}")
    grid = make_grid(seed, spacing, lower, upper)
    threshold = np.float32(threshold)
    queue = _Queue(grid, known)
    queue.discover(np.zeros((1, grid.seed.shape[0]), np.int32))
    replay = FloodLog(np.zeros(0, np.float32), np.zeros(0, np.int64)) if log is None else log
    evaluations, steps, coverage, region_size, stopped_by = 0, [], [], 0, ""
    while queue.head < queue.coords.count:
        replaying = len(steps) < len(replay.steps)
        if replaying:
            quota = int(replay.steps[len(steps)])
        else:
            quota = batch_size if max_evaluations is None else min(batch_size, max_evaluations - evaluations)
        end = queue.take(quota)
        if end == queue.head:
            stopped_by = "max_evaluations"
            break
        todo = np.flatnonzero(~queue.given.view[queue.head:end]) + queue.head
        if replaying:
            scored = np.asarray(replay.losses[evaluations:evaluations + len(todo)], np.float32)
            if len(scored) != quota or len(todo) != quota:
                raise ValueError("log: does not match this flood (other arguments, or another flood's log)")
        elif len(todo):
            points = grid.points(queue.coords.view[todo])
            scored = np.asarray(map_batches(lambda p: np.asarray(score_fn(p)), [points], batch_size), np.float32)
        else:
            scored = np.zeros(0, np.float32)
        room = None if max_region_size is None else max_region_size - region_size
        found, cut = queue.process(end, scored, threshold, room)
        evaluations, region_size = evaluations + len(todo), region_size + found
        steps.append(len(todo))
        coverage.append((evaluations, region_size))
        if on_step is not None and not replaying:
            on_step(Step(evaluations, region_size, queue.coords.count - queue.head, scored))
        if cut or (max_region_size is not None and region_size >= max_region_size
                   and queue.head < queue.coords.count):
            stopped_by = "max_region_size"
            break
    if len(steps) < len(replay.steps):
        raise ValueError("log: holds more steps than this flood takes (other arguments, or another flood's log)")
    return queue.region(evaluations, coverage, stopped_by)

"""The flood fill against a plain sequential stack-based reference (the paper's Algorithm 2) on analytic losses
with known sublevel sets, in 2 and 5 dimensions; budgets, bounds, resume, refinement, several seeds, the
description. No rendering here (tests/test_regions_study.py runs the evaluation)."""
import numpy as np
import pytest

from simadv_jax.regions import describe, distinct_regions, flood_fill, refine
from simadv_jax.regions.flood import FloodLog
from simadv_jax.regions.refine import interior_mask

SPACING = 0.25
SPACINGS = {2: SPACING, 5: 0.5}  # grid spacing per dimension count (5-D sets of a few thousand points)


def ball(x, centre=0.0, radius=1.3):
    return np.sum((x - centre) ** 2, axis=1) - radius ** 2


def boxes(x):
    """Two closed boxes touching at the face x0 = 1: [-1, 1]^n and [1, 2] x [-0.5, 0.5]^(n-1) (Chebyshev)."""
    first = np.max(np.abs(x) - 1.0, axis=1)
    second = np.maximum(np.abs(x[:, 0] - 1.5) - 0.5, np.max(np.abs(x[:, 1:]) - 0.5, axis=1))
    return np.minimum(first, second)


def blobs(x):
    """Two disjoint balls, around 0 and around (2.5, 0, ...)."""
    other = np.zeros(x.shape[1])
    other[0] = 2.5
    return np.minimum(ball(x, 0.0, 0.8), ball(x, other, 0.8))


def band(x):
    """A thin band around the main diagonal: every coordinate within 0.55 of every other one (one or two grid
    steps), so it is connected only through 2n-neighbours (a staircase); its length is cut by the bounds."""
    return np.ptp(x, axis=1) - 0.55


SHAPES = {"ball": ball, "boxes": boxes, "blobs": blobs, "band": band}
THRESHOLD = 1e-6  # closed sets: a point on a box face (loss 0) is inside


def bounds(n):
    return np.full(n, -2.3), np.full(n, 2.45)


def loss_of(shape):
    """A score_fn on float32 points (losses in float64 of those exact points, as float32)."""
    return lambda points: SHAPES[shape](np.asarray(points, np.float64)).astype(np.float32)


def reference(score, seed, spacing, threshold, lower, upper):
    """Algorithm 2 as the paper writes it: one point at a time from a stack; a point is visited once.
    Returns (region, outside) as sets of integer-coordinate tuples."""
    n = len(seed)

    def point(k):
        return (seed + np.asarray(k) * spacing).astype(np.float32)

    def inside(k):
        x = seed + np.asarray(k) * spacing
        return bool(np.all((lower <= x) & (x <= upper)))

    start = (0,) * n
    stack, visited, region, outside = [start], {start}, set(), set()
    while stack:
        k = stack.pop()
        if score(point(k)[None])[0] < np.float32(threshold):
            region.add(k)
            for d in range(n):
                for step in (-1, 1):
                    other = k[:d] + (k[d] + step,) + k[d + 1:]
                    if other not in visited and inside(other):
                        visited.add(other)
                        stack.append(other)
        else:
            outside.add(k)
    return region, outside


def as_set(coords):
    return {tuple(int(c) for c in row) for row in coords}


class Recorder:
    """A score_fn that records every batch it is given."""

    def __init__(self, shape):
        self.score, self.batches = loss_of(shape), []

    def __call__(self, points):
        self.batches.append(np.array(points))
        return self.score(points)


@pytest.mark.parametrize("n", [2, 5])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_flood_fill_finds_exactly_what_the_sequential_algorithm_finds(shape, n):
    lower, upper = bounds(n)
    seed, spacing = np.zeros(n), SPACINGS[n]
    region, outside = reference(loss_of(shape), seed, spacing, THRESHOLD, lower, upper)
    assert len(region) > 20 and len(outside) > 0
    for batch_size in (1, 7, 256):  # 1 and 7 are much smaller than the frontier
        recorder = Recorder(shape)
        found = flood_fill(recorder, seed, spacing, THRESHOLD, batch_size=batch_size, lower=lower, upper=upper)
        assert as_set(found.coords) == region and len(found.coords) == len(region)
        assert as_set(found.outside_coords) == outside
        assert found.evaluations == len(region) + len(outside) and found.stopped_by == ""
        np.testing.assert_array_equal(found.points, (seed + found.coords * spacing).astype(np.float32))
        np.testing.assert_array_equal(found.losses, loss_of(shape)(found.points))
        assert np.all(found.losses < THRESHOLD) and np.all(found.outside_losses >= THRESHOLD)
        assert found.scored.all() and tuple(found.coords[0]) == (0,) * n
        # Every batch has the fixed size; padding repeats a batch's first row; no point is scored twice.
        assert all(b.shape == (batch_size, n) for b in recorder.batches)
        seen = set()
        for b in recorder.batches:
            rows = [tuple(r) for r in b]
            real = list(dict.fromkeys(rows))
            assert all(r == rows[0] for r in rows[len(real):])
            assert not seen & set(real)
            seen |= set(real)
        assert len(seen) == found.evaluations
        points = np.concatenate(recorder.batches)
        assert np.all(points >= lower) and np.all(points <= upper)  # never outside the bounds
        # The boundary: region points next to a point outside; the flood is complete, so these are the region
        # points with an in-bounds neighbour outside the region.
        expected = set()
        for k in region:
            for d in range(n):
                for step in (-1, 1):
                    other = k[:d] + (k[d] + step,) + k[d + 1:]
                    x = seed + np.asarray(other) * spacing
                    if other not in region and np.all((lower <= x) & (x <= upper)):
                        expected.add(k)
        assert as_set(found.coords[found.boundary]) == expected
        coverage = found.coverage
        assert coverage.shape == (found.steps, 2) and tuple(coverage[-1]) == (found.evaluations, len(region))
        assert np.all(np.diff(coverage, axis=0) >= 0)


def test_shapes_are_what_they_claim():
    """The analytic sets hold what the exactness test relies on (not vacuous)."""
    lower, upper = bounds(2)
    for shape, check in [("boxes", lambda r: any(k[0] * SPACING > 1.5 for k in r)),  # crosses the face
                         ("blobs", lambda r: all(k[0] * SPACING < 1.25 for k in r)),  # the seeded blob only
                         ("band", lambda r: max(k[0] for k in r) * SPACING > 2.0)]:  # the whole staircase
        region, _ = reference(loss_of(shape), np.zeros(2), SPACING, THRESHOLD, lower, upper)
        assert check(region), shape
    other = np.zeros((1, 2))
    other[0, 0] = 2.5
    assert blobs(other)[0] < 0  # the second blob exists
    thin = lambda x: np.ptp(x, axis=1) - 0.5 * SPACING  # noqa: E731 (a band narrower than one step: the seed alone)
    found = flood_fill(lambda p: thin(np.asarray(p, np.float64)), np.zeros(2), SPACING, 0.0, batch_size=4,
                       lower=lower, upper=upper)
    assert found.size == 1


def test_budgets_stop_cleanly_say_so_and_do_not_depend_on_the_batch():
    lower, upper = bounds(2)
    complete = flood_fill(loss_of("ball"), np.zeros(2), SPACING, THRESHOLD, batch_size=16, lower=lower, upper=upper)
    by_evaluations, by_size = [], []
    for batch_size in (1, 5, 16, 1000):
        found = flood_fill(loss_of("ball"), np.zeros(2), SPACING, THRESHOLD, batch_size=batch_size, lower=lower,
                           upper=upper, max_evaluations=40)
        assert found.evaluations == 40 and found.stopped_by == "max_evaluations" and found.budget_stopped
        by_evaluations.append(found)
        found = flood_fill(loss_of("ball"), np.zeros(2), SPACING, THRESHOLD, batch_size=batch_size, lower=lower,
                           upper=upper, max_region_size=25)
        assert found.size == 25 and found.stopped_by == "max_region_size"
        by_size.append(found)
    for found in by_evaluations + by_size:
        assert as_set(found.coords) <= as_set(complete.coords)
        # The boundary is where the recognizer is seen to recover, not the unscored frontier.
        outside = as_set(found.outside_coords)
        assert as_set(found.coords[found.boundary]) == {k for k in as_set(found.coords) if any(
            k[:d] + (k[d] + step,) + k[d + 1:] in outside for d in range(2) for step in (-1, 1))}
    assert interior_mask(by_evaluations[0], lower, upper).sum() < (~by_evaluations[0].boundary).sum()
    for runs in (by_evaluations, by_size):
        assert all(np.array_equal(r.coords, runs[0].coords) for r in runs)  # the same points, in the same order
    assert flood_fill(loss_of("ball"), np.zeros(2), SPACING, THRESHOLD, batch_size=8, lower=lower, upper=upper,
                      max_evaluations=10_000, max_region_size=10_000).stopped_by == ""
    for name in ("max_evaluations", "max_region_size", "batch_size"):
        with pytest.raises(ValueError, match=name):
            flood_fill(loss_of("ball"), np.zeros(2), SPACING, THRESHOLD, **{"batch_size": 4, name: 0})
    with pytest.raises(ValueError, match="seed"):
        flood_fill(loss_of("ball"), np.full(2, 3.0), SPACING, THRESHOLD, batch_size=4, lower=lower, upper=upper)
    with pytest.raises(ValueError, match="spacing"):
        flood_fill(loss_of("ball"), np.zeros(2), [0.1, 0.0], THRESHOLD, batch_size=4)


class Stop(Exception):
    pass


@pytest.mark.parametrize("budget", [{}, {"max_region_size": 30}, {"max_evaluations": 45}])
def test_an_interrupted_flood_resumes_from_its_log_to_the_same_region(budget):
    lower, upper = bounds(5)
    options = dict(batch_size=6, lower=lower, upper=upper, **budget)
    spacing = SPACINGS[5]
    straight = flood_fill(loss_of("boxes"), np.zeros(5), spacing, THRESHOLD, **options)
    saved = []

    def interrupt(step):
        saved.append(step.losses)
        if len(saved) == 4:
            raise Stop

    with pytest.raises(Stop):
        flood_fill(loss_of("boxes"), np.zeros(5), spacing, THRESHOLD, on_step=interrupt, **options)
    log = FloodLog(np.concatenate(saved), np.asarray([len(x) for x in saved]))
    assert log.steps.tolist() == [1, 6, 6, 6]  # the seed alone, then full steps
    recorder = Recorder("boxes")
    resumed = flood_fill(recorder, np.zeros(5), spacing, THRESHOLD, log=log, **options)
    for a, b in zip(resumed, straight):
        np.testing.assert_array_equal(a, b)
    assert sum(len(set(map(tuple, b))) for b in recorder.batches) == straight.evaluations - 19  # nothing again
    with pytest.raises(ValueError, match="log"):
        flood_fill(loss_of("boxes"), np.zeros(5), spacing, THRESHOLD,
                   log=FloodLog(log.losses, log.steps + 1), **options)


def test_refinement_matches_a_fine_flood_and_pays_only_near_the_boundary():
    lower, upper = bounds(2)
    fine = flood_fill(loss_of("ball"), np.zeros(2), SPACING / 4, THRESHOLD, batch_size=16, lower=lower, upper=upper)
    coarse_recorder, fine_recorder = Recorder("ball"), Recorder("ball")
    coarse = flood_fill(coarse_recorder, np.zeros(2), SPACING, THRESHOLD, batch_size=16, lower=lower, upper=upper)
    refined = refine(fine_recorder, coarse, 4, THRESHOLD, batch_size=16, lower=lower, upper=upper)
    assert as_set(refined.coords) == as_set(fine.coords)  # a ball is convex: the interior inference is exact
    np.testing.assert_array_equal(refined.spacing, np.full(2, SPACING / 4))
    assert coarse.evaluations + refined.evaluations < 0.6 * fine.evaluations
    distinct = lambda recorder: {tuple(r) for b in recorder.batches for r in b}  # noqa: E731
    assert refined.evaluations == len(distinct(fine_recorder)) and coarse.evaluations == len(distinct(coarse_recorder))
    assert refined.evaluations == int(refined.scored.sum()) + int(np.sum(  # scored: in the region or just outside
        ~np.all(refined.outside_coords % 4 == 0, axis=1)))
    both = [tuple(r) for b in coarse_recorder.batches + fine_recorder.batches for r in dict.fromkeys(map(tuple, b))]
    assert len(both) == len(set(both))  # nothing is scored in both passes
    np.testing.assert_array_equal(refined.losses[refined.scored], loss_of("ball")(refined.points[refined.scored]))
    with pytest.raises(ValueError, match="factor"):
        refine(loss_of("ball"), coarse, 1, THRESHOLD, batch_size=4)


def test_several_seeds_give_the_distinct_regions_and_the_seeds_they_share():
    lower, upper = np.full(2, -2.3), np.full(2, 3.7)
    seeds = np.asarray([[0.0, 0.0], [0.3, -0.2], [2.5, 0.1], [0.0, 0.0]])
    floods = []

    def flood(i):
        floods.append(i)
        return flood_fill(loss_of("blobs"), seeds[i], SPACING, THRESHOLD, batch_size=8, lower=lower, upper=upper)

    found = distinct_regions(flood, seeds)
    assert floods == [0, 2] and [(d.seed_index, d.seeds) for d in found] == [(0, [0, 1, 3]), (2, [2])]
    assert np.all(found[1].region.points[:, 0] > 1.5)
    found = distinct_regions(flood, seeds, slices=["a", "b", "a", "a"])  # seed 1 lies in another slice
    assert [(d.seed_index, d.seeds) for d in found] == [(0, [0, 3]), (1, [1]), (2, [2])]


def test_describe_says_where_it_fails_in_named_units():
    """A box [-1, 1] x [-0.5, 2.45] (cut by the upper bound) in the searched box [-2.3, 2.45]^2."""
    lower, upper = bounds(2)
    box = lambda x: np.maximum(np.abs(x[:, 0]) - 1.0, np.abs(x[:, 1] - 1.0) - 1.5)  # noqa: E731
    found = flood_fill(lambda p: box(np.asarray(p, np.float64)), np.zeros(2), SPACING, THRESHOLD, batch_size=8,
                       lower=lower, upper=upper)
    summary = describe(found, ["shape[0]", "yaw"], lower, upper)
    assert summary["size"] == found.size == 9 * 12
    assert summary["volume"] == pytest.approx(108 * SPACING ** 2)
    assert summary["fraction_of_box"] == pytest.approx(108 * SPACING ** 2 / 4.75 ** 2)
    assert summary["bounding_box_fill"] == 1.0
    assert summary["extent"]["shape[0]"] == {"min": -1.0, "max": 1.0, "searched": [-2.3, 2.45],
                                             "fraction_of_range": pytest.approx(2 / 4.75), "reaches_low": False,
                                             "reaches_high": False}
    assert summary["extent"]["yaw"]["min"] == -0.5 and summary["extent"]["yaw"]["reaches_high"]
    assert summary["summary"][0].startswith("Fails for -1.00 <= shape[0] <= 1.00 whenever yaw >= -0.50")
    assert summary["boundary"]["size"] == 2 * 12 + 9 - 2 and summary["outside"] == 2 * 12 + 9
    assert summary["stopped_by"] == "" and not any("budget" in line for line in summary["summary"])
    stopped = flood_fill(lambda p: box(np.asarray(p, np.float64)), np.zeros(2), SPACING, THRESHOLD, batch_size=8,
                         lower=lower, upper=upper, max_evaluations=20)
    assert "max_evaluations budget stopped" in describe(stopped, ["a", "b"], lower, upper)["summary"][-1]

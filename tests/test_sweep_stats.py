"""The sweep's statistics against known answers: analytic integrals, scipy's paired tests on data with a known
effect, threshold crossings, failure rates, groups and the bootstrap."""
import numpy as np
import pytest
from scipy import stats as scipy_stats

from simadv_jax.sweep import stats


def test_area_between_piecewise_linear_curves_is_exact():
    x = np.linspace(-1, 1, 9)
    # |x - (-x)| = 2|x|: integral over [-0.5, 0.5] is 0.5, signed 0; the sign change is inside a segment
    assert stats.area_between(x, x, -x, -0.5, 0.5) == pytest.approx((0.5, 0.0), abs=1e-12)
    # interval ends off the grid: a - b = 1 + x on [-0.9, 0.3] -> integral (1 + x) = 1.2 + (0.09 - 0.81) / 2
    a, b = 1 + x, np.zeros_like(x)
    assert stats.area_between(x, a, b, -0.9, 0.3) == pytest.approx((0.84, 0.84), abs=1e-12)
    # a crossing mid-segment: d = x - 0.1 on a grid without 0.1
    area, signed = stats.area_between(x, x - 0.1, np.zeros_like(x), -1.0, 1.0)
    assert area == pytest.approx((1.1 ** 2 + 0.9 ** 2) / 2, abs=1e-12) and signed == pytest.approx(-0.2, abs=1e-12)


def test_area_between_smooth_curves_converges_to_the_integral():
    x = np.linspace(-1, 1, 2001)
    area, signed = stats.area_between(x, np.sin(np.pi * x), np.zeros_like(x), -1, 1)
    assert area == pytest.approx(4 / np.pi, rel=1e-5) and signed == pytest.approx(0.0, abs=1e-9)
    area, _ = stats.area_between(x, x ** 2, np.full_like(x, 0.25), 0.0, 1.0)  # |x^2 - 1/4| over [0, 1]: 1/4
    assert area == pytest.approx(0.25, rel=1e-5)
    assert np.isnan(stats.area_between(x, np.where(x > 0.5, np.nan, x), x, 0.0, 1.0)[0])


def test_paired_tests_match_scipy_and_find_a_known_effect():
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.1, 25)
    lower = base - 0.05 + rng.normal(0, 0.02, 25)  # a known effect of 0.05 per identity
    result = stats.paired_comparison(base, lower, alpha=0.01)
    assert result["n"] == 25 and result["mean_difference"] == pytest.approx(np.mean(base - lower))
    assert abs(result["mean_difference"] - 0.05) < 0.01
    assert result["t_test_p"] == pytest.approx(scipy_stats.ttest_rel(base, lower).pvalue, rel=1e-12)
    assert result["wilcoxon_p"] == pytest.approx(scipy_stats.wilcoxon(base, lower).pvalue, rel=1e-12)
    assert result["t_test_p"] < 1e-8 and result["significant_t"] and result["significant_wilcoxon"]
    null = stats.paired_comparison(base, base + rng.normal(0, 0.02, 25), alpha=0.01)
    assert null["t_test_p"] > 0.01 and not null["significant_t"] and not null["significant_wilcoxon"]


def test_paired_tests_drop_invalid_identities_and_are_undefined_without_variation():
    a, b = np.array([0.5, np.nan, 0.4, 0.3, 0.6]), np.array([0.4, 0.2, np.nan, 0.1, 0.3])
    result = stats.paired_comparison(a, b, alpha=0.01)
    kept = [0, 3, 4]
    assert result["n"] == 3 and result["t_test_p"] == pytest.approx(scipy_stats.ttest_rel(a[kept], b[kept]).pvalue)
    same = stats.paired_comparison(a, a, alpha=0.01)
    assert same["mean_difference"] == 0.0 and same["t_test_p"] is None and not same["significant_wilcoxon"]


def test_mean_curve_has_the_t_interval_of_the_mean():
    scores = np.array([[0.1, 1.0], [0.3, np.nan], [0.5, np.nan]])
    mean, low, high = stats.mean_curve(scores)
    half = scipy_stats.t.ppf(0.975, 2) * np.std([0.1, 0.3, 0.5], ddof=1) / np.sqrt(3)
    np.testing.assert_allclose([mean[0], low[0], high[0]], [0.3, 0.3 - half, 0.3 + half])
    assert mean[1] == 1.0 and np.isnan(low[1]) and np.isnan(high[1])  # one valid identity: no interval


def test_below_intervals_interpolate_the_crossings():
    x = np.linspace(-1, 1, 5)  # -1 -0.5 0 0.5 1
    curve = np.array([0.0, 0.4, 1.0, 0.6, 0.2])
    np.testing.assert_allclose(stats.below_intervals(x, curve, 0.5),
                               [[-1.0, -0.5 + 0.5 * 0.1 / 0.6], [0.5 + 0.5 * 0.1 / 0.4, 1.0]])
    assert stats.below_intervals(x, curve, -1.0) == []


def test_scales_failure_rates_and_ranks():
    similarity = np.array([[0.2, 0.9], [np.nan, 0.4]])
    np.testing.assert_allclose(stats.scaled(similarity, 0.3, "margin"), similarity - 0.3)
    np.testing.assert_allclose(stats.scaled(similarity, 0.3, "rank"), [[0.0, 1.0], [np.nan, 0.5]])
    fails, valid = similarity < 0.3, np.isfinite(similarity)
    np.testing.assert_allclose(stats.failure_rate(fails, valid), [1.0, 0.0])
    assert np.isnan(stats.failure_rate(fails[1:, :1], valid[1:, :1])[0])


def test_groups_bin_values_and_bootstrap_over_identities():
    labels, bins = stats.group_labels(np.array([-1.0, 0.0, 1.0, 0.0]), groups=5)
    assert labels.tolist() == [0, 1, 2, 1] and bins == [[-1, -1], [0, 0], [1, 1]]
    labels, bins = stats.group_labels(np.linspace(0, 1, 11), groups=2)
    assert labels.tolist() == [0] * 5 + [1] * 6 and bins == [[0.0, 0.5], [0.5, 1.0]]
    # 40 identities x 5 pairs: group 0 fails 2 of 5 pairs per identity, group 1 never
    group = np.repeat([[0], [1]], 20, axis=0) * np.ones((1, 5), int)
    fails = (group == 0) & (np.arange(5) < 2)
    rates = stats.group_rates(fails, np.ones_like(fails), group, 2, np.random.default_rng(0))
    assert rates[0]["fnmr"] == pytest.approx(0.4) and rates[0]["ci95"] == pytest.approx([0.4, 0.4])
    assert rates[1] == {"identities": 20, "pairs": 100, "fnmr": 0.0, "ci95": [0.0, 0.0]}
    # identities differ: the interval is the bootstrap's, around the rate
    fails = (group == 0) & (np.arange(5)[None] < np.arange(40)[:, None] % 6)
    rates = stats.group_rates(fails, np.ones_like(fails), group, 2, np.random.default_rng(0))
    low, high = rates[0]["ci95"]
    assert low < rates[0]["fnmr"] < high and high - low < 0.4

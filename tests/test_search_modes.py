"""Failure modes (clusters of adversarials, representatives, sensitivities) against analytic references, and a
tiny search with --stop_at_first=false and --estimate_failure_rate end to end (the white-box strategy in it)."""
import os

import numpy as np
import pytest

from simadv_jax.params import ParamSpace
from simadv_jax.search import modes
from tests.search_fixtures import tiny_config

CONFIG = tiny_config(strategies=("reinforce", "gradient"), estimate_failure_rate=True, estimate_queries=32)
SPACE = ParamSpace.parse("shape[0:2]=-2:2,yaw=-1:1", num_shape=4, num_texture=4, num_expression=0)


def test_clusters_are_the_separated_groups_largest_first():
    rng = np.random.default_rng(0)
    centres = np.array([[0.1, 0.1, 0.1], [0.9, 0.9, 0.1], [0.5, 0.1, 0.9]])
    sizes = [3, 7, 5]
    points = np.concatenate([c + 0.02 * rng.normal(size=(n, 3)) for c, n in zip(centres, sizes)])
    labels = modes.cluster(points)
    np.testing.assert_array_equal(labels, [2] * 3 + [0] * 7 + [1] * 5)
    assert modes.cluster(points[:1]).tolist() == [0] and modes.cluster(points[:0]).size == 0


def test_medoid_is_the_point_nearest_all_others():
    u = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.3, 0.3]])
    assert modes.medoid(u, np.arange(4)) == 3  # summed distances 2.42, 3.17, 3.17, 1.94
    assert modes.medoid(u, np.array([0, 1])) == 0


def test_sensitivity_of_a_linear_similarity_is_its_slope_times_the_step():
    slope = np.array([0.3, -0.1, 2.0])
    rho = np.array([[0.0, 0.5, 0.2], [1.0, -1.0, -0.5]], np.float32)
    values = modes.sensitivities(lambda r: r @ slope, rho, SPACE.lows, SPACE.highs)
    # delta = 5% of the widths 4, 4, 2; at shape[1] = -1 and yaw = -0.5 the moves stay inside the box.
    np.testing.assert_allclose(values, np.tile(slope * [0.2, 0.2, 0.1], (2, 1)), rtol=1e-5)
    edge = modes.sensitivities(lambda r: r @ slope, np.array([[2.0, 0.0, 0.0]], np.float32), SPACE.lows, SPACE.highs)
    assert edge[0, 0] == pytest.approx(0.3 * 0.1, rel=1e-5)  # one-sided at the box edge


def test_failure_modes_count_and_describe_each_group():
    rng = np.random.default_rng(1)
    a = np.array([1.5, 1.5, 0.5]) + 0.02 * rng.normal(size=(6, 3))
    b = np.array([-1.5, 0.0, -0.9]) + 0.02 * rng.normal(size=(3, 3))
    rho = np.concatenate([a, b]).astype(np.float32)
    found = [("reinforce" if i % 2 else "uniform", {"run": i % 3, "iteration": i, "query": i + 1, "score": 0.1,
                                                    "params": SPACE.to_dict(rho[i])}) for i in range(9)]
    found[7][1]["index"] = 0  # the only saved pair is in the smaller mode: it represents it
    result = modes.failure_modes(SPACE, found, rho, lambda r: 3.0 * r[:, 2] - 0.5 * r[:, 0])
    assert result["count"] == 2 and result["other_modes"] == 0 and len(result["summary"]) == 2
    big, small = result["modes"]
    assert (big["count"], small["count"]) == (6, 3)
    assert big["by_strategy"] == {"uniform": 3, "reinforce": 3} and big["runs"] == 6
    assert small["representative"]["query"] == 8 and small["representative"]["index"] == 0
    assert big["representative"]["index"] is None
    np.testing.assert_allclose(list(big["center"].values()), a.mean(0), rtol=1e-5)
    assert big["matters"][:2] == ["yaw", "shape[0]"]
    assert big["sensitivity"]["yaw"]["mean"] == pytest.approx(3.0 * 0.1, rel=1e-4)
    assert big["sensitivity"]["shape[0]"]["mean"] == pytest.approx(-0.5 * 0.2, rel=1e-4)


def test_tiny_search_reports_modes_and_failure_rate(straight):
    out, results = straight
    found = sum(s["adversarials_found"] for s in results["strategies"].values())
    assert results["strategies"]["gradient"]["queries"] == CONFIG.runs * CONFIG.samples_per_iteration * 3
    modes_ = results["failure_modes"]
    assert found > 0 and sum(m["count"] for m in modes_["modes"]) + modes_["other_adversarials"] == found
    for mode in modes_["modes"]:
        assert set(mode["sensitivity"]) == set(results["space"]["names"]) and len(mode["matters"]) == 3
    rate = results["failure_rate"]
    assert rate["queries"] == 32 and rate["interval"][0] <= rate["rate"] <= rate["interval"][1]
    assert rate["search_queries"] == 2 * CONFIG.runs * CONFIG.samples_per_iteration * CONFIG.max_iterations
    table = open(os.path.join(out, "table.md")).read()
    page = open(os.path.join(out, "report.html")).read()
    assert "Failure rate under uniform sampling of the space" in table and "failure mode(s)" in table
    assert "<h2>Failure modes</h2>" in page and "Failure rate under uniform sampling" in page

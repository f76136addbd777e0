"""The efficiency benchmark and the suite report what they claim (rows, counts, ratios, bounds, files); speed and
efficiency targets are never tested (they live in `python -m launch.bench`)."""
import functools
import json
import os

import numpy as np
import pytest

from simadv_jax.benchmarks import efficiency, suite
from simadv_jax.search.config import SearchConfig
from simadv_jax.setup import build_setup
from tests.search_fixtures import TINY_SPACE, head, tiny_recognizer

RUNG = efficiency.Rung("tiny", TINY_SPACE, 2, 3, 64)
STRATEGIES = ("reinforce", "uniform", "gradient")


@functools.lru_cache(None)
def tiny_setup(space, batch_size):
    return build_setup(SearchConfig(space=space, recognizer="tiny"), recognizer=tiny_recognizer(threshold=0.5),
                       head=head(), batch_size=batch_size)


@pytest.fixture(scope="module")
def rows(monkeypatch_module):
    monkeypatch_module.setattr(efficiency, "ESTIMATE_RUNG", "tiny")
    monkeypatch_module.setattr(efficiency, "ESTIMATE_STRATEGY", "reinforce")
    return efficiency.run(rungs=(RUNG,), strategies=STRATEGIES, runs=2, samples=4, estimate_queries=16,
                          make_setup=tiny_setup)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_rows_per_rung_strategy_and_estimate(rows):
    kinds = [row["what"] for row in rows]
    assert kinds == ["efficiency_rung"] + ["efficiency"] * 3 + ["failure_rate_estimate"] * 2 + ["failure_rate_coverage"]
    rung = rows[0]
    assert rung["uniform_queries"] == 64 and rung["uniform_rate"] == rung["uniform_hits"] / 64
    assert rung["uniform_rate_ci"][0] <= rung["uniform_rate"] <= rung["uniform_rate_ci"][1]
    by_name = {row["strategy"]: row for row in rows if row["what"] == "efficiency"}
    assert list(by_name) == list(STRATEGIES)
    for name, row in by_name.items():
        assert 2 <= row["iterations"] <= 3 and row["queries_per_run"] == 4 * row["iterations"]
        assert row["window_queries"] == 2 * 2 * 4  # window 2 iterations x 2 runs x 4 samples
        assert row["adversarials_per_1000"] == pytest.approx(1000 * row["window_adversarials"] / 16, abs=1e-3)
        if row["median_queries_to_first"] is not None:
            low, high = row["queries_to_first_ci"]
            assert 1 <= low <= row["median_queries_to_first"] <= high <= 12
    reinforce = by_name["reinforce"]
    for row in by_name.values():
        if row["median_queries_to_first"] is not None and reinforce["median_queries_to_first"] is not None:
            assert row["ratio_queries_to_reinforce"] == pytest.approx(
                row["median_queries_to_first"] / reinforce["median_queries_to_first"], abs=1e-4)
    assert by_name["uniform"]["forward_equivalents"] == 1.0
    coverage = rows[-1]
    assert coverage["repeats"] == 2 and coverage["queries_per_estimate"] == 16 + 2 * 4
    assert coverage["coverage"] == np.mean([row["covers"] for row in rows if row["what"] == "failure_rate_estimate"])


def test_table_and_plot_files(rows, tmp_path):
    efficiency.write_report(rows, str(tmp_path / "bench"))
    table = (tmp_path / "bench_efficiency.md").read_text()
    assert table.count("\n| tiny |") == 3 and "Failure-rate estimates at the tiny rung" in table
    assert (tmp_path / "bench_efficiency.png").read_bytes()[:4] == b"\x89PNG"


def test_bootstrap_median_and_censoring():
    median, low, high = efficiency.bootstrap_median(np.array([8.0, 16, 24, 32, 40]))
    assert median == 24 and 8 <= low <= 24 <= high <= 40
    assert efficiency.bootstrap_median(np.array([8.0, np.inf, np.inf]))[0] is None  # most runs found none


def test_ratios_to_a_censored_reinforce_are_bounds():
    rows = [{"rung": "r", "strategy": "reinforce", "median_queries_to_first": None, "median_seconds_to_first": None,
             "queries_per_run": 400, "seconds_run": 100.0, "step_s": 1.0, "uniform_rate": 0.001},
            {"rung": "r", "strategy": "uniform", "median_queries_to_first": None, "median_seconds_to_first": None,
             "queries_per_run": 400, "seconds_run": 90.0, "step_s": 0.9, "uniform_rate": 0.001},
            {"rung": "r", "strategy": "gradient", "median_queries_to_first": 40.0, "median_seconds_to_first": 30.0,
             "queries_per_run": 400, "seconds_run": 300.0, "step_s": 2.7, "uniform_rate": 0.001}]
    efficiency.add_ratios(rows)
    gradient = rows[2]
    assert gradient["ratio_queries_to_reinforce"] == 0.1 and gradient["ratio_seconds_to_reinforce"] == 0.3
    assert gradient["ratio_to_reinforce_is_bound"]
    assert gradient["uniform_median_queries"] == pytest.approx(np.log(2) / 0.001)  # geometric, uniform censored
    assert gradient["forward_equivalents"] == 3.0


def test_compare_matches_rows_and_divides_numbers():
    old = [{"what": "render", "resolution": 112, "batch": 64, "images_per_s": 500.0, "compile_s": 2.0},
           {"what": "render", "resolution": 150, "batch": 64, "images_per_s": 300.0}]
    new = [{"what": "render", "resolution": 112, "batch": 64, "images_per_s": 600.0, "compile_s": 1.0},
           {"what": "search", "batch": 32, "step_s": 0.5}]
    lines = suite.compare(new, old)
    assert lines[0] == ("what=render resolution=112 batch=64: images_per_s 600/500 = 1.200; compile_s 1/2 = 0.500")
    assert lines[1] == "what=search batch=32: new"
    assert lines[2] == "what=render resolution=150 batch=64: only in the old file"


def test_bench_compare_refuses_a_file_without_rows(tmp_path):
    from tests.subprocesses import run_module

    bad = tmp_path / "old.json"
    bad.write_text(json.dumps({"rows": []}))
    out = run_module("launch.bench", "--what=all", f"--compare={bad}", timeout=120)
    assert out.returncode != 0 and "--compare: cannot read" in out.stderr and os.path.exists(bad)

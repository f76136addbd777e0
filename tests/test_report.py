"""The report says where the recognizer breaks, in words a reader can check, from plain data."""
import re

import numpy as np

import flame
from flame.embedded import JUDGED_WITH
from simadv_jax.report import html, plots, table
from simadv_jax.search.results import where_it_breaks
from simadv_jax.setup import head_record
from tests.flame_fixtures import random_model
from tests.search_fixtures import space


def _adversarial(yaw, shape0, index=None):
    entry = {"run": 0, "iteration": 1, "query": 3, "score": -0.65, "params": {"shape[0]": shape0, "yaw": yaw}}
    if index is not None:
        entry.update(index=index, files={"reference": f"{index:04d}_reference.png", "probe": f"{index:04d}_probe.png",
                                         "params": f"{index:04d}.json"})
    return entry


def _summary(adversarials):
    return {"queries": 40, "adversarials_found": len(adversarials), "accuracy": 0.9, "mean_score": -0.4,
            "queries_per_adversarial": 10.0, "runs": 2, "runs_with_adversarial": 2, "valid_samples": 40,
            "median_queries_to_first_adversarial": 7.0, "invalid": 0, "clipped": 1, "adversarials": adversarials}


def _results():
    sp = space("shape[0]=-2:2,yaw=-1:1")
    strategies = {"reinforce": _summary([_adversarial(0.93, 0.1, 0), _adversarial(-0.95, -1.5, 1)]),
                  "uniform": _summary([_adversarial(0.97, 1.9), _adversarial(-0.88, 0.4)])}
    return {"recognizer": {"name": "dlib_resnet", "metric": "euclidean", "threshold": -0.6, "input_size": 150,
                           "template": "dlib150"},
            "scenario": "genuine", "head": {"model": "head", "texture": "albedo"},
            "space": {"spec": sp.spec, "names": list(sp.names), "lows": sp.lows.tolist(), "highs": sp.highs.tolist()},
            "strategies": strategies, "where_it_breaks": where_it_breaks(sp, strategies),
            "rescore": {"recognizer": "dlib_reference", "threshold": -0.6, "rescored": 2, "still_adversarial": 1}}


def test_where_it_breaks_groups_the_adversarials_by_occupied_bins():
    breaks = _results()["where_it_breaks"]
    yaw = breaks["parameters"]["yaw"]
    assert yaw["searched"] == [-1.0, 1.0] and yaw["adversarials"] == {"count": 4, "range": [-0.95, 0.97]}
    np.testing.assert_allclose(yaw["intervals"], [[-0.95, -0.88], [0.93, 0.97]])
    assert yaw["occupied_fraction"] == 0.2  # 2 of 10 bins
    assert yaw["by_strategy"]["reinforce"] == {"count": 2, "range": [-0.95, 0.93]}
    shape = breaks["parameters"]["shape[0]"]
    assert shape["occupied_fraction"] == 0.4 and len(shape["intervals"]) == 3  # -1.5 | 0.1, 0.4 | 1.9
    # Most concentrated first, in words.
    assert breaks["summary"][0] == ("yaw: adversarials in [-0.95, -0.88] and [0.93, 0.97] (4 found), searched "
                                    "[-1, 1] (20% of its range holds them)")
    empty = where_it_breaks(space("yaw=-1:1"), {"uniform": _summary([])})
    assert empty["summary"] == ["yaw: no adversarial found, searched [-1, 1]"]
    assert empty["parameters"]["yaw"]["occupied_fraction"] is None


def test_html_report_labels_everything_and_has_no_markdown():
    page = html.report(_results())
    assert "`" not in page and "**" not in page
    for text in ("At a glance", "Where it breaks", "where_it_breaks.png", "alt='reference'", "alt='probe'",
                 "distance &lt;= 0.600", "false non-match", "yaw = 0.930", "shape[0] = 0.100",
                 "Rescored with dlib_reference"):
        assert text in page, text
    for column in table.COLUMNS:
        assert f">{html._e(column.header)}</th>" in page and html._e(column.meaning) in page
    glance = page[page.index("At a glance"):page.index("</ul>")]
    assert "4 adversarial(s) in 80 queries" in glance and "yaw: adversarials in" in glance
    assert page.count("<img src='adversarials/") == 4  # two saved pairs, reference and probe each


def test_markdown_table_has_every_column_and_its_meaning():
    text = table.table_markdown(_results())
    header = next(line for line in text.splitlines() if line.startswith("| Strategy"))
    assert [c.strip() for c in header.strip("|").split("|")] == [c.header for c in table.COLUMNS]
    assert re.search(r"\| reinforce \| 40 \| 2 \| 90\.0 \| -0\.400 \| 10\.0 \| 2/2 \| 7 \| 0 \| 1 \|", text)
    assert all(f"- {c.header}: {c.meaning}" in text for c in table.COLUMNS)


def test_figures_render_single_point_runs_and_the_strip_plot():
    runs = {"a": [np.array([-0.5]), np.array([-0.3, -0.7])]}  # run 0 stopped at iteration 0: one point
    assert plots.trajectories_figure(runs, -0.6, "score").startswith(b"\x89PNG")
    assert plots.where_it_breaks_figure(_results()).startswith(b"\x89PNG")


def test_the_report_says_how_common_failures_are_and_what_it_means():
    results = _results()  # uniform: 2 adversarials in 40 valid samples, 5%
    sentence = table.rarity_sentence(results)
    assert sentence.startswith("How common failures are: uniform sampling failed on 2 of its 40 valid samples (5%)")
    assert "failures are common in this space" in sentence and "--what=efficiency" in sentence
    assert html._e(sentence) in html.report(results) and sentence in table.table_markdown(results)
    results["strategies"]["uniform"]["adversarials_found"] = 0
    assert "(0%); failures are rare in this space" in table.rarity_sentence(results)
    del results["strategies"]["uniform"]
    assert table.rarity_sentence(results) == ""
    results["failure_rate"] = {"rate": 0.002, "interval": [0.001, 0.004], "confidence": 0.95, "queries": 100,
                               "hits": 9, "centers": 8, "uniform_equivalent_queries": 5000}
    assert "the estimated failure rate under uniform sampling (0.2%)" in table.rarity_sentence(results)


def test_alignment_sentence_names_the_box_and_the_failures_to_acquire():
    assert "oracle" in table.alignment_sentence({})  # results written before --alignment
    sentence = table.alignment_sentence({"alignment": {"name": "pipeline", "box_source": "blazeface"}})
    assert "blazeface" in sentence and "failure to acquire" in sentence
    counts = {"reinforce": {"invalid": 5, "failures_to_acquire": 3, "invalid_renders": 2}}
    sentence = table.alignment_sentence({"alignment": {"name": "pipeline", "box_source": "blazeface"},
                                        "acquisition": counts})
    assert sentence.endswith("; failures to acquire: reinforce 3 of its 5 invalid samples.")


def test_failures_to_acquire_are_told_apart_from_failed_renders():
    """With --alignment=pipeline each event line names the samples its step did not acquire, and results count
    them without scoring again; lines written before that field have their invalid samples (events' "invalid")
    re-scored for the pipeline's acquired flag."""
    from types import SimpleNamespace

    from simadv_jax.search import events as search_events
    from simadv_jax.search.results import acquisition

    rho = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    valid = np.array([[True, False, False], [False, True, True]])
    record = SimpleNamespace(counted=np.array([True, True]), valid=valid, scores=np.zeros((2, 3), np.float32),
                             adversarial=np.zeros((2, 3), bool), query=np.arange(1, 7).reshape(2, 3), rho=rho)
    runs = SimpleNamespace(queries=np.array([3, 3]), done=np.zeros(2, bool), clipped=np.zeros(2, int))
    scenario = SimpleNamespace(similarity=lambda loss: loss)
    # rho[0, 1] = (2, 3) is not acquired; the other two invalid samples failed to render.
    acquired = np.array([[True, False, True], [True, True, True]])
    lines = search_events.events_records("reinforce", 0, record, runs, scenario, acquired)
    assert [line["not_acquired"] for line in lines] == [[1], []]
    assert [[e["k"] for e in line["invalid"]] for line in lines] == [[1, 2], [0]]
    assert lines[0]["invalid"][1] == {"k": 2, "query": 3, "rho": [4.0, 5.0]}
    oracle = search_events.events_records("reinforce", 0, record, runs, scenario)  # oracle lines: no new field
    assert oracle == [{k: v for k, v in line.items() if k != "not_acquired"} for line in lines]
    scored = []

    def score_points(r):
        scored.append(r.tolist())
        return SimpleNamespace(acquired=r[:, 0] != 2.0)

    older = oracle[0]  # a line written before "not_acquired": its invalid samples are re-scored
    oldest = {"valid": [False, True]}  # written before the "invalid" field: counted as a failed render
    counts = acquisition(SimpleNamespace(score_points=score_points),
                         {"reinforce": lines + [older, oldest], "uniform": []}, ["reinforce", "uniform"])
    assert counts == {"reinforce": {"invalid": 6, "failures_to_acquire": 2, "invalid_renders": 4},
                      "uniform": {"invalid": 0, "failures_to_acquire": 0, "invalid_renders": 0}}
    assert scored == [[[2.0, 3.0], [4.0, 5.0]]]  # only the older line's invalid samples were scored again


def test_a_study_attacking_the_recognizer_that_judged_the_head_is_flagged():
    from simadv_jax.regions import page

    results = _results()
    assert table.search_caution(results) == ""  # no judge named
    results["head"]["judged_with"] = "faceres"
    assert table.judged_sentence(results["head"], ["dlib_resnet"]) == ""
    results["config"] = {"transfer_to": ["faceres"]}
    sentence = table.search_caution(results)
    assert sentence.startswith("Caution: the head's identity space was designed with faceres's scores")
    assert html._e(sentence) in html.report(results) and sentence in table.table_markdown(results)
    region = {"recognizer": {"name": "dlib_resnet"}, "config": {"recognizers": ["faceres"]},
              "head": {"judged_with": "faceres"}}
    assert "Caution" in page._judged(region) and page._judged({**region, "config": {}}) == ""


def test_a_study_attacking_another_checkpoint_of_the_judge_is_flagged():
    rng = np.random.default_rng(0)
    model = random_model(rng)
    texture = flame.TextureModel(mean=rng.random((4, 4, 3)).astype(np.float32),
                                 basis=rng.random((4, 4, 3, 2)).astype(np.float32), std=np.ones(2, np.float32))
    assert head_record(model, texture)["judged_family"] is None
    head = head_record(model.replace(source=f"test; {JUDGED_WITH}faceres"), texture)
    assert head["judged_with"] == "faceres" and head["judged_family"] == ["faceres", "faceres_deep"]
    sentence = table.judged_sentence(head, ["dlib_resnet", "faceres_deep"])
    assert sentence == ("Caution: the head's identity space was designed with faceres's scores, and this study "
                        "attacks faceres_deep, another checkpoint of faceres's network: its failures over identity "
                        "parameters are not independent of how the head was built (other recognizers' are).")
    assert "attacks faceres:" in table.judged_sentence(head, ["faceres_deep", "faceres"])  # the judge itself first
    assert table.judged_sentence(head, ["mobileface", "dlib_resnet"]) == ""
    results = {**_results(), "head": head, "config": {"rescore_with": "faceres_deep"}}
    assert table.search_caution(results) == sentence
    older = {"model": "head", "texture": "albedo", "judged_with": "faceres"}  # written before "judged_family"
    assert table.judged_sentence(older, ["faceres_deep"]) == ""
    assert "attacks faceres:" in table.judged_sentence(older, ["faceres"])

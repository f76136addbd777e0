"""launch.search end to end: a tiny search writes every output; resume after Ctrl-C == uninterrupted; flags."""
import json
import os

import numpy as np
import pytest

from simadv_jax import samples
from simadv_jax.report.images import read_png, to_uint8
from simadv_jax.search.config import SearchConfig
from simadv_jax.search.experiment import run_search
from simadv_jax.search.results import acquisition
from simadv_jax.setup import build_setup
from tests.search_fixtures import dlib_chip_recognizer, head, tiny_config, tiny_recognizer, without_timing
from tests.subprocesses import last_line, run_module, run_script

CONFIG = tiny_config(rescore_with="dlib_reference")
OUTPUTS = ("config.json", "events.jsonl", "results.json", "table.md", "adversarials.png", "trajectories.png",
           "sequence.png", "report.html")


def test_tiny_search_writes_every_output(straight, setup):
    out, results = straight
    for name in OUTPUTS + ("config.flags",):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert results["schema_version"] == 1
    for name in CONFIG.strategies:
        summary = results["strategies"][name]
        # Exact query counting: every sample of every active iteration (no run stops: stop_at_first=False).
        assert summary["queries"] == CONFIG.runs * CONFIG.samples_per_iteration * CONFIG.max_iterations
        assert summary["valid_samples"] + summary["invalid"] == summary["queries"]
        for key in ("adversarials_found", "accuracy", "mean_score", "queries_per_adversarial",
                    "fraction_runs_with_adversarial", "median_queries_to_first_adversarial", "clipped"):
            assert key in summary
        assert summary["adversarials_found"] == len(summary["adversarials"])
    lines = [json.loads(line) for line in open(os.path.join(out, "events.jsonl"))]
    assert len(lines) == len(CONFIG.strategies) * CONFIG.runs * CONFIG.max_iterations
    adversarials = [a for name in CONFIG.strategies for a in results["strategies"][name]["adversarials"]]
    assert adversarials, "threshold 0.8 on the tiny recognizer should give adversarials"
    first = adversarials[0]
    assert first["score"] < 0.8 and set(first["params"]) == set(setup.space.names)
    for key in ("reference", "probe", "params"):
        assert os.path.exists(os.path.join(out, "adversarials", first["files"][key]))
    table = open(os.path.join(out, "table.md")).read()
    assert "| reinforce |" in table and "| uniform |" in table
    # Only the first max_saved_adversarials get files; --rescore_with re-scores exactly those with dlib's code.
    assert sum("files" in a for a in adversarials) == min(4, len(adversarials))
    rescore = results["rescore"]
    assert rescore["recognizer"] == "dlib_reference" and rescore["rescored"] == min(4, len(adversarials))
    assert all(-2.0 < s < 0.0 for s in rescore["scores"])  # negative Euclidean distances of dlib descriptors
    assert rescore["still_adversarial"] == sum(s < -0.6 for s in rescore["scores"])
    assert "Rescored with dlib_reference" in table


def test_saved_adversarial_re_renders_exactly(straight):
    out, _ = straight
    _, images = samples.rerender(os.path.join(out, "adversarials", "0000.json"))
    reference, probe = images.reference[0], images.probe[0]
    np.testing.assert_array_equal(to_uint8(probe), read_png(os.path.join(out, "adversarials", "0000_probe.png")))
    np.testing.assert_array_equal(to_uint8(reference),
                                  read_png(os.path.join(out, "adversarials", "0000_reference.png")))
    assert probe.shape == (tiny_recognizer().input_size,) * 2 + (3,)


def test_resume_after_ctrl_c_matches_uninterrupted(straight, setup, tmp_path, monkeypatch):
    out = str(tmp_path)
    calls = {"n": 0}

    def interrupt_on_second(event):  # Ctrl-C after the second completed iteration of the first strategy
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(CONFIG, out, setup=setup, progress=interrupt_on_second)
    with pytest.raises(ValueError, match="--resume"):
        run_search(CONFIG, out, setup=setup)  # the directory holds a search
    # Resume in two legs (fewer iterations first), as a user extending the budget would.
    run_search(SearchConfig(**{**CONFIG.to_json(), "strategies": CONFIG.strategies, "max_iterations": 2}), out,
               setup=setup, resume=True)
    resumed = run_search(CONFIG, out, setup=setup, resume=True)
    assert without_timing(resumed) == without_timing(straight[1])
    with pytest.raises(ValueError, match="--runs"):
        run_search(SearchConfig(**{**CONFIG.to_json(), "strategies": CONFIG.strategies, "runs": 3}), out,
                   setup=setup, resume=True)


def test_config_checks_name_the_flag():
    def config(**changes):
        return SearchConfig(**{**CONFIG.to_json(), "strategies": CONFIG.strategies, **changes})

    assert config(strategy_options=("reinforce.sigma2=0.1",)).options("reinforce") == {"sigma2": 0.1}
    for changes, flag in [({"strategy_options": ("reinforce.sigma3=1",)}, "--strategy"),
                          ({"strategy_options": ("gaussian.relative_std=1",)}, "--strategy_options"),
                          ({"strategy_options": ("sigma2",)}, "--strategy_options"),
                          ({"strategies": ("reinforce", "reinforce")}, "--strategy"),
                          ({"strategies": ("annealing",)}, "--strategy"),
                          ({"samples_per_iteration": 0}, "--samples_per_iteration"),
                          ({"threshold": float("nan")}, "--threshold")]:
        with pytest.raises(ValueError, match=flag):
            config(**changes).check()


def test_bad_flag_gives_one_clear_message(tmp_path):
    # (the other flag checks run in-process in test_config_checks_name_the_flag)
    out = run_module("launch.search", f"--output_dir={tmp_path}/run", "--runs=0", timeout=120)
    assert out.returncode != 0
    assert "error: --runs: must be >= 1, got 0" in out.stderr and "Traceback" not in out.stderr
    assert not os.path.exists(f"{tmp_path}/run")


def test_shipped_flagfiles_parse_and_fit_the_embedded_head():
    script = """
import glob
from absl import flags
import launch.search as cli
from simadv_jax.evaluate import check_scenario
from simadv_jax.setup import load_head
from simadv_jax.params import ParamSpace
model, texture = load_head("embedded", "embedded")
for path in sorted(glob.glob("launch/configs/quickstart.flags") + glob.glob("launch/configs/paper_table*.flags")):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["search", "--flagfile=" + path, "--output_dir=unused"])
    config = cli.config_from_flags()
    config.check()
    space = ParamSpace.parse(config.space, num_shape=model.num_shape, num_texture=texture.num_components,
                             num_expression=model.num_expression)
    check_scenario(space, config.scenario)
    print(path, config.strategies, space.size)
"""
    out = run_script(script, timeout=120)
    last_line(out)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].endswith(" 30") and lines[1].endswith(" 62"), lines


def test_impostor_search_hunts_false_matches(tmp_path):
    """Two identities searched jointly; adversarial = the recognizer says "same person" (similarity > T)."""
    threshold = 0.85
    config = tiny_config(strategies=("uniform",), samples_per_iteration=4, max_iterations=2, scenario="impostor",
                         space="shape[0:2]=-2:2,texture[0:2]=-2:2,ref.shape[0:2]=-2:2,ref.texture[0:2]=-2:2",
                         max_saved_adversarials=2)
    recognizer = tiny_recognizer(threshold=threshold)
    setup = build_setup(config, recognizer=recognizer, head=head())
    results = run_search(config, str(tmp_path), setup=setup)
    assert results["scenario"] == "impostor" and results["recognizer"]["threshold"] == pytest.approx(threshold)
    summary = results["strategies"]["uniform"]
    lines = [json.loads(line) for line in open(tmp_path / "events.jsonl")]
    scores = np.array([s for line in lines for s in line["scores"]])
    flagged = [(line["iteration"], line["run"], k) for line in lines for k in line["adversarial"]]
    assert len(scores) == summary["queries"] == 2 * 4 * 2
    # Events carry similarities (the sign undone); adversarial exactly where similarity > T.
    assert sorted(flagged) == sorted((line["iteration"], line["run"], k) for line in lines
                                     for k, s in enumerate(line["scores"]) if s > threshold)
    assert 0 < summary["adversarials_found"] == len(flagged) < len(scores)
    assert summary["accuracy"] == pytest.approx(np.mean(scores <= threshold))  # correctly rejected impostors
    # A saved false match re-renders two different people that the recognizer scores as recorded.
    sample, images = samples.rerender(str(tmp_path / "adversarials" / "0000.json"))
    record = sample.record
    assert record["score"] > threshold and record["scenario"] == "impostor"
    assert record["params"]["shape[0]"] != record["params"]["ref.shape[0]"]
    reference, probe = images.reference[0], images.probe[0]
    similarity = recognizer.score(recognizer.embed(recognizer.params, reference[None]),
                                  recognizer.embed(recognizer.params, probe[None]))
    assert float(similarity[0]) == pytest.approx(record["score"], abs=1e-4)
    assert float(np.abs(reference - probe).mean()) > 0.01


def test_pipeline_search_counts_failures_to_acquire_as_it_goes(tmp_path):
    """--alignment=pipeline end to end: results.json names the alignment and its box source (the mesh's box where
    BlazeFace is not fetched), and "acquisition" counts the failures to acquire the search step recorded in the
    events, which is what re-scoring the invalid samples gives."""
    config = tiny_config(strategies=("uniform",), runs=1, samples_per_iteration=4, max_iterations=2,
                         alignment="pipeline", threshold=-1.0)  # nothing adversarial: no failure modes to compute
    setup = build_setup(config, recognizer=dlib_chip_recognizer(), head=head(), batch_size=8)
    results = run_search(config, str(tmp_path), setup=setup)
    box = setup.evaluation.renderer.box_source
    assert results["alignment"]["name"] == "pipeline" and results["alignment"]["box_source"] == box
    assert box in ("blazeface", "landmarks")
    lines = [json.loads(line) for line in open(tmp_path / "events.jsonl")]
    assert len(lines) == 2
    for line in lines:  # a failure to acquire is an invalid sample
        assert set(line["not_acquired"]) <= {e["k"] for e in line["invalid"]}
    counts = results["acquisition"]["uniform"]
    assert counts["invalid"] == results["strategies"]["uniform"]["invalid"]
    assert counts["failures_to_acquire"] + counts["invalid_renders"] == counts["invalid"]
    assert counts["failures_to_acquire"] == sum(len(line["not_acquired"]) for line in lines)
    if box == "landmarks":
        assert counts["failures_to_acquire"] == 0  # the projected mesh's box is always acquired
    older = [{k: v for k, v in line.items() if k != "not_acquired"} for line in lines]  # the re-scoring fallback
    assert acquisition(setup.evaluation, {"uniform": older}, ["uniform"]) == results["acquisition"]

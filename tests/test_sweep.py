"""Sweeps end to end on the tiny recognizer: every output, scores equal individually evaluated points, resume
after Ctrl-C equals an uninterrupted sweep, two-parameter maps, failures to acquire counted apart from false
non-matches, the directory rules and flag errors; the command line with dlib's network."""
import json
import os
import shutil

import numpy as np
import pytest

from simadv_jax.evaluate import make_evaluate
from simadv_jax.report.images import read_png
from simadv_jax.report.rundir import Interrupted
from simadv_jax.report.sweep import table_markdown
from simadv_jax.sweep import SweepConfig, experiment, results, run_sweep
from simadv_jax.sweep.grid import build_plan
from tests.search_fixtures import dlib_chip_recognizer, head, tiny_recognizer
from tests.subprocesses import run_module

RECOGNIZERS = {"tiny_a": tiny_recognizer(threshold=0.9), "tiny_b": tiny_recognizer(seed=1, threshold=0.7)}
CONFIG = SweepConfig(steps=(9,), identities="grid:3", recognizers=tuple(RECOGNIZERS), labels=("A", "B"),
                     group_by="texture0", groups=3, chunk=20, progress=False)
OUTPUTS = ("config.json", "config.flags", "sweep.npz", "sweep.json", "table.md", "sweep.png")


def sweep(config, out, **kwargs):
    return run_sweep(config, str(out), recognizers=RECOGNIZERS, head=head(), **kwargs)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "run"
    return out, sweep(CONFIG, out, flags_text="--param=yaw\n")


def _without_timing(payload):
    return {k: v for k, v in payload.items() if k != "timing"}


def test_a_two_recognizer_sweep_writes_every_output(straight):
    out, payload = straight
    for name in OUTPUTS:
        assert os.path.getsize(out / name) > 0, name
    assert read_png(str(out / "sweep.png")).shape[2] == 3
    assert json.load(open(out / "sweep.json")) == json.loads(json.dumps(payload))
    with np.load(out / "sweep.npz") as data:
        assert data["similarity"].shape == data["valid"].shape == (9, 9, 2)
        assert data["labels"].tolist() == ["A", "B"] and data["thresholds"].tolist() == [0.9, 0.7]
        np.testing.assert_allclose(data["grid_0"], np.linspace(-1, 1, 9), atol=1e-6)
        assert data["identities"].shape == (9, 2) and data["identity_names"].tolist() == ["shape[0]", "texture[0]"]
        adversarial, similarity, valid = data["adversarial"], data["similarity"], data["valid"]
        assert data["acquired"].all()  # oracle alignment: every face is acquired
    assert valid.all()
    assert payload["alignment"] == {"name": "oracle", "box_source": None}
    recorded = json.load(open(out / "config.json"))["fingerprints"]
    assert payload["head"]["fingerprints"] == {"model": recorded["head"], "texture": recorded["texture"]}
    assert payload["recognizers"]["A"]["failure_to_acquire_fraction"] == 0.0
    np.testing.assert_array_equal(adversarial, similarity < data_thresholds())
    assert payload["grid"]["yaw"][4] == 0.0 and payload["identities"]["count"] == 9
    for scale in ("score", "margin", "rank"):
        assert len(payload["curves"][scale]["A"]["mean"]) == 9
    (comparison,) = payload["comparisons"]
    assert (comparison["first"], comparison["second"]) == ("A", "B")
    areas = comparison["score"]["areas"]
    assert [a["interval"] for a in areas] == [[-1.0, -0.5], [-0.5, 0.5], [0.5, 1.0]]
    mean_a, mean_b = (np.asarray(payload["curves"]["score"][k]["mean"]) for k in "AB")
    # the middle interval [-0.5, 0.5] lies on grid points: the trapezoid of |A - B| between them
    middle = np.abs(mean_a - mean_b)[2:7]
    assert areas[1]["area"] == pytest.approx(np.sum((middle[1:] + middle[:-1]) / 2) * 0.25)
    at = comparison["margin"]["at"]
    assert [a["value"] for a in at] == [-1.0, 0.0, 1.0] and all(a["n"] == 9 for a in at)
    # the margin scale shifts A - B by the thresholds' difference
    assert at[0]["mean_difference"] == pytest.approx(comparison["score"]["at"][0]["mean_difference"] - 0.2, abs=1e-6)
    failures = payload["recognizer_failures"]["A"]
    np.testing.assert_allclose(failures["failure_rate"], adversarial[..., 0].mean(axis=0))
    groups = payload["groups"]
    assert groups["param"] == "texture[0]" and groups["bins"] == [[-1, -1], [0, 0], [1, 1]]
    for label, k in (("A", 0), ("B", 1)):
        for g, rate in enumerate(groups["rates"][label]):
            assert rate["identities"] == 3 and rate["pairs"] == 27
            assert rate["fnmr"] == pytest.approx(adversarial[g::3, :, k].mean())
    table = open(out / "table.md").read()
    for heading in ("Table 1, left", "Table 1, right", "Per recognizer", "False non-match rate by texture[0]"):
        assert heading in table
    assert "| A vs B |" in table and payload["summary"][0].startswith("A: mean score below its threshold")


def data_thresholds():
    return np.asarray([0.9, 0.7])


def test_sweep_scores_equal_individually_evaluated_points(straight):
    out, _ = straight
    model, texture = head()
    plan = build_plan(CONFIG, model, texture)
    with np.load(out / "sweep.npz") as data:
        similarity = data["similarity"]
    levels, yaws = np.linspace(-1, 1, 3), np.linspace(-1, 1, 9)
    points = [(0, 0), (4, 6), (8, 8), (5, 3)]  # (identity, yaw step); identity = 3 * shape level + texture level
    rho = np.stack([plan.space.from_dict({"shape[0]": levels[i // 3], "texture[0]": levels[i % 3], "yaw": yaws[s]})
                    for i, s in points])
    expected = np.asarray([similarity[i, s] for i, s in points])  # (4, 2)
    # the host batcher the sweep uses, and the jitted pure evaluation, on points built independently
    scored = make_evaluate(plan.space, model, texture, RECOGNIZERS["tiny_a"]).score_points(rho)
    np.testing.assert_array_equal(scored.similarity, expected[:, 0])
    evaluated = make_evaluate(plan.space, model, texture, RECOGNIZERS["tiny_b"]).evaluate(rho)
    np.testing.assert_allclose(np.asarray(evaluated.loss), expected[:, 1], atol=1e-5)


def test_ctrl_c_keeps_completed_chunks_and_resume_equals_an_uninterrupted_sweep(straight, tmp_path):
    _, expected = straight
    out = tmp_path / "run"
    seen = []

    def interrupt(event):
        seen.append(event)
        if event.label == "B" and event.done == 40:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match="interrupted after 40 of 81 points of B; continue with --resume"):
        sweep(CONFIG, out, progress=interrupt)
    with pytest.raises(ValueError, match="--output_dir: .* already holds a sweep; pass --resume"):
        sweep(CONFIG, out)
    resumed = []
    payload = sweep(CONFIG, out, resume=True, progress=resumed.append)
    assert _without_timing(payload) == _without_timing(expected)
    assert [(e.label, e.done) for e in resumed][:2] == [("A", 81), ("B", 40)]
    notes = []
    assert _without_timing(sweep(CONFIG, out, resume=True, log=notes.append)) == _without_timing(expected)
    assert notes and "is complete" in notes[0]


def test_a_pipeline_sweep_records_its_alignment_and_resumes_only_with_it(tmp_path):
    """--alignment=pipeline on dlib's chip: the box source that ran is recorded (the projected mesh's box where
    BlazeFace is not fetched) and every point's acquired flag kept; --resume refuses another alignment."""
    config = SweepConfig(steps=(2,), identities="random:2", identity_components=2, recognizers=("chip",),
                         alignment="pipeline", progress=False)
    out = tmp_path / "run"
    payload = run_sweep(config, str(out), recognizers={"chip": dlib_chip_recognizer()}, head=head())
    box = payload["alignment"]["box_source"]
    assert payload["alignment"]["name"] == "pipeline" and box in ("blazeface", "landmarks")
    with np.load(out / "sweep.npz") as data:
        acquired, valid = data["acquired"][..., 0], data["valid"][..., 0]
    assert acquired.shape == (2, 2) and not (valid & ~acquired).any()
    assert payload["recognizers"]["chip"]["failure_to_acquire_fraction"] == pytest.approx(np.mean(~acquired))
    if box == "landmarks":
        assert acquired.all()  # the projected mesh's box is always acquired
    assert f"face box from {box}" in open(out / "table.md").read()
    refused = r"--alignment: --resume needs the same value as the sweep .*\('pipeline'\), got 'oracle'"
    with pytest.raises(ValueError, match=refused):
        run_sweep(SweepConfig(**{**config.__dict__, "alignment": "oracle"}), str(out), resume=True,
                  recognizers={"chip": dlib_chip_recognizer()}, head=head())


def test_a_sweep_from_before_alignment_and_fingerprints_resumes_with_one_warning(straight, tmp_path):
    """A sweep run before --alignment existed (no "alignment" in config.json, no "acquired" in its checkpoints) and
    before fingerprints: resumed (here, found complete) with a warning that the head could not be checked."""
    out = tmp_path / "run"
    shutil.copytree(straight[0], out)
    recorded = json.load(open(out / "config.json"))
    (out / "config.json").write_text(json.dumps({k: v for k, v in recorded.items()
                                                 if k not in ("alignment", "fingerprints")}))
    for name in sorted(os.listdir(out / "checkpoints")):
        with np.load(out / "checkpoints" / name) as data:
            np.savez(out / "checkpoints" / name, **{k: data[k] for k in data.files if k != "acquired"})
    partial, _ = experiment._load_partial(str(out / "checkpoints" / name), 81)
    assert partial["acquired"].shape == (81,) and partial["acquired"].all()
    with pytest.raises(ValueError, match=r"^--alignment: .*\('oracle': the run predates --alignment, so it ran with "
                                         r"the default\), got 'pipeline'$"):
        sweep(SweepConfig(**{**CONFIG.__dict__, "alignment": "pipeline"}), out, resume=True)
    notes = []
    assert _without_timing(sweep(CONFIG, out, resume=True, log=notes.append)) == _without_timing(straight[1])
    assert len(notes) == 2 and notes[0].startswith(f"warning: --head / --texture: the sweep in {out} predates "
                                                   "content fingerprints") and "is complete" in notes[1]
    assert json.load(open(out / "config.json")) == recorded


def test_resume_refuses_another_albedo_naming_both_fingerprints(straight, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(straight[0], out)
    recorded = json.load(open(out / "config.json"))
    (out / "config.json").write_text(json.dumps({**recorded, "fingerprints": {**recorded["fingerprints"],
                                                                              "texture": "0123456789abcdef"}}))
    with pytest.raises(ValueError, match=rf"^--texture: --resume needs the same content as the sweep in {out} "
                                         rf"\(fingerprint 0123456789abcdef\), got fingerprint "
                                         rf"{recorded['fingerprints']['texture']}: it changed"):
        sweep(CONFIG, out, resume=True)


def test_failures_to_acquire_are_counted_apart_from_false_non_matches():
    """A pair whose face the pipeline did not acquire is invalid: it leaves every false non-match rate (numerator
    and denominator) and is counted in the failure-to-acquire rates instead."""
    config = SweepConfig(**{**CONFIG.__dict__, "alignment": "pipeline", "recognizers": ("tiny_a",), "labels": ()})
    plan = build_plan(config, *head())  # 9 identities (texture[0] level = identity % 3) x 9 yaws
    similarity = np.random.default_rng(0).uniform(0.6, 1.0, plan.shape)
    acquired = np.ones(plan.shape, bool)
    acquired[:, -1] = False  # no face found at the last yaw
    acquired[0, 0] = False  # nor for identity 0 at the first
    adversarial = acquired & (similarity < 0.9)  # as score_points gives them: valid (so acquired) and below
    scores = results.Scores(np.where(acquired, similarity, np.nan).astype(np.float32), acquired, adversarial,
                            acquired)
    payload = results.payload(config, plan, [results.RecognizerInfo("tiny_a", "tiny_a", "cosine", 0.9)],
                              {"tiny_a": scores}, {"name": "pipeline", "box_source": "landmarks"})
    failures = payload["recognizer_failures"]["tiny_a"]
    np.testing.assert_allclose(failures["failure_to_acquire_rate"], [1 / 9] + [0.0] * 7 + [1.0])
    assert failures["failure_rate"][0] == pytest.approx(adversarial[1:, 0].mean())  # of the 8 acquired
    assert failures["failure_rate"][-1] is None  # nothing acquired there: no false non-match rate, not 0
    np.testing.assert_allclose(failures["failure_rate"][1:-1], adversarial[:, 1:-1].mean(axis=0))
    assert payload["recognizers"]["tiny_a"]["failure_to_acquire_fraction"] == pytest.approx(10 / 81)
    for g, rate in enumerate(payload["groups"]["rates"]["tiny_a"]):  # texture[0] groups of 3 identities
        assert rate["failures_to_acquire"] == 3 + (g == 0)
        assert rate["pairs"] == 27 - rate["failures_to_acquire"]
        assert rate["fnmr"] == pytest.approx(adversarial[g::3].sum() / rate["pairs"])
    assert "did not acquire the face in 12% of the pairs" in payload["summary"][-1]
    table = table_markdown(payload)
    assert "face box from landmarks" in table and "Pairs not acquired: tiny_a 12.3%" in table
    assert "| FNMR | 95% CI | failures to acquire |" in table


def test_two_parameter_sweep_maps_failure_rates(tmp_path):
    config = SweepConfig(params=("yaw", "pitch"), ranges=(-1.0, 1.0, -0.25, 0.25), steps=(3, 2),
                         identities="random:2", identity_components=2, recognizers=("tiny_a",), progress=False)
    payload = sweep(config, tmp_path / "run")
    with np.load(tmp_path / "run" / "sweep.npz") as data:
        assert data["similarity"].shape == (2, 3, 2, 1) and data["params"].tolist() == ["yaw", "pitch"]
        adversarial = data["adversarial"][..., 0]
    np.testing.assert_allclose(payload["recognizer_failures"]["tiny_a"]["failure_rate"], adversarial.mean(axis=0))
    assert read_png(str(tmp_path / "run" / "failure_maps.png")).shape[2] == 3
    assert "comparisons" not in payload and payload["shown"]["figure"] == "failure_maps.png"


@pytest.mark.parametrize("changes, message", [
    (dict(params=("yaw", "yaw"), ranges=(-1.0, 1.0, -1.0, 1.0)), "--param: one or two distinct"),
    (dict(ranges=(1.0, -1.0)), "--range: yaw needs finite LO < HI"),
    (dict(identities="grid:1"), "--identities: expected grid:K or random:N"),
    (dict(intervals=("-1:2",)), "--intervals: -1.0:2.0 leaves the swept range"),
    (dict(at=(3.0,)), "--at: 3.0 is outside"),
    (dict(labels=("A",)), "--labels: one distinct label per recognizer"),
    (dict(params=("expression[0:2]",)), "--param: expression\\[0:2\\] is not one parameter"),
    (dict(fixed="pitch=-0.1:0.1"), "--fixed: pitch given as ranges"),
    (dict(fixed="yaw=0.2"), "--param=yaw --fixed=yaw=0.2: --space: yaw is set more than once"),
    (dict(group_by="pitch"), "--group_by: pitch is not varied by this sweep"),
])
def test_bad_flags_are_named_before_anything_is_written(tmp_path, changes, message):
    config = SweepConfig(**{**CONFIG.__dict__, **changes})
    with pytest.raises(ValueError, match=message):
        sweep(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_folder_that_is_not_a_sweep_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not empty and holds no sweep run"):
        sweep(CONFIG, tmp_path)
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_the_command_line_sweeps_dlib_and_resumes(tmp_path):
    out = tmp_path / "run"
    args = ("--identities=grid:2", "--steps=3", "--recognizers=dlib_resnet", f"--output_dir={out}", "--noprogress")
    first = run_module("launch.sweep", *args, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "dlib_resnet: mean score below its threshold" in first.stdout
    payload = json.load(open(out / "sweep.json"))
    assert payload["recognizers"]["dlib_resnet"]["threshold"] == pytest.approx(-0.6)
    assert payload["shown"]["scale"] == "score"
    again = run_module("launch.sweep", f"--flagfile={out / 'config.flags'}", f"--output_dir={out}", "--resume",
                       timeout=300)
    assert again.returncode == 0 and "is complete" in again.stderr, again.stderr[-3000:]
    other = run_module("launch.sweep", *args[:-2], "--steps=4", f"--output_dir={out}", "--resume", timeout=300)
    assert other.returncode != 0 and "Traceback" not in other.stderr
    assert "error: --steps: --resume needs the same value" in other.stderr

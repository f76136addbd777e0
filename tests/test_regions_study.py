"""launch.regions end to end on the embedded head with the tiny recognizer: every output file, landscapes equal to
points scored one by one, resume after Ctrl-C, several seeds of a run, 1 and 4 devices, errors that name the
flag, the run-directory rules, the shipped flagfile."""
import json
import os

import numpy as np
import pytest

from simadv_jax.benchmarks import regions as benchmark
from simadv_jax.evaluate import make_evaluate
from simadv_jax.regions import landscape
from simadv_jax.regions.config import RegionConfig
from simadv_jax.regions.study import run_regions
from simadv_jax.report.rundir import Interrupted
from simadv_jax.setup import build_setup
from tests.search_fixtures import TINY_SPACE, head, tiny_recognizer
from tests.subprocesses import last_line, run_module, run_script

SEED = ("shape[0]=0", "shape[1]=0", "texture[0]=0", "texture[1]=0", "yaw=0.8")
# Threshold 0 on the tiny recognizer's cosine: it fails for yaw >= ~0.3 (a region with a boundary in the box).
CONFIG = RegionConfig(seed=SEED, space=TINY_SPACE, recognizer="tiny", threshold=0.0, dims=("yaw", "shape[0]"),
                      spacing=(0.25, 0.5), refine=2, landscape=("yaw", "shape0"), landscape_points=5,
                      recognizers=("tiny", "tiny2"), batch_size=16, progress=False)
OUTPUTS = ("config.json", "config.flags", "region.npz", "region.json", "coverage.png", "montage.png",
           "landscape.npz", "landscape_surface.png", "landscape_heatmaps.png", "report.html")


@pytest.fixture(scope="module")
def setup():
    found = build_setup(CONFIG.resolved(), recognizer=tiny_recognizer(), head=head(), batch_size=16)
    other = tiny_recognizer(seed=1, threshold=0.5)  # a second recognizer for the landscape, at its own threshold
    found.cache[("evaluation", "tiny2")] = make_evaluate(found.space, found.model, found.texture_model, other,
                                                         batch_size=16)
    return found


@pytest.fixture(scope="module")
def straight(setup, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("straight"))
    return out, run_regions(CONFIG, out, setup=setup, flags_text="--refine=2\n")


def _comparable(results):
    """region.json without what varies between runs of one configuration (seconds)."""
    results = {k: v for k, v in results.items() if k != "timing"}
    results["regions"] = [{**r, "passes": [{k: v for k, v in p.items() if k != "seconds"} for p in r["passes"]]}
                          for r in results["regions"]]
    return results


def test_tiny_flood_writes_every_output(straight, setup):
    out, results = straight
    for name in OUTPUTS:
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert set(results["files"]) == set(OUTPUTS) - {"config.json", "config.flags"}
    with open(os.path.join(out, "region.json")) as f:
        assert json.load(f) == results
    (region,) = results["regions"]
    coarse, fine = region["passes"]
    assert coarse["spacing"] == [0.25, 0.5] and fine["spacing"] == [0.125, 0.25]
    assert 10 < coarse["size"] < fine["size"] and region["size"] == fine["size"]
    assert region["evaluations"] == coarse["evaluations"] + fine["evaluations"] and region["stopped_by"] == ""
    assert region["extent"]["yaw"]["reaches_high"] and not region["extent"]["yaw"]["reaches_low"]
    assert region["summary"][0].startswith("Fails for yaw >= ")
    (seed,) = results["seeds"]
    seed_rho = np.asarray([0, 0, 0, 0, 0.8], np.float32)
    assert seed["params"] == setup.space.to_dict(seed_rho)
    scored_seed = setup.evaluation.score_points(seed_rho[None])
    assert seed["loss"] == seed["score"]  # genuine: the loss is the score
    assert seed["loss"] == pytest.approx(float(scored_seed.loss[0]), abs=1e-5) and scored_seed.adversarial[0]
    assert (seed["index"], seed["region"]) == (0, 0)
    with np.load(os.path.join(out, "region.npz")) as data:
        arrays = dict(data)
    assert list(arrays["dims"]) == ["yaw", "shape[0]"] and len(arrays["points"]) == region["size"]
    # Points hold the seed's values off the flooded dimensions; the scored ones re-score to their losses.
    np.testing.assert_array_equal(arrays["points"][:, [1, 2, 3]], 0.0)
    scored = arrays["scored"]
    again = setup.evaluation.score_points(arrays["points"][scored])
    np.testing.assert_allclose(again.loss, arrays["losses"][scored], atol=1e-5)
    assert np.all(again.adversarial) and np.all(arrays["losses"] < 0.0)
    outside = setup.evaluation.score_points(arrays["outside_points"])
    assert not np.any(outside.adversarial)
    assert int(arrays["boundary"].sum()) == region["boundary"]["size"]
    assert tuple(arrays["coverage"][arrays["coverage_pass"] == 1][-1]) == (fine["evaluations"], fine["size"])
    with np.load(os.path.join(out, "landscape.npz")) as data:
        assert data["loss"].shape == (2, 5, 5) and list(data["recognizers"]) == ["tiny_projection", "tiny2"]
    assert [r["name"] for r in results["landscape"]["recognizers"]] == ["tiny_projection", "tiny2"]
    page = open(os.path.join(out, "report.html")).read()
    assert "Adversarial regions" in page and region["summary"][0].replace(">", "&gt;") in page
    for name in ("coverage.png", "montage.png", "landscape_surface.png", "landscape_heatmaps.png"):
        assert open(os.path.join(out, name), "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_landscape_values_equal_individually_evaluated_points(setup):
    evaluations = {"tiny": setup.evaluation, "tiny2": setup.evaluation_for("tiny2")}
    seed = np.asarray([0.3, -0.2, 0.1, 0.0, 0.5], np.float32)
    found = landscape(evaluations, seed, np.asarray([4, 1]), 3)
    np.testing.assert_array_equal(found.axes, [[-1, 0, 1], [-2, 0, 2]])
    for r, evaluation in enumerate(evaluations.values()):
        for i in range(3):
            for j in range(3):
                rho = seed.copy()
                rho[4], rho[1] = found.axes[0, i], found.axes[1, j]
                one = evaluation.score_points(rho[None])
                assert found.loss[r, i, j] == pytest.approx(float(one.loss[0]), abs=1e-6)
                assert found.margin[r, i, j] == pytest.approx(float(one.loss[0]) - evaluation.loss_threshold,
                                                              abs=1e-6)


@pytest.mark.parametrize("stage, steps", [("coarse", 3), ("fine", 2)])
def test_an_interrupted_run_resumes_to_the_same_region(setup, straight, tmp_path, stage, steps):
    seen = []

    def interrupt(event):
        seen.append(event)
        if sum(e.stage == stage for e in seen) == steps:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted, match=rf"interrupted after \d+ evaluation\(s\) of seed 0 \({stage} pass\); "
                                          "continue with --resume"):
        run_regions(CONFIG, str(tmp_path), setup=setup, progress=interrupt)
    assert not os.path.exists(tmp_path / "region.json")
    checkpoint = tmp_path / "checkpoints" / f"seed_0000_{stage}.jsonl"
    assert len(checkpoint.read_text().splitlines()) == steps  # every completed step, one line each
    with open(checkpoint, "a") as f:
        f.write('{"losses": [0.1, ')  # a crash mid-append (kill -9, a full disk): the torn line is cut
    resumed = run_regions(CONFIG, str(tmp_path), setup=setup, resume=True)
    assert _comparable(resumed) == _comparable(straight[1])
    with np.load(tmp_path / "region.npz") as a, np.load(os.path.join(straight[0], "region.npz")) as b:
        for key in b.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    notes = []
    assert run_regions(CONFIG, str(tmp_path), setup=setup, resume=True, log=notes.append) == resumed
    assert "complete" in notes[0]
    changed = RegionConfig(**{**CONFIG.__dict__, "spacing": (0.2,)})
    with pytest.raises(ValueError, match=r"--spacing: --resume needs the same value"):
        run_regions(changed, str(tmp_path), setup=setup, resume=True)


def test_errors_name_the_flag_and_write_nothing(setup, tmp_path):
    out = str(tmp_path / "run")
    frontal = tuple(entry.replace("yaw=0.8", "yaw=0") for entry in SEED)
    cases = [({"seed": frontal}, r"--seed: the seed is not adversarial: it has loss 1\.0000, not below the "
                                 r"threshold 0\.0000 \(score 1\.0000, tiny_projection's threshold 0\.0000"),
             ({"dims": ("yaw", "pitch")}, r"--dims: 'pitch' is not a dimension of the space .*yaw"),
             ({"landscape": ("yaw", "jaw")}, r"--landscape: 'jaw' is not a dimension"),
             ({"spacing": (0.1, 0.2, 0.3)}, r"--spacing: give one value or one per flooded dimension \(2\)"),
             ({"seed": SEED[:-1]}, r"--seed: .*missing \['yaw'\]"),
             ({"seed": SEED[:-1] + ("yaw=1.5",)}, r"--seed: outside the space: yaw=1\.5"),
             ({"seed": SEED[:-1] + ("yaw",)}, r"--seed: malformed entry 'yaw'"),
             ({"seed": (), "seed_from": str(tmp_path / "none.json")}, r"--seed_from: cannot read"),
             ({"seed_from": "results.json"}, r"--seed_from / --seed: give exactly one"),
             ({"all_seeds": True}, r"--all_seeds"),
             ({"max_region_size": -1}, r"--max_region_size"),
             ({"landscape": ("yaw",)}, r"--landscape: name two dimensions")]
    for changes, message in cases:
        with pytest.raises(ValueError, match=message):
            run_regions(RegionConfig(**{**CONFIG.__dict__, **changes}), out, setup=setup)
        assert not os.path.exists(out), changes


def test_the_run_directory_rules_of_the_search_apply(setup, straight, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"is not empty and holds no region study run .*found notes\.txt"):
        run_regions(CONFIG, str(tmp_path), setup=setup)
    assert os.listdir(tmp_path) == ["notes.txt"]
    search = tmp_path / "search"
    search.mkdir()
    (search / "config.json").write_text(json.dumps({"strategies": ["reinforce"], "runs": 2}))
    with pytest.raises(ValueError, match="holds another kind of run"):
        run_regions(CONFIG, str(search), setup=setup)
    with pytest.raises(ValueError, match="already holds a region study; pass --resume"):
        run_regions(CONFIG, straight[0], setup=setup)
    with pytest.raises(ValueError, match="--resume: .* holds no region study to resume"):
        run_regions(CONFIG, str(tmp_path / "new"), setup=setup, resume=True)


def test_every_adversarial_of_a_run_gives_the_distinct_regions(setup, tmp_path):
    """Seeds 0 and 1 share a region; seed 2 lies in another slice (shape[1] differs), so it gets its own."""
    params = [{"shape[0]": 0.0, "shape[1]": 0.0, "texture[0]": 0.0, "texture[1]": 0.0, "yaw": 0.8},
              {"shape[0]": 0.4, "shape[1]": 0.0, "texture[0]": 0.0, "texture[1]": 0.0, "yaw": 0.9},
              {"shape[0]": 0.0, "shape[1]": 1.0, "texture[0]": 0.0, "texture[1]": 0.0, "yaw": 0.8}]
    run = {"config": {"head": "embedded", "texture": "embedded", "space": TINY_SPACE, "recognizer": "tiny",
                      "threshold": 0.0, "scenario": "genuine", "supersample": 1},
           "strategies": {"uniform": {"adversarials": [{"params": p} for p in params]}}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(run))
    config = RegionConfig(seed_from=str(path), all_seeds=True, dims=("yaw", "shape[0]"), spacing=(0.25, 0.5),
                          batch_size=16, progress=False)
    results = run_regions(config, str(tmp_path / "run"), setup=setup)
    assert results["config"]["space"] == TINY_SPACE and results["config"]["threshold"] == 0.0
    assert results["distinct_regions"] == 2
    assert [(r["seed_index"], r["seeds"]) for r in results["regions"]] == [(0, [0, 1]), (2, [2])]
    assert [s["region"] for s in results["seeds"]] == [0, 0, 1]
    assert not os.path.exists(tmp_path / "run" / "checkpoints" / "seed_0001_coarse.jsonl")  # never flooded
    assert results["landscape"] is None
    with pytest.raises(ValueError, match=r"--seed_index: 5 is not in \[0, 3\)"):
        run_regions(RegionConfig(**{**config.__dict__, "all_seeds": False, "seed_index": 5}), str(tmp_path / "x"),
                    setup=setup)


DEVICES_SCRIPT = """
import json, sys, tempfile
import jax
from simadv_jax.regions.config import RegionConfig
from simadv_jax.regions.study import run_regions
from simadv_jax.setup import build_setup
from tests.search_fixtures import TINY_SPACE, head, tiny_recognizer
config = RegionConfig(seed=("shape[0]=0", "shape[1]=0", "texture[0]=0", "texture[1]=0", "yaw=0.8"),
                      space=TINY_SPACE, recognizer="tiny", threshold=0.0, dims=("yaw", "shape[0]"),
                      spacing=(0.25, 0.5), batch_size=16, progress=False)
setup = build_setup(config.resolved(), recognizer=tiny_recognizer(), head=head(), batch_size=16)
out = tempfile.mkdtemp()
results = run_regions(config, out, setup=setup)
import numpy as np
data = np.load(out + "/region.npz")
print(json.dumps({"devices": jax.device_count(), "coords": data["coords"].tolist(),
                  "losses": data["losses"].tolist(), "evaluations": results["regions"][0]["evaluations"]}))
"""


def test_one_and_four_devices_give_the_same_region():
    one, four = (json.loads(last_line(run_script(DEVICES_SCRIPT, devices=d, timeout=300))) for d in (1, 4))
    assert (one["devices"], four["devices"]) == (1, 4)
    assert one["coords"] == four["coords"] and one["evaluations"] == four["evaluations"]
    np.testing.assert_allclose(one["losses"], four["losses"], atol=1e-5)


def test_the_command_line_says_what_is_wrong_and_the_shipped_flagfile_fits(tmp_path):
    out = run_module("launch.regions", f"--output_dir={tmp_path}/run", f"--seed_from={tmp_path}/none.json",
                     timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert f"error: --seed_from: cannot read {tmp_path}/none.json" in out.stderr
    assert not os.path.exists(f"{tmp_path}/run")
    script = """
from absl import flags
import launch.regions as cli
from simadv_jax.regions.seeds import dimension_indices, parse_seed
from simadv_jax.setup import load_head, parse_space
flags.FLAGS(["regions", "--flagfile=launch/configs/paper_fig7.flags", "--output_dir=unused"])
config = cli.config_from_flags()
config.check()
config = config.resolved()
model, texture = load_head(config.head, config.texture)
space = parse_space(config.space, model, texture)
print(space.names, dimension_indices(space, config.dims, "--dims").tolist(),
      dimension_indices(space, config.landscape, "--landscape").tolist(), parse_seed(config.seed, space).tolist())
"""
    line = last_line(run_script(script, timeout=120))
    assert line == "('shape[0]', 'texture[0]') [0, 1] [0, 1] [0.0, -1.0]", line


def test_the_benchmark_reports_what_it_claims():
    """Rows with every documented key and sane units (speed targets live in `python -m launch.bench`)."""
    (row,) = benchmark.run(batches=(8,), recognizer=tiny_recognizer(), steps=2)
    assert set(row) == {"what", "recognizer", "batch", "dims", "steps", "images_per_point", "compile_s",
                        "points_per_s", "flood_images_per_s", "evaluation_images_per_s", "recognizer_images_per_s",
                        "ratio", "ratio_vs_evaluation", "bookkeeping_ms", "frontier", "device", "devices",
                        "rasterizer"}
    assert (row["what"], row["batch"], row["dims"], row["images_per_point"]) == ("regions", 8, 11, 2)
    assert row["steps"] >= 2 and row["frontier"] > 8
    assert row["flood_images_per_s"] == pytest.approx(2 * row["points_per_s"], rel=1e-2)
    assert 0 < row["ratio"] and 0 < row["ratio_vs_evaluation"] and 0 <= row["bookkeeping_ms"] < 1000

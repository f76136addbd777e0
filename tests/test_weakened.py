"""The weakened-model experiment in miniature (a few identities and steps): the pipeline from launch.weakened's
flag file to the Table 1 and Figure 2 analogues, its thresholds and resume; not the science."""
import json
import os

import numpy as np
import pytest

from simadv_jax.weakened import MODELS, WeakenedConfig
from tests.subprocesses import ROOT, run_module

TINY_BACKBONE = '{"stem_width": 8, "conv_width": 16, "embedding_dim": 16, "bottlenecks": [[1, 8, 1, 2], [1, 16, 1, 2]]}'
MINIATURE = ("--flagfile=launch/configs/weakened_models.flags", "--identities=4", "--image_size=24",
             f"--backbone_options={TINY_BACKBONE}", "--batch_size=8", "--num_steps=2", "--warmup_steps=1",
             "--verification_identities=4", "--verification_pairs=20", "--sweep_steps=5", "--sweep_identities=grid:2",
             "--noprogress")


@pytest.fixture(scope="module")
def miniature(tmp_path_factory):
    out = tmp_path_factory.mktemp("weakened") / "run"
    result = run_module("launch.weakened", *MINIATURE, f"--output_dir={out}", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_the_miniature_trains_three_models_calibrates_and_sweeps(miniature):
    out, result = miniature
    summary = json.load(open(out / "weakened.json"))
    assert list(summary["models"]) == ["Normal", "NYF", "PYF"]
    for name, filters in MODELS:
        model = summary["models"][name]
        assert model["filters"] == list(filters) and model["steps"] == 2
        verification = json.load(open(out / "train" / name.lower() / "verification.json"))
        assert model["threshold"] == verification["threshold"] and len(verification["fold_accuracies"]) == 10
        config = json.load(open(out / "train" / name.lower() / "config.json"))
        assert config["filters"] == list(filters) and config["input_size"] == 24
    sweep = json.load(open(out / "sweep" / "sweep.json"))
    assert list(sweep["recognizers"]) == ["Normal", "NYF", "PYF"]
    for name, _ in MODELS:  # each model is scored at its calibrated threshold
        assert sweep["recognizers"][name]["threshold"] == summary["models"][name]["threshold"]
    assert [(c["first"], c["second"]) for c in sweep["comparisons"]] == [("Normal", "NYF"), ("Normal", "PYF"),
                                                                         ("NYF", "PYF")]
    with np.load(out / "sweep" / "sweep.npz") as data:
        assert data["similarity"].shape == (4, 5, 3)
    for name in ("table.md", "sweep.png", "sweep.npz"):
        assert os.path.getsize(out / "sweep" / name) > 0
    assert "Table 1, left" in result.stdout and "| Normal vs NYF |" in result.stdout
    stages = [json.loads(line)["stage"] for line in open(out / "stages.jsonl")]
    assert stages == ["train Normal", "threshold Normal", "train NYF", "threshold NYF", "train PYF",
                      "threshold PYF", "sweep"]
    assert set(summary["timing"]["seconds_per_stage"]) == set(stages)


def test_resume_keeps_finished_stages_and_other_values_are_refused(miniature):
    out, _ = miniature
    again = run_module("launch.weakened", *MINIATURE, f"--output_dir={out}", "--resume", timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    stages = [json.loads(line)["stage"] for line in open(out / "stages.jsonl")]
    assert stages[7:] == ["sweep"] and "is complete" in again.stderr  # nothing trained or calibrated again
    other = run_module("launch.weakened", *MINIATURE, "--num_steps=3", f"--output_dir={out}", "--resume",
                       timeout=300)
    assert other.returncode != 0 and "Traceback" not in other.stderr
    assert "error: --num_steps: --resume needs the same value" in other.stderr


def test_the_flag_file_default_is_the_documented_setting():
    config = WeakenedConfig()
    config.check()
    lines = [line for line in open(os.path.join(ROOT, "launch/configs/weakened_models.flags")) if line.startswith("--")]
    values = dict(line.strip()[2:].split("=", 1) for line in lines)
    assert int(values["num_steps"]) == config.num_steps and int(values["identities"]) == config.identities
    assert json.loads(values["backbone_options"]) == config.backbone_options
    assert config.sweep_config("runs/w").labels == ("Normal", "NYF", "PYF")
    assert [config.train_config(f).filters for _, f in MODELS] == [(), ("yaw>-0.5",), ("yaw<0.5",)]

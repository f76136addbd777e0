"""Tiny end-to-end training: loss decreases, exact resume, checkpoints -> Recognizer, data folders, CLI errors;
the pure train step jitted and not; recognizers/ never imports the training package."""
import ast
import dataclasses
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from simadv_jax.recognizers import checkpoints, load, zoo
from simadv_jax.training.config import TrainConfig, learning_rate_schedule
from simadv_jax.training.data import ArraySource, AttributeFilter, ImageFolder, step_indices
from simadv_jax.training.loop import read_metrics, train_and_evaluate
from simadv_jax.training.step import init_state, make_train_step, train_step_function
from simadv_jax.training.verification import save_threshold
from subprocesses import ROOT, last_line, run_module, run_script

# The layers above recognizers/ (ARCHITECTURE.md, "Layering"): it imports none of them, not even lazily.
UPPER_LAYERS = ("simadv_jax.training", "simadv_jax.search", "simadv_jax.evaluate", "simadv_jax.realism")
TINY = TrainConfig(
    backbone="ir_cbam50",
    backbone_options={"stage_widths": (8, 16), "stage_units": (1, 1), "stem_width": 8, "embedding_dim": 16,
                      "reduction": 4},
    head_scale=16.0,
    input_size=16,
    batch_size=8,
    num_steps=12,
    learning_rate=0.02,
    schedule="step",
    lr_boundaries=(9,),
    checkpoint_every=6,
    log_every=4,
    progress=False,
)


def tiny_source(num_classes=4, per_class=6, size=16, seed=0):
    """Each class: one random 4x4 colour pattern upsampled to size x size, plus pixel noise."""
    rng = np.random.default_rng(seed)
    patterns = rng.random((num_classes, 4, 4, 3))
    images = np.repeat(np.repeat(patterns, size // 4, axis=1), size // 4, axis=2)
    images = np.repeat(images, per_class, axis=0) + rng.normal(0, 0.05, (num_classes * per_class, size, size, 3))
    labels = np.repeat(np.arange(num_classes), per_class)
    return ArraySource(np.clip(images, 0, 1).astype(np.float32), labels.astype(np.int32), num_classes)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("straight"))
    state = train_and_evaluate(TINY, workdir, source=tiny_source())
    return workdir, state


def test_loss_decreases_and_metrics_are_logged(straight_run):
    workdir, state = straight_run
    records = read_metrics(workdir)
    assert [r["step"] for r in records] == list(range(1, 13))
    losses = [r["loss"] for r in records]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    assert records[0]["learning_rate"] == pytest.approx(0.02) and records[-1]["learning_rate"] == pytest.approx(0.002)
    assert all(r["images_per_s"] > 0 for r in records)
    assert int(state.step) == 12
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["12", "6"]


def test_resume_is_exact(straight_run, tmp_path):
    workdir, straight = straight_run
    half = str(tmp_path / "half")
    train_and_evaluate(dataclasses.replace(TINY, num_steps=6), half, source=tiny_source())
    resumed = train_and_evaluate(TINY, half, resume=True, source=tiny_source())
    chex.assert_trees_all_equal(resumed.params, straight.params)
    chex.assert_trees_all_equal(resumed.batch_stats, straight.batch_stats)
    strip = lambda rs: [{k: r[k] for k in ("step", "loss", "accuracy", "learning_rate")} for r in rs]  # noqa: E731
    assert strip(read_metrics(half)) == strip(read_metrics(workdir))
    events = [json.loads(line) for line in open(os.path.join(half, "metrics.jsonl")) if "event" in line]
    assert [(e["event"], e["step"]) for e in events] == [("start", 0), ("resume", 6)]


def test_run_directory_errors(straight_run, tmp_path):
    workdir, _ = straight_run
    with pytest.raises(ValueError, match="already has checkpoints"):
        train_and_evaluate(TINY, workdir, source=tiny_source())
    with pytest.raises(ValueError, match="no checkpoint"):
        train_and_evaluate(TINY, str(tmp_path / "empty"), resume=True, source=tiny_source())
    with pytest.raises(ValueError, match=r"differs .* \['learning_rate'\]"):
        train_and_evaluate(dataclasses.replace(TINY, learning_rate=0.5), workdir, resume=True, source=tiny_source())


def test_config_errors():
    with pytest.raises(ValueError, match="--backbone"):
        TrainConfig(backbone="resnet18")
    with pytest.raises(ValueError, match="--schedule"):
        TrainConfig(schedule="linear")
    with pytest.raises(ValueError, match="--batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="--filters"):
        TrainConfig(filters=("yaw ~ 3",))
    with pytest.raises(ValueError, match="--data"):
        train_and_evaluate(TINY, "/tmp/unused")


def test_checkpoint_to_recognizer(straight_run, tmp_path):
    workdir, state = straight_run
    recognizer = load(f"ir_cbam50:{workdir}")
    assert recognizer.input_size == 16 and recognizer.metric == "cosine"
    assert recognizer.threshold == zoo.DEFAULT_THRESHOLD
    images = tiny_source().images[:5]
    embeddings = jax.jit(recognizer.embed)(recognizer.params, jnp.asarray(images))
    model = zoo.create("ir_cbam50", **TINY.backbone_options)
    expected = model.apply({"params": state.params["backbone"], "batch_stats": state.batch_stats}, images)
    np.testing.assert_allclose(embeddings, expected, rtol=1e-5, atol=1e-5)
    save_threshold(workdir, {"threshold": 0.42})
    assert load(f"ir_cbam50:{workdir}").threshold == 0.42
    os.remove(os.path.join(workdir, checkpoints.VERIFICATION_FILE))

    with pytest.raises(ValueError, match="holds a 'ir_cbam50' run"):
        load(f"ir50:{workdir}")
    with pytest.raises(ValueError, match="does not exist"):
        load(f"ir50:{tmp_path / 'nowhere'}")
    with pytest.raises(ValueError, match="checkpoint is required"):
        load("ir50")
    corrupt = tmp_path / "corrupt"
    os.makedirs(corrupt / "checkpoints" / "3" / "default")
    (corrupt / "config.json").write_text(open(os.path.join(workdir, "config.json")).read())
    with pytest.raises(ValueError, match="cannot restore step 3"):
        load(f"ir_cbam50:{corrupt}")


def test_step_indices_are_epoch_permutations():
    first_epoch = np.concatenate([step_indices(10, 3, 7, s) for s in range(3)])
    assert len(set(first_epoch)) == 9  # 3 full batches, the 10th sample dropped
    np.testing.assert_array_equal(step_indices(10, 3, 7, 4), step_indices(10, 3, 7, 4))
    assert not np.array_equal(step_indices(10, 3, 7, 0), step_indices(10, 3, 7, 3))
    with pytest.raises(ValueError, match="larger than the dataset"):
        step_indices(2, 3, 0, 0)


def make_folder(root, sizes=(20, 16)):
    """root/<id>/<n>.png, 3 identities x 2 images; returns the CSV path with a yaw per image."""
    rows = ["path,yaw,age"]
    for identity, yaws in zip(("b_id", "a_id", "c_id"), ((-0.8, 0.1), (0.0, 0.6), (-0.7, -0.6))):
        os.makedirs(root / identity)
        for n, yaw in enumerate(yaws):
            value = 40 * n + 10 * len(rows)
            Image.new("RGB", (sizes[n], sizes[n]), (value, 0, 255 - value)).save(root / identity / f"{n}.png")
            rows.append(f"{identity}/{n}.png,{yaw},30")
    (root / "notes.txt").write_text("not an identity")
    csv = root.parent / "attributes.csv"
    csv.write_text("\n".join(rows) + "\n")
    return str(csv)


def test_image_folder_with_attribute_filters(tmp_path):
    csv = make_folder(tmp_path / "faces")
    everything = ImageFolder(str(tmp_path / "faces"), 16)
    assert everything.class_names == ["a_id", "b_id", "c_id"] and len(everything) == 6
    np.testing.assert_array_equal(everything.labels, [0, 0, 1, 1, 2, 2])
    images, labels = next(everything.batches(6, 0, 0))
    assert images.shape == (6, 16, 16, 3) and images.dtype == np.float32 and labels.dtype == np.int32
    assert 0 <= images.min() and images.max() <= 1

    # NYF-style: drop yaw <= -0.5, i.e. keep yaw > -0.5; c_id loses both images and the labels are renumbered
    kept = ImageFolder(str(tmp_path / "faces"), 16, csv, [AttributeFilter.parse("yaw>-0.5")])
    assert kept.paths == ["a_id/0.png", "a_id/1.png", "b_id/1.png"]
    assert kept.class_names == ["a_id", "b_id"] and kept.num_classes == 2
    np.testing.assert_array_equal(kept.labels, [0, 0, 1])
    both = ImageFolder(str(tmp_path / "faces"), 16, csv, [AttributeFilter.parse("yaw >= -0.7"),
                                                           AttributeFilter.parse("yaw<0.5")])
    assert both.paths == ["a_id/0.png", "b_id/1.png", "c_id/0.png", "c_id/1.png"]

    with pytest.raises(ValueError, match="no column 'pitch'"):
        ImageFolder(str(tmp_path / "faces"), 16, csv, [AttributeFilter.parse("pitch<0")])
    with pytest.raises(ValueError, match="no image"):
        ImageFolder(str(tmp_path / "faces"), 16, csv, [AttributeFilter.parse("yaw>5")])
    with pytest.raises(ValueError, match="needs --attributes_csv"):
        ImageFolder(str(tmp_path / "faces"), 16, "", [AttributeFilter.parse("yaw>5")])
    short = tmp_path / "short.csv"
    short.write_text("path,yaw\na_id/0.png,0.1\n")
    with pytest.raises(ValueError, match="no row for 5 image"):
        ImageFolder(str(tmp_path / "faces"), 16, str(short))
    with pytest.raises(ValueError, match="does not exist"):
        ImageFolder(str(tmp_path / "missing"), 16)


def test_launch_train_and_verify(tmp_path):
    make_folder(tmp_path / "faces", sizes=(40, 32))
    workdir = tmp_path / "run"
    done = run_module("launch.train", "--flagfile=launch/configs/train_tiny.flags", f"--data={tmp_path / 'faces'}",
                      f"--workdir={workdir}", "--num_steps=2", "--batch_size=4", "--progress=false",
                      "--backbone_options=" + json.dumps(TINY.backbone_options),  # smaller than the flagfile's
                      timeout=300)
    assert done.returncode == 0, done.stderr
    assert len(read_metrics(str(workdir))) == 2
    bad = run_module("launch.train", "--backbone=resnet18", f"--workdir={tmp_path / 'bad'}", "--data=x", timeout=120)
    assert bad.returncode != 0 and "--backbone: unknown 'resnet18'" in bad.stderr
    # verification of the tiny run on a 2-fold pairs file over the same folder (LFW naming via symlinks)
    lfw = tmp_path / "lfw"
    for name in ("a_id", "b_id", "c_id"):
        os.makedirs(lfw / name)
        for n in (0, 1):
            os.symlink(tmp_path / "faces" / name / f"{n}.png", lfw / name / f"{name}_{n + 1:04d}.jpg")
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2 1\na_id 1 2\na_id 1 b_id 1\nc_id 1 2\nb_id 2 c_id 1\n")
    out = tmp_path / "result.json"
    spec = f"--recognizer=ir_cbam50:{workdir}"
    verified = run_module("launch.verify", spec, f"--pairs={pairs}", f"--images={lfw}", "--flip=none",
                          f"--output={out}", "--save_threshold", timeout=300)
    assert verified.returncode == 0, verified.stderr
    assert "threshold saved to" in verified.stdout
    flipped = run_module("launch.verify", spec, f"--pairs={pairs}", f"--images={lfw}", "--flip=sum",
                         "--save_threshold", timeout=120)
    assert flipped.returncode != 0 and "--save_threshold needs --flip=none" in flipped.stderr
    result = json.loads(out.read_text())
    assert len(result["fold_accuracies"]) == 2 and 0 <= result["accuracy"] <= 1
    assert load(f"ir_cbam50:{workdir}").threshold == pytest.approx(result["threshold"])


def test_config_from_flags():
    flags = {"backbone_options": '{"stage_widths": [8, 16], "stage_units": [1, 1]}', "lr_boundaries": ["3", "7"],
             "filters": ["yaw>0"]}
    config = TrainConfig.from_flags(flags)
    assert config.backbone_options == {"stage_widths": [8, 16], "stage_units": [1, 1]}
    assert config.lr_boundaries == (3, 7) and config.filters == ("yaw>0",)
    with pytest.raises(ValueError, match="--backbone_options: not JSON"):
        TrainConfig.from_flags({**flags, "backbone_options": "{stage"})
    with pytest.raises(ValueError, match="--backbone_options: expected a JSON object"):
        TrainConfig.from_flags({**flags, "backbone_options": "[8]"})
    with pytest.raises(ValueError, match="--lr_boundaries: expected integers"):
        TrainConfig.from_flags({**flags, "lr_boundaries": ["x"]})
    with pytest.raises(ValueError, match="unknown option"):
        TrainConfig.from_flags({**flags, "backbone_options": '{"widths": [8]}'})


def test_learning_rate_schedules():
    step = learning_rate_schedule(TINY)
    assert float(step(8)) == pytest.approx(0.02) and float(step(9)) == pytest.approx(0.002)
    cosine = learning_rate_schedule(dataclasses.replace(TINY, schedule="cosine", warmup_steps=4))
    assert float(cosine(0)) == 0.0 and float(cosine(4)) == pytest.approx(0.02)
    assert float(cosine(12)) == pytest.approx(0.0, abs=1e-9)


class TrainStepTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_pure_step_matches_the_compiled_one(self):
        images, labels = next(tiny_source().batches(TINY.batch_size, TINY.seed, 0))
        step = self.variant(train_step_function(TINY, 4))
        state, metrics = step(init_state(TINY, 4), images, labels)
        chex.assert_shape(list(metrics.values()), ())
        chex.assert_tree_all_finite((state, metrics))
        assert int(state.step) == 1 and float(metrics["learning_rate"]) == pytest.approx(0.02)
        chex.assert_trees_all_equal((state, metrics), step(init_state(TINY, 4), images, labels))  # pure
        compiled = make_train_step(TINY, 4)(init_state(TINY, 4), jnp.asarray(images), jnp.asarray(labels))
        chex.assert_trees_all_close((state, metrics), compiled, rtol=1e-5, atol=1e-6)


def test_checkpoint_round_trip(straight_run):
    workdir, state = straight_run
    restored = checkpoints.restore_backbone(workdir)
    chex.assert_trees_all_equal(restored, {"params": state.params["backbone"], "batch_stats": state.batch_stats})
    config = checkpoints.read_config(workdir)
    assert config == json.loads(json.dumps(dataclasses.asdict(TINY)))


def test_recognizer_needs_the_run_config_fields(tmp_path):
    (tmp_path / "config.json").write_text('{"backbone": "ir50"}')
    with pytest.raises(ValueError, match=r"not a training config \(no \['backbone_options', 'input_size'\]\)"):
        load(f"ir50:{tmp_path}")


def test_recognizers_import_nothing_from_the_layers_above():
    folder = os.path.join(ROOT, "simadv_jax", "recognizers")
    for file in sorted(f for f in os.listdir(folder) if f.endswith(".py")):
        for node in ast.walk(ast.parse(open(os.path.join(folder, file)).read())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            upward = [n for n in names if any(n == u or n.startswith(u + ".") for u in UPPER_LAYERS)]
            assert not upward, f"recognizers/{file}:{node.lineno} imports {upward}"


def test_recognizer_loads_without_the_training_package(straight_run):
    workdir, _ = straight_run
    script = (
        "import sys; from simadv_jax.recognizers import load; recognizer = load(sys.argv[1]);"
        f" print(recognizer.input_size, sorted(m for m in sys.modules if m.startswith({UPPER_LAYERS!r})))"
    )
    assert last_line(run_script(script, f"ir_cbam50:{workdir}", timeout=120)) == "16 []"

"""The weakened-model experiment (Ruiz et al., Section 4.3: Table 1, Figure 2) on the simulator's own identities.

Three recognizers of one architecture are trained on synthetic identities (`training.synthetic.SyntheticSource`)
with the same number of images, the same seeds and the same identities, differing only in the yaws they see:
Normal (yaw in [-1, 1]), NYF (yaw <= -0.5 removed: filter yaw>-0.5) and PYF (yaw >= 0.5 removed: yaw<0.5).
Each gets a threshold from the k-fold verification protocol (`training.verification`) on held-out identities
under the training conditions with |yaw| <= 0.5 (every model saw such poses; the role LFW plays in the paper).
Then one sweep (`simadv_jax.sweep`) renders the paper's 25 held-out identities (a 5 x 5 grid over shape[0] and
texture[0] in [-1, 1] sigma, every other component 0), frontal reference against yaw in [-1, 1], and scores them
with all three models: the Table 1 and Figure 2 analogues.

Test conditions differ from training the way real photos differ from a simulator: training identities draw 30
shape and 30 albedo components from `identity_distribution` (U(-2, 2) by default), lit by `lighting` ("wide":
harsh random light from up to 80 deg sideways), with a random per-channel colour cast (`white_balance`), seen by
the studies' camera (0.6 m, focal 1.2) on a grey-blue background; the sweep renders near-mean faces under the
ParamSpace's default light (from the camera, 0.7 directional + 0.3 ambient), with its default camera (1 m,
focal 5) on mid grey, without colour cast.

The run directory (`report.rundir` rules; `run_weakened` resumes it stage by stage):
  config.json / config.flags   the WeakenedConfig
  train/{normal,nyf,pyf}/      training run directories (`training.loop`; each with verification.json)
  sweep/                       the sweep's run directory (sweep.json, sweep.npz, table.md, sweep.png)
  stages.jsonl                 append-only: seconds of every stage of every leg
  weakened.json                per model its training summary and threshold; the sweep's summary; timing
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Optional

import numpy as np

from flame.model import FlameModel, TextureModel
from simadv_jax.recognizers import checkpoints
from simadv_jax.report import rundir
from simadv_jax.report.files import append_jsonl, read_json_object, read_jsonl, write_json_atomic
from simadv_jax.setup import head_fingerprints, load_head, load_recognizer
from simadv_jax.sweep import SweepConfig, run_sweep
from simadv_jax.training.config import TrainConfig
from simadv_jax.training.data import AttributeFilter
from simadv_jax.training.loop import read_metrics, train_and_evaluate
from simadv_jax.training.synthetic import LIGHTINGS, SyntheticSource
from simadv_jax.training.verification import embed_images, kfold_verification, save_threshold

MODELS = (("Normal", ()), ("NYF", ("yaw>-0.5",)), ("PYF", ("yaw<0.5",)))
VERIFICATION_FILTERS = ("yaw>=-0.5", "yaw<=0.5")
VERIFICATION_FOLDS = 10
TRAIN, SWEEP, STAGES, SUMMARY = "train", "sweep", "stages.jsonl", "weakened.json"
# A narrow MobileFaceNet for 48 x 48 crops (same layout as the paper-size one, ~1/8 of its width).
NARROW_MOBILEFACENET = {"stem_width": 16, "conv_width": 128, "embedding_dim": 64,
                        "bottlenecks": [[2, 16, 1, 2], [4, 32, 1, 2], [2, 32, 1, 1], [4, 64, 1, 2], [2, 64, 1, 1]]}


@dataclasses.dataclass(frozen=True)
class WeakenedConfig:
    """Everything that decides the experiment (one field per `launch.weakened` flag).

    identities: training identities. image_size: crop side (template arcface112). backbone, backbone_options:
    the architecture (zoo name and field overrides). head, head_scale, head_margin: the margin head.
    batch_size, num_steps, learning_rate, warmup_steps: SGD on a warmup + cosine schedule (TrainConfig's
    optimizer). seed: training seed; identity_seed: the training identities (held-out verification identities use
    identity_seed + 1). identity_distribution, lighting, white_balance: training conditions (SyntheticSource).
    verification_identities, verification_pairs: the threshold protocol. sweep_steps, sweep_identities: the sweep
    (--steps, --identities of launch.sweep).
    """

    identities: int = 500
    image_size: int = 48
    backbone: str = "mobilefacenet"
    backbone_options: dict = dataclasses.field(default_factory=lambda: dict(NARROW_MOBILEFACENET))
    head: str = "arcface"
    head_scale: float = 32.0
    head_margin: float = 0.3
    batch_size: int = 64
    num_steps: int = 2000
    learning_rate: float = 0.1
    warmup_steps: int = 100
    seed: int = 0
    identity_seed: int = 0
    identity_distribution: str = "uniform"
    lighting: str = "wide"
    white_balance: float = 0.15
    verification_identities: int = 100
    verification_pairs: int = 600
    sweep_steps: int = 41
    sweep_identities: str = "grid:5"
    progress: bool = True

    def check(self) -> None:
        """Raises ValueError naming the flag of the first bad value."""
        for name in ("identities", "verification_identities"):
            if getattr(self, name) < 2:
                raise ValueError(f"--{name}: need at least 2, got {getattr(self, name)}")
        if self.verification_pairs < 2 * VERIFICATION_FOLDS or self.verification_pairs % (2 * VERIFICATION_FOLDS):
            raise ValueError(f"--verification_pairs: a positive multiple of {2 * VERIFICATION_FOLDS}, got "
                             f"{self.verification_pairs}")
        if self.lighting not in LIGHTINGS:
            raise ValueError(f"--lighting: expected one of {', '.join(LIGHTINGS)}, got {self.lighting!r}")
        if self.identity_distribution not in ("normal", "uniform"):
            raise ValueError(f"--identity_distribution: expected normal or uniform, got {self.identity_distribution!r}")
        if not 0.0 <= self.white_balance < 1.0:
            raise ValueError(f"--white_balance: must be in [0, 1), got {self.white_balance}")
        for _, filters in MODELS:
            self.train_config(filters)  # TrainConfig checks the training fields, naming their flags
        self.sweep_config("").check()

    def train_config(self, filters: tuple[str, ...]) -> TrainConfig:
        """The TrainConfig of one model (the same but for `filters`)."""
        return TrainConfig(backbone=self.backbone, backbone_options=self.backbone_options, head=self.head,
                           head_scale=self.head_scale, head_margin=self.head_margin,
                           synthetic_identities=self.identities, filters=filters, input_size=self.image_size,
                           batch_size=self.batch_size, num_steps=self.num_steps, learning_rate=self.learning_rate,
                           schedule="cosine", warmup_steps=self.warmup_steps, seed=self.seed,
                           checkpoint_every=max(self.num_steps // 4, 1), keep_checkpoints=1,
                           log_every=max(min(50, self.num_steps // 4), 1), progress=self.progress)

    def source(self, model: FlameModel, texture_model: TextureModel, filters=(), held_out: bool = False,
               num_classes: Optional[int] = None) -> SyntheticSource:
        """The training conditions' SyntheticSource (`held_out`: the verification identities)."""
        return SyntheticSource(model, texture_model, num_classes or self.identities, image_size=self.image_size,
                               filters=[AttributeFilter.parse(text) for text in filters],
                               identity_seed=self.identity_seed + int(held_out),
                               identity_distribution=self.identity_distribution, lighting=self.lighting,
                               white_balance=self.white_balance)

    def sweep_config(self, output_dir: str) -> SweepConfig:
        """The yaw sweep over the three models of the run in `output_dir`."""
        specs = tuple(f"{self.backbone}:{os.path.normpath(os.path.join(output_dir, TRAIN, name.lower()))}"
                      for name, _ in MODELS)
        return SweepConfig(params=("yaw",), ranges=(-1.0, 1.0), steps=(self.sweep_steps,),
                           identities=self.sweep_identities, recognizers=specs,
                           labels=tuple(name for name, _ in MODELS), progress=self.progress)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def verification_scores(recognizer, source: SyntheticSource, pairs: int, seed: int) -> tuple[np.ndarray, ...]:
    """(P,) scores, same and fold of P verification pairs from `source`: the first half genuine (two images of
    one identity, independent pose and light), the second impostor (two different identities); fold = index mod
    VERIFICATION_FOLDS."""
    rng = np.random.default_rng((seed, 1))
    first = rng.integers(0, source.num_classes, pairs)
    same = np.arange(pairs) < pairs // 2
    second = np.where(same, first, (first + rng.integers(1, source.num_classes, pairs)) % source.num_classes)
    drawn = source.attributes(2 * pairs, seed, 0)
    drawn["label"] = np.concatenate([first, second]).astype(np.int32)
    embeddings = embed_images(recognizer, source.images(drawn), flip="none")
    scores = np.asarray(recognizer.score(embeddings[:pairs], embeddings[pairs:]))
    return scores, same, np.arange(pairs) % VERIFICATION_FOLDS


def _trained(workdir: str) -> Optional[int]:
    """The newest checkpointed step of a training run directory (None: none yet)."""
    if not os.path.isdir(os.path.join(workdir, checkpoints.CHECKPOINT_SUBDIR)):
        return None
    manager = checkpoints.checkpoint_manager(workdir, read_only=True)
    latest = manager.latest_step()
    manager.close()
    return latest


def _stage(output_dir: str, name: str, fn: Callable, log: Callable[[str], None]):
    """Runs one stage, logs and records its seconds in stages.jsonl; Ctrl-C and file-system failures are one
    message naming the stage."""
    log(f"{name} ...")
    start = time.perf_counter()
    try:
        result = fn()
    except KeyboardInterrupt:
        raise rundir.Interrupted(f"interrupted during {name}; continue with --resume") from None
    except OSError as e:
        raise rundir.os_error(output_dir, e, f"{name}; completed stages are kept: continue with --resume") from None
    seconds = time.perf_counter() - start
    append_jsonl(os.path.join(output_dir, STAGES), {"stage": name, "seconds": seconds})
    log(f"{name}: {seconds:.0f} s")
    return result


def _model_summary(workdir: str) -> dict:
    metrics = read_metrics(workdir)
    tail = metrics[-10:]
    verification = read_json_object(os.path.join(workdir, checkpoints.VERIFICATION_FILE), "verification")
    return {"workdir": workdir, "steps": metrics[-1]["step"],
            "final_loss": float(np.mean([m["loss"] for m in tail])),
            "final_accuracy": float(np.mean([m["accuracy"] for m in tail])),
            "images_per_s": float(np.median([m["images_per_s"] for m in metrics])),
            "threshold": verification["threshold"], "verification_accuracy": verification["accuracy"]}


def run_weakened(config: WeakenedConfig, output_dir: str, *, resume: bool = False,
                 flags_text: Optional[str] = None, log: Callable[[str], None] = lambda message: None) -> dict:
    """Trains, calibrates and sweeps (module docstring) into `output_dir`; returns weakened.json's payload.
    With `resume`, finished stages are kept and an interrupted one continues (training from its newest
    checkpoint, the sweep from its chunks). Raises ValueError naming the flag for bad configuration."""
    config.check()
    rundir.check_config(output_dir, config.to_json(), command="weakened-model experiment", resume=resume,
                        defaults=WeakenedConfig().to_json(), free=("progress",))
    model, texture_model = load_head("embedded", "embedded")
    fingerprints = head_fingerprints(model, texture_model)
    rundir.check_fingerprints(output_dir, fingerprints, command="weakened-model experiment", resume=resume, log=log)
    rundir.create(output_dir, config.to_json(), fingerprints, flags_text, subdirectories=(TRAIN,))
    held_out = config.source(model, texture_model, VERIFICATION_FILTERS, held_out=True,
                             num_classes=config.verification_identities)
    for name, filters in MODELS:
        workdir = os.path.join(output_dir, TRAIN, name.lower())
        latest = _trained(workdir)
        if latest != config.num_steps:
            source = config.source(model, texture_model, filters)
            _stage(output_dir, f"train {name}", lambda: train_and_evaluate(
                config.train_config(filters), workdir, resume=latest is not None, source=source), log)
        if not os.path.exists(os.path.join(workdir, checkpoints.VERIFICATION_FILE)):
            def calibrate(workdir=workdir):
                recognizer = load_recognizer(f"{config.backbone}:{workdir}", "--recognizers")
                scores, same, fold = verification_scores(recognizer, held_out, config.verification_pairs, config.seed)
                save_threshold(workdir, {"pairs": "synthetic held-out identities, training conditions, |yaw| <= 0.5",
                                         **kfold_verification(scores, same, fold).summary()})
            _stage(output_dir, f"threshold {name}", calibrate, log)
    sweep_dir = os.path.join(output_dir, SWEEP)
    sweep = _stage(output_dir, "sweep", lambda: run_sweep(
        config.sweep_config(output_dir), sweep_dir, resume=os.path.exists(os.path.join(sweep_dir, rundir.CONFIG_JSON)),
        head=(model, texture_model), log=log), log)
    seconds = {}
    for record in read_jsonl(os.path.join(output_dir, STAGES)):
        seconds[record["stage"]] = seconds.get(record["stage"], 0.0) + record["seconds"]
    payload = {"models": {name: {"filters": list(filters), **_model_summary(os.path.join(output_dir, TRAIN,
                                                                                         name.lower()))}
                          for name, filters in MODELS},
               "sweep": {"directory": sweep_dir, "summary": sweep["summary"], "table": os.path.join(sweep_dir,
                                                                                                     "table.md")},
               "timing": {"seconds_per_stage": seconds, "total_seconds": sum(seconds.values())}}
    write_json_atomic(os.path.join(output_dir, SUMMARY), payload)
    return payload

"""The training run's configuration (one frozen dataclass, 1:1 with launch.train's flags) and its optimizer.

Optimizer (Face_Pytorch's): SGD, momentum 0.9, Nesterov, weight decay 5e-4 on every parameter (added to the
gradient before the momentum, as torch.optim.SGD does); learning rate 0.1 with x0.1 steps ("step") or
warmup + cosine decay to 0 ("cosine"). Face_Pytorch's CASIA-WebFace schedule is batch 200, 18 epochs, steps at
epochs 6/11/16, i.e. for 453,580 images (2,267 full batches per epoch)
--num_steps=40806 --lr_boundaries=13602,24937,36272.
"""
from __future__ import annotations

import dataclasses
import json

import optax

from simadv_jax.recognizers import zoo
from simadv_jax.training.data import AttributeFilter
from simadv_jax.training.heads import HEADS

SCHEDULES = ("step", "cosine")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (CLI flags of launch.train map 1:1 onto these fields).

    backbone: a zoo.BACKBONES name; backbone_options: field overrides (e.g. tiny "stage_widths").
    head: "arcface" | "cosface"; head_scale / head_margin: None -> the head's defaults (64 and 0.5 / 0.35).
    data: image-folder root; attributes_csv / filters: see data.ImageFolder ("yaw>-0.5" keeps yaw > -0.5).
    synthetic_identities: N > 0 trains on N identities of the embedded head rendered on the fly instead of
      --data (synthetic.SyntheticSource; filters then restrict the rendered yaw/pitch, paper units).
    input_size: training image side S (images of other sizes are resized on load).
    schedule: "step" (x0.1 at each of lr_boundaries) or "cosine" (linear warmup over warmup_steps, then cosine).
    checkpoint_every / log_every: in steps; the last step is always checkpointed and logged.
    """

    backbone: str = "ir_cbam50"
    backbone_options: dict = dataclasses.field(default_factory=dict)
    head: str = "arcface"
    head_scale: float | None = None
    head_margin: float | None = None
    easy_margin: bool = False
    data: str = ""
    synthetic_identities: int = 0
    attributes_csv: str = ""
    filters: tuple[str, ...] = ()
    input_size: int = 112
    batch_size: int = 200
    num_steps: int = 1000
    learning_rate: float = 0.1
    schedule: str = "step"
    lr_boundaries: tuple[int, ...] = ()
    warmup_steps: int = 0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    seed: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    progress: bool = True

    def __post_init__(self):
        if self.backbone not in zoo.BACKBONES:
            raise ValueError(f"--backbone: unknown {self.backbone!r}; known: {', '.join(zoo.BACKBONES)}")
        zoo.create(self.backbone, **self.backbone_options)  # unknown options fail here, before any data loads
        if self.head not in HEADS:
            raise ValueError(f"--head: expected one of {HEADS}, got {self.head!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"--schedule: expected one of {SCHEDULES}, got {self.schedule!r}")
        for name in ("input_size", "batch_size", "num_steps", "checkpoint_every", "log_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name}: must be >= 1, got {getattr(self, name)}")
        if list(self.lr_boundaries) != sorted(self.lr_boundaries):
            raise ValueError(f"--lr_boundaries: must be increasing, got {self.lr_boundaries}")
        for text in self.filters:
            AttributeFilter.parse(text)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Inverse of dataclasses.asdict (JSON lists -> tuples); unknown keys are a ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"training config: unknown field(s) {unknown}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**values)

    @classmethod
    def from_flags(cls, values: dict) -> "TrainConfig":
        """From launch.train's flag values: backbone_options a JSON object text, lr_boundaries a list of integer
        texts, other tuples lists; a bad value is a ValueError naming its flag."""
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        if "backbone_options" in values:
            try:
                values["backbone_options"] = json.loads(values["backbone_options"])
            except json.JSONDecodeError as e:
                raise ValueError(f"--backbone_options: not JSON: {e}") from e
            if not isinstance(values["backbone_options"], dict):
                raise ValueError("--backbone_options: expected a JSON object")
        if "lr_boundaries" in values:
            try:
                values["lr_boundaries"] = tuple(int(v) for v in values["lr_boundaries"])
            except ValueError as e:
                raise ValueError(f"--lr_boundaries: expected integers, got {list(values['lr_boundaries'])}") from e
        return cls(**values)

    def trajectory(self) -> dict:
        """The fields a resumed run must share with the original (all but logging / checkpoint cadence;
        num_steps too with the step schedule, whose learning rate does not depend on it)."""
        free = {"checkpoint_every", "keep_checkpoints", "log_every", "progress"}
        if self.schedule == "step":
            free.add("num_steps")
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k not in free}
        return json.loads(json.dumps(fields))  # tuples -> lists, as stored in config.json


def learning_rate_schedule(config: TrainConfig) -> optax.Schedule:
    """Step or warmup-cosine schedule of `config` (step -> learning rate)."""
    if config.schedule == "step":
        return optax.piecewise_constant_schedule(config.learning_rate, {b: 0.1 for b in config.lr_boundaries})
    return optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, config.warmup_steps, max(config.num_steps, config.warmup_steps + 1)
    )


def optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Weight decay added to the gradient, then SGD with (Nesterov) momentum on the schedule."""
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay),
        optax.sgd(learning_rate_schedule(config), momentum=config.momentum, nesterov=config.nesterov),
    )

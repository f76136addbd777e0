"""The trainable Flax backbones by name, and Recognizers built from training checkpoints.

`create("ir_cbam50", stage_widths=(8, 16, 16, 32))` gives the module (overrides for tiny test versions);
`build("ir_cbam50", WORKDIR)` restores the newest checkpoint that `simadv_jax.recognizers.training` wrote into
WORKDIR and returns a Recognizer (template "arcface112", metric cosine). The threshold is the one
`launch.verify --save_threshold` stored in WORKDIR/verification.json, else DEFAULT_THRESHOLD.
"""
from __future__ import annotations

import json
import os
from typing import Any

import flax.linen as nn

from simadv_jax.recognizers.base import Recognizer
from simadv_jax.recognizers.iresnet import UNITS, IResNet
from simadv_jax.recognizers.mobilefacenet import MobileFaceNet

# name -> (module class, default fields).
BACKBONES: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    **{
        f"{attention}{depth}": (IResNet, {"attention": attention, "stage_units": UNITS[depth]})
        for attention in ("ir", "ir_se", "ir_cbam", "ir_cbam_se")
        for depth in (50, 100)
    },
    "mobilefacenet": (MobileFaceNet, {}),
}

# Cosine threshold of an unverified checkpoint: the paper's T for ArcFace CBAM-ResNet50 (Ruiz et al., Table 2).
DEFAULT_THRESHOLD = 0.298
TEMPLATE = "arcface112"
CONFIG_FILE = "config.json"
VERIFICATION_FILE = "verification.json"
CHECKPOINT_SUBDIR = "checkpoints"


def _frozen(value: Any) -> Any:
    """Lists (e.g. from JSON) -> tuples, recursively, so module fields stay hashable."""
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


def create(name: str, **overrides: Any) -> nn.Module:
    """The backbone module `name` (a key of BACKBONES) with fields replaced by `overrides`."""
    if name not in BACKBONES:
        raise ValueError(f"backbone: unknown name {name!r}; known: {', '.join(BACKBONES)}")
    cls, defaults = BACKBONES[name]
    fields = set(cls.__dataclass_fields__) - {"parent", "name"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"backbone {name!r}: unknown option(s) {unknown}; known: {sorted(fields)}")
    return cls(**{**defaults, **{k: _frozen(v) for k, v in overrides.items()}})


def read_json(path: str, what: str) -> dict:
    """Reads a JSON object from `path`; any failure is one ValueError naming the file."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{what}: cannot read {path}: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{what}: {path} does not hold a JSON object")
    return data


def save_threshold(workdir: str, result: dict) -> str:
    """Writes a verification result (with a "threshold" entry) to WORKDIR/verification.json atomically."""
    path = os.path.join(workdir, VERIFICATION_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=2)
    os.replace(tmp, path)
    return path


def build(name: str, checkpoint_dir: str | None) -> Recognizer:
    """Recognizer from the newest checkpoint of a training run.

    Args:
      name: backbone name; must match the run's config.
      checkpoint_dir: the training workdir (holding config.json and checkpoints/).
    Raises:
      ValueError naming the path when it is missing, not a training run, of another backbone, or unreadable.
    """
    from simadv_jax.recognizers import training  # orbax is imported only when a checkpoint is loaded

    if not checkpoint_dir:
        raise ValueError(f"--recognizer={name}: a checkpoint is required, as {name}:WORKDIR")
    if not os.path.isdir(checkpoint_dir):
        raise ValueError(f"--recognizer={name}: checkpoint directory {checkpoint_dir} does not exist")
    config = training.TrainConfig.from_dict(read_json(os.path.join(checkpoint_dir, CONFIG_FILE), "checkpoint"))
    if config.backbone != name:
        raise ValueError(
            f"--recognizer={name}: {checkpoint_dir} holds a {config.backbone!r} run, not {name!r}"
        )
    model = create(name, **config.backbone_options)
    variables = training.restore_backbone(checkpoint_dir)
    threshold = DEFAULT_THRESHOLD
    verification = os.path.join(checkpoint_dir, VERIFICATION_FILE)
    if os.path.exists(verification):
        threshold = float(read_json(verification, "verification result").get("threshold", DEFAULT_THRESHOLD))

    def apply_fn(params, images):
        return model.apply(params, images, train=False)

    return Recognizer(
        params=variables,
        name=f"{name}:{checkpoint_dir}",
        input_size=config.input_size,
        template=TEMPLATE,
        apply_fn=apply_fn,
        metric="cosine",
        threshold=threshold,
    )

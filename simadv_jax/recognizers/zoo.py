"""The trainable Flax backbones by name, and Recognizers built from training checkpoints.

`create("ir_cbam50", stage_widths=(8, 16, 16, 32))` gives the module (overrides for tiny test versions);
`build("ir_cbam50", WORKDIR)` restores the newest checkpoint of a training run directory (see checkpoints.py) and
returns a Recognizer (template "arcface112", metric cosine). The threshold is the one `launch.verify
--save_threshold` stored in WORKDIR/verification.json, else DEFAULT_THRESHOLD.
"""
from __future__ import annotations

import os
from typing import Any

import flax.linen as nn

from simadv_jax.recognizers import checkpoints
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


def build(name: str, checkpoint_dir: str | None) -> Recognizer:
    """Recognizer from the newest checkpoint of a training run.

    Args:
      name: backbone name; must match the run's config.
      checkpoint_dir: the training workdir (holding config.json and checkpoints/).
    Raises:
      ValueError naming the path when it is missing, not a training run, of another backbone, or unreadable.
    """
    if not checkpoint_dir:
        raise ValueError(f"--recognizer={name}: a checkpoint is required, as {name}:WORKDIR")
    if not os.path.isdir(checkpoint_dir):
        raise ValueError(f"--recognizer={name}: checkpoint directory {checkpoint_dir} does not exist")
    config = checkpoints.read_config(checkpoint_dir)
    if config["backbone"] != name:
        raise ValueError(
            f"--recognizer={name}: {checkpoint_dir} holds a {config['backbone']!r} run, not {name!r}"
        )
    model = create(name, **config["backbone_options"])
    variables = checkpoints.restore_backbone(checkpoint_dir)
    threshold = checkpoints.read_threshold(checkpoint_dir, DEFAULT_THRESHOLD)

    def apply_fn(params, images):
        return model.apply(params, images, train=False)

    return Recognizer(
        params=variables,
        name=f"{name}:{checkpoint_dir}",
        input_size=int(config["input_size"]),
        template=TEMPLATE,
        apply_fn=apply_fn,
        metric="cosine",
        threshold=threshold,
    )

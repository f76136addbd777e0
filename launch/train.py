"""Trains a face backbone with a margin head: `python -m launch.train --flagfile=launch/configs/train_tiny.flags`.

Every field of simadv_jax.recognizers.training.TrainConfig is a flag of the same name (tuples are comma
lists, --backbone_options is a JSON object such as {"stage_widths": [8, 16, 16, 32]}); see that class for meanings.
"""
from __future__ import annotations

import dataclasses
import json

from absl import app, flags, logging

from simadv_jax.recognizers.training import TrainConfig, train_and_evaluate

_DEFAULTS = TrainConfig()
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics.jsonl, config.json).")
_RESUME = flags.DEFINE_bool("resume", False, "Continue from the newest checkpoint in --workdir.")


def _define_config_flags() -> None:
    for field in dataclasses.fields(TrainConfig):
        default = getattr(_DEFAULTS, field.name)
        help_text = f"TrainConfig.{field.name}"
        if field.name == "backbone_options":
            flags.DEFINE_string(field.name, "{}", "JSON object of backbone field overrides.")
        elif field.name in ("head_scale", "head_margin"):
            flags.DEFINE_float(field.name, None, help_text + " (unset: the head's default)")
        elif isinstance(default, bool):
            flags.DEFINE_bool(field.name, default, help_text)
        elif isinstance(default, int):
            flags.DEFINE_integer(field.name, default, help_text)
        elif isinstance(default, float):
            flags.DEFINE_float(field.name, default, help_text)
        elif isinstance(default, tuple):
            flags.DEFINE_list(field.name, list(map(str, default)), help_text + " (comma list)")
        else:
            flags.DEFINE_string(field.name, default, help_text)


_define_config_flags()


def config_from_flags() -> TrainConfig:
    """TrainConfig from the parsed flags (ValueError naming the flag on a bad value)."""
    values = {}
    for field in dataclasses.fields(TrainConfig):
        value = flags.FLAGS[field.name].value
        if field.name == "backbone_options":
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise ValueError(f"--backbone_options: not JSON: {e}") from e
            if not isinstance(value, dict):
                raise ValueError("--backbone_options: expected a JSON object")
        elif field.name == "lr_boundaries":
            try:
                value = tuple(int(v) for v in value)
            except ValueError as e:
                raise ValueError(f"--lr_boundaries: expected integers, got {value}") from e
        elif isinstance(value, list):
            value = tuple(value)
        values[field.name] = value
    return TrainConfig(**values)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
    try:
        config = config_from_flags()
        # validate the backbone options now rather than after loading the data
        from simadv_jax.recognizers import zoo

        zoo.create(config.backbone, **config.backbone_options)
        train_and_evaluate(config, _WORKDIR.value, resume=_RESUME.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from e


if __name__ == "__main__":
    app.run(main)

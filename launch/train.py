"""Trains a face backbone with a margin head: `python -m launch.train --flagfile=launch/configs/train_tiny.flags`.

Every field of simadv_jax.training.config.TrainConfig is a flag of the same name (tuples are comma lists,
--backbone_options is a JSON object such as {"stage_widths": [8, 16, 16, 32]}); see that class for meanings.
"""
from __future__ import annotations

import dataclasses

from absl import app, flags, logging

from simadv_jax.training.config import TrainConfig
from simadv_jax.training.loop import train_and_evaluate

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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not _WORKDIR.value:
        raise app.UsageError("--workdir is required")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
    try:
        config = TrainConfig.from_flags({f.name: flags.FLAGS[f.name].value for f in dataclasses.fields(TrainConfig)})
        train_and_evaluate(config, _WORKDIR.value, resume=_RESUME.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from e


if __name__ == "__main__":
    app.run(main)

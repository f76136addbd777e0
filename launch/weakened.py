"""The weakened-model experiment (paper Section 4.3): `python -m launch.weakened
--flagfile=launch/configs/weakened_models.flags --output_dir=runs/weakened`.

Trains Normal / NYF / PYF recognizers on synthetic identities, calibrates their thresholds and sweeps yaw on
held-out identities; writes DIR/{train/, sweep/ (table.md: the Table 1 analogue, sweep.png: Figure 2),
weakened.json}; see simadv_jax.weakened. --resume continues DIR stage by stage.
"""
from __future__ import annotations

import dataclasses
import json

from absl import app, flags, logging

from launch import cli
from simadv_jax.weakened import WeakenedConfig, run_weakened

_D = WeakenedConfig()
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Run directory (required).")
RESUME = flags.DEFINE_boolean("resume", False, "Continue the experiment in --output_dir.")
_KINDS = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string}
for _field in dataclasses.fields(WeakenedConfig):
    _value = getattr(_D, _field.name)
    if isinstance(_value, dict):
        flags.DEFINE_string(_field.name, json.dumps(_value), f"WeakenedConfig.{_field.name} (a JSON object)")
    else:
        _KINDS[type(_value)](_field.name, _value, f"WeakenedConfig.{_field.name}")


def config_from_flags() -> WeakenedConfig:
    """The WeakenedConfig the parsed flags describe (ValueError naming --backbone_options for bad JSON)."""
    values = {f.name: flags.FLAGS[f.name].value for f in dataclasses.fields(WeakenedConfig)}
    try:
        values["backbone_options"] = json.loads(values["backbone_options"])
    except json.JSONDecodeError as e:
        raise ValueError(f"--backbone_options: not JSON: {e}") from None
    return WeakenedConfig(**values)


def _flags_text() -> str:
    names = [f.name for f in dataclasses.fields(WeakenedConfig)]
    return "".join(flags.FLAGS[name].serialize() + "\n" for name in names)


def main(argv):
    cli.check_arguments(argv, OUTPUT_DIR.value)
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.ERROR)  # orbax logs every checkpoint step, and every read-only open
    payload = cli.run(lambda: run_weakened(config_from_flags(), OUTPUT_DIR.value, resume=RESUME.value,
                                           flags_text=_flags_text(), log=cli.log), before="the first stage")
    with open(payload["sweep"]["table"]) as f:
        print(f.read())
    print(f"total {payload['timing']['total_seconds'] / 60:.1f} min; {OUTPUT_DIR.value}/weakened.json")


if __name__ == "__main__":
    app.run(main)

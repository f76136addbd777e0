"""Reading a training run directory: its file names, its JSON files and the backbone of its newest checkpoint.

A run directory WORKDIR (written by `simadv_jax.training`) holds
  config.json        the training config; a recognizer reads RECOGNIZER_FIELDS: "backbone" (a zoo name),
                     "backbone_options" (field overrides), "input_size" (crop side in pixels)
  verification.json  optional: the LFW-protocol result whose "threshold" the recognizer uses
  checkpoints/N/     orbax checkpoints of the whole train state after N updates; the backbone's weights are
                     its "params"/"backbone" and its BN statistics its "batch_stats"
orbax is imported only when a checkpoint is opened.
"""
from __future__ import annotations

import os

from simadv_jax.report.files import read_json_object

CONFIG_FILE = "config.json"
VERIFICATION_FILE = "verification.json"
CHECKPOINT_SUBDIR = "checkpoints"
RECOGNIZER_FIELDS = ("backbone", "backbone_options", "input_size")


def read_config(workdir: str) -> dict:
    """WORKDIR/config.json as a dict holding at least RECOGNIZER_FIELDS (ValueError naming the file otherwise)."""
    path = os.path.join(workdir, CONFIG_FILE)
    config = read_json_object(path, "checkpoint")
    missing = [field for field in RECOGNIZER_FIELDS if field not in config]
    if missing:
        raise ValueError(f"checkpoint: {path} is not a training config (no {missing})")
    return config


def read_threshold(workdir: str, default: float) -> float:
    """The "threshold" of WORKDIR/verification.json, or `default` when the run was not verified."""
    path = os.path.join(workdir, VERIFICATION_FILE)
    if not os.path.exists(path):
        return default
    return float(read_json_object(path, "verification result").get("threshold", default))


def checkpoint_manager(workdir: str, keep: int = 3, read_only: bool = False):
    """The synchronous orbax CheckpointManager of WORKDIR/checkpoints, keeping the newest `keep` steps."""
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=False, read_only=read_only, create=not read_only
    )
    return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, CHECKPOINT_SUBDIR)), options=options)


def restore_backbone(workdir: str) -> dict:
    """{"params", "batch_stats"} of the backbone in the newest checkpoint of WORKDIR (ValueError if none/corrupt)."""
    import orbax.checkpoint as ocp

    directory = os.path.join(workdir, CHECKPOINT_SUBDIR)
    if not os.path.isdir(directory):
        raise ValueError(f"checkpoint: {directory} does not exist")
    manager = checkpoint_manager(workdir, read_only=True)
    step = manager.latest_step()
    if step is None:
        raise ValueError(f"checkpoint: no checkpoint in {directory}")
    try:
        state = manager.restore(step, args=ocp.args.StandardRestore())
        return {"params": state["params"]["backbone"], "batch_stats": state["batch_stats"]}
    except Exception as e:  # orbax raises many types for unreadable data; report the path once
        raise ValueError(f"checkpoint: cannot restore step {step} from {directory}: {e}") from e

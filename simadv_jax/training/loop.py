"""The checkpointed training loop: `train_and_evaluate(config, workdir)` (flax-example style) and its metrics.

A run directory WORKDIR holds
  config.json     the TrainConfig (written at the start; a resumed run must match it)
  metrics.jsonl   append-only: one {"step", "loss", "accuracy", "learning_rate", "images_per_s"} line per step
                  (step = updates done), plus {"event": "start" | "resume", "step"} lines
  checkpoints/N/  orbax checkpoints of the whole TrainState after N updates
`simadv_jax.recognizers.load("BACKBONE:WORKDIR")` turns the newest checkpoint into a Recognizer.

Exact resume: the batch of step t depends only on (seed, t) (see data.py), dropout uses
fold_in(key(seed), t), and the TrainState (step, params, batch_stats, optimizer state) is restored bit-for-bit.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time

import jax
import jax.numpy as jnp

from simadv_jax.recognizers import checkpoints
from simadv_jax.report.files import read_json_object, write_json_atomic
from simadv_jax.training.config import TrainConfig
from simadv_jax.training.data import AttributeFilter, BatchSource, ImageFolder
from simadv_jax.training.step import TrainState, init_state, make_train_step

METRICS_FILE = "metrics.jsonl"


def _make_source(config: TrainConfig) -> BatchSource:
    """The training data a config names: rendered identities or an image folder."""
    if config.synthetic_identities:
        if config.data:
            raise ValueError("--data and --synthetic_identities: give one training source, not both")
        import flame
        from simadv_jax.training.synthetic import SyntheticSource

        filters = [AttributeFilter.parse(text) for text in config.filters]
        return SyntheticSource(flame.embedded_model(), flame.embedded_texture(), config.synthetic_identities,
                               image_size=config.input_size, filters=filters)
    if not config.data:
        raise ValueError("--data: a dataset root is required (or --synthetic_identities)")
    filters = [AttributeFilter.parse(text) for text in config.filters]
    return ImageFolder(config.data, config.input_size, config.attributes_csv, filters)


def _write_config(workdir: str, config: TrainConfig, resume: bool) -> None:
    """Writes WORKDIR/config.json atomically; with `resume`, first checks that the saved config has the same
    trajectory."""
    path = os.path.join(workdir, checkpoints.CONFIG_FILE)
    if resume:
        saved = TrainConfig.from_dict(read_json_object(path, "--resume"))
        if saved.trajectory() != config.trajectory():
            diff = sorted(k for k, v in config.trajectory().items() if saved.trajectory().get(k) != v)
            raise ValueError(f"--resume: the config differs from {path} in {diff}")
    write_json_atomic(path, dataclasses.asdict(config))


def train_and_evaluate(
    config: TrainConfig, workdir: str, resume: bool = False, source: BatchSource | None = None
) -> TrainState:
    """Trains config.num_steps steps (from the newest checkpoint with `resume`); returns the final state.

    Args:
      config: the run.
      workdir: run directory (created if needed).
      resume: continue from the newest checkpoint in workdir; without it, a workdir that already has
        checkpoints is an error (so no run is overwritten by accident).
      source: training data; None -> ImageFolder(config.data, ...).
    """
    import orbax.checkpoint as ocp
    from tqdm import tqdm

    source = _make_source(config) if source is None else source
    os.makedirs(workdir, exist_ok=True)
    manager = checkpoints.checkpoint_manager(workdir, config.keep_checkpoints)
    latest = manager.latest_step()
    if resume and latest is None:
        raise ValueError(f"--resume: no checkpoint in {os.path.join(workdir, checkpoints.CHECKPOINT_SUBDIR)}")
    if not resume and latest is not None:
        raise ValueError(f"--workdir: {workdir} already has checkpoints (newest: step {latest}); pass --resume")
    _write_config(workdir, config, resume)

    # committed to the device like restored arrays, so fresh and resumed runs share one compiled step
    state = jax.device_put(init_state(config, source.num_classes), jax.devices()[0])
    if resume:
        try:
            state = manager.restore(latest, args=ocp.args.StandardRestore(state))
        except Exception as e:  # orbax raises many types for unreadable or mismatched data
            raise ValueError(f"--resume: cannot restore step {latest} from {workdir}: {e}") from e
    start = int(state.step)
    train_step = make_train_step(config, source.num_classes)
    batches = source.batches(config.batch_size, config.seed, start)

    with open(os.path.join(workdir, METRICS_FILE), "a") as log, tqdm(
        total=config.num_steps, initial=start, disable=not config.progress, unit="step"
    ) as bar:
        log.write(json.dumps({"event": "resume" if resume else "start", "step": start, "time": time.time()}) + "\n")
        pending, window_start = [], time.perf_counter()
        for step in range(start, config.num_steps):
            images, labels = next(batches)
            state, metrics = train_step(state, jnp.asarray(images), jnp.asarray(labels))
            pending.append(metrics)
            done = step + 1
            last = done == config.num_steps
            if done % config.log_every == 0 or done % config.checkpoint_every == 0 or last:
                values = jax.device_get(pending)
                rate = len(pending) * config.batch_size / (time.perf_counter() - window_start)
                for i, record in enumerate(values):
                    record = {k: float(v) for k, v in record.items()}
                    record_step = done - len(values) + i + 1
                    if not math.isfinite(record["loss"]):
                        raise FloatingPointError(f"training: loss is {record['loss']} at step {record_step}")
                    record.update(step=record_step, images_per_s=rate)
                    log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{values[-1]['loss']:.4f}", img_s=f"{rate:.1f}")
                bar.update(len(pending))
                pending, window_start = [], time.perf_counter()
            if done % config.checkpoint_every == 0 or last:
                manager.save(done, args=ocp.args.StandardSave(state))
    manager.wait_until_finished()
    manager.close()
    return state


def read_metrics(workdir: str) -> list[dict]:
    """The per-step metric records of WORKDIR/metrics.jsonl, the newest record of each step, by step."""
    by_step = {}
    with open(os.path.join(workdir, METRICS_FILE)) as f:
        for line in f:
            record = json.loads(line)
            if "event" not in record:
                by_step[record["step"]] = record
    return [by_step[s] for s in sorted(by_step)]

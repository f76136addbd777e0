"""Margin-loss training of a face backbone: config, pure train step, checkpointed loop.

A run directory WORKDIR holds
  config.json     the TrainConfig (written at the start; a resumed run must match it)
  metrics.jsonl   append-only: one {"step", "loss", "accuracy", "learning_rate", "images_per_s"} line per step
                  (step = updates done), plus {"event": "start" | "resume", "step"} lines
  checkpoints/N/  orbax checkpoints of the whole TrainState after N updates
`zoo.build(name, WORKDIR)` turns the newest checkpoint into a Recognizer.

Optimizer (Face_Pytorch's): SGD, momentum 0.9, Nesterov, weight decay 5e-4 on every parameter (added to the
gradient before the momentum, as torch.optim.SGD does); learning rate 0.1 with x0.1 steps ("step") or
warmup + cosine decay to 0 ("cosine"). Face_Pytorch's CASIA-WebFace schedule is batch 200, 18 epochs, steps at
epochs 6/11/16, i.e. for 453,580 images (2,267 full batches per epoch)
--num_steps=40806 --lr_boundaries=13602,24937,36272.

Exact resume: the batch of step t depends only on (seed, t) (see data.py), dropout uses
fold_in(key(seed), t), and the TrainState (step, params, batch_stats, optimizer state) is restored bit-for-bit.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from simadv_jax.recognizers import zoo
from simadv_jax.recognizers.data import AttributeFilter, BatchSource, ImageFolder
from simadv_jax.recognizers.heads import HEADS, MarginHead

SCHEDULES = ("step", "cosine")
METRICS_FILE = "metrics.jsonl"


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

    def trajectory(self) -> dict:
        """The fields a resumed run must share with the original (all but logging / checkpoint cadence;
        num_steps too with the step schedule, whose learning rate does not depend on it)."""
        free = {"checkpoint_every", "keep_checkpoints", "log_every", "progress"}
        if self.schedule == "step":
            free.add("num_steps")
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k not in free}
        return json.loads(json.dumps(fields))  # tuples -> lists, as stored in config.json


@struct.dataclass
class TrainState:
    """step: () int32 updates done; params: {"backbone", "head"}; batch_stats: backbone BN statistics;
    opt_state: optax state of the chain (weight decay, SGD)."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


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


def make_models(config: TrainConfig, num_classes: int):
    """(backbone module, head module) of a config."""
    backbone = zoo.create(config.backbone, **config.backbone_options)
    head = MarginHead(num_classes, config.head, config.head_scale, config.head_margin, config.easy_margin)
    return backbone, head


def _key(config: TrainConfig) -> str:
    """Hashable identity of the fields that shape the compiled functions (for the caches below)."""
    return json.dumps(config.trajectory(), sort_keys=True)


def init_state(config: TrainConfig, num_classes: int) -> TrainState:
    """Fresh TrainState from key(seed) (deterministic)."""
    params, batch_stats = _init_function(_key(config), num_classes)()
    return TrainState(jnp.zeros((), jnp.int32), params, batch_stats, optimizer(config).init(params))


@functools.lru_cache(maxsize=4)
def _init_function(key: str, num_classes: int):
    config = TrainConfig.from_dict(json.loads(key))
    backbone, head = make_models(config, num_classes)
    key_backbone, key_head = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 1))
    images = jnp.zeros((1, config.input_size, config.input_size, 3), jnp.float32)

    @jax.jit
    def init():
        variables = backbone.init({"params": key_backbone}, images, train=False)
        embeddings = jax.eval_shape(lambda: backbone.apply(variables, images, train=False))
        head_params = head.init(key_head, jnp.zeros(embeddings.shape, jnp.float32), jnp.zeros((1,), jnp.int32))
        params = {"backbone": variables["params"], "head": head_params["params"]}
        return params, variables["batch_stats"]

    return init


def make_train_step(config: TrainConfig, num_classes: int) -> Callable[[TrainState, jax.Array, jax.Array], tuple]:
    """Jitted pure step: (state, images (B, S, S, 3) float32 in [0, 1], labels (B,) int32) -> (state, metrics).

    metrics: {"loss": mean margin cross-entropy, "accuracy": top-1 of the cosines (no margin),
    "learning_rate": the rate used}, each a () float32. The input state is donated. Runs with the same
    trajectory fields share one compiled step.
    """
    return _train_step_function(_key(config), num_classes)


@functools.lru_cache(maxsize=4)
def _train_step_function(key: str, num_classes: int):
    config = TrainConfig.from_dict(json.loads(key))
    backbone, head = make_models(config, num_classes)
    tx = optimizer(config)
    schedule = learning_rate_schedule(config)
    dropout_key = jax.random.fold_in(jax.random.key(config.seed), 2)

    def train_step(state: TrainState, images: jax.Array, labels: jax.Array):
        rng = {"dropout": jax.random.fold_in(dropout_key, state.step)}

        def loss_fn(params):
            variables = {"params": params["backbone"], "batch_stats": state.batch_stats}
            embeddings, updates = backbone.apply(variables, images, train=True, rngs=rng, mutable=["batch_stats"])
            logits, cosine = head.apply({"params": params["head"]}, embeddings, labels)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, (updates["batch_stats"], cosine)

        (loss, (batch_stats, cosine)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss,
            "accuracy": jnp.mean(jnp.argmax(cosine, axis=-1) == labels),
            "learning_rate": jnp.asarray(schedule(state.step), jnp.float32),
        }
        return TrainState(state.step + 1, params, batch_stats, opt_state), metrics

    return jax.jit(train_step, donate_argnums=0)


def _checkpoint_manager(workdir: str, keep: int = 3, read_only: bool = False):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=False, read_only=read_only, create=not read_only
    )
    return ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, zoo.CHECKPOINT_SUBDIR)), options=options)


def restore_backbone(workdir: str) -> dict:
    """{"params", "batch_stats"} of the backbone in the newest checkpoint of WORKDIR (ValueError if none/corrupt)."""
    import orbax.checkpoint as ocp

    directory = os.path.join(workdir, zoo.CHECKPOINT_SUBDIR)
    if not os.path.isdir(directory):
        raise ValueError(f"checkpoint: {directory} does not exist")
    manager = _checkpoint_manager(workdir, read_only=True)
    step = manager.latest_step()
    if step is None:
        raise ValueError(f"checkpoint: no checkpoint in {directory}")
    try:
        state = manager.restore(step, args=ocp.args.StandardRestore())
        return {"params": state["params"]["backbone"], "batch_stats": state["batch_stats"]}
    except Exception as e:  # orbax raises many types for unreadable data; report the path once
        raise ValueError(f"checkpoint: cannot restore step {step} from {directory}: {e}") from e


def _make_source(config: TrainConfig) -> BatchSource:
    if config.synthetic_identities:
        if config.data:
            raise ValueError("--data and --synthetic_identities: give one training source, not both")
        import flame
        from simadv_jax.recognizers.synthetic import SyntheticSource

        filters = [AttributeFilter.parse(text) for text in config.filters]
        return SyntheticSource(flame.embedded_model(), flame.embedded_texture(), config.synthetic_identities,
                               image_size=config.input_size, filters=filters)
    if not config.data:
        raise ValueError("--data: a dataset root is required (or --synthetic_identities)")
    filters = [AttributeFilter.parse(text) for text in config.filters]
    return ImageFolder(config.data, config.input_size, config.attributes_csv, filters)


def _write_config(workdir: str, config: TrainConfig, resume: bool) -> None:
    path = os.path.join(workdir, zoo.CONFIG_FILE)
    if resume:
        saved = TrainConfig.from_dict(zoo.read_json(path, "--resume"))
        if saved.trajectory() != config.trajectory():
            diff = sorted(k for k, v in config.trajectory().items() if saved.trajectory().get(k) != v)
            raise ValueError(f"--resume: the config differs from {path} in {diff}")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)
    os.replace(tmp, path)


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
    manager = _checkpoint_manager(workdir, config.keep_checkpoints)
    latest = manager.latest_step()
    if resume and latest is None:
        raise ValueError(f"--resume: no checkpoint in {os.path.join(workdir, zoo.CHECKPOINT_SUBDIR)}")
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

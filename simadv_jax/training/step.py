"""The pure pieces of a training step: TrainState, model construction, initialization and the train step.

Exact resume: dropout of step t uses fold_in(key(seed), t) and the initial state depends only on the seed, so a
restored TrainState continues bit-for-bit.
"""
from __future__ import annotations

import functools
import json
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from simadv_jax.recognizers import zoo
from simadv_jax.training.config import TrainConfig, learning_rate_schedule, optimizer
from simadv_jax.training.heads import MarginHead


@struct.dataclass
class TrainState:
    """step: () int32 updates done; params: {"backbone", "head"}; batch_stats: backbone BN statistics;
    opt_state: optax state of the chain (weight decay, SGD)."""

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any


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


def train_step_function(config: TrainConfig, num_classes: int) -> Callable[[TrainState, jax.Array, jax.Array], tuple]:
    """The pure (unjitted) step: (state, images (B, S, S, 3) float32 in [0, 1], labels (B,) int32) -> (state, metrics).

    metrics: {"loss": mean margin cross-entropy, "accuracy": top-1 of the cosines (no margin),
    "learning_rate": the rate used}, each a () float32.
    """
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

    return train_step


def make_train_step(config: TrainConfig, num_classes: int) -> Callable[[TrainState, jax.Array, jax.Array], tuple]:
    """train_step_function jitted with the input state donated; runs with the same trajectory fields share one
    compiled step."""
    return _jitted_train_step(_key(config), num_classes)


@functools.lru_cache(maxsize=4)
def _jitted_train_step(key: str, num_classes: int):
    return jax.jit(train_step_function(TrainConfig.from_dict(json.loads(key)), num_classes), donate_argnums=0)

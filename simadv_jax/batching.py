"""Batching over devices and on the host: the pieces every batched call in the project is built from.

  map_batches   the one host-side batcher: N rows through a function compiled for a fixed batch (chunks, the last
                one padded with copies of its first row; padding never reaches the results)
  map_groups    the one device-side loop: a shard as `lax.map` over vmapped groups, each device its own shard
  batch_sharding, pad_to_devices, replicated, interleave, local_devices: the 1-D "batch" mesh and its helpers

`simadv_jax.evaluate` builds the renderer and the evaluation from these; benchmarks use them directly.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

# Images rendered per vmapped group on one device; groups run one after another (`lax.map`). On XLA:CPU this
# is ~1.5x faster than one vmap over the whole batch (the rasterizer's per-image buffers stay in cache).
RENDER_GROUP = 8


def map_batches(fn: Callable, arrays: Sequence[np.ndarray], batch_size: int) -> Any:
    """The one host-side batcher: applies `fn` (compiled for a leading axis of exactly `batch_size`) to N rows.

    arrays: inputs with a common leading axis N (any N >= 0). The rows go in chunks of `batch_size`; the last
    chunk is padded with copies of its first row, and outputs for padding rows are dropped.
    Returns fn's output pytree as numpy arrays with leading axis N.
    """
    arrays = [np.asarray(a) for a in arrays]
    count = arrays[0].shape[0]
    if any(a.shape[0] != count for a in arrays):
        raise ValueError(f"map_batches: inputs differ in length: {[a.shape[0] for a in arrays]}")
    if count == 0:
        shapes = jax.eval_shape(fn, *(jax.ShapeDtypeStruct((batch_size,) + a.shape[1:], a.dtype) for a in arrays))
        return jax.tree.map(lambda s: np.zeros((0,) + s.shape[1:], s.dtype), shapes)
    chunks = []
    for start in range(0, count, batch_size):
        parts = [a[start:start + batch_size] for a in arrays]
        size = parts[0].shape[0]
        padded = [np.concatenate([p, np.repeat(p[:1], batch_size - size, axis=0)]) for p in parts]
        chunks.append(jax.tree.map(lambda x: x[:size], jax.device_get(fn(*padded))))
    return jax.tree.map(lambda *xs: np.concatenate(xs), *chunks)


def batch_sharding(devices=None) -> Optional[NamedSharding]:
    """NamedSharding of a leading batch axis over a 1-D mesh of `devices` (default all); None for one device."""
    devices = jax.devices() if devices is None else devices
    if len(devices) < 2:
        return None
    return NamedSharding(Mesh(np.asarray(devices), ("batch",)), PartitionSpec("batch"))


def map_groups(fn: Callable, shared, batched, sharding: Optional[NamedSharding], group: Optional[int] = RENDER_GROUP):
    """Traced `fn(shared, one)` over the leading axis of the pytree `batched`, the batch sharded over `sharding`'s
    mesh (B divisible by its size; None: one device): each device runs its shard as `lax.map` over vmapped groups
    of `group` items (None: one vmap over the shard). `shared` is replicated."""
    def local(shared, batched):
        if group is None:
            return jax.vmap(fn, in_axes=(None, 0))(shared, batched)
        return jax.lax.map(lambda one: fn(shared, one), batched, batch_size=group)

    if sharding is None:
        return local(shared, batched)
    return jax.shard_map(local, mesh=sharding.mesh, in_specs=(PartitionSpec(), sharding.spec),
                         out_specs=sharding.spec)(shared, batched)


def local_devices(devices) -> list:
    """The devices of `devices` (default all) that this process drives."""
    devices = jax.devices() if devices is None else devices
    return [d for d in devices if d.process_index == jax.process_index()]


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of `multiple` >= value."""
    return -(-value // multiple) * multiple


def pad_to_devices(x: jax.Array, sharding: Optional[NamedSharding]) -> jax.Array:
    """(B, ...) -> (B', ...) padded with zeros to a multiple of the mesh size, sharded over it."""
    if sharding is None:
        return x
    x = jnp.pad(x, ((0, -x.shape[0] % sharding.mesh.size),) + ((0, 0),) * (x.ndim - 1))
    return jax.lax.with_sharding_constraint(x, sharding)


def replicated(tree, sharding: Optional[NamedSharding]):
    """Traced: `tree` constrained to be replicated over `sharding`'s mesh (as is, without one)."""
    if sharding is None:
        return tree
    return jax.lax.with_sharding_constraint(tree, NamedSharding(sharding.mesh, PartitionSpec()))


def interleave(reference, probe):
    """Two pytrees of (B, ...) leaves -> one of (2B, ...): sample i's reference and probe are rows 2i and 2i + 1,
    so both stay on the device that holds sample i."""
    return jax.tree.map(lambda r, p: jnp.stack([r, p], axis=1).reshape(2 * r.shape[0], *r.shape[1:]),
                        reference, probe)

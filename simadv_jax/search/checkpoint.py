"""A strategy's checkpoint: its RunState after the last completed iteration, as one .npz written atomically,
with the iteration count and the seconds the search loop has spent on it over every leg (resumes add up)."""
from __future__ import annotations

import io

import jax
import jax.numpy as jnp
import numpy as np

from simadv_jax.report.files import write_bytes_atomic
from simadv_jax.search.base import RunState


def save_checkpoint(path: str, runs: RunState, iteration: int, seconds: float) -> None:
    """RunState pytree, completed iterations and loop seconds so far -> .npz (PRNG keys as key data), atomically."""
    arrays = {"iteration": np.asarray(iteration, np.int64), "seconds": np.asarray(seconds, np.float64)}
    for i, leaf in enumerate(jax.tree.leaves(runs)):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        arrays[f"leaf_{i:04d}"] = np.asarray(leaf)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: str, template: RunState) -> tuple[RunState, int, float]:
    """Inverse of `save_checkpoint` -> (runs, iteration, seconds); `template` (e.g. fresh `init_runs`) gives the
    tree structure and key types. A checkpoint from before seconds were stored reads as 0 seconds."""
    leaves, treedef = jax.tree.flatten(template)
    try:
        with np.load(path) as data:
            iteration = int(data["iteration"])
            seconds = float(data["seconds"]) if "seconds" in data.files else 0.0
            stored = [data[f"leaf_{i:04d}"] for i in range(len(leaves))]
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"--resume: cannot read checkpoint {path}: {e}") from None
    restored = []
    for leaf, value in zip(leaves, stored):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            restored.append(jax.random.wrap_key_data(jnp.asarray(value), impl=jax.random.key_impl(leaf)))
        else:
            if value.shape != leaf.shape:
                raise ValueError(f"--resume: checkpoint {path} does not match the configuration "
                                 f"(array of shape {value.shape}, expected {leaf.shape})")
            restored.append(jnp.asarray(value, leaf.dtype))
    return jax.tree.unflatten(treedef, restored), iteration, seconds

"""The devices a launch command computes on: every CPU core as its own JAX device, and many hosts.

XLA:CPU keeps a device's work mostly on one thread: on a 2-core machine the renderer ran 1.4x and dlib's ResNet
1.5x faster with the batch split over two devices than on one (BUILD.md). So on a CPU, `configure` makes one JAX
device per core and the evaluation shards its batch over them. With `num_hosts > 1` (or `JAX_COORDINATOR_ADDRESS`
and a cluster JAX detects, e.g. Slurm or Open MPI) it starts `jax.distributed`, after which `jax.devices()` lists
every host's devices; each process runs the same program and only process 0 writes files (`is_writer`).

`configure` must run before JAX's first computation: launch commands call it first thing in `main`.
"""
from __future__ import annotations

import itertools
import os
from typing import Optional

import jax

_HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"
_BARRIERS_PASSED = itertools.count()


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure(cpu_devices: int = 0, num_hosts: int = 1, host_index: int = 0,
              coordinator: Optional[str] = None) -> None:
    """Sets the CPU device count and starts `jax.distributed` when asked; errors name the flag.

    Args:
      cpu_devices: JAX devices on the CPU (0: one per core). Ignored when XLA_FLAGS already sets
        --xla_force_host_platform_device_count, and when JAX has already computed in this process.
      num_hosts, host_index, coordinator: `jax.distributed` processes, this one's index, and the
        coordinator's "host:port" (process 0's). num_hosts = 1 starts it only if JAX_COORDINATOR_ADDRESS is set.
    """
    if cpu_devices < 0:
        raise ValueError(f"--cpu_devices: must be >= 0, got {cpu_devices}")
    if num_hosts < 1:
        raise ValueError(f"--num_hosts: must be >= 1, got {num_hosts}")
    if not 0 <= host_index < num_hosts:
        raise ValueError(f"--host_index: must be in [0, {num_hosts}), got {host_index}")
    if num_hosts > 1 and not (coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS")):
        raise ValueError("--coordinator: required with --num_hosts > 1 (process 0's host:port), "
                         "or set JAX_COORDINATOR_ADDRESS")
    if _HOST_DEVICE_FLAG not in os.environ.get("XLA_FLAGS", ""):
        try:
            jax.config.update("jax_num_cpu_devices", cpu_devices or cpu_cores())
        except RuntimeError:  # JAX already computed here (e.g. a notebook): keep the devices it has
            pass
    if num_hosts > 1:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_hosts, process_id=host_index)
    elif os.environ.get("JAX_COORDINATOR_ADDRESS"):
        jax.distributed.initialize()


def is_writer() -> bool:
    """True in the process that writes outputs (process 0; the only one without jax.distributed)."""
    return jax.process_index() == 0


def barrier(name: str, timeout_s: int = 1800) -> None:
    """Waits until every process of a `jax.distributed` run reaches `name`; nothing in a single process.

    A coordination-service barrier, not a device collective: CPU (gloo) collectives give up when another process
    arrives more than 30 s later (e.g. one that loaded its models more slowly), so callers meet here first.
    """
    if jax.process_count() == 1:
        return
    from jax._src import distributed  # the client `jax.distributed.initialize` started

    # Every process passes the same barriers in the same order, so a running count keeps repeated names apart.
    barrier_id = f"{name} #{next(_BARRIERS_PASSED)}"
    distributed.global_state.client.wait_at_barrier(barrier_id, timeout_in_ms=timeout_s * 1000)

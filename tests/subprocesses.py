"""Running the project's code in a fresh Python process from a test, always under a timeout.

A fresh process is how tests choose the number of JAX devices (XLA_FLAGS is read once per process), start
`jax.distributed`, or run a `python -m` entry point exactly as a user does. Every call has a timeout, so a hang
fails the test instead of hanging CI.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def environment(devices: Optional[int] = None, **overrides: str) -> dict:
    """os.environ for a child on the CPU: JAX_PLATFORMS=cpu, the repository on PYTHONPATH, `devices` forced host
    devices (None: no XLA_FLAGS and no coordinator inherited), then `overrides`."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_COORDINATOR_ADDRESS")}
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else ROOT
    if devices is not None:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env.update(overrides)
    return env


def run(args: Sequence[str], *, timeout: float = 300, devices: Optional[int] = None, env: Optional[dict] = None,
        **overrides: str) -> subprocess.CompletedProcess:
    """`python ARGS...` in the repository root (text output captured); env: `environment(devices, **overrides)`
    unless given. Raises subprocess.TimeoutExpired (failing the test) past `timeout` seconds."""
    env = environment(devices, **overrides) if env is None else env
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def run_module(module: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS...` (see `run`)."""
    return run(["-m", module, *args], **kwargs)


def run_script(script: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """`python -c SCRIPT ARGS...` (see `run`)."""
    return run(["-c", script, *args], **kwargs)


def last_line(result: subprocess.CompletedProcess) -> str:
    """The child's last stdout line, after checking it exited 0 (else fails with its stderr's tail)."""
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-1]

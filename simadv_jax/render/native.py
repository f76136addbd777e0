"""The CPU visibility kernel: `native_visibility.cc` built on first use and called as an XLA FFI custom call.

The pure-JAX visibility pass (`rasterize._visible_triangles`) is the rasterizer's reference; on XLA:CPU it
costs 1-1.7 ms per 150 x 150 face crop on one core, a third or more of a render. This module compiles the
same computation as a C++ loop (`native_visibility.cc`, same float32 operations in the same order) with the
system's C++ compiler against jaxlib's FFI headers, once per source, jaxlib version, compiler and CPU, into a
cache folder (`$SIMADV_JAX_CACHE`, default `~/.cache/simadv_jax`), and registers it as an XLA FFI target for
the CPU platform. `rasterize(..., backend="native")` uses it; the default backend "auto" uses it on the CPU
when it builds and the pure-JAX pass otherwise (or always, with the environment variable SIMADV_JAX_NATIVE=0).

Under `jax.vmap` the kernel receives the whole batch in one call (`vmap_method="broadcast_all"`).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "native_visibility.cc")
TARGET = "simadv_visibility"
# -ffp-contract=off and no fast math: every float operation rounds as written in the source. -march=native: the
# library is built for this CPU (the cache key includes the CPU's model and features).
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math")


class NativeUnavailable(RuntimeError):
    """The native kernel cannot be built or loaded here (the message says why)."""


def cache_dir() -> str:
    """Where built libraries are kept: $SIMADV_JAX_CACHE, else ~/.cache/simadv_jax."""
    return os.environ.get("SIMADV_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "simadv_jax")


def compiler() -> str:
    """The C++ compiler the kernel is built with: $CXX, else g++, c++ or clang++ on the PATH;
    NativeUnavailable when there is none."""
    found = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if not found:
        raise NativeUnavailable("no C++ compiler found (set CXX, or install g++)")
    return found


def _cpu() -> str:
    """The CPU's model name and feature flags (Linux), else the machine type: a library built with
    -march=native must not be loaded on another CPU sharing the cache folder."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [line for line in f if line.startswith(("model name", "flags"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.machine() + platform.processor()


def library_path(cxx: str) -> str:
    """Cache path of the library for this source, jaxlib version, compiler `cxx`, flags and CPU."""
    import jaxlib

    digest = hashlib.sha256()
    with open(SOURCE, "rb") as f:
        digest.update(f.read())
    for part in (jaxlib.__version__, cxx, *FLAGS, _cpu()):
        digest.update(part.encode())
    return os.path.join(cache_dir(), f"native_visibility_{digest.hexdigest()[:16]}.so")


def _build(cxx: str, path: str) -> None:
    """Compiles SOURCE with `cxx` into `path` (written atomically, so concurrent builds are safe);
    NativeUnavailable with the compiler's output or the file system's error."""
    partial = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle, partial = tempfile.mkstemp(suffix=".so.partial", dir=os.path.dirname(path))
        os.close(handle)
        command = [cxx, *FLAGS, "-I", jax.ffi.include_dir(), SOURCE, "-o", partial]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise NativeUnavailable(f"building {SOURCE} failed ({' '.join(command)}):\n{result.stderr[-2000:]}")
        os.replace(partial, path)
    except (OSError, subprocess.SubprocessError) as error:
        raise NativeUnavailable(f"building {SOURCE} into {path} failed: {error}") from error
    finally:
        if partial is not None and os.path.exists(partial):
            os.remove(partial)


@functools.lru_cache(maxsize=1)
def load() -> None:
    """Builds (once per cache folder) and registers the kernel; raises NativeUnavailable naming the cause.
    A cached library that does not load (e.g. truncated) is rebuilt once."""
    cxx = compiler()
    path = library_path(cxx)
    if not os.path.exists(path):
        _build(cxx, path)
    try:
        library = ctypes.cdll.LoadLibrary(path)
    except OSError:
        _build(cxx, path)
        try:
            library = ctypes.cdll.LoadLibrary(path)
        except OSError as error:
            raise NativeUnavailable(f"loading {path} failed: {error}") from error
    jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(library.SimadvVisibility), platform="cpu")


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """True when JAX's default backend is the CPU, SIMADV_JAX_NATIVE is not "0", and the kernel builds and
    loads here (logs why not)."""
    if jax.default_backend() != "cpu" or os.environ.get("SIMADV_JAX_NATIVE", "1") == "0":
        return False
    try:
        load()
    except NativeUnavailable as error:
        logging.warning("simadv_jax: native CPU rasterizer unavailable, using the pure-JAX one: %s", error)
        return False
    return True


def nearest_triangles(x, y, z, in_front, height: int, width: int, cull_backfaces: bool) -> jax.Array:
    """Corner pixel x, y, NDC z (each (F, 3) float32), (F,) bool in front -> (H * W,) int32 nearest triangle
    (-1: none); vmap-able (a batch is one call). As `rasterize._visible_triangles`, up to depth-level near-ties."""
    load()
    call = jax.ffi.ffi_call(TARGET, jax.ShapeDtypeStruct((height * width,), jnp.int32),
                            vmap_method="broadcast_all")
    return call(x, y, z, in_front, height=np.int64(height), width=np.int64(width),
                cull_backfaces=np.int64(bool(cull_backfaces)))

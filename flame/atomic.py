"""Crash-safe whole-file writes: the project's one implementation (flame is the bottom layer, so every layer can
use it without importing upwards).

A write goes to a temporary file in the target's folder, is flushed to disk, then renamed over the target, so a
reader sees the old file or the new one, never a half-written one. The file gets the permissions `open()` would
give a new file (0o666 minus the process umask), not the owner-only mode of a temporary file.
"""
from __future__ import annotations

import functools
import os
import tempfile


@functools.cache
def _umask() -> int:
    """The process umask, read once (os.umask can only read it by setting it; launch commands never change it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically, creating its folder if needed; on any failure the target is untouched
    and no temporary file is left behind."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

"""Crash-safe result files: atomic whole-file writes and append-only JSON lines."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Iterator


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Writes `data` to `path` via a temporary file in the same folder and a rename."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_json_atomic(path: str, payload: Any) -> None:
    """Writes `payload` as indented JSON to `path` atomically."""
    write_bytes_atomic(path, (json.dumps(payload, indent=2, sort_keys=False) + "\n").encode())


def append_jsonl(path: str, record: Any) -> None:
    """Appends one JSON line to `path` and flushes it to disk (append-only log)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def append_jsonl_many(path: str, records: list) -> None:
    """Appends several JSON lines to `path` with one write and one flush to disk."""
    if not records:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(record) + "\n" for record in records))
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str) -> Iterator[Any]:
    """Yields the records of a JSON-lines file, skipping a torn last line from a crash."""
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    for i, line in enumerate(lines):
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                return  # interrupted mid-write; everything before it is intact
            raise ValueError(f"{path}: line {i + 1} is not valid JSON")

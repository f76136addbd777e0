"""Crash-safe result files: atomic whole-file writes and append-only JSON lines."""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

from flame.atomic import write_bytes_atomic


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


def read_json_object(path: str, what: str) -> dict:
    """Reads a JSON object from `path`; any failure is one ValueError naming `what` and the file."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{what}: cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what}: {path} does not hold a JSON object")
    return data


def cut_torn_line(path: str) -> int:
    """Cuts `path` back to its last complete line (a crash mid-append leaves a torn one); returns the bytes cut.
    Appending after a torn line would join it to the next record and spoil every later read."""
    if not os.path.exists(path):
        return 0
    with open(path, "rb+") as f:
        data = f.read()
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
    return len(data) - keep


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

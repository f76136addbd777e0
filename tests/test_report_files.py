import json
import os

import pytest

from simadv_jax.report import files


def test_write_json_atomic_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "results.json"
    files.write_json_atomic(str(path), {"a": 1})
    files.write_json_atomic(str(path), {"b": [1, 2]})
    assert json.loads(path.read_text()) == {"b": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temp files left


def test_append_jsonl_and_torn_last_line(tmp_path):
    path = str(tmp_path / "events.jsonl")
    for i in range(3):
        files.append_jsonl(path, {"i": i})
    with open(path, "a") as f:
        f.write('{"i": 3')  # a crash mid-write
    assert [r["i"] for r in files.read_jsonl(path)] == [0, 1, 2]


def test_corrupt_middle_line_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"i": 0}\nnot json\n{"i": 2}\n')
    with pytest.raises(ValueError, match="events.jsonl: line 2"):
        list(files.read_jsonl(str(path)))


def test_read_missing_file_yields_nothing(tmp_path):
    assert list(files.read_jsonl(os.path.join(tmp_path, "none.jsonl"))) == []

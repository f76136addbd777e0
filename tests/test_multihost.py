"""A search split over two processes with jax.distributed (one CPU device each) computes what one process with two
devices computes, and only process 0 writes; launch flags for hosts and devices fail clearly."""
import json
import os
import socket
import subprocess
import sys

import pytest

from tests.subprocesses import ROOT, environment, run_module

SCRIPT = """
import json, sys
from simadv_jax import devices
out, hosts, index, coordinator = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
devices.configure(cpu_devices=2 if hosts == 1 else 1, num_hosts=hosts, host_index=index,
                  coordinator=coordinator if hosts > 1 else None)
import jax
from simadv_jax.search.experiment import run_search
from simadv_jax.setup import build_setup
from tests.search_fixtures import head, tiny_config, tiny_recognizer
config = tiny_config(strategies=("reinforce",), max_saved_adversarials=1)
setup = build_setup(config, recognizer=tiny_recognizer(threshold=0.8), head=head())
results = run_search(config, out, setup=setup)
summary = {name: {k: v for k, v in s.items() if k != "adversarials"}
           for name, s in results.get("strategies", {}).items()}
print(json.dumps({"devices": jax.device_count(), "local": jax.local_device_count(), "process": jax.process_index(),
                  "summary": summary}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(out, hosts, index, coordinator):
    """Starts one process; its output goes to files (a full pipe would stall it while the others wait for it)."""
    env = environment()
    logs = [open(f"{out}.{index}.{name}", "w+") for name in ("stdout", "stderr")]
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, out, str(hosts), str(index), coordinator], cwd=ROOT,
                               env=env, stdout=logs[0], stderr=logs[1], text=True)
    return process, logs


def _finish(started):
    process, (stdout, stderr) = started
    try:
        process.wait(timeout=300)
    finally:
        process.kill()  # no-op once it has exited
    stdout.seek(0)
    stderr.seek(0)
    assert process.returncode == 0, stderr.read()[-3000:]
    return json.loads(stdout.read().strip().splitlines()[-1])


def test_two_processes_compute_what_one_process_with_two_devices_does(tmp_path):
    coordinator = f"127.0.0.1:{_free_port()}"
    multi = [_finish(p) for p in [_start(str(tmp_path / "multi"), 2, i, coordinator) for i in range(2)]]
    single = _finish(_start(str(tmp_path / "single"), 1, 0, ""))
    assert [(m["devices"], m["local"], m["process"]) for m in multi] == [(2, 1, 0), (2, 1, 1)]
    assert (single["devices"], single["local"]) == (2, 2)
    assert multi[1]["summary"] == {}  # process 1 writes and reports nothing
    assert multi[0]["summary"] == single["summary"]
    assert multi[0]["summary"]["reinforce"]["queries"] == 2 * 3 * 3
    for name in ("results.json", "events.jsonl", "report.html"):
        assert os.path.exists(tmp_path / "multi" / name)
    with open(tmp_path / "multi" / "events.jsonl") as f:
        assert len(f.readlines()) == 2 * 3  # runs x iterations, written once: by process 0 only


@pytest.mark.parametrize("argv, message", [
    (["--num_hosts=2"], "error: --coordinator: required with --num_hosts > 1"),
    (["--num_hosts=2", "--host_index=2", "--coordinator=127.0.0.1:1"], "error: --host_index: must be in [0, 2)"),
    (["--cpu_devices=-1"], "error: --cpu_devices: must be >= 0"),
])
def test_bad_device_flags_give_one_clear_message(tmp_path, argv, message):
    out = run_module("launch.search", f"--output_dir={tmp_path}/run", *argv, timeout=120)
    assert out.returncode != 0
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not os.path.exists(f"{tmp_path}/run")

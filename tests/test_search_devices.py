"""Every strategy runs the search loop on several devices without hanging, and the watchdog stops a hung step.

On XLA:CPU with several devices, a strategy update replicated on every device deadlocked in LAPACK (CMA-ES's
eigendecomposition on the shared intra-op thread pool). The loop keeps ask/tell off the replicated path; these
tests run in a fresh process under a timeout, so a hang fails them instead of hanging CI.
"""
import json

import pytest

from tests.subprocesses import last_line, run_script

STRATEGIES = ("reinforce", "reinforce_ranked", "uniform", "gaussian", "random_opt", "cem", "gradient", "evosax:CMA_ES",
              "evosax:SNES")

SCRIPT = """
import json, sys, tempfile
import jax
from simadv_jax.search.experiment import run_search
from simadv_jax.setup import build_setup
from tests.search_fixtures import head, tiny_config, tiny_recognizer
config = tiny_config(strategies=tuple(sys.argv[1].split(",")), runs=int(sys.argv[2]), samples_per_iteration=4,
                     max_iterations=2,
                     space="shape[0:15]=-2:2,texture[0:15]=-2:2,yaw=-1:1", max_saved_adversarials=0)
setup = build_setup(config, recognizer=tiny_recognizer(threshold=0.8), head=head())
results = run_search(config, tempfile.mkdtemp(), setup=setup)
print(json.dumps({"devices": jax.device_count(), "dims": setup.space.size,
                  "summary": {name: {k: v for k, v in s.items() if k != "adversarials"}
                              for name, s in results["strategies"].items()}}))
"""


@pytest.mark.parametrize("devices", [2, 4])
def test_every_strategy_runs_on_several_devices(devices):
    out = json.loads(last_line(run_script(SCRIPT, ",".join(STRATEGIES), "16", devices=devices, timeout=600)))
    assert out["devices"] == devices and out["dims"] == 31
    assert {name: s["queries"] for name, s in out["summary"].items()} == {name: 16 * 4 * 2 for name in STRATEGIES}


def test_one_and_several_devices_give_the_same_search():
    """The split path (ask/tell on one device, the evaluation sharded) computes what the fused step computes."""
    single, double = (json.loads(last_line(run_script(SCRIPT, "reinforce,evosax:CMA_ES", "4", devices=d, timeout=600)))
                      for d in (1, 2))
    assert single["summary"]["reinforce"]["queries"] == 4 * 4 * 2
    for name in ("reinforce", "evosax:CMA_ES"):
        a, b = single["summary"][name], double["summary"][name]
        assert a["queries"] == b["queries"] and a["adversarials_found"] == b["adversarials_found"]
        assert a["mean_score"] == pytest.approx(b["mean_score"], abs=1e-5)


def test_watchdog_stops_a_hung_step_and_keeps_the_checkpoint(tmp_path):
    """A recognizer that blocks forever in its second call (a stand-in for a deadlock) is stopped by the watchdog
    with a message naming the strategy and iteration; the first iteration's checkpoint and events survive."""
    script = f"""
import threading, time
import jax, jax.numpy as jnp
from simadv_jax.search.experiment import Watchdog, run_search
from simadv_jax.setup import build_setup
from tests.search_fixtures import head, tiny_config, tiny_recognizer
calls = []

def host(x):
    calls.append(1)
    if len(calls) > 1:
        threading.Event().wait()  # never returns, as a deadlocked kernel
    return x

base = tiny_recognizer(threshold=-1.0)
recognizer = base.replace(apply_fn=lambda p, x: jax.pure_callback(
    host, jax.ShapeDtypeStruct((x.shape[0], 16), jnp.float32), base.apply_fn(p, x), vmap_method="broadcast_all"))
config = tiny_config(strategies=("reinforce",), max_iterations=3)
setup = build_setup(config, recognizer=recognizer, head=head())
run_search(config, {str(tmp_path / 'run')!r}, setup=setup, watchdog=Watchdog(floor_s=5.0))
"""
    out = run_script(script, devices=1, timeout=300)
    assert out.returncode == 3, out.stderr[-2000:]
    assert "the search step of strategy reinforce at iteration 1 has run for" in out.stderr
    assert "checkpoint of iteration 1 is intact; continue with --resume" in out.stderr
    assert (tmp_path / "run" / "checkpoints" / "reinforce.npz").exists()
    assert len((tmp_path / "run" / "events.jsonl").read_text().splitlines()) == 2  # iteration 0, two runs

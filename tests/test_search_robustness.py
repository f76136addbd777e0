"""The main job never writes where it shouldn't, survives crashes and full disks, and says what happened."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from simadv_jax.report import rundir
from simadv_jax.search import experiment
from simadv_jax.search.experiment import run_search
from simadv_jax.setup import build_setup, head_fingerprints
from tests.search_fixtures import head, tiny_config, tiny_recognizer, without_timing
from tests.subprocesses import ROOT, environment, run_module

CONFIG = tiny_config(max_saved_adversarials=2)


def test_a_folder_that_is_not_a_run_is_refused_and_left_alone(setup, tmp_path):
    (tmp_path / "adversarials").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "adversarials" / "0000.json").write_text("{}")
    with pytest.raises(ValueError, match=r"is not empty and holds no search run .*found adversarials/, notes\.txt"):
        run_search(CONFIG, str(tmp_path), setup=setup)
    assert sorted(os.listdir(tmp_path)) == ["adversarials", "notes.txt"]
    assert (tmp_path / "adversarials" / "0000.json").read_text() == "{}"


def test_a_run_whose_config_was_deleted_is_refused(setup, straight, tmp_path):
    out = tmp_path / "run"
    os.system(f"cp -r {straight[0]} {out}")
    os.remove(out / "config.json")
    for resume in (False, True):
        with pytest.raises(ValueError, match="config.json"):
            run_search(tiny_config(max_saved_adversarials=2, seed=1), str(out), setup=setup, resume=resume)


def test_output_dir_that_is_a_file_or_another_commands_run(setup, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        run_search(CONFIG, str(tmp_path / "file"), setup=setup)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"spacing": 0.1, "dims": ["yaw"]}))
    with pytest.raises(ValueError, match="holds another kind of run"):
        run_search(CONFIG, str(tmp_path / "other"), setup=setup, resume=True)


def test_rundir_create_names_the_os_error(tmp_path, monkeypatch):
    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(rundir, "write_bytes_atomic", full)
    monkeypatch.setattr(rundir, "write_json_atomic", lambda path, payload: full(path, b""))
    with pytest.raises(ValueError, match=r"^--output_dir=.*: No space left on device \(config.json\)$"):
        rundir.create(str(tmp_path / "run"), {}, {})


def test_a_run_that_predates_a_flag_is_this_commands_and_compares_as_its_default(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"steps": 9, "progress": False}))
    defaults = {"steps": 41, "alignment": "oracle", "progress": True}

    def check(**changes):
        rundir.check_config(str(tmp_path), {"steps": 9, "alignment": "oracle", "progress": True, **changes},
                            command="sweep", resume=True, defaults=defaults, free=("progress",))

    check()
    with pytest.raises(ValueError, match=r"^--alignment: --resume needs the same value as the sweep in .* \('oracle': "
                                         r"the run predates --alignment, so it ran with the default\), got 'pipeline'$"):
        check(alignment="pipeline")
    with pytest.raises(ValueError, match=r"^--steps: --resume needs the same value as the sweep in .* \(9\), got 41$"):
        check(steps=41)
    (tmp_path / "config.json").write_text(json.dumps({"steps": 9, "a_flag_it_no_longer_has": 1}))
    with pytest.raises(ValueError, match="holds another kind of run"):
        check()


def test_resume_needs_the_head_and_albedo_the_run_recorded(setup, straight, tmp_path):
    recorded = json.load(open(os.path.join(straight[0], "config.json")))
    assert recorded["fingerprints"] == head_fingerprints(*head())
    assert straight[1]["head"]["fingerprints"] == {"model": recorded["fingerprints"]["head"],
                                                   "texture": recorded["fingerprints"]["texture"]}
    out = tmp_path / "run"
    shutil.copytree(straight[0], out)
    (out / "config.json").write_text(json.dumps({**recorded, "fingerprints": {**recorded["fingerprints"],
                                                                              "head": "0123456789abcdef"}}))
    with pytest.raises(ValueError, match=rf"^--head: --resume needs the same content as the search in {out} "
                                         rf"\(fingerprint 0123456789abcdef\), got fingerprint "
                                         rf"{recorded['fingerprints']['head']}: it changed since the run started"):
        run_search(CONFIG, str(out), setup=setup, resume=True)


def test_a_run_that_predates_fingerprints_and_a_flag_resumes_with_one_warning(setup, straight, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(straight[0], out)
    recorded = json.load(open(out / "config.json"))
    older = {k: v for k, v in recorded.items() if k not in ("fingerprints", "alignment", "estimate_queries")}
    (out / "config.json").write_text(json.dumps(older))
    with pytest.raises(ValueError, match=r"^--alignment: .*\('oracle': the run predates --alignment"):
        run_search(tiny_config(max_saved_adversarials=2, alignment="pipeline"), str(out), setup=setup, resume=True)
    logs = []
    resumed = run_search(CONFIG, str(out), setup=setup, resume=True, log=logs.append)
    assert without_timing(resumed) == without_timing(json.loads(json.dumps(straight[1])))
    assert logs == [f"warning: --head / --texture: the search in {out} predates content fingerprints in config.json, "
                    "so the head could not be checked: resuming as if it ran on this one",
                    f"the search in {out} is complete (results.json); nothing to run"]
    assert json.load(open(out / "config.json")) == recorded  # written again whole


# ---- crashes, full disks, resumes -------------------------------------------------------------------------


def test_torn_last_event_line_is_cut_on_resume(setup, straight, tmp_path):
    out = str(tmp_path)
    logs = []
    calls = {"n": 0}

    def stop_after_two(event):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(rundir.Interrupted, match="interrupted after 2 iteration"):
        run_search(CONFIG, out, setup=setup, progress=stop_after_two)
    events = os.path.join(out, "events.jsonl")
    with open(events, "a") as f:
        f.write('{"strategy": "reinforce", "iteration": 2, "ru')  # a crash in the middle of an append
    resumed = run_search(CONFIG, out, setup=setup, resume=True, log=logs.append)
    assert any("cut a torn last line" in line for line in logs), logs
    assert without_timing(resumed) == without_timing(straight[1])
    lines = open(events).read().splitlines()
    assert all(json.loads(line) for line in lines)  # every line is whole again


def test_missing_event_lines_below_a_checkpoint_are_reported(setup, tmp_path):
    out = str(tmp_path)
    run_search(CONFIG, out, setup=setup)
    events = os.path.join(out, "events.jsonl")
    lines = open(events).read().splitlines()
    with open(events, "w") as f:
        f.write("\n".join(lines[1:]) + "\n")  # lose the first line (reinforce, iteration 0, run 0)
    os.remove(os.path.join(out, "results.json"))
    logs = []
    results = run_search(CONFIG, out, setup=setup, resume=True, log=logs.append)
    assert results["missing_events"] == {"reinforce": [[0, 0]]}
    assert any("1 (iteration, run) line(s) of reinforce" in line for line in logs), logs


def test_full_disk_mid_run_loses_nothing_and_resumes(setup, straight, tmp_path, monkeypatch):
    out = str(tmp_path)
    original, calls = experiment.append_jsonl_many, {"n": 0}

    def fails_on_the_third(path, records):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        original(path, records)

    monkeypatch.setattr(experiment, "append_jsonl_many", fails_on_the_third)
    with pytest.raises(ValueError, match=r"No space left on device .*events.jsonl after iteration 2 of reinforce; "
                                         r"nothing computed before it is lost: free space and continue with --resume"):
        run_search(CONFIG, out, setup=setup)
    monkeypatch.setattr(experiment, "append_jsonl_many", original)
    resumed = run_search(CONFIG, out, setup=setup, resume=True)
    assert without_timing(resumed) == without_timing(straight[1])


def test_time_adds_up_across_resumes_and_a_finished_run_says_so(setup, tmp_path):
    out = str(tmp_path)
    first = run_search(tiny_config(max_saved_adversarials=2, max_iterations=1), out, setup=setup)
    second = run_search(CONFIG, out, setup=setup, resume=True)
    for name in CONFIG.strategies:
        one, both = first["timing"][name]["seconds"], second["timing"][name]["seconds"]
        assert 0 < one < both  # the second leg's seconds are added to the first's
        assert 0 < second["timing"][name]["queries_per_second"] < 1e5
    logs = []
    again = run_search(CONFIG, out, setup=setup, resume=True, log=logs.append)
    assert again == json.loads(json.dumps(second))
    assert logs == [f"the search in {out} is complete (results.json); nothing to run"]


def test_rescore_with_is_checked_before_the_search(setup, tmp_path, monkeypatch):
    from simadv_jax import recognizers

    def missing(name):
        raise ImportError("dlib_reference needs dlib's Python bindings: pip install dlib-bin")

    monkeypatch.setattr(recognizers, "load", missing)
    config = tiny_config(max_saved_adversarials=2, rescore_with="dlib_reference")
    with pytest.raises(ValueError, match="--rescore_with=dlib_reference: dlib_reference needs"):
        run_search(config, str(tmp_path / "run"), setup=build_setup(
            config, recognizer=tiny_recognizer(threshold=0.8), head=head()))
    assert not os.path.exists(tmp_path / "run")


# ---- the command line -------------------------------------------------------------------------------------


def test_ctrl_c_prints_one_line_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "launch.search", "--flagfile=launch/configs/quickstart.flags", f"--output_dir={out}",
            "--strategy=uniform", "--runs=2", "--samples_per_iteration=2", "--max_iterations=200",
            "--stop_at_first=false", "--noprogress", "--max_saved_adversarials=1"]
    # Ctrl-C raises KeyboardInterrupt in the child even when this test runs with SIGINT ignored (a background job of
    # a non-interactive shell, which the child would inherit): Python installs its handler only over the default.
    args[1:3] = ["-c", "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                 "sys.argv[0] = 'launch.search'; runpy.run_module('launch.search', run_name='__main__')"]
    process = subprocess.Popen(args, cwd=ROOT, env=environment(devices=1), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not (out / "events.jsonl").exists() or os.path.getsize(out / "events.jsonl") == 0:
            assert time.time() < deadline and process.poll() is None, process.communicate()[1][-3000:]
            time.sleep(0.2)
        assert process.poll() is None, "the search ended before it could be interrupted"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if "interrupted" in line] == [
        line for line in stderr.splitlines() if line.startswith("interrupted after ")]
    assert "continue with --resume" in stderr


def test_output_dir_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    out = run_module("launch.search", f"--output_dir={tmp_path / 'file'}", "--runs=1", "--max_iterations=1",
                     "--space=yaw=-1:1", timeout=300)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert f"error: --output_dir: {tmp_path / 'file'} is a file, not a folder" in out.stderr


# ---- saved samples ----------------------------------------------------------------------------------------


def test_saved_sample_errors_name_the_file_and_field_and_files_honour_the_umask(straight, tmp_path):
    from simadv_jax import samples

    out, _ = straight
    saved = os.path.join(out, "adversarials", "0000.json")
    assert oct(os.stat(saved).st_mode & 0o777) == oct(0o666 & ~_umask())
    record = json.load(open(saved))
    bad = dict(record, params={**record["params"], "texture[1]": "abc"})
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=rf"{path}: field 'params.texture\[1\]': 'abc' is not a finite number"):
        samples.rerender(str(path))
    outside = dict(record, params={**record["params"], "yaw": 3.5})
    path.write_text(json.dumps(outside))
    sample, images = samples.rerender(str(path))
    assert sample.warnings == [f"{path}: params.yaw = 3.5 lies outside the saved space's range [-1, 1]"]
    assert images.probe.shape[0] == 1 and np.isfinite(images.probe).all()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

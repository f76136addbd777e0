"""A whole sweep as `launch.sweep` runs it: every recognizer over every point, resumable, then the outputs.

`run_sweep(config, output_dir)` writes the run directory (`simadv_jax.report.rundir` rules):

  config.flags / config.json   what ran (flags text; the parsed SweepConfig)
  checkpoints/NN.npz           recognizer NN's scores of the points done so far and the seconds spent (atomic,
                               after every `chunk` points)
  sweep.npz, sweep.json, table.md, sweep.png (one parameter) or failure_maps.png (two)
                               (`sweep.results`, written by `simadv_jax.report.sweep`; sweep.json last)

Every recognizer scores the same points (`sweep.grid`) through its own `Evaluation.score_points`, the batched hot
path, `chunk` points per call. Ctrl-C keeps every completed chunk; --resume continues from the checkpoints, and a
finished sweep says so. Same config => identical sweep.npz and sweep.json (but "timing").
"""
from __future__ import annotations

import io
import os
import time
from typing import Callable, NamedTuple, Optional

import numpy as np

from flame.model import FlameModel, TextureModel
from simadv_jax.evaluate import Evaluation, make_evaluate
from simadv_jax.recognizers.base import Recognizer
from simadv_jax.report import rundir
from simadv_jax.report.files import read_json_object, write_bytes_atomic
from simadv_jax.report.sweep import JSON as RESULTS, write_sweep_report
from simadv_jax.setup import head_fingerprints, head_record, load_head, load_recognizer
from simadv_jax.sweep import results
from simadv_jax.sweep.config import RESUMABLE_CHANGES, SweepConfig
from simadv_jax.sweep.grid import Plan, build_plan

CHECKPOINTS = "checkpoints"
_FIELDS = ("similarity", "valid", "adversarial", "acquired")


class Progress(NamedTuple):
    """After every chunk: label, index (position in --recognizers), done and total points of that recognizer."""

    label: str
    index: int
    done: int
    total: int


def _checkpoint(output_dir: str, index: int) -> str:
    return os.path.join(output_dir, CHECKPOINTS, f"{index:02d}.npz")


def _load_partial(path: str, total: int) -> tuple[dict, float]:
    """({field: (done,) array}, seconds) of a recognizer's checkpoint; empty when there is none. A checkpoint that
    predates "acquired" is of an oracle-aligned sweep (--alignment came with it), where every face is acquired."""
    if not os.path.exists(path):
        return {field: np.zeros(0, np.float32 if field == "similarity" else bool) for field in _FIELDS}, 0.0
    try:
        with np.load(path) as data:
            done = {field: data[field] for field in _FIELDS[:-1]}  # all but "acquired"
            done["acquired"] = data["acquired"] if "acquired" in data else np.ones_like(done["valid"])
            seconds = float(data["seconds"])
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"--resume: cannot read checkpoint {path}: {e}") from None
    if len(done["similarity"]) > total:
        raise ValueError(f"--resume: checkpoint {path} holds {len(done['similarity'])} points, the sweep {total}")
    return done, seconds


def _save_partial(path: str, done: dict, seconds: float) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, seconds=np.float64(seconds), **done)
    write_bytes_atomic(path, buffer.getvalue())


def score_recognizer(evaluation: Evaluation, plan: Plan, path: str, chunk: int, label: str,
                     report: Callable[[int], None] = lambda done: None) -> tuple[results.Scores, float]:
    """All of `plan`'s points scored by one evaluation, continuing from and checkpointing to `path` after every
    `chunk` points (`report` gets the points done, also before the first chunk); returns (Scores in plan.shape,
    seconds over every leg). Ctrl-C raises `report.rundir.Interrupted` naming `label`."""
    total = len(plan.rho)
    done, seconds = _load_partial(path, total)
    saved, start = len(done["similarity"]), time.perf_counter()
    report(saved)
    try:
        while saved < total:
            scored = evaluation.score_points(plan.rho[saved:saved + chunk])
            done = {field: np.concatenate([done[field], getattr(scored, field)]) for field in _FIELDS}
            _save_partial(path, done, seconds + time.perf_counter() - start)
            saved = len(done["similarity"])
            report(saved)
    except KeyboardInterrupt:
        raise rundir.Interrupted(f"interrupted after {saved} of {total} points of {label}; continue with --resume") from None
    similarity = np.where(done["valid"], done["similarity"], np.nan).astype(np.float32)
    scores = results.Scores(similarity.reshape(plan.shape), *(done[field].reshape(plan.shape) for field in _FIELDS[1:]))
    return scores, seconds + time.perf_counter() - start


def _evaluations(config: SweepConfig, plan: Plan, model: FlameModel, texture_model: TextureModel,
                 given: dict[str, Recognizer]) -> dict[str, Evaluation]:
    evaluations = {}
    for spec in config.recognizers:
        recognizer = given[spec] if spec in given else load_recognizer(spec, "--recognizers")
        evaluations[spec] = make_evaluate(plan.space, model, texture_model, recognizer,
                                          supersample=config.supersample, alignment=config.alignment)
    return evaluations


def _finished(output_dir: str, total: int, count: int) -> bool:
    """Whether sweep.json exists and every recognizer's checkpoint holds every point."""
    if not os.path.exists(os.path.join(output_dir, RESULTS)):
        return False
    return all(len(_load_partial(_checkpoint(output_dir, i), total)[0]["similarity"]) == total for i in range(count))


def run_sweep(config: SweepConfig, output_dir: str, *, resume: bool = False, flags_text: Optional[str] = None,
              recognizers: Optional[dict[str, Recognizer]] = None,
              head: Optional[tuple[FlameModel, TextureModel]] = None,
              progress: Optional[Callable[[Progress], None]] = None,
              log: Callable[[str], None] = lambda message: None) -> dict:
    """Runs the sweep of `config` into `output_dir` and writes every output; returns sweep.json's payload.

    recognizers: optional records by registry name that replace loading them (tests, notebooks); head: an
      optional (model, texture) instead of --head / --texture. progress: receives a `Progress` after every chunk.
      log: notes for the user (a complete sweep, a head it could not check).
    Raises ValueError naming the flag for bad configuration or a file-system failure, `report.rundir.Interrupted` on Ctrl-C.
    """
    config.check()
    rundir.check_config(output_dir, config.to_json(), command="sweep", resume=resume,
                        defaults=SweepConfig().to_json(), free=RESUMABLE_CHANGES,
                        flags={"params": "param", "ranges": "range"})
    model, texture_model = load_head(config.head, config.texture) if head is None else head
    fingerprints = head_fingerprints(model, texture_model)
    rundir.check_fingerprints(output_dir, fingerprints, command="sweep", resume=resume, log=log)
    plan = build_plan(config, model, texture_model)
    if config.group_by:
        plan.values(config.group_by)  # fails now, not after scoring
    evaluations = _evaluations(config, plan, model, texture_model, recognizers or {})
    rundir.create(output_dir, config.to_json(), fingerprints, flags_text, subdirectories=(CHECKPOINTS,))
    if resume and _finished(output_dir, len(plan.rho), len(config.recognizers)):
        log(f"the sweep in {output_dir} is complete ({RESULTS}); nothing to run")
        return read_json_object(os.path.join(output_dir, RESULTS), "--resume")
    infos, scores, seconds = [], {}, {}
    for index, (spec, label) in enumerate(zip(config.recognizers, config.names)):
        evaluation = evaluations[spec]
        infos.append(results.RecognizerInfo(label, spec, evaluation.recognizer.metric,
                                            evaluation.similarity_threshold))

        def report(done: int, label=label, index=index) -> None:
            if progress is not None:
                progress(Progress(label, index, done, len(plan.rho)))

        try:
            scores[label], seconds[label] = score_recognizer(evaluation, plan, _checkpoint(output_dir, index),
                                                             config.chunk, label, report)
        except OSError as e:
            raise rundir.os_error(output_dir, e, f"checkpointing {label}; every completed chunk is kept: free "
                                  "space and continue with --resume") from None
    renderer = evaluations[config.recognizers[0]].renderer  # every evaluation crops alike
    payload = results.payload(config, plan, infos, scores,
                              {"name": renderer.alignment, "box_source": renderer.box_source})
    payload["head"] = head_record(model, texture_model)
    payload["timing"] = {"seconds_per_recognizer": seconds, "points": len(plan.rho)}
    try:
        write_sweep_report(output_dir, payload, results.arrays(plan, infos, scores))
    except OSError as e:
        raise rundir.os_error(output_dir, e, "writing the outputs; the scores are checkpointed: free space and run "
                              "the same command with --resume") from None
    return payload

"""A regions run as `launch.regions` runs it: floods from one seed or every adversarial of a search, refinement,
landscapes, resumable, into a run directory (`simadv_jax.report.rundir` rules):

  config.flags / config.json   what ran (flags text; the resolved RegionConfig)
  checkpoints/seed_NNNN_{coarse,fine}.jsonl   append-only, one line per step of each pass: the losses it
                               scored and the seconds so far; an interrupted flood replays them (its FloodLog,
                               a torn last line cut) and continues from its frontier
  landscape.npz                the landscape grids (written once computed)
  region.npz, coverage.png, montage.png, landscape_surface.png, landscape_heatmaps.png, report.html,
  region.json                  the results (region.json last: a finished run)

Every point is scored through the setup's `Evaluation.score_points` (the flooded dimensions vary, the others stay
at the seed's values); a point is in a region when it is valid and its loss is below the loss threshold.
"""
from __future__ import annotations

import io
import os
import time
from typing import Callable, NamedTuple, Optional

import numpy as np

from simadv_jax.regions.config import RESUMABLE_CHANGES, RegionConfig
from simadv_jax.regions.flood import FloodLog, Region, flood_fill
from simadv_jax.regions.landscape import Landscape, landscape
from simadv_jax.regions.outputs import LANDSCAPE_NPZ, REGION_JSON, write_outputs
from simadv_jax.regions.plan import Pass, Study, prepare
from simadv_jax.regions.refine import refine
from simadv_jax.regions.seeds import distinct_regions
from simadv_jax.report import rundir
from simadv_jax.report.files import append_jsonl, cut_torn_line, read_json_object, read_jsonl, write_bytes_atomic
from simadv_jax.setup import Setup, head_fingerprints

CHECKPOINTS = "checkpoints"


class Progress(NamedTuple):
    """After each step: seed_index (of seeds), stage ("coarse", "fine"), evaluations and region_size of this
    pass, frontier (points queued)."""

    seed_index: int
    seeds: int
    stage: str
    evaluations: int
    region_size: int
    frontier: int


# ---- checkpoints ---------------------------------------------------------------------------------------------


def _checkpoint(output_dir: str, seed_index: int, stage: str) -> str:
    return os.path.join(output_dir, CHECKPOINTS, f"seed_{seed_index:04d}_{stage}.jsonl")


def _step_record(losses: np.ndarray, seconds: float) -> dict:
    """One checkpoint line: a step's losses (NaN as null) and the pass's seconds after it."""
    return {"losses": [None if np.isnan(x) else float(x) for x in losses.tolist()], "seconds": round(seconds, 3)}


def _load_log(path: str) -> tuple[Optional[FloodLog], float]:
    """A pass's checkpoint -> (its FloodLog, seconds spent), (None, 0) without one; a torn last line is cut."""
    if not os.path.exists(path):
        return None, 0.0
    try:
        cut_torn_line(path)
        records = list(read_jsonl(path))
        losses = [np.asarray([np.nan if x is None else x for x in r["losses"]], np.float32) for r in records]
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise ValueError(f"--resume: cannot read checkpoint {path}: {e}") from None
    steps = np.asarray([len(x) for x in losses], np.int64)
    flat = np.concatenate(losses) if losses else np.zeros(0, np.float32)
    return FloodLog(flat, steps), float(records[-1]["seconds"]) if records else 0.0


def _run_pass(output_dir: str, seed_index: int, seeds: int, stage: str, flood: Callable,
              progress: Optional[Callable[[Progress], None]]) -> Pass:
    """flood(log, on_step) -> Region, resumed from and checkpointed to the stage's checkpoint."""
    path = _checkpoint(output_dir, seed_index, stage)
    log, before = _load_log(path)
    start = time.perf_counter()
    done = {"evaluations": 0 if log is None else len(log.losses), "seconds": before}

    def on_step(step):
        seconds = before + time.perf_counter() - start
        try:
            append_jsonl(path, _step_record(step.losses, seconds))
        except OSError as e:
            raise rundir.os_error(output_dir, e, f"writing {path} after {step.evaluations} evaluations; nothing "
                                  "computed before it is lost: free space and continue with --resume") from None
        done.update(evaluations=step.evaluations, seconds=seconds)
        if progress is not None:
            progress(Progress(seed_index, seeds, stage, step.evaluations, step.region_size, step.frontier))

    try:
        region = flood(log, on_step)
    except KeyboardInterrupt:
        raise rundir.Interrupted(f"interrupted after {done['evaluations']} evaluation(s) of seed {seed_index} ({stage} "
                          "pass); continue with --resume") from None
    return Pass(stage, region, done["seconds"])


def flood_seed(study: Study, output_dir: str, seed_index: int,
               progress: Optional[Callable[[Progress], None]] = None) -> list[Pass]:
    """The coarse pass (and the fine pass with --refine > 1) from seed `seed_index`."""
    config, space, seed = study.config, study.setup.space, study.seeds[seed_index]
    options = dict(threshold=study.setup.evaluation.loss_threshold, batch_size=study.setup.evaluation.batch_size,
                   max_evaluations=config.max_evaluations, lower=space.lows[study.dims],
                   upper=space.highs[study.dims], max_region_size=config.max_region_size or None)
    score = study.score_fn(seed)
    count = len(study.seeds)
    coarse = _run_pass(output_dir, seed_index, count, "coarse", lambda log, on_step: flood_fill(
        score, seed[study.dims], study.spacing, log=log, on_step=on_step, **options), progress)
    if config.refine == 1:
        return [coarse]
    fine = _run_pass(output_dir, seed_index, count, "fine", lambda log, on_step: refine(
        score, coarse.region, config.refine, log=log, on_step=on_step, **options), progress)
    return [coarse, fine]


def _landscape(study: Study, output_dir: str) -> Optional[Landscape]:
    """The landscape around the first seed (computed once, then read from landscape.npz)."""
    if study.landscape_dims is None:
        return None
    path = os.path.join(output_dir, LANDSCAPE_NPZ)
    if os.path.exists(path):
        try:
            with np.load(path) as data:
                return Landscape(tuple(data["dims"].tolist()), data["axes"], tuple(data["recognizers"].tolist()),
                                 data["similarity"], data["loss"], data["similarity_thresholds"],
                                 data["loss_thresholds"])
        except (OSError, KeyError, ValueError) as e:
            raise ValueError(f"--resume: cannot read {path}: {e}") from None
    try:
        found = landscape(study.evaluations, study.seeds[0], study.landscape_dims, study.config.landscape_points)
    except KeyboardInterrupt:
        raise rundir.Interrupted("interrupted while scoring the landscape (the floods are checkpointed); continue with "
                          "--resume") from None
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in found._asdict().items()})
    write_bytes_atomic(path, buffer.getvalue())
    return found


# ---- the run -------------------------------------------------------------------------------------------------


def run_regions(config: RegionConfig, output_dir: str, *, resume: bool = False, flags_text: Optional[str] = None,
                setup: Optional[Setup] = None, progress: Optional[Callable[[Progress], None]] = None,
                log: Callable[[str], None] = lambda message: None) -> dict:
    """Floods, refines, scores the landscape and writes every output into `output_dir`; returns region.json's
    payload. setup: optional (`build_setup` of the resolved config, reused). progress: called after every step.
    Raises ValueError naming the flag (bad configuration, a seed that is not adversarial, a dimension not in
    the space, file-system failures) and `report.rundir.Interrupted` on Ctrl-C."""
    config.check()
    config = config.resolved()
    rundir.check_config(output_dir, config.to_json(), command="region study", resume=resume,
                        defaults=RegionConfig().resolved().to_json(), free=RESUMABLE_CHANGES)  # resolved: as saved
    study = prepare(config, setup)
    fingerprints = head_fingerprints(study.setup.model, study.setup.texture_model)
    rundir.check_fingerprints(output_dir, fingerprints, command="region study", resume=resume, log=log)
    rundir.create(output_dir, config.to_json(), fingerprints, flags_text, subdirectories=(CHECKPOINTS,))
    finished = os.path.join(output_dir, REGION_JSON)
    if resume and os.path.exists(finished):  # check_config: the same run
        log(f"the region study in {output_dir} is complete ({REGION_JSON}); nothing to run")
        return read_json_object(finished, "--resume")
    passes = {}

    def flood(i: int) -> Region:
        passes[i] = flood_seed(study, output_dir, i, progress)
        return passes[i][-1].region

    slices = [tuple(np.delete(seed, study.dims).tolist()) for seed in study.seeds]
    try:
        found = distinct_regions(flood, study.seeds[:, study.dims], slices)
        landscape_found = _landscape(study, output_dir)
        return write_outputs(study, output_dir, found, passes, landscape_found)
    except OSError as e:
        raise rundir.os_error(output_dir, e, "writing the results; every flood is checkpointed: free space and "
                              "run the same command with --resume") from None

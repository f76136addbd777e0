"""A whole adversarial search as `launch.search` runs it: the iteration loop over strategies, resumable.

`run_search(config, output_dir)` runs every strategy of `config` on the same seeds (run r of every strategy is
seeded by fold_in(seed, r)) and writes the run directory (`simadv_jax.report.rundir` rules):

  config.flags / config.json   what ran (flags text; the parsed SearchConfig)
  events.jsonl                 append-only; one line per iteration per active run (`search.events`)
  checkpoints/<strategy>.npz   the RunState after the last completed iteration and the seconds spent
                               (`search.checkpoint`, atomic)
  results.json, table.md, adversarials.png, trajectories.png, sequence.png, report.html, adversarials/
                               (`search.results`, written by `simadv_jax.report` from plain data)

Each iteration of R runs x K samples is one batched evaluation. On one device the whole iteration (ask, evaluate,
tell) is one jitted call. With several devices the evaluation is sharded over them while the strategies' ask and
tell run on one device, outside the replicated program: replicated on every device, a strategy's linear algebra
(CMA-ES's eigendecomposition, a LAPACK call on XLA:CPU's shared thread pool) deadlocked the devices waiting for
each other's threads. The loop syncs with the host once per iteration, to append events and checkpoint.

Crash safety: events of iteration i are appended before the checkpoint of iteration i is written; on `resume` a
torn last line is cut off, the loop continues from the checkpoint, and events past it (written before a crash)
are ignored when the results are built (the re-run writes identical lines). Same config => identical results
(except "timing"). A step that runs far longer than the measured steps (`Watchdog`) ends the process with a
message; the checkpoint of the last completed iteration stays intact.

Under `jax.distributed` (`simadv_jax.devices`) every process runs this same loop on the global device mesh and
only process 0 writes; for --resume the run directory must be on a filesystem every host sees.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import re
import sys
import threading
import time
from typing import Callable, NamedTuple, Optional

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from simadv_jax import devices, search
from simadv_jax.report import rundir
from simadv_jax.report.files import append_jsonl_many, read_json_object
from simadv_jax.search import events as event_log
from simadv_jax.search.checkpoint import load_checkpoint, save_checkpoint
from simadv_jax.search.config import RESUMABLE_CHANGES, SearchConfig
from simadv_jax.search.results import write_outputs
from simadv_jax.setup import Setup, build_setup, head_fingerprints

CHECKPOINTS = "checkpoints"
RESULTS = "results.json"


class Progress(NamedTuple):
    """What the loop reports after each iteration of a strategy (and once when a strategy finishes).

    strategy, strategy_index: which strategy, its position in --strategy. iteration: iterations completed.
    runs, runs_done, adversarials: over this strategy's R runs. queries: samples counted in this iteration.
    finished: the strategy stopped (every run done, or max_iterations reached).
    """

    strategy: str
    strategy_index: int
    iteration: int
    runs: int
    runs_done: int
    adversarials: int
    queries: int
    finished: bool


@dataclasses.dataclass
class Watchdog:
    """Ends the process when one step takes `factor` x the slowest step measured so far, and at least `floor_s`
    seconds (the first step: `floor_s`). A hung step (a deadlock inside a compiled computation) never returns to
    Python, so only a thread can notice it, and only ending the process stops it; the checkpoint of the last
    completed iteration is intact (`report`: where the message goes)."""

    factor: float = 20.0
    floor_s: float = 300.0
    report: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True)
    _slowest: float = 0.0

    def deadline(self) -> float:
        return max(self.factor * self._slowest, self.floor_s)

    def run(self, fn: Callable, what: str, checkpointed: int):
        """fn() under the watchdog; `what` names the step, `checkpointed` the last checkpointed iteration."""
        limit = self.deadline()

        def fire():
            self.report(f"error: {what} has run for {limit:.0f} s, {self.factor:g}x longer than any step before "
                        f"(or the {self.floor_s:g} s floor): stopped, it is most likely hung. The checkpoint of "
                        f"iteration {checkpointed} is intact; continue with --resume")
            os._exit(3)

        timer = threading.Timer(limit, fire)
        timer.daemon = True
        start = time.perf_counter()
        timer.start()
        try:
            return jax.block_until_ready(fn())
        finally:
            timer.cancel()
            self._slowest = max(self._slowest, time.perf_counter() - start)


def _file_name(strategy: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", strategy)


def _checkpoint_path(output_dir: str, strategy: str) -> str:
    return os.path.join(output_dir, CHECKPOINTS, _file_name(strategy) + ".npz")


def initial_runs(setup: Setup, config: SearchConfig, name: str):
    strategy = search.make(name, population_size=config.samples_per_iteration, **config.options(name))
    runs = search.init_runs(strategy, jax.random.key(config.seed), setup.space.lows, setup.space.highs,
                            num_runs=config.runs)
    return strategy, runs


def _load(setup: Setup, config: SearchConfig, name: str, output_dir: str):
    """(strategy, runs, completed iterations, seconds so far) from the strategy's checkpoint, or fresh."""
    strategy, runs = initial_runs(setup, config, name)
    path = _checkpoint_path(output_dir, name)
    if not os.path.exists(path):
        return strategy, runs, 0, 0.0
    return (strategy, *load_checkpoint(path, runs))


def _finished(runs, iteration: int, config: SearchConfig) -> bool:
    return iteration >= config.max_iterations or bool(np.all(np.asarray(runs.done)))


def evaluate_fn(evaluation, data, gradient: bool) -> Callable:
    """`rho (B, n) -> (loss, valid[, grads], acquired)`: `evaluation.apply_acquired` with `data`, with the loss's
    gradient for a white-box strategy (`gradient`: `search.value_and_gradient`); acquired (B,) bool, the pipeline
    found both faces."""

    def evaluate(rho):
        result, acquired = evaluation.apply_acquired(data, rho)
        return *result, acquired

    return search.value_and_gradient(evaluate) if gradient else evaluate


def compiled_step(setup: Setup, config: SearchConfig, name: str, strategy, data, runs) -> Callable:
    """`step(data, runs) -> (runs, record, acquired)`: one iteration of strategy `name` (`search.step`, with the
    evaluation's (R * K,) acquired flags), compiled for (data, runs) and cached on the setup. Compiled ahead, so
    that under jax.distributed the processes meet at the barrier with compilation behind them."""
    evaluation = setup.evaluation
    options = dict(threshold=evaluation.loss_threshold, stop_at_first=config.stop_at_first)
    key = ("steps", name, config.runs, config.samples_per_iteration, config.stop_at_first, str(config.options(name)))
    if key in setup.cache:
        return setup.cache[key]
    if evaluation.mesh is None:
        def fused(data, runs):
            asked = search.ask_runs(strategy, runs)
            *evaluated, acquired = evaluate_fn(evaluation, data, strategy.needs_gradient)(asked.flat())
            return *search.tell_runs(strategy, runs, asked, *evaluated, **options), acquired

        step = jax.jit(fused).lower(data, runs).compile()
    else:
        ask = jax.jit(lambda runs: (lambda a: (a, a.flat()))(search.ask_runs(strategy, runs))).lower(runs).compile()
        asked, flat = jax.eval_shape(lambda runs: (lambda a: (a, a.flat()))(search.ask_runs(strategy, runs)), runs)
        replicated, evaluate = sharded_evaluation(setup, data, flat, strategy.needs_gradient)
        tell = jax.jit(functools.partial(search.tell_runs, strategy, **options)).lower(
            runs, asked, *(jax.ShapeDtypeStruct(o.shape, o.dtype) for o in evaluate.out_info[:-1])).compile()

        def step(data, runs):
            asked, rho = ask(runs)
            # The evaluation's input is global (every process supplies the same replicated rho).
            *result, acquired = evaluate(data, jax.make_array_from_process_local_data(replicated, np.asarray(rho)))
            return *tell(runs, asked, *(np.asarray(x) for x in result)), np.asarray(acquired)

    setup.cache[key] = step
    return step


def check_differentiable(setup: Setup, data, name: str) -> None:
    """Raises ValueError naming --strategy when the evaluation has no gradient for the white-box strategy `name`
    (e.g. dlib's own code through a callback); traces one sample, compiles nothing."""
    one = jax.ShapeDtypeStruct((1, setup.space.size), np.float32)
    try:
        jax.eval_shape(search.value_and_gradient(functools.partial(setup.evaluation.apply, data)), one)
    except ValueError as e:
        raise ValueError(f"--strategy={name}: needs the gradient of the score, which --recognizer="
                         f"{setup.config.recognizer} does not give ({e})") from None


def sharded_evaluation(setup: Setup, data, flat, gradient: bool):
    """(replicated sharding, the evaluation compiled for `flat`'s (B, n) batch over the mesh: `(data, rho) ->
    (loss, valid[, grads], acquired)` (`evaluate_fn`)), cached on the setup: strategies with the same batch share
    one compilation."""
    evaluation = setup.evaluation
    key = ("sharded evaluation", flat.shape, gradient)
    if key not in setup.cache:
        replicated = NamedSharding(evaluation.mesh, PartitionSpec())

        def evaluate(data, rho):
            return tuple(evaluate_fn(evaluation, data, gradient)(rho))

        setup.cache[key] = replicated, jax.jit(evaluate, out_shardings=replicated).lower(
            data, jax.ShapeDtypeStruct(flat.shape, flat.dtype, sharding=replicated)).compile()
    return setup.cache[key]


def place(evaluation, data, runs):
    """(data, runs) where the steps expect them: data replicated over the mesh (global arrays on every device of
    every process); runs on one device of this process (the strategies' half runs there), or with the data on
    one device."""
    if evaluation.mesh is None:
        return data, runs
    replicated = NamedSharding(evaluation.mesh, PartitionSpec())
    data = jax.tree.map(lambda x: jax.make_array_from_process_local_data(replicated, np.asarray(x)), data)
    return data, jax.device_put(runs, jax.local_devices()[0])


def run_strategy(setup: Setup, config: SearchConfig, name: str, output_dir: str,
                 progress: Optional[Callable[[Progress], None]] = None,
                 watchdog: Optional[Watchdog] = None) -> tuple[search.RunState, int, float]:
    """Runs (or resumes) one strategy to max_iterations or until every run is done.

    Returns (final RunState, completed iterations, loop seconds summed over every leg of this strategy).
    """
    evaluation = setup.evaluation
    pipeline = evaluation.renderer.alignment == "pipeline"  # only then do events record failures to acquire
    strategy, runs, iteration, seconds = _load(setup, config, name, output_dir)
    data, runs = place(evaluation, evaluation.data, runs)
    if not _finished(runs, iteration, config):  # a finished strategy is not compiled again
        step = compiled_step(setup, config, name, strategy, data, runs)
    devices.barrier(f"search {name}")

    index = config.strategies.index(name)
    events = os.path.join(output_dir, event_log.EVENTS)
    checkpoint = _checkpoint_path(output_dir, name)
    writer = devices.is_writer()
    start, saved = time.perf_counter(), iteration

    def spent() -> float:
        return seconds + time.perf_counter() - start

    def write(what: str, fn: Callable) -> None:
        try:
            fn()
        except OSError as e:
            raise rundir.os_error(output_dir, e, f"writing {what} after iteration {iteration} of {name}; nothing "
                                  f"computed before it is lost: free space and continue with --resume") from None

    try:
        while not _finished(runs, iteration, config):
            what = f"the search step of strategy {name} at iteration {iteration}"
            new_runs, record, acquired = (watchdog.run(lambda: step(data, runs), what, saved)
                                          if watchdog is not None else step(data, runs))
            record, host_runs, acquired = jax.device_get((record, new_runs, acquired))
            if writer:
                lines = event_log.events_records(name, iteration, record, host_runs, evaluation.scenario,
                                                 acquired.reshape(record.valid.shape) if pipeline else None)
                write(event_log.EVENTS, lambda: append_jsonl_many(events, lines))
            runs, iteration = new_runs, iteration + 1
            if iteration % config.checkpoint_every == 0 and writer:
                write(checkpoint, lambda: save_checkpoint(checkpoint, runs, iteration, spent()))
                saved = iteration
            if progress is not None:
                progress(Progress(name, index, iteration, config.runs, int(np.sum(host_runs.done)),
                                  int(np.sum(host_runs.adversarials)),
                                  int(np.sum(record.counted)) * config.samples_per_iteration, False))
    except KeyboardInterrupt:
        raise rundir.Interrupted(f"interrupted after {iteration} iteration(s) of {name}; continue with --resume") from None
    finally:  # also on Ctrl-C: keep what the completed iterations computed
        if saved != iteration and writer:
            save_checkpoint(checkpoint, runs, iteration, spent())
    if progress is not None:
        host_runs = jax.device_get(runs)
        progress(Progress(name, index, iteration, config.runs, int(np.sum(host_runs.done)),
                          int(np.sum(host_runs.adversarials)), 0, True))
    return runs, iteration, spent()


def completed_results(config: SearchConfig, output_dir: str, setup: Setup) -> Optional[dict]:
    """results.json of `output_dir` when every strategy's checkpoint is finished under `config` (nothing to run),
    else None."""
    path = os.path.join(output_dir, RESULTS)
    if not os.path.exists(path):
        return None
    for name in config.strategies:
        _, runs, iteration, _ = _load(setup, config, name, output_dir)
        if not _finished(runs, iteration, config):
            return None
    return read_json_object(path, "--resume")


def run_search(config: SearchConfig, output_dir: str, *, resume: bool = False, flags_text: Optional[str] = None,
               setup: Optional[Setup] = None, progress: Optional[Callable[[Progress], None]] = None,
               watchdog: Optional[Watchdog] = None, log: Callable[[str], None] = lambda message: None) -> dict:
    """Runs every strategy of `config` into `output_dir` and writes all outputs; returns results.json's payload
    (in processes other than `devices.is_writer()`'s: {}, and they write nothing).

    setup: optional, from `simadv_jax.setup.build_setup` (reused across calls, with its compiled functions); by
      default built from `config`.
    progress: optional callback receiving a `Progress` after every iteration. watchdog: optional `Watchdog` over
      every step. log: receives notes for the user (a complete run, a repaired event log, a head it could not check).
    Raises ValueError naming the flag for bad configuration or a file-system failure (`report.rundir`), and
    `report.rundir.Interrupted` on Ctrl-C.
    """
    config.check()
    writer = devices.is_writer()
    if writer:  # before loading anything; nothing is written until everything has loaded
        rundir.check_config(output_dir, config.to_json(), command="search", resume=resume,
                            defaults=SearchConfig().to_json(), free=RESUMABLE_CHANGES, flags={"strategies": "strategy"})
    if setup is None:
        setup = build_setup(config)
    setup.compatible(config)
    fingerprints = head_fingerprints(setup.model, setup.texture_model)
    if writer:
        rundir.check_fingerprints(output_dir, fingerprints, command="search", resume=resume, log=log)
    if config.rescore_with:  # fails now, not after the whole search
        setup.evaluation_for(config.rescore_with)
    for name in config.transfer_to:
        setup.evaluation_for(name, flag="--transfer_to")
    for name in config.strategies:  # a white-box strategy needs the score's gradient: fail before writing
        if search.make(name, population_size=config.samples_per_iteration, **config.options(name)).needs_gradient:
            check_differentiable(setup, setup.evaluation.data, name)
    if writer:
        rundir.create(output_dir, config.to_json(), fingerprints, flags_text, subdirectories=(CHECKPOINTS,))
        if resume:
            done = completed_results(config, output_dir, setup)
            if done is not None:
                log(f"the search in {output_dir} is complete ({RESULTS}); nothing to run")
                return done
            cut = event_log.repair(os.path.join(output_dir, event_log.EVENTS))
            if cut:
                log(f"{event_log.EVENTS}: cut a torn last line ({cut} bytes) from an interrupted write")
    devices.barrier("run directory checked")  # the others read checkpoints only after process 0 checked them
    finals, completed, seconds = {}, {}, {}
    for name in config.strategies:
        runs, iteration, spent = run_strategy(setup, config, name, output_dir, progress, watchdog)
        finals[name], completed[name], seconds[name] = jax.device_get(runs), iteration, spent
    if not writer:
        return {}
    events = event_log.read_events(output_dir, completed)
    gaps = {name: event_log.missing(events[name], finals[name].iterations) for name in config.strategies}
    for name, pairs in gaps.items():
        if pairs:
            log(f"{event_log.EVENTS}: {len(pairs)} (iteration, run) line(s) of {name} below its checkpoint are "
                f"missing, e.g. {pairs[:5]}; the results leave them out")
    try:
        return write_outputs(setup, config, output_dir, finals, events, completed, seconds,
                             {name: pairs for name, pairs in gaps.items() if pairs})
    except OSError as e:
        raise rundir.os_error(output_dir, e, "writing the results; the search itself is complete and checkpointed: "
                              "free space and run the same command with --resume") from None

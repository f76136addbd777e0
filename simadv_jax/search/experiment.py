"""A whole adversarial search as `launch.search` runs it: setup, the iteration loop, checkpoints, outputs.

`run_search(config, output_dir)` runs every strategy of `config` on the same seeds (run r of every strategy is
seeded by fold_in(seed, r)) and writes the run directory:

  config.flags / config.json   what ran (flags text; the parsed SearchConfig)
  events.jsonl                 append-only; one line per iteration per active run (module `events_record`)
  checkpoints/<strategy>.npz   the RunState after the last completed iteration (atomic)
  results.json, table.md, adversarials.png, trajectories.png, sequence.png, report.html, adversarials/
                               (written by simadv_jax.report from events + final states)

Each iteration of R runs x K samples is one jitted call (`search.step` with the evaluation's data as an
argument). The loop syncs with the host once per iteration, to append events and checkpoint. Crash safety:
events of iteration i are appended before the checkpoint of iteration i is written; on `resume` the loop
continues from the checkpoint, and events of iterations past it (written before a crash) are ignored when the
results are built (the re-run writes identical lines). Same config => identical results (except "timing").

Under `jax.distributed` (`simadv_jax.devices`) every process runs this same loop on the global device mesh and
only process 0 writes; for --resume the run directory must be on a filesystem every host sees.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import os
import re
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from simadv_jax import devices, search
from simadv_jax.report.files import append_jsonl_many, read_jsonl, write_bytes_atomic, write_json_atomic

CONFIG_JSON = "config.json"
CONFIG_FLAGS = "config.flags"
EVENTS = "events.jsonl"
CHECKPOINTS = "checkpoints"
# Fields that may change between a run and its --resume.
RESUMABLE_CHANGES = ("max_iterations", "rescore_with", "checkpoint_every", "progress")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """Everything that decides a search's results (one field per `launch.search` flag)."""

    strategies: tuple[str, ...] = ("reinforce",)
    strategy_options: tuple[str, ...] = ()
    runs: int = 10
    samples_per_iteration: int = 8
    max_iterations: int = 50
    stop_at_first: bool = True
    seed: int = 0
    recognizer: str = "dlib_resnet"
    threshold: Optional[float] = None
    head: str = "embedded"
    texture: str = "embedded"
    space: str = "shape[0:15]=-2:2,texture[0:15]=-2:2,yaw=-1:1"
    scenario: str = "genuine"
    supersample: int = 1
    rescore_with: Optional[str] = None
    checkpoint_every: int = 1
    max_saved_adversarials: int = 200
    progress: bool = True

    def check(self) -> None:
        """Raises ValueError naming the flag of the first bad value."""
        if not self.strategies:
            raise ValueError("--strategy: give at least one strategy")
        for name in self.strategies:
            if name not in search.names():
                raise ValueError(f"--strategy: unknown strategy {name!r}; known: {', '.join(search.names())}")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"--strategy: a strategy is listed twice in {','.join(self.strategies)}")
        for flag, value in (("runs", self.runs), ("samples_per_iteration", self.samples_per_iteration),
                            ("max_iterations", self.max_iterations), ("supersample", self.supersample),
                            ("checkpoint_every", self.checkpoint_every)):
            if value < 1:
                raise ValueError(f"--{flag}: must be >= 1, got {value}")
        for name in self.strategies:
            try:
                search.make(name, population_size=self.samples_per_iteration, **self.options(name))
            except TypeError as e:
                raise ValueError(f"--strategy_options: bad value for {name}: {e}") from None
        if self.max_saved_adversarials < 0:
            raise ValueError(f"--max_saved_adversarials: must be >= 0, got {self.max_saved_adversarials}")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ValueError(f"--threshold: must be finite, got {self.threshold}")

    def options(self, strategy: str) -> dict[str, Any]:
        """Keyword options for `search.make(strategy, ...)` from entries "STRATEGY.OPTION=VALUE" (VALUE: a JSON
        number, true/false, or text), e.g. "reinforce.sigma2=0.1"."""
        options = {}
        for entry in self.strategy_options:
            target, equals, text = entry.partition("=")
            name, dot, option = target.rpartition(".")
            if not equals or not dot or not name or not option:
                raise ValueError(f"--strategy_options: malformed entry {entry!r}; expected STRATEGY.OPTION=VALUE, "
                                 "e.g. reinforce.sigma2=0.1")
            if name not in self.strategies:
                raise ValueError(f"--strategy_options: {entry!r} names {name!r}, which is not in --strategy")
            if name == strategy:
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    value = text
                options[option] = value
        return options

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict) -> "SearchConfig":
        values = dict(values)
        for key in ("strategies", "strategy_options"):
            values[key] = tuple(values.get(key, ()))
        return cls(**values)


@dataclasses.dataclass
class Setup:
    """The loaded pieces of a search (models, recognizer, space, evaluation)."""

    config: SearchConfig
    model: Any
    texture_model: Any
    recognizer: Any
    space: Any
    evaluation: Any
    cache: dict = dataclasses.field(default_factory=dict)  # jitted steps and renderers, reused across calls

    def compatible(self, config: "SearchConfig") -> None:
        """Raises ValueError unless `config` loads the same pieces this setup holds."""
        fields = ("recognizer", "threshold", "head", "texture", "space", "scenario", "supersample")
        for field in fields:
            if getattr(config, field) != getattr(self.config, field):
                raise ValueError(f"--{field}: differs from the setup's ({getattr(self.config, field)!r})")

    def renderer(self, template: str, resolution: int):
        """Cached `report.images.pair_renderer` for this head and space."""
        from simadv_jax.report.images import pair_renderer

        key = ("render", template, resolution, self.config.supersample)
        if key not in self.cache:
            self.cache[key] = pair_renderer(self.model, self.texture_model, self.space, template, resolution,
                                            self.config.supersample)
        return self.cache[key]


def load_head(head: str, texture: str):
    """(FlameModel, TextureModel) from "embedded" or file paths; errors name --head / --texture."""
    import flame

    try:
        model = flame.embedded_model() if head == "embedded" else flame.load_model(head)
    except (OSError, ValueError) as e:
        raise ValueError(f"--head={head}: {e}") from None
    try:
        texture_model = flame.embedded_texture() if texture == "embedded" else flame.load_texture(texture)
    except (OSError, ValueError) as e:
        raise ValueError(f"--texture={texture}: {e}") from None
    return model, texture_model


def build_setup(config: SearchConfig, recognizer=None, head=None) -> Setup:
    """Loads everything `config` names (a given `recognizer` record / `(model, texture)` head replaces the
    named one, for tests and notebooks) and builds the evaluation."""
    from simadv_jax import recognizers
    from simadv_jax.evaluate import check_scenario, make_evaluate
    from simadv_jax.params import ParamSpace

    config.check()
    model, texture_model = head if head is not None else load_head(config.head, config.texture)
    space = ParamSpace.parse(config.space, num_shape=model.num_shape, num_texture=texture_model.num_components,
                             num_expression=model.num_expression)
    check_scenario(space, config.scenario)
    if recognizer is None:
        try:
            recognizer = recognizers.load(config.recognizer)
        except (ImportError, OSError) as e:
            raise ValueError(f"--recognizer={config.recognizer}: {e}") from None
    evaluation = make_evaluate(space, model, texture_model, recognizer, scenario=config.scenario,
                               threshold=config.threshold, supersample=config.supersample)
    return Setup(config, model, texture_model, recognizer, space, evaluation)


def _file_name(strategy: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", strategy)


# ---- checkpoints ------------------------------------------------------------------------------

def save_checkpoint(path: str, runs: search.RunState, iteration: int) -> None:
    """RunState pytree + completed iteration count -> .npz (PRNG keys as key data), atomically."""
    arrays = {"iteration": np.asarray(iteration, np.int64)}
    for i, leaf in enumerate(jax.tree.leaves(runs)):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        arrays[f"leaf_{i:04d}"] = np.asarray(leaf)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_bytes_atomic(path, buffer.getvalue())


def load_checkpoint(path: str, template: search.RunState) -> tuple[search.RunState, int]:
    """Inverse of `save_checkpoint`; `template` (e.g. fresh `init_runs`) gives the tree structure and key types."""
    leaves, treedef = jax.tree.flatten(template)
    try:
        with np.load(path) as data:
            iteration = int(data["iteration"])
            stored = [data[f"leaf_{i:04d}"] for i in range(len(leaves))]
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"--resume: cannot read checkpoint {path}: {e}") from None
    restored = []
    for leaf, value in zip(leaves, stored):
        if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            restored.append(jax.random.wrap_key_data(jnp.asarray(value), impl=jax.random.key_impl(leaf)))
        else:
            if value.shape != leaf.shape:
                raise ValueError(f"--resume: checkpoint {path} does not match the configuration "
                                 f"(array of shape {value.shape}, expected {leaf.shape})")
            restored.append(jnp.asarray(value, leaf.dtype))
    return jax.tree.unflatten(treedef, restored), iteration


# ---- events -----------------------------------------------------------------------------------

def _finite(value: float) -> Optional[float]:
    value = float(value)
    return value if math.isfinite(value) else None


def events_records(strategy: str, iteration: int, record, runs, sign: float) -> list[dict]:
    """One events.jsonl line per run active in this iteration (host numpy inputs).

    Fields: strategy, iteration (0-based), run, queries (the run's total after it), scores (K recognizer
    similarities, null when non-finite), valid (K bools), adversarial (indices k), adversarials
    ([{k, query, rho}]), best ({k, query, rho} of the lowest valid loss, or null), done, clipped (total).
    """
    lines = []
    for r in np.flatnonzero(record.counted):
        valid = record.valid[r]
        losses = np.where(valid, record.scores[r], np.inf)
        best = int(np.argmin(losses))
        lines.append({
            "strategy": strategy,
            "iteration": iteration,
            "run": int(r),
            "queries": int(runs.queries[r]),
            "scores": [_finite(sign * s) for s in record.scores[r]],
            "valid": [bool(v) for v in valid],
            "adversarial": [int(k) for k in np.flatnonzero(record.adversarial[r])],
            "adversarials": [{"k": int(k), "query": int(record.query[r, k]), "rho": record.rho[r, k].tolist()}
                             for k in np.flatnonzero(record.adversarial[r])],
            "best": ({"k": best, "query": int(record.query[r, best]), "rho": record.rho[r, best].tolist()}
                     if np.isfinite(losses[best]) else None),
            "done": bool(runs.done[r]),
            "clipped": int(runs.clipped[r]),
        })
    return lines


def read_events(output_dir: str, completed: dict[str, int]) -> dict[str, list[dict]]:
    """Events per strategy, deduplicated by (iteration, run), only iterations < completed[strategy]."""
    seen: dict[str, dict[tuple[int, int], dict]] = {name: {} for name in completed}
    for line in read_jsonl(os.path.join(output_dir, EVENTS)):
        name = line.get("strategy")
        if name in seen and line["iteration"] < completed[name]:
            seen[name][(line["iteration"], line["run"])] = line
    return {name: [lines[k] for k in sorted(lines)] for name, lines in seen.items()}


# ---- the loop ---------------------------------------------------------------------------------

def _prepare_directory(config: SearchConfig, output_dir: str, resume: bool, flags_text: Optional[str]) -> None:
    """Checks `output_dir` against `config` and writes the config files (in the writing process only)."""
    if not devices.is_writer():
        return
    path = os.path.join(output_dir, CONFIG_JSON)
    if os.path.exists(path):
        if not resume:
            raise ValueError(f"--output_dir: {output_dir} already holds a search; pass --resume to continue it "
                             "or choose another directory")
        with open(path) as f:
            previous = SearchConfig.from_json(json.load(f))
        for field in dataclasses.fields(SearchConfig):
            if field.name in RESUMABLE_CHANGES:
                continue
            old, new = getattr(previous, field.name), getattr(config, field.name)
            if old != new:
                flag = "strategy" if field.name == "strategies" else field.name
                raise ValueError(f"--{flag}: --resume needs the same value as the run in {output_dir} "
                                 f"({old!r}), got {new!r}")
    elif resume:
        raise ValueError(f"--resume: {output_dir} holds no search to resume (no {CONFIG_JSON})")
    os.makedirs(os.path.join(output_dir, CHECKPOINTS), exist_ok=True)
    write_json_atomic(path, config.to_json())
    if flags_text is not None:
        write_bytes_atomic(os.path.join(output_dir, CONFIG_FLAGS), flags_text.encode())


def run_strategy(setup: Setup, config: SearchConfig, name: str, output_dir: str,
                 progress=None) -> tuple[search.RunState, int, float]:
    """Runs (or resumes) one strategy to max_iterations or until every run is done.

    Returns (final RunState, completed iterations, seconds spent in this call's loop).
    """
    evaluation = setup.evaluation
    strategy = search.make(name, population_size=config.samples_per_iteration, **config.options(name))
    runs = search.init_runs(strategy, jax.random.key(config.seed), setup.space.lows, setup.space.highs,
                            num_runs=config.runs)
    checkpoint = os.path.join(output_dir, CHECKPOINTS, _file_name(name) + ".npz")
    iteration = 0
    if os.path.exists(checkpoint):
        runs, iteration = load_checkpoint(checkpoint, runs)

    data = evaluation.data
    replicated = None if evaluation.mesh is None else NamedSharding(evaluation.mesh, PartitionSpec())
    if replicated is not None:  # global arrays on every device (of every process), as each step returns them
        data, runs = jax.jit(lambda tree: tree, out_shardings=replicated)((data, runs))
    key = ("step", name, config.samples_per_iteration, config.stop_at_first, json.dumps(config.options(name)))
    if key not in setup.cache:
        @functools.partial(jax.jit, out_shardings=replicated)  # every process reads the whole state and record
        def step(data, runs):
            evaluate_fn = lambda rho: evaluation.apply(data, rho)  # noqa: E731
            return search.step(strategy, runs, evaluate_fn, threshold=evaluation.threshold,
                               stop_at_first=config.stop_at_first)

        setup.cache[key] = step
    # Compiled ahead, so that under jax.distributed the processes meet at the barrier with compilation behind
    # them and enter the first step's collectives together.
    step = setup.cache[key].lower(data, runs).compile()
    devices.barrier(f"search {name}")

    events = os.path.join(output_dir, EVENTS)
    writer = devices.is_writer()
    start = time.perf_counter()
    saved = iteration
    try:
        while iteration < config.max_iterations and not bool(np.all(np.asarray(runs.done))):
            new_runs, record = step(data, runs)
            record, host_runs = jax.device_get((record, new_runs))
            if writer:
                append_jsonl_many(events, events_records(name, iteration, record, host_runs, evaluation.sign))
            runs, iteration = new_runs, iteration + 1
            if iteration % config.checkpoint_every == 0 and writer:
                save_checkpoint(checkpoint, runs, iteration)
                saved = iteration
            if progress is not None:
                progress(name, iteration, host_runs, int(np.sum(record.counted)) * config.samples_per_iteration)
    finally:  # also on Ctrl-C: keep what the completed iterations computed
        if saved != iteration and writer:
            save_checkpoint(checkpoint, runs, iteration)
    return runs, iteration, time.perf_counter() - start


class _Progress:
    """tqdm bar over strategies x iterations: runs done, adversarials, queries/s."""

    def __init__(self, config: SearchConfig, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=len(config.strategies) * config.max_iterations, unit="it", dynamic_ncols=True)
        self.queries, self.start = 0, None

    def __call__(self, name, iteration, runs, queries):
        if self.start is None:  # the rate counts from the first finished iteration (after compilation)
            self.start = time.perf_counter()
        else:
            self.queries += queries
        if self.bar is not None:
            self.bar.update(1)
            rate = self.queries / max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix_str(f"{name} it {iteration} runs done {int(np.sum(runs.done))}/{len(runs.done)} "
                                     f"adv {int(np.sum(runs.adversarials))} q/s {rate:.1f}")

    def skip(self, count):
        if self.bar is not None:
            self.bar.update(count)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run_search(config: SearchConfig, output_dir: str, *, resume: bool = False, flags_text: Optional[str] = None,
               setup: Optional[Setup] = None) -> dict:
    """Runs every strategy of `config` into `output_dir` and writes all outputs; returns results.json's payload
    (in processes other than `devices.is_writer()`'s: {}, and they write nothing).

    setup: optional, from `build_setup` (reused across calls, with its compiled functions); by default built
      from `config`.
    Raises ValueError naming the flag for bad configuration, and for an existing run directory without `resume`.
    """
    from simadv_jax.report.outputs import write_outputs

    config.check()
    if setup is None:
        setup = build_setup(config)
    setup.compatible(config)
    _prepare_directory(config, output_dir, resume, flags_text)
    devices.barrier("run directory checked")  # the others read checkpoints only after process 0 checked them
    progress = _Progress(config, config.progress and devices.is_writer())
    finals, completed, seconds = {}, {}, {}
    try:
        for name in config.strategies:
            runs, iteration, spent = run_strategy(setup, config, name, output_dir, progress)
            progress.skip(config.max_iterations - iteration)
            finals[name], completed[name], seconds[name] = jax.device_get(runs), iteration, spent
    finally:
        progress.close()
    if not devices.is_writer():
        return {}
    events = read_events(output_dir, completed)
    return write_outputs(setup, config, output_dir, finals, events, completed, seconds)

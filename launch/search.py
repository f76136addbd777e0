"""Adversarial search: `python -m launch.search --flagfile=launch/configs/quickstart.flags --output_dir=DIR`.

Runs each --strategy (same seeds) and writes DIR/{config.flags, events.jsonl, results.json, table.md,
adversarials.png, trajectories.png, sequence.png, report.html, adversarials/}; see
simadv_jax.search.experiment. --resume continues DIR (Ctrl-C loses nothing already computed).
"""
from __future__ import annotations

import json
import os
import time

from absl import app, flags

from launch import cli
from simadv_jax import devices
from simadv_jax.search.config import SearchConfig
from simadv_jax.search.experiment import Progress, Watchdog, run_search

_D = SearchConfig()
STRATEGY = flags.DEFINE_list("strategy", list(_D.strategies), "Strategies, comma-separated for a side-by-side run: "
                             "reinforce (the paper's), reinforce_ranked, uniform, gaussian, random_opt, cem, "
                             "gradient (white-box: follows the loss's gradient), evosax:<Algorithm> (e.g. "
                             "evosax:CMA_ES).")
STRATEGY_OPTIONS = flags.DEFINE_list(
    "strategy_options", [], "Strategy options as STRATEGY.OPTION=VALUE, comma-separated, e.g. "
    "'reinforce.sigma2=0.05,reinforce.learning_rate=0.1,reinforce.baseline=moving_average,random_opt.incumbent_init=random'.")
RUNS = flags.DEFINE_integer("runs", _D.runs, "R, independent runs per strategy.")
SAMPLES = flags.DEFINE_integer("samples_per_iteration", _D.samples_per_iteration, "K, samples per run and iteration.")
MAX_ITERATIONS = flags.DEFINE_integer("max_iterations", _D.max_iterations, "Iterations per run at most.")
STOP_AT_FIRST = flags.DEFINE_boolean("stop_at_first", _D.stop_at_first,
                                     "A run stops at its first adversarial (else it collects all until the budget).")
SEED = flags.DEFINE_integer("seed", _D.seed, "Random seed (run r uses fold_in(seed, r) in every strategy).")
RECOGNIZER = flags.DEFINE_string("recognizer", _D.recognizer, "Recognizer: dlib_resnet, dlib_reference, "
                                 "<backbone>:<checkpoint dir>.")
THRESHOLD = flags.DEFINE_float("threshold", None, "Decision threshold on the score (default: the recognizer's).")
HEAD = flags.DEFINE_string("head", _D.head, "Head model: 'embedded' or a FLAME file (generic_model.pkl or .npz).")
TEXTURE = flags.DEFINE_string("texture", _D.texture, "Albedo model: 'embedded' or a FLAME/BFM texture file.")
SPACE = flags.DEFINE_string("space", _D.space, "Searched parameters (see simadv_jax.params), e.g. "
                            "'shape[0:15]=-2:2,texture[0:15]=-2:2,yaw=-1:1'.")
SCENARIO = flags.DEFINE_enum("scenario", _D.scenario, ["genuine", "impostor"],
                             "genuine: hunt false non-matches; impostor: hunt false matches (needs ref.shape/texture).")
SUPERSAMPLE = flags.DEFINE_integer("supersample", _D.supersample, "Anti-aliasing factor of the renders.")
ALIGNMENT = flags.DEFINE_enum("alignment", _D.alignment, ["oracle", "pipeline"],
                              "oracle: render straight into the recognizer's aligned crop; pipeline: render a photo "
                              "and crop it as deployed dlib does (face box -> 5-point shape predictor -> 150x150 "
                              "chip; dlib's recognizers only); a face not acquired is counted apart (invalid).")
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Run directory (required).")
RESUME = flags.DEFINE_boolean("resume", False, "Continue the search in --output_dir.")
RESCORE_WITH = flags.DEFINE_string("rescore_with", None, "Re-score saved adversarials with this recognizer "
                                   "(e.g. dlib_reference) and report the fraction still adversarial.")
TRANSFER_TO = flags.DEFINE_list("transfer_to", [], "Recognizers to re-score the saved adversarials with, "
                                "comma-separated (e.g. faceres_deep,mobileface): results.json's transfer matrix "
                                "(fraction still adversarial per strategy and target), printed at the end.")
CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", _D.checkpoint_every, "Checkpoint every N iterations.")
MAX_SAVED = flags.DEFINE_integer("max_saved_adversarials", _D.max_saved_adversarials,
                                 "Adversarial pairs saved as PNG + JSON (all are listed in results.json).")
PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar.")
ESTIMATE = flags.DEFINE_boolean("estimate_failure_rate", _D.estimate_failure_rate,
                                "After the search, estimate P(adversarial) under the space's uniform distribution "
                                "with a 95% interval, by importance sampling around the adversarials found "
                                "(results.json's failure_rate).")
ESTIMATE_QUERIES = flags.DEFINE_integer("estimate_queries", _D.estimate_queries,
                                        "Samples the failure-rate estimate evaluates (beyond the search's).")
CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 0, "JAX devices on a CPU (0: one per core); the batch is "
                                   "sharded over them. XLA_FLAGS=--xla_force_host_platform_device_count wins.")
NUM_HOSTS = flags.DEFINE_integer("num_hosts", 1, "Processes of a multi-host search (jax.distributed); every host "
                                 "runs the same command with its --host_index, and only host 0 writes.")
HOST_INDEX = flags.DEFINE_integer("host_index", 0, "This process's index in [0, --num_hosts).")
WATCHDOG_FLOOR = flags.DEFINE_float("watchdog_floor_s", 300.0, "A step that runs 20x longer than any before it, and "
                                    "at least this many seconds, is taken as hung: the search stops with a message "
                                    "(the checkpoint stays intact). 0 disables the watchdog.")
COORDINATOR = flags.DEFINE_string("coordinator", None, "host:port of process 0's coordinator (--num_hosts > 1; "
                                  "or JAX_COORDINATOR_ADDRESS).")
_DEVICE_FLAGS = ("cpu_devices", "num_hosts", "host_index", "coordinator", "watchdog_floor_s")


def _flags_text() -> str:
    skipped = ("resume", "output_dir") + _DEVICE_FLAGS  # where it ran, not what it computes
    names = [f.name for f in flags.FLAGS.get_key_flags_for_module(__name__) if f.name not in skipped]
    return "".join(flags.FLAGS[name].serialize() + "\n" for name in names if flags.FLAGS[name].value is not None)


def config_from_flags() -> SearchConfig:
    """The SearchConfig the parsed flags describe."""
    return SearchConfig(
        strategies=tuple(STRATEGY.value), strategy_options=tuple(STRATEGY_OPTIONS.value), runs=RUNS.value,
        samples_per_iteration=SAMPLES.value, max_iterations=MAX_ITERATIONS.value, stop_at_first=STOP_AT_FIRST.value,
        seed=SEED.value,
        recognizer=RECOGNIZER.value, threshold=THRESHOLD.value, head=HEAD.value, texture=TEXTURE.value,
        space=SPACE.value, scenario=SCENARIO.value, supersample=SUPERSAMPLE.value, alignment=ALIGNMENT.value,
        rescore_with=RESCORE_WITH.value,
        transfer_to=tuple(TRANSFER_TO.value),
        checkpoint_every=CHECKPOINT_EVERY.value, max_saved_adversarials=MAX_SAVED.value, progress=PROGRESS.value,
        estimate_failure_rate=ESTIMATE.value, estimate_queries=ESTIMATE_QUERIES.value)


class ProgressBar:
    """tqdm bar over strategies x iterations: runs done, adversarials, queries/s (from the first finished
    iteration, i.e. after compilation)."""

    def __init__(self, config: SearchConfig):
        from tqdm import tqdm

        self.bar = tqdm(total=len(config.strategies) * config.max_iterations, unit="it", dynamic_ncols=True)
        self.max_iterations = config.max_iterations
        self.queries, self.start = 0, None

    def __call__(self, event: Progress):
        position = event.strategy_index * self.max_iterations + (self.max_iterations if event.finished
                                                                 else event.iteration)
        self.bar.update(position - self.bar.n)
        if event.finished:
            return
        if self.start is None:
            self.start = time.perf_counter()
        else:
            self.queries += event.queries
        rate = self.queries / max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{event.strategy} it {event.iteration} runs done {event.runs_done}/{event.runs} "
                                 f"adv {event.adversarials} q/s {rate:.1f}")


def print_transfer(output_dir: str) -> None:
    """The transfer matrix of results.json, one row per strategy (nothing without --transfer_to)."""
    with open(os.path.join(output_dir, "results.json")) as f:
        transfer = json.load(f).get("transfer")
    if not transfer:
        return
    targets = list(transfer["targets"])
    print("transfer (fraction of saved adversarials still adversarial): strategy | " + " | ".join(targets))
    for strategy, row in transfer["matrix"].items():
        print(f"{strategy} | " + " | ".join("-" if row[t] is None else f"{row[t]:.2f}" for t in targets))


def main(argv):
    cli.check_arguments(argv, OUTPUT_DIR.value)
    cli.run(lambda: devices.configure(CPU_DEVICES.value, NUM_HOSTS.value, HOST_INDEX.value, COORDINATOR.value))
    config = cli.run(config_from_flags)
    progress = ProgressBar(config) if config.progress and devices.is_writer() else None
    watchdog = Watchdog(floor_s=WATCHDOG_FLOOR.value) if WATCHDOG_FLOOR.value > 0 else None
    cli.run(lambda: run_search(config, OUTPUT_DIR.value, resume=RESUME.value, flags_text=_flags_text(),
                               progress=progress, watchdog=watchdog, log=cli.log),
            progress=progress and progress.bar, before="the first iteration")
    if not devices.is_writer():
        return
    with open(os.path.join(OUTPUT_DIR.value, "table.md")) as f:
        print(f.read())
    print_transfer(OUTPUT_DIR.value)
    print(f"report: {os.path.join(OUTPUT_DIR.value, 'report.html')}")


if __name__ == "__main__":
    app.run(main)

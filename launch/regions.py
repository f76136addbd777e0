"""Adversarial regions and loss landscapes: `python -m launch.regions --seed_from=RUN/results.json --dims=...
--spacing=nu --output_dir=DIR` (or `--flagfile=launch/configs/paper_fig7.flags --output_dir=DIR`).

Floods the grid around a seed adversarial (or every adversarial of a search, --all_seeds) for the connected
region where the recognizer fails, optionally refines its boundary and scores a landscape over two dimensions for
several recognizers; writes DIR/{config.flags, region.npz, region.json, coverage.png, montage.png,
landscape_*.png, report.html}. --resume continues DIR from the last completed step. See simadv_jax.regions.
"""
from __future__ import annotations

import os

from absl import app, flags

from launch import cli
from simadv_jax import devices
from simadv_jax.regions.config import RegionConfig
from simadv_jax.regions.study import Progress, run_regions

_D = RegionConfig()
SEED_FROM = flags.DEFINE_string("seed_from", None, "A search's results.json whose adversarials seed the floods "
                                "(its head, space, recognizer, threshold, scenario and supersample are used "
                                "unless given).")
SEED_INDEX = flags.DEFINE_integer("seed_index", None, "Which adversarial of --seed_from (its saved index; "
                                  "default 0).")
ALL_SEEDS = flags.DEFINE_boolean("all_seeds", False, "Flood from every adversarial of --seed_from, skipping seeds "
                                 "inside a region already found.")
SEED = flags.DEFINE_list("seed", [], "The seed as NAME=VALUE for every dimension of --space, e.g. "
                         "'shape[0]=0.5,texture[0]=-1'.")
HEAD = flags.DEFINE_string("head", None, "Head model: 'embedded' or a FLAME file (default: the run's, else embedded).")
TEXTURE = flags.DEFINE_string("texture", None, "Albedo model: 'embedded' or a texture file (default: the run's).")
SPACE = flags.DEFINE_string("space", None, "Parameter space (see simadv_jax.params; default: the run's).")
RECOGNIZER = flags.DEFINE_string("recognizer", None, "Recognizer (default: the run's, else dlib_resnet).")
THRESHOLD = flags.DEFINE_float("threshold", None, "Decision threshold on the score (default: the run's, else the "
                               "recognizer's).")
SCENARIO = flags.DEFINE_enum("scenario", None, ["genuine", "impostor"], "Scenario (default: the run's).")
SUPERSAMPLE = flags.DEFINE_integer("supersample", None, "Anti-aliasing factor (default: the run's, else 1).")
ALIGNMENT = flags.DEFINE_enum("alignment", None, ["oracle", "pipeline"],
                              "oracle or pipeline (launch.search --alignment; default: the run's, else oracle).")
DIMS = flags.DEFINE_list("dims", [], "Flooded dimensions, e.g. 'shape[0],yaw' (or 'shape0,yaw'); default: all of "
                         "the space's; the others stay at the seed's values.")
SPACING = flags.DEFINE_list("spacing", [str(s) for s in _D.spacing], "Grid spacing nu in the space's units: one "
                            "value or one per flooded dimension.")
MAX_EVALUATIONS = flags.DEFINE_integer("max_evaluations", _D.max_evaluations, "Points scored per pass at most.")
MAX_REGION_SIZE = flags.DEFINE_integer("max_region_size", _D.max_region_size, "Region points at most (0: no limit).")
REFINE = flags.DEFINE_integer("refine", _D.refine, "After the flood, a pass at spacing nu / REFINE that scores only "
                              "near the region's boundary (1: none).")
BATCH_SIZE = flags.DEFINE_integer("batch_size", _D.batch_size, "Points per batched evaluation (B, a multiple of 8). "
                                  "A step scores at most the frontier, which in 2-3 dimensions is often smaller "
                                  "than B; raise it on a GPU or for many dimensions.")
LANDSCAPE = flags.DEFINE_list("landscape", [], "Two dimensions 'a,b': score the full grid over them (Figures 6, 7).")
LANDSCAPE_POINTS = flags.DEFINE_integer("landscape_points", _D.landscape_points, "N, landscape points per axis.")
RECOGNIZERS = flags.DEFINE_list("recognizers", [], "More recognizers for the landscape, each at its own threshold.")
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Run directory (required).")
RESUME = flags.DEFINE_boolean("resume", False, "Continue the run in --output_dir.")
PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar.")
CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 0, "JAX devices on a CPU (0: one per core); each batch is "
                                   "sharded over them.")


def _flags_text() -> str:
    skipped = ("resume", "output_dir", "cpu_devices")  # where it ran, not what it computes
    names = [f.name for f in flags.FLAGS.get_key_flags_for_module(__name__) if f.name not in skipped]
    return "".join(flags.FLAGS[name].serialize() + "\n" for name in names
                   if flags.FLAGS[name].value not in (None, []))


def config_from_flags() -> RegionConfig:
    """The RegionConfig the parsed flags describe."""
    try:
        spacing = tuple(float(s) for s in SPACING.value)
    except ValueError:
        raise ValueError(f"--spacing: expected numbers, got {','.join(SPACING.value)}") from None
    return RegionConfig(
        seed_from=SEED_FROM.value, seed_index=SEED_INDEX.value, all_seeds=ALL_SEEDS.value, seed=tuple(SEED.value),
        head=HEAD.value, texture=TEXTURE.value, space=SPACE.value, recognizer=RECOGNIZER.value,
        threshold=THRESHOLD.value, scenario=SCENARIO.value, supersample=SUPERSAMPLE.value, alignment=ALIGNMENT.value,
        dims=tuple(DIMS.value),
        spacing=spacing, max_evaluations=MAX_EVALUATIONS.value, max_region_size=MAX_REGION_SIZE.value,
        refine=REFINE.value, batch_size=BATCH_SIZE.value, landscape=tuple(LANDSCAPE.value),
        landscape_points=LANDSCAPE_POINTS.value, recognizers=tuple(RECOGNIZERS.value), progress=PROGRESS.value)


class ProgressBar:
    """tqdm bar over points scored (all passes): seed, pass, region points, frontier."""

    def __init__(self):
        from tqdm import tqdm

        self.bar, self.where, self.before, self.last = tqdm(unit="pt", dynamic_ncols=True), None, 0, 0

    def __call__(self, event: Progress):
        if (event.seed_index, event.stage) != self.where:  # a new pass: its count starts again
            self.where, self.before, self.last = (event.seed_index, event.stage), self.before + self.last, 0
        self.last = event.evaluations
        self.bar.update(self.before + self.last - self.bar.n)
        self.bar.set_postfix_str(f"seed {event.seed_index + 1}/{event.seeds} {event.stage} region "
                                 f"{event.region_size} frontier {event.frontier}")


def main(argv):
    cli.check_arguments(argv, OUTPUT_DIR.value)
    cli.run(lambda: devices.configure(CPU_DEVICES.value))
    config = cli.run(config_from_flags)
    progress = ProgressBar() if config.progress else None
    results = cli.run(lambda: run_regions(config, OUTPUT_DIR.value, resume=RESUME.value, flags_text=_flags_text(),
                                          progress=progress, log=cli.log),
                      progress=progress and progress.bar, before="the first flood step")
    for region in results["regions"]:
        print(f"region {region['index']}: {region['size']} points, {region['evaluations']} evaluations")
        print("\n".join(f"  {line}" for line in region["summary"]))
    print(f"report: {os.path.join(OUTPUT_DIR.value, 'report.html')}")


if __name__ == "__main__":
    app.run(main)

"""Parameter sweep across recognizers: `python -m launch.sweep --param=yaw --range=-1,1 --steps=41
--recognizers=dlib_resnet,mobilefacenet:runs/w/train/normal --output_dir=DIR`.

Writes DIR/{config.flags, config.json, checkpoints/, sweep.npz, sweep.json, table.md, sweep.png or
failure_maps.png}; see simadv_jax.sweep. --resume continues DIR (Ctrl-C loses no completed chunk).
"""
from __future__ import annotations

import os

from absl import app, flags

from launch import cli
from simadv_jax import devices
from simadv_jax.sweep import Progress, SweepConfig, run_sweep

_D = SweepConfig()
PARAM = flags.DEFINE_list("param", list(_D.params), "One or two swept parameters (ParamSpace names: yaw, pitch, "
                          "roll, jaw, expression[i], light_azimuth, shape[i], ref.yaw, ...; texture0 = texture[0]).")
RANGE = flags.DEFINE_list("range", [str(v) for v in _D.ranges], "LO,HI per swept parameter (paper units).")
STEPS = flags.DEFINE_list("steps", [str(v) for v in _D.steps], "Grid values per parameter (one applies to all).")
FIXED = flags.DEFINE_string("fixed", _D.fixed, "Fixed values of other parameters as --space entries, e.g. "
                            "'pitch=0.1,ref.light_intensity=0.5'.")
IDENTITIES = flags.DEFINE_string("identities", _D.identities, "grid:K (K x K over shape[0], texture[0] in "
                                 "[-1, 1] sigma; the paper's grid:5) or random:N.")
COMPONENTS = flags.DEFINE_integer("identity_components", _D.identity_components,
                                  "Shape and texture components of random identities.")
RECOGNIZERS = flags.DEFINE_list("recognizers", list(_D.recognizers), "Recognizers: dlib_resnet, dlib_reference, "
                                "<backbone>:<training dir>; each at its own threshold.")
LABELS = flags.DEFINE_list("labels", [], "Names of the recognizers in the outputs (default: --recognizers).")
HEAD = flags.DEFINE_string("head", _D.head, "Head model: 'embedded' or a FLAME file.")
TEXTURE = flags.DEFINE_string("texture", _D.texture, "Albedo model: 'embedded' or a FLAME/BFM texture file.")
SUPERSAMPLE = flags.DEFINE_integer("supersample", _D.supersample, "Anti-aliasing factor of the renders.")
ALIGNMENT = flags.DEFINE_enum("alignment", _D.alignment, ["oracle", "pipeline"],
                              "oracle: render straight into each recognizer's aligned crop; pipeline: render a "
                              "photo and crop it as deployed dlib does (face box -> 5-point shape predictor -> "
                              "150x150 chip; dlib's recognizers only); a face not acquired is a failure to acquire, "
                              "counted apart, never a false non-match.")
INTERVALS = flags.DEFINE_list("intervals", [], "LO:HI intervals of the area between curves (default: the range's "
                              "first quarter, middle half, last quarter; -1:-0.5,-0.5:0.5,0.5:1 for yaw).")
AT = flags.DEFINE_list("at", [], "Values of the paired comparisons (default: the range's ends and middle).")
ALPHA = flags.DEFINE_float("alpha", _D.alpha, "Significance level of the paired tests' flags.")
GROUP_BY = flags.DEFINE_string("group_by", "", "A varied parameter (e.g. texture[0]) whose groups get false "
                               "non-match rates with bootstrap intervals.")
GROUPS = flags.DEFINE_integer("groups", _D.groups, "Groups of --group_by (equal-width bins).")
PLOT_SCALE = flags.DEFINE_enum("plot_scale", _D.plot_scale, ["auto", "score", "margin", "rank"],
                               "Scale of the figure and table.md (auto: score when every metric is the same, "
                               "else score minus threshold).")
SEED = flags.DEFINE_integer("seed", _D.seed, "Seed of random identities and bootstrap intervals.")
CHUNK = flags.DEFINE_integer("chunk", _D.chunk, "Points scored per call and checkpoint.")
OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Run directory (required).")
RESUME = flags.DEFINE_boolean("resume", False, "Continue the sweep in --output_dir.")
PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar.")
CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 0, "JAX devices on a CPU (0: one per core).")


def _flags_text() -> str:
    skipped = ("resume", "output_dir", "cpu_devices")
    names = [f.name for f in flags.FLAGS.get_key_flags_for_module(__name__) if f.name not in skipped]
    return "".join(flags.FLAGS[name].serialize() + "\n" for name in names if flags.FLAGS[name].value is not None)


def _numbers(flag, kind):
    try:
        return tuple(kind(v) for v in flag.value)
    except ValueError:
        raise SystemExit(f"error: --{flag.name}: expected numbers, got {','.join(flag.value)}") from None


def config_from_flags() -> SweepConfig:
    """The SweepConfig the parsed flags describe."""
    return SweepConfig(
        params=tuple(PARAM.value), ranges=_numbers(RANGE, float), steps=_numbers(STEPS, int), fixed=FIXED.value,
        identities=IDENTITIES.value, identity_components=COMPONENTS.value, recognizers=tuple(RECOGNIZERS.value),
        labels=tuple(LABELS.value), head=HEAD.value, texture=TEXTURE.value, supersample=SUPERSAMPLE.value,
        alignment=ALIGNMENT.value, intervals=tuple(INTERVALS.value), at=_numbers(AT, float), alpha=ALPHA.value,
        group_by=GROUP_BY.value, groups=GROUPS.value, plot_scale=PLOT_SCALE.value, seed=SEED.value, chunk=CHUNK.value,
        progress=PROGRESS.value)


class ProgressBar:
    """tqdm bar over recognizers x points."""

    def __init__(self, config: SweepConfig):
        from tqdm import tqdm

        self.bar = tqdm(total=0, unit="pt", dynamic_ncols=True)
        self.count = len(config.recognizers)

    def __call__(self, event: Progress):
        self.bar.total = self.count * event.total
        self.bar.update(event.index * event.total + event.done - self.bar.n)
        self.bar.set_postfix_str(f"{event.label} {event.done}/{event.total}")


def main(argv):
    cli.check_arguments(argv, OUTPUT_DIR.value)
    cli.run(lambda: devices.configure(CPU_DEVICES.value))
    config = cli.run(config_from_flags)
    progress = ProgressBar(config) if config.progress else None
    payload = cli.run(lambda: run_sweep(config, OUTPUT_DIR.value, resume=RESUME.value, flags_text=_flags_text(),
                                        progress=progress, log=cli.log),
                      progress=progress and progress.bar, before="the first point")
    print("\n".join(payload["summary"]))
    print(f"report: {os.path.join(OUTPUT_DIR.value, 'table.md')}")


if __name__ == "__main__":
    app.run(main)

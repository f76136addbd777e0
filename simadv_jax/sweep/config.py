"""SweepConfig: everything that decides a sweep's results, one field per `launch.sweep` flag."""
from __future__ import annotations

import dataclasses
import math
import re

# Fields that may change between a run and its --resume (how it runs, not what it computes).
RESUMABLE_CHANGES = ("chunk", "progress")
PLOT_SCALES = ("auto", "score", "margin", "rank")
_COMPONENT = re.compile(r"^(ref\.)?(shape|texture|expression)(\d+)$")


def parameter_name(text: str) -> str:
    """A ParamSpace dimension name from a flag value: "texture0" is accepted for "texture[0]"."""
    text = text.strip()
    match = _COMPONENT.match(text)
    return f"{match.group(1) or ''}{match.group(2)}[{match.group(3)}]" if match else text


def _interval(text: str) -> tuple[float, float]:
    lo, colon, hi = text.partition(":")
    try:
        bounds = (float(lo), float(hi)) if colon else None
    except ValueError:
        bounds = None
    if bounds is None or not all(map(math.isfinite, bounds)) or bounds[0] >= bounds[1]:
        raise ValueError(f"--intervals: expected LO:HI with LO < HI, got {text!r}")
    return bounds


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """A sweep (flags of `launch.sweep` in brackets).

    params [--param]: one or two ParamSpace dimension names swept (e.g. "yaw", "pitch", "shape[0]", "ref.yaw").
    ranges [--range]: lo, hi per swept parameter, paper units. steps [--steps]: grid values per parameter (one
      number applies to every parameter).
    fixed [--fixed]: `--space` entries with fixed values for the other parameters, e.g. "pitch=0.1,jaw=0.2".
    identities [--identities]: "grid:K" (K x K identities over shape[0] and texture[0] in [-1, 1] sigma, the
      paper's with K = 5) or "random:N" (N draws of `identity_components` shape and texture components,
      N(0, 1) clipped to +-2, from `seed`).
    recognizers [--recognizers]: registry names, each scored at its own threshold. labels [--labels]: their
      names in the outputs (default: the registry names).
    alignment [--alignment]: "oracle" (rendered straight into each recognizer's aligned crop) or "pipeline" (a
      photo cropped as deployed dlib does; dlib's recognizers only; `evaluate.make_evaluate`): a pair whose face
      the pipeline does not acquire is a failure to acquire, invalid, never a false non-match.
    intervals [--intervals]: "LO:HI" intervals of the area between curves (default: the range's first quarter,
      middle half and last quarter; the paper's [-1, -0.5], [-0.5, 0.5], [0.5, 1] for yaw).
    at [--at]: values of the paired comparisons (default: the range's ends and middle); the nearest grid value
      is used. alpha [--alpha]: significance level of the flags.
    group_by [--group_by], groups [--groups]: a varied parameter binned into `groups` equal-width groups (each
      distinct value its own group when there are no more than that), for false non-match rates per group.
    plot_scale [--plot_scale]: the scale the figure shows ("auto": raw scores when every recognizer has the same
      metric, else score minus threshold).
    seed [--seed]: random identities and bootstrap intervals. chunk [--chunk]: points per checkpoint.
    """

    params: tuple[str, ...] = ("yaw",)
    ranges: tuple[float, ...] = (-1.0, 1.0)
    steps: tuple[int, ...] = (41,)
    fixed: str = ""
    identities: str = "grid:5"
    identity_components: int = 15
    recognizers: tuple[str, ...] = ("dlib_resnet",)
    labels: tuple[str, ...] = ()
    head: str = "embedded"
    texture: str = "embedded"
    supersample: int = 1
    alignment: str = "oracle"
    intervals: tuple[str, ...] = ()
    at: tuple[float, ...] = ()
    alpha: float = 0.01
    group_by: str = ""
    groups: int = 5
    plot_scale: str = "auto"
    seed: int = 0
    chunk: int = 256
    progress: bool = True

    def __post_init__(self):
        object.__setattr__(self, "params", tuple(parameter_name(p) for p in self.params))
        object.__setattr__(self, "group_by", parameter_name(self.group_by) if self.group_by else "")

    @property
    def names(self) -> tuple[str, ...]:
        """The recognizers' names in the outputs."""
        return self.labels or self.recognizers

    @property
    def bounds(self) -> tuple[tuple[float, float], ...]:
        """(lo, hi) per swept parameter."""
        return tuple((self.ranges[2 * i], self.ranges[2 * i + 1]) for i in range(len(self.params)))

    @property
    def grid_steps(self) -> tuple[int, ...]:
        """Grid values per swept parameter."""
        return self.steps * len(self.params) if len(self.steps) == 1 else self.steps

    @property
    def interval_bounds(self) -> tuple[tuple[float, float], ...]:
        """The (lo, hi) intervals of the area between curves (one-parameter sweeps)."""
        if self.intervals:
            return tuple(_interval(text) for text in self.intervals)
        lo, hi = self.bounds[0]
        quarter = (hi - lo) / 4
        return (lo, lo + quarter), (lo + quarter, hi - quarter), (hi - quarter, hi)

    @property
    def comparison_values(self) -> tuple[float, ...]:
        """The values of the paired comparisons (one-parameter sweeps)."""
        lo, hi = self.bounds[0]
        return self.at or (lo, (lo + hi) / 2, hi)

    def identity_kind(self) -> tuple[str, int]:
        """("grid", K) or ("random", N) from `identities`; ValueError naming --identities otherwise."""
        kind, colon, count = self.identities.partition(":")
        if kind in ("grid", "random") and colon and count.isdigit() and int(count) >= 2:
            return kind, int(count)
        raise ValueError(f"--identities: expected grid:K or random:N with K, N >= 2, got {self.identities!r}")

    def check(self) -> None:
        """Raises ValueError naming the flag of the first bad value (the space itself is checked when built)."""
        if len(self.params) not in (1, 2) or len(set(self.params)) != len(self.params):
            raise ValueError(f"--param: one or two distinct parameters, got {','.join(self.params) or 'none'}")
        if len(self.ranges) != 2 * len(self.params):
            raise ValueError(f"--range: expected LO,HI for each of {len(self.params)} parameter(s), got "
                             f"{len(self.ranges)} number(s)")
        for name, (lo, hi) in zip(self.params, self.bounds):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"--range: {name} needs finite LO < HI, got {lo}, {hi}")
        if len(self.steps) not in (1, len(self.params)) or min(self.steps) < 2:
            raise ValueError(f"--steps: one count >= 2, or one per parameter, got {list(self.steps)}")
        if not self.recognizers or len(set(self.recognizers)) != len(self.recognizers):
            raise ValueError("--recognizers: give one or more distinct recognizers")
        if self.labels and (len(self.labels) != len(self.recognizers) or len(set(self.labels)) != len(self.labels)):
            raise ValueError(f"--labels: one distinct label per recognizer ({len(self.recognizers)}), got "
                             f"{list(self.labels)}")
        self.identity_kind()
        for flag, value in (("identity_components", self.identity_components), ("supersample", self.supersample),
                            ("groups", self.groups), ("chunk", self.chunk)):
            if value < 1:
                raise ValueError(f"--{flag}: must be >= 1, got {value}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"--alpha: must be in (0, 1), got {self.alpha}")
        if self.plot_scale not in PLOT_SCALES:
            raise ValueError(f"--plot_scale: expected one of {', '.join(PLOT_SCALES)}, got {self.plot_scale!r}")
        if len(self.params) == 2:
            if self.intervals or self.at:
                raise ValueError("--intervals and --at: only for one-parameter sweeps (two parameters give "
                                 "failure-rate maps)")
            return
        lo, hi = self.bounds[0]
        for a, b in self.interval_bounds:
            if a < lo or b > hi:
                raise ValueError(f"--intervals: {a}:{b} leaves the swept range [{lo}, {hi}]")
        for value in self.comparison_values:
            if not lo <= value <= hi:
                raise ValueError(f"--at: {value} is outside the swept range [{lo}, {hi}]")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

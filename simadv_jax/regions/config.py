"""RegionConfig: everything that decides a regions run's results, one field per `launch.regions` flag."""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

from simadv_jax.regions.seeds import run_adversarials
from simadv_jax.setup import EVALUATION_FIELDS, EvaluationSpec

# Fields that may change between a run and its --resume (how it runs, not what it computes).
RESUMABLE_CHANGES = ("progress",)


@dataclasses.dataclass(frozen=True)
class RegionConfig:
    """Everything that decides a regions run (one field per `launch.regions` flag).

    The evaluation fields (head ... alignment) are None for "not given": `resolved` takes them from the
    --seed_from run, else from `setup.EvaluationSpec`'s defaults. seed_index None: 0 (unless all_seeds).
    max_region_size 0: no limit. refine: the fine pass's factor (1: no refinement).
    """

    seed_from: Optional[str] = None
    seed_index: Optional[int] = None
    all_seeds: bool = False
    seed: tuple[str, ...] = ()
    head: Optional[str] = None
    texture: Optional[str] = None
    space: Optional[str] = None
    recognizer: Optional[str] = None
    threshold: Optional[float] = None
    scenario: Optional[str] = None
    supersample: Optional[int] = None
    alignment: Optional[str] = None
    dims: tuple[str, ...] = ()
    spacing: tuple[float, ...] = (0.1,)
    max_evaluations: int = 2000
    max_region_size: int = 0
    refine: int = 1
    batch_size: int = 8
    landscape: tuple[str, ...] = ()
    landscape_points: int = 25
    recognizers: tuple[str, ...] = ()
    progress: bool = True

    def check(self) -> None:
        """Raises ValueError naming the flag of the first bad value."""
        if bool(self.seed) == bool(self.seed_from):
            raise ValueError("--seed_from / --seed: give exactly one (a search's results.json, or NAME=VALUE,...)")
        if self.all_seeds and (self.seed_index is not None or not self.seed_from):
            raise ValueError("--all_seeds: floods every adversarial of --seed_from; drop --seed_index")
        for flag, value in (("max_evaluations", self.max_evaluations), ("refine", self.refine),
                            ("batch_size", self.batch_size), ("landscape_points", self.landscape_points)):
            if value < 1:
                raise ValueError(f"--{flag}: must be >= 1, got {value}")
        if self.max_region_size < 0:
            raise ValueError(f"--max_region_size: must be >= 0 (0: no limit), got {self.max_region_size}")
        if not self.spacing or not all(math.isfinite(s) and s > 0 for s in self.spacing):
            raise ValueError(f"--spacing: every value must be finite and > 0, got {list(self.spacing)}")
        if self.landscape and (len(self.landscape) != 2 or self.landscape_points < 2):
            raise ValueError(f"--landscape: name two dimensions (with --landscape_points >= 2), got "
                             f"{','.join(self.landscape)}")
        if self.recognizers and not self.landscape:
            raise ValueError("--recognizers: only used by a --landscape; give one")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ValueError(f"--threshold: must be finite, got {self.threshold}")

    def resolved(self) -> "RegionConfig":
        """The evaluation fields filled in: from the --seed_from run's config where not given, then defaults."""
        run = run_adversarials(self.seed_from)[0] if self.seed_from else {}
        defaults = EvaluationSpec()
        values = {}
        for field in EVALUATION_FIELDS:
            given = getattr(self, field)
            values[field] = given if given is not None else run.get(field, getattr(defaults, field))
        return dataclasses.replace(self, **values)

    def to_json(self) -> dict:
        """The fields as JSON values (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

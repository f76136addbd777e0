"""SearchConfig: everything that decides an adversarial search's results, one field per `launch.search` flag."""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Optional

from simadv_jax.search import registry

# Fields that may change between a run and its --resume (they change how it runs, not what it computes).
RESUMABLE_CHANGES = ("max_iterations", "rescore_with", "transfer_to", "checkpoint_every", "progress")


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
    alignment: str = "oracle"
    rescore_with: Optional[str] = None
    transfer_to: tuple[str, ...] = ()
    checkpoint_every: int = 1
    max_saved_adversarials: int = 200
    progress: bool = True
    estimate_failure_rate: bool = False
    estimate_queries: int = 1000

    def check(self) -> None:
        """Raises ValueError naming the flag of the first bad value."""
        if not self.strategies:
            raise ValueError("--strategy: give at least one strategy")
        for name in self.strategies:
            if name not in registry.names():
                raise ValueError(f"--strategy: unknown strategy {name!r}; known: {', '.join(registry.names())}")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError(f"--strategy: a strategy is listed twice in {','.join(self.strategies)}")
        for flag, value in (("runs", self.runs), ("samples_per_iteration", self.samples_per_iteration),
                            ("max_iterations", self.max_iterations), ("supersample", self.supersample),
                            ("checkpoint_every", self.checkpoint_every), ("estimate_queries", self.estimate_queries)):
            if value < 1:
                raise ValueError(f"--{flag}: must be >= 1, got {value}")
        for name in self.strategies:
            try:
                registry.make(name, population_size=self.samples_per_iteration, **self.options(name))
            except TypeError as e:
                raise ValueError(f"--strategy_options: bad value for {name}: {e}") from None
        if self.max_saved_adversarials < 0:
            raise ValueError(f"--max_saved_adversarials: must be >= 0, got {self.max_saved_adversarials}")
        if self.threshold is not None and not math.isfinite(self.threshold):
            raise ValueError(f"--threshold: must be finite, got {self.threshold}")

    def options(self, strategy: str) -> dict[str, Any]:
        """Keyword options for `registry.make(strategy, ...)` from entries "STRATEGY.OPTION=VALUE" (VALUE: a JSON
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

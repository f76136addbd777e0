"""A regions run's resolved pieces, checked before anything is written: the flooded dimensions and spacing, the
seeds (scored: each must be adversarial), the landscape's dimensions and evaluations."""
from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Optional

import numpy as np

from simadv_jax.regions.config import RegionConfig
from simadv_jax.regions.flood import Region
from simadv_jax.regions.seeds import dimension_indices, parse_seed, run_adversarials, seeds_from_run
from simadv_jax.setup import Setup, build_setup


@dataclasses.dataclass(frozen=True, eq=False)
class Study:
    """A regions run's resolved pieces. dims: (d,) flooded dimension indices; spacing: (d,) coarse spacing;
    seeds: (S, n) float32; seed_loss: (S,) float32; landscape_dims: (2,) indices or None; evaluations: the
    landscape's {recognizer name: Evaluation} (the main one first)."""

    config: RegionConfig
    setup: Setup
    dims: np.ndarray
    spacing: np.ndarray
    seeds: np.ndarray
    seed_loss: np.ndarray
    landscape_dims: Optional[np.ndarray]
    evaluations: dict

    def full(self, seed: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(K, d) flooded values -> (K, n) float32 rho, the other dimensions at `seed`'s (n,)."""
        rho = np.tile(np.asarray(seed, np.float32), (len(points), 1))
        rho[:, self.dims] = points
        return rho

    def score_fn(self, seed: np.ndarray) -> Callable:
        """(B, d) -> (B,) losses of the flood around `seed` (NaN where invalid)."""
        def score(points):
            scores = self.setup.evaluation.score_points(self.full(seed, points))
            return np.where(scores.valid, scores.loss, np.nan)
        return score


def _seeds(config: RegionConfig, space) -> np.ndarray:
    if config.seed:
        return parse_seed(config.seed, space)[None]
    _, found = run_adversarials(config.seed_from)
    index = None if config.all_seeds else (config.seed_index or 0)
    return seeds_from_run(found, space, config.seed_from, index)


def _check_seeds(config: RegionConfig, evaluation, seeds: np.ndarray) -> np.ndarray:
    """(S,) seed losses; ValueError naming the flag when a seed is not adversarial."""
    scores = evaluation.score_points(seeds)
    for i in np.flatnonzero(~scores.adversarial):
        which = "--seed: the seed" if config.seed else (
            f"--seed_from: adversarial {i if config.all_seeds else config.seed_index or 0} of {config.seed_from}")
        why = ("renders no valid pair" if not scores.valid[i] else
               f"has loss {scores.loss[i]:.4f}, not below the threshold {evaluation.loss_threshold:.4f} (score "
               f"{scores.similarity[i]:.4f}, {evaluation.recognizer.name}'s threshold "
               f"{evaluation.similarity_threshold:.4f}, scenario {evaluation.scenario.name})")
        raise ValueError(f"{which} is not adversarial: it {why}")
    return np.where(scores.valid, scores.loss, np.nan).astype(np.float32)


def prepare(config: RegionConfig, setup: Optional[Setup] = None) -> Study:
    """Checks everything a run needs before anything is written (config resolved, `RegionConfig.resolved`)."""
    if setup is None:
        setup = build_setup(config, batch_size=config.batch_size)
    setup.compatible(config)
    space = setup.space
    dims = dimension_indices(space, config.dims, "--dims")
    if len(config.spacing) not in (1, len(dims)):
        raise ValueError(f"--spacing: give one value or one per flooded dimension ({len(dims)}), got "
                         f"{len(config.spacing)}")
    spacing = np.broadcast_to(np.asarray(config.spacing, np.float64), (len(dims),)).copy()
    landscape_dims = dimension_indices(space, config.landscape, "--landscape") if config.landscape else None
    evaluations = {setup.recognizer.name: setup.evaluation}
    for name in config.recognizers:
        if name != config.recognizer:
            evaluations[name] = setup.evaluation_for(name, "--recognizers")
    seeds = _seeds(config, space)
    return Study(config, setup, dims, spacing, seeds, _check_seeds(config, setup.evaluation, seeds), landscape_dims,
                 evaluations)


class Pass(NamedTuple):
    """One pass of a flood: stage name, its Region, seconds over every leg."""

    stage: str
    region: Region
    seconds: float

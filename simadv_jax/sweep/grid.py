"""What a sweep scores: its identities, its grid of values and the search vectors rho of every point.

Point p = (identity i, grid cell c) has rho row p = i * C + c (C cells, row-major over the swept parameters):
the identity's coefficients, the cell's values of the swept parameters, and --fixed values for everything else
(the reference image takes its defaults, i.e. frontal and neutral, unless a `ref.` entry of --fixed says
otherwise; see simadv_jax.params). A swept identity component (e.g. --param=shape[0]) replaces the identity's own.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flame.model import FlameModel, TextureModel
from simadv_jax import simulator
from simadv_jax.params import ParamSpace
from simadv_jax.setup import parse_space
from simadv_jax.sweep.config import SweepConfig

GRID_SIGMA = 1.0  # grid identities span [-GRID_SIGMA, GRID_SIGMA] of shape[0] and texture[0]
IDENTITY_BOUND = 2.0  # identity coefficients lie in +-2 sigma (the box the space declares for them)


class Plan(NamedTuple):
    """space: the ParamSpace of every point. params: the swept dimension names. identity_names: (k,) dimension
    names; identities: (I, k) float32 coefficients (sigma). axes: per swept parameter, its (V_j,) grid values.
    rho: (I * C, n) float32 points, C = prod V_j (row order in the module docstring)."""

    space: ParamSpace
    params: tuple[str, ...]
    identity_names: tuple[str, ...]
    identities: np.ndarray
    axes: tuple[np.ndarray, ...]
    rho: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        """(I, V_1[, V_2]): the layout of one recognizer's scores."""
        return (len(self.identities),) + tuple(len(axis) for axis in self.axes)

    def values(self, name: str, flag: str = "--group_by") -> np.ndarray:
        """The `shape`-shaped values of dimension `name`, an identity component or a swept parameter (else a
        ValueError naming `flag`)."""
        varied = self.identity_names + self.params
        if name not in varied:
            raise ValueError(f"{flag}: {name} is not varied by this sweep; choose one of {', '.join(varied)}")
        return self.rho[:, self.space.names.index(name)].reshape(self.shape)


def identities(config: SweepConfig) -> tuple[tuple[str, ...], np.ndarray]:
    """(names, (I, k) coefficients) of --identities: the K x K grid (shape[0] slowest) or N random draws."""
    kind, count = config.identity_kind()
    if kind == "grid":
        levels = np.linspace(-GRID_SIGMA, GRID_SIGMA, count)
        shape, texture = np.meshgrid(levels, levels, indexing="ij")
        return ("shape[0]", "texture[0]"), np.stack([shape.ravel(), texture.ravel()], 1).astype(np.float32)
    k = config.identity_components
    drawn = simulator.sample_identities(np.random.default_rng(config.seed), count, k, k)
    names = tuple(f"shape[{i}]" for i in range(k)) + tuple(f"texture[{i}]" for i in range(k))
    return names, np.concatenate([drawn.shape, drawn.albedo], 1)


def build_plan(config: SweepConfig, model: FlameModel, texture_model: TextureModel) -> Plan:
    """The space and points of `config` on this head; ValueError naming the flag for a bad --param / --fixed."""
    names, values = identities(config)
    kept = [i for i, name in enumerate(names) if name not in config.params]
    names, values = tuple(names[i] for i in kept), values[:, kept]
    entries = [f"{name}=-{IDENTITY_BOUND}:{IDENTITY_BOUND}" for name in names]
    entries += [f"{name}={lo}:{hi}" for name, (lo, hi) in zip(config.params, config.bounds)]
    entries += [config.fixed] if config.fixed.strip() else []
    try:
        space = parse_space(",".join(entries), model, texture_model)
    except ValueError as e:
        raise ValueError(f"--param={','.join(config.params)} --fixed={config.fixed}: {e}") from None
    for name in config.params:
        if name not in space.names:
            raise ValueError(f"--param: {name} is not one parameter; name one dimension, e.g. yaw or shape[0]")
    extra = sorted(set(space.names) - set(names) - set(config.params))
    if extra:
        raise ValueError(f"--fixed: {', '.join(extra)} given as ranges; --fixed takes values, e.g. pitch=0.1")
    axes = tuple(np.linspace(lo, hi, n).astype(np.float32) for (lo, hi), n in zip(config.bounds, config.grid_steps))
    cells = [grid.ravel() for grid in np.meshgrid(*axes, indexing="ij")]
    count = len(values)
    columns = {name: np.repeat(values[:, j], cells[0].size) for j, name in enumerate(names)}
    columns.update({name: np.tile(cell, count) for name, cell in zip(config.params, cells)})
    rho = np.stack([columns[name] for name in space.names], axis=1).astype(np.float32)
    return Plan(space, config.params, names, values, axes, rho)

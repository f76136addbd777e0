"""Where floods start: seeds named on the command line or read from a search's results.json, the flooded
dimensions, and floods from several seeds that share regions."""
from __future__ import annotations

import re
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

from simadv_jax.params import ParamSpace
from simadv_jax.regions.flood import Region, keys
from simadv_jax.report.files import read_json_object

_SHORT = re.compile(r"^(ref\.)?(shape|texture|expression)(\d+)$")


def dimension_index(space: ParamSpace, name: str, flag: str) -> int:
    """The index of dimension `name` in the space ("shape[0]", or the short "shape0"); ValueError naming `flag`."""
    full = _SHORT.sub(r"\1\2[\3]", name.strip())
    if full not in space.names:
        raise ValueError(f"{flag}: {name!r} is not a dimension of the space {space.spec!r}; its dimensions: "
                         f"{', '.join(space.names)}")
    return space.names.index(full)


def dimension_indices(space: ParamSpace, names: Sequence[str], flag: str) -> np.ndarray:
    """(d,) int indices of `names` (all of the space's dimensions when empty); no name twice."""
    if not names:
        return np.arange(space.size)
    indices = [dimension_index(space, name, flag) for name in names]
    if len(set(indices)) != len(indices):
        raise ValueError(f"{flag}: a dimension is named twice in {','.join(names)}")
    return np.asarray(indices)


def parse_seed(entries: Sequence[str], space: ParamSpace) -> np.ndarray:
    """--seed entries "name=value" (every dimension of the space) -> (n,) float32 rho inside the box."""
    values = {}
    for entry in entries:
        name, equals, text = entry.partition("=")
        if not equals:
            raise ValueError(f"--seed: malformed entry {entry!r}; expected NAME=VALUE, e.g. yaw=0.8")
        index = dimension_index(space, name, "--seed")
        try:
            values[space.names[index]] = float(text)
        except ValueError:
            raise ValueError(f"--seed: entry {entry!r}: {text!r} is not a number") from None
    try:
        rho = space.from_dict(values)
    except ValueError as e:
        raise ValueError(f"--seed: {e}") from None
    outside = [f"{n}={v:g} (range [{lo:g}, {hi:g}])" for n, v, lo, hi in zip(space.names, rho, space.lows, space.highs)
               if not lo <= v <= hi]
    if outside or not np.all(np.isfinite(rho)):
        raise ValueError(f"--seed: outside the space: {', '.join(outside) or 'a value is not finite'}")
    return rho


def run_adversarials(path: str) -> tuple[dict, list[dict]]:
    """A search's results.json -> (its config, every adversarial's named params in saved-index order)."""
    results = read_json_object(path, "--seed_from")
    try:
        config = results["config"]
        found = [entry["params"] for summary in results["strategies"].values() for entry in summary["adversarials"]]
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"--seed_from: {path} is not a search's results.json (missing {e})") from None
    return config, found


def seeds_from_run(found: list[dict], space: ParamSpace, path: str, index: Optional[int]) -> np.ndarray:
    """(S, n) float32 seeds: the adversarial `index` of a run (`run_adversarials`), or all of them (None)."""
    if not found:
        raise ValueError(f"--seed_from: {path} lists no adversarial")
    if index is not None and not 0 <= index < len(found):
        raise ValueError(f"--seed_index: {index} is not in [0, {len(found)}) (the adversarials of {path})")
    chosen = found if index is None else [found[index]]
    try:
        return np.stack([space.from_dict(params) for params in chosen])
    except ValueError as e:
        raise ValueError(f"--seed_from: {path}: {e}") from None


def contains(region: Region, points: np.ndarray) -> np.ndarray:
    """(K, n) points in the region's dimensions -> (K,) bool, the nearest grid point is in the region."""
    members = set(keys(region.coords))
    nearest = np.rint((np.asarray(points, np.float64) - region.seed) / region.spacing).astype(np.int32)
    return np.asarray([key in members for key in keys(nearest)], bool)


class Distinct(NamedTuple):
    """One distinct region: seed_index (the seed it was flooded from), region, seeds (every seed inside it)."""

    seed_index: int
    region: Region
    seeds: list


def distinct_regions(flood: Callable[[int], Region], seeds: np.ndarray,
                     slices: Optional[Sequence] = None) -> list[Distinct]:
    """Floods from each seed in order (`flood(i)` -> the Region of seed i, (S, d) `seeds`), skipping a seed that
    lies inside an earlier region of its slice (`slices`: (S,) labels of the values the flood holds fixed;
    regions of different slices never share a seed)."""
    slices = [0] * len(seeds) if slices is None else list(slices)
    found: list[Distinct] = []
    for i, seed in enumerate(np.asarray(seeds)):
        home = next((d for d in found if slices[d.seed_index] == slices[i] and contains(d.region, seed[None])[0]),
                    None)
        if home is None:
            found.append(Distinct(i, flood(i), [i]))
        else:
            home.seeds.append(i)
    return found

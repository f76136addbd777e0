"""A region in the user's words: per dimension its extent in named parameter units, its volume and share of the
searched box, its boundary, and a short summary ("fails for yaw >= 0.71 whenever shape[0] <= 0.40")."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from simadv_jax.regions.flood import Region, make_grid


def _condition(name: str, entry: dict) -> str:
    """The region's extent along one dimension as an inequality ('' when it spans the whole searched range)."""
    if entry["reaches_low"] and entry["reaches_high"]:
        return ""
    if entry["min"] == entry["max"]:
        return f"{name} = {entry['min']:.2f}"
    if entry["reaches_high"]:
        return f"{name} >= {entry['min']:.2f}"
    if entry["reaches_low"]:
        return f"{name} <= {entry['max']:.2f}"
    return f"{entry['min']:.2f} <= {name} <= {entry['max']:.2f}"


def _summary(found: dict, names: Sequence[str]) -> list[str]:
    extent = found["extent"]
    order = sorted(names, key=lambda name: extent[name]["fraction_of_range"])
    conditions = [c for c in (_condition(name, extent[name]) for name in order) if c]
    free = [name for name in order if not _condition(name, extent[name])]
    if conditions:
        first = f"Fails for {conditions[0]}" + (f" whenever {' and '.join(conditions[1:])}" if conditions[1:] else "")
    else:
        first = "Fails in a region reaching both ends of every flooded dimension's searched range"
    points = f"{found['size']} grid point{'' if found['size'] == 1 else 's'}"
    lines = [f"{first} (the extent of the {points} connected to the seed)."]
    if free and conditions:
        lines.append(f"{', '.join(free)} span{'s' if len(free) == 1 else ''} the whole searched range.")
    lines.append(f"Volume {found['volume']:.3g} (points x spacing^{len(names)}), {100 * found['fraction_of_box']:.1f}% "
                 f"of the searched box; the region fills {100 * found['bounding_box_fill']:.0f}% of its bounding box.")
    lines.append(f"Boundary: {found['boundary']['size']} region points next to a point where the recognizer "
                 f"recovers ({found['outside']} such points scored).")
    if found["stopped_by"]:
        lines.append(f"The {found['stopped_by']} budget stopped the flood: the region may extend further.")
    return lines


def describe(region: Region, names: Sequence[str], lows, highs) -> dict:
    """The region of a flood over dimensions `names` searched in [lows, highs] (d,), as plain data.

    Returns {"size", "volume" (points x prod(spacing)), "searched_volume", "fraction_of_box", "bounding_box_fill"
    (points / grid points of the region's bounding box), "extent": {name: {"min", "max", "searched": [lo, hi],
    "fraction_of_range", "reaches_low", "reaches_high" (the region reaches that end of the searched range)}},
    "boundary": {"size", "extent": {name: [min, max]}}, "outside" (scored points just outside), "stopped_by",
    "summary": [lines]}.
    """
    lows, highs = np.asarray(lows, np.float64), np.asarray(highs, np.float64)
    grid = make_grid(region.seed, region.spacing, lows, highs)
    volume = region.size * float(np.prod(region.spacing))
    searched = float(np.prod(highs - lows))
    found = {"size": region.size, "volume": volume, "searched_volume": searched, "fraction_of_box": volume / searched,
             "outside": int(len(region.outside_coords)), "stopped_by": region.stopped_by,
             "boundary": {"size": int(region.boundary.sum()),
                          "extent": {name: [float(region.points[region.boundary, d].min()),
                                            float(region.points[region.boundary, d].max())]
                                     for d, name in enumerate(names)} if region.boundary.any() else {}}}
    if not region.size:
        return {**found, "bounding_box_fill": 0.0, "extent": {}, "summary": ["The seed is not in the region."]}
    low, high = region.coords.min(axis=0), region.coords.max(axis=0)
    found["bounding_box_fill"] = region.size / float(np.prod((high - low + 1).astype(np.float64)))
    found["extent"] = {
        name: {"min": float(region.points[:, d].min()), "max": float(region.points[:, d].max()),
               "searched": [float(lows[d]), float(highs[d])],
               "fraction_of_range": float((region.points[:, d].max() - region.points[:, d].min())
                                          / (highs[d] - lows[d])),
               "reaches_low": bool(low[d] == grid.low[d]), "reaches_high": bool(high[d] == grid.high[d])}
        for d, name in enumerate(names)}
    found["summary"] = _summary(found, names)
    return found

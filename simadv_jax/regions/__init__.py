"""Adversarial regions (the paper's Algorithm 2) and loss landscapes (Figures 6 and 7).

  flood.py      flood_fill: frontier-batched BFS on a grid around a seed, exact visited set, budgets, resumable
  refine.py     refine: a finer grid paying only near a coarse region's boundary
  seeds.py      seeds from flags or a search's results.json, the flooded dimensions, distinct regions of many seeds
  describe.py   a region in named parameter units: extent, volume, boundary, summary sentences
  landscape.py  N x N loss grids over two dimensions for several recognizers
  figures.py    coverage curve, Figure 6 surface, Figure 7 heat maps, render montage (PNG bytes)
  config.py     RegionConfig: one field per `launch.regions` flag
  plan.py       a run's resolved pieces (dimensions, spacing, seeds checked adversarial, landscape evaluations)
  outputs.py    region.npz, region.json, the figures and the page of a run
  page.py       report.html of a regions run
  study.py      `python -m launch.regions`: the run directory, checkpoints, resume
"""
from simadv_jax.regions.describe import describe
from simadv_jax.regions.flood import FloodLog, Region, Step, flood_fill
from simadv_jax.regions.landscape import Landscape, landscape
from simadv_jax.regions.refine import refine
from simadv_jax.regions.seeds import contains, distinct_regions

__all__ = ["FloodLog", "Landscape", "Region", "Step", "contains", "describe", "distinct_regions", "flood_fill",
           "landscape", "refine"]

"""Parameter sweeps across recognizers: where is one recognizer weaker than another, with statistics.

For N identities (the paper's 5 x 5 grid over the first shape and texture component, or random draws), the
reference (frontal, neutral) and the probe at every value of one or two swept ParamSpace parameters are rendered
and scored by every recognizer through `Evaluation.score_points` (the batched hot path). From those scores:
mean curves with 95% bands, the area between each pair of curves over named intervals, paired t-tests and
Wilcoxon tests at chosen values, where each recognizer's mean falls below its threshold and how many identities
fail per value, failure-rate maps of two-parameter sweeps, and false non-match rates per group of a binned
parameter (`--group_by`), on the raw, margin (score minus threshold) and rank-normalised scales.

  config.py      SweepConfig (one field per `launch.sweep` flag)
  grid.py        identities, grid values and the points rho (Plan)
  stats.py       the statistics, pure numpy/scipy functions
  results.py     sweep.json's payload and sweep.npz's arrays
  experiment.py  run_sweep: the resumable run directory
"""
from simadv_jax.sweep.config import SweepConfig
from simadv_jax.sweep.experiment import Progress, run_sweep

__all__ = ["Progress", "SweepConfig", "run_sweep"]

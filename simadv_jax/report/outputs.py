"""The report files of a search, written from plain data: figures, table.md, report.html and results.json."""
from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from simadv_jax.report import html, plots
from simadv_jax.report.files import write_bytes_atomic, write_json_atomic
from simadv_jax.report.table import table_markdown

ADVERSARIALS_DIR = "adversarials"


class PairTile(NamedTuple):
    """One reference/probe pair of the grid: (R, R, 3) float images, a title, and whether the recognizer errs."""

    reference: np.ndarray
    probe: np.ndarray
    title: str
    wrong: bool


class RunSequence(NamedTuple):
    """One run over time: probe frames (R, R, 3) with titles, and every valid sample's (iteration, score)."""

    frames: list
    titles: list
    iterations: list
    scores: list
    name: str


def write_search_report(output_dir: str, results: dict, grid: list[PairTile], curves: dict[str, list[np.ndarray]],
                        sequence: RunSequence) -> None:
    """adversarials.png, trajectories.png, sequence.png, where_it_breaks.png, table.md, report.html, then (last)
    results.json.

    results: the results.json payload; its `recognizer.threshold` is the similarity threshold drawn in figures.
    curves: per strategy, per run, the iteration's best similarity.
    """
    threshold = results["recognizer"]["threshold"]
    write_bytes_atomic(os.path.join(output_dir, "adversarials.png"), plots.pairs_figure(
        [g.reference for g in grid], [g.probe for g in grid], [g.title for g in grid], [g.wrong for g in grid]))
    write_bytes_atomic(os.path.join(output_dir, "trajectories.png"),
                       plots.trajectories_figure(curves, threshold, "best score of the iteration"))
    write_bytes_atomic(os.path.join(output_dir, "sequence.png"), plots.sequence_figure(
        sequence.frames, sequence.titles, sequence.iterations, sequence.scores, threshold, sequence.name))
    write_bytes_atomic(os.path.join(output_dir, "where_it_breaks.png"), plots.where_it_breaks_figure(results))
    write_bytes_atomic(os.path.join(output_dir, "table.md"), table_markdown(results).encode())
    write_bytes_atomic(os.path.join(output_dir, "report.html"), html.report(results).encode())
    write_json_atomic(os.path.join(output_dir, "results.json"), results)

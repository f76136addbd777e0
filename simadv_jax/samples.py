"""Saved samples (a run's `adversarials/NNNN.json`): read one back, re-render it exactly, re-score it.

A saved sample holds what decides its images - head, texture, space, the named parameters, and the view
(template, resolution, supersample, background; alignment, absent in older samples: oracle) - plus the
recognizer, scenario, threshold and score it was found with (`search.results.sample_record` writes it). Re-rendering goes through the same renderer the search scored
with (`evaluate.Renderer`), so the pixels are the saved ones.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from simadv_jax import simulator
from simadv_jax.evaluate import PairImages, PointScores, make_evaluate, make_renderer
from simadv_jax.recognizers import pipeline
from simadv_jax.report.files import read_json_object
from simadv_jax.setup import load_head, load_recognizer, parse_space

FIELDS = ("space", "params", "head", "texture", "template", "resolution", "supersample", "background")


class Sample(NamedTuple):
    """A saved sample: record (the JSON dict), rho (n,) float32, warnings (values outside the saved space)."""

    record: dict
    rho: np.ndarray
    warnings: list


def _number(path: str, field: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{path}: field '{field}': {value!r} is not a finite number")
    return float(value)


def load_sample(path: str) -> tuple[Sample, tuple]:
    """Reads and checks a saved sample. Returns (Sample, (model, texture_model, space)).

    Raises ValueError naming the file and the field for an unreadable file, a missing or malformed field, or a
    parameter the space does not have; values outside the space's range are kept and listed in `warnings`.
    """
    record = read_json_object(path, "saved sample")
    missing = [k for k in FIELDS if k not in record]
    if missing:
        raise ValueError(f"{path}: not a saved sample, missing field(s) {missing}")
    if not isinstance(record["params"], dict):
        raise ValueError(f"{path}: field 'params': expected an object of named values")
    try:
        model, texture_model = load_head(record["head"], record["texture"])
        space = parse_space(record["space"], model, texture_model)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    values = {name: _number(path, f"params.{name}", value) for name, value in record["params"].items()}
    try:
        rho = space.from_dict(values)
    except ValueError as e:
        raise ValueError(f"{path}: field 'params': {e}") from None
    warnings = [f"{path}: params.{name} = {v:g} lies outside the saved space's range [{lo:g}, {hi:g}]"
                for name, v, lo, hi in zip(space.names, rho, space.lows, space.highs) if not lo <= v <= hi]
    return Sample(record, rho, warnings), (model, texture_model, space)


def view(record: dict, path: str = "<sample>") -> simulator.View:
    """The simulator.View a sample was rendered with (with pipeline alignment, the photo's)."""
    try:
        options = dict(supersample=int(record["supersample"]),
                       background=tuple(_number(path, "background", c) for c in record["background"]))
        if record.get("alignment") == "pipeline":
            return simulator.View.photo(**options)
        return simulator.View(int(record["resolution"]), record["template"], **options)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: fields 'template'/'resolution'/'supersample'/'background': {e}") from None


def _images(sample: Sample, head: tuple, path: str) -> PairImages:
    model, texture_model, space = head
    acquisition = pipeline.load_acquisition() if sample.record.get("alignment") == "pipeline" else None
    return make_renderer(space, model, texture_model, view(sample.record, path),
                         acquisition=acquisition).images(sample.rho[None])


def rerender(path: str) -> tuple[Sample, PairImages]:
    """The saved sample at `path` and its (reference, probe) images, exactly as the search rendered them."""
    sample, head = load_sample(path)
    return sample, _images(sample, head, path)


def rescore(path: str, recognizer: Optional[str] = None) -> tuple[Sample, PairImages, PointScores, object]:
    """Re-renders the sample and scores it with `recognizer` (default: the saved one) under the saved scenario,
    in the saved view when it is that recognizer's (else in the recognizer's own template and size).
    Returns (sample, images of the saved view, scores, the Evaluation used)."""
    sample, head = load_sample(path)
    model, texture_model, space = head
    saved = view(sample.record, path)
    other = load_recognizer(recognizer or sample.record.get("recognizer") or "")
    same_view = other.template == saved.template and other.input_size == saved.resolution
    evaluation = make_evaluate(space, model, texture_model, other, scenario=sample.record.get("scenario", "genuine"),
                               resolution=saved.resolution if same_view else None, supersample=saved.supersample,
                               background=saved.background, alignment=sample.record.get("alignment", "oracle"))
    return sample, _images(sample, head, path), evaluation.score_points(sample.rho[None]), evaluation

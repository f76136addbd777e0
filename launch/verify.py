"""LFW-protocol verification of a recognizer on a pairs file.

  python -m launch.verify --recognizer=ir_cbam50:runs/casia --pairs=lfw/pairs.txt --images=lfw-112 --flip=concat

Prints (and with --output writes) the mean +- std accuracy and threshold over the folds; --save_threshold stores
the result in the checkpoint directory, where `simadv_jax.recognizers.load("NAME:DIR")` picks the threshold up
(only with --flip=none, since the Recognizer scores single unflipped images).
Images must be aligned crops for the recognizer's template (e.g. 112x112 ArcFace-aligned LFW); other sizes are
resized, not aligned.
"""
from __future__ import annotations

import json

import numpy as np
from absl import app, flags

from simadv_jax.recognizers import load, verification, zoo

_RECOGNIZER = flags.DEFINE_string("recognizer", "dlib_resnet", "Recognizer spec: dlib_resnet, ir_cbam50:WORKDIR, ...")
_PAIRS = flags.DEFINE_string("pairs", None, "Pairs file in LFW pairs.txt format.")
_IMAGES = flags.DEFINE_string("images", None, "Image root: ROOT/<name>/<name>_<4-digit number>.jpg.")
_FLIP = flags.DEFINE_enum("flip", "concat", list(verification.FLIPS), "Flip augmentation of the embeddings.")
_GRID = flags.DEFINE_float(
    "grid_step", 0.0, "0: exact midpoint thresholds; > 0: a threshold grid of this step over the score range."
)
_BATCH = flags.DEFINE_integer("verify_batch_size", 32, "Images per embedding batch.")
_OUTPUT = flags.DEFINE_string("output", None, "Optional JSON file for the result.")
_SAVE = flags.DEFINE_bool("save_threshold", False, "Store the result in the checkpoint dir of a NAME:DIR recognizer.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not _PAIRS.value or not _IMAGES.value:
        raise app.UsageError("--pairs and --images are required")
    if _SAVE.value and _FLIP.value != "none":
        raise app.UsageError("--save_threshold needs --flip=none: search scores single images, without flips")
    try:
        recognizer = load(_RECOGNIZER.value)
        pairs = verification.parse_pairs(_PAIRS.value)
        scores = verification.pair_scores(recognizer, pairs, _IMAGES.value, _FLIP.value, _BATCH.value)
        thresholds = None
        if _GRID.value > 0:
            thresholds = np.arange(scores.min(), scores.max() + _GRID.value, _GRID.value)
        result = verification.kfold_verification(scores, pairs.same, pairs.fold, thresholds)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    summary = {"recognizer": _RECOGNIZER.value, "pairs": _PAIRS.value, "flip": _FLIP.value, **result.summary()}
    print(
        f"{_RECOGNIZER.value}: accuracy {100 * result.accuracy:.2f} +- {100 * result.accuracy_std:.2f} %,"
        f" threshold {result.threshold:.4f} +- {result.threshold_std:.4f} ({pairs.num_folds} folds,"
        f" {len(pairs.same)} pairs, flip={_FLIP.value})"
    )
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w") as f:
            json.dump(summary, f, indent=2)
    if _SAVE.value:
        name, _, workdir = _RECOGNIZER.value.partition(":")
        if name not in zoo.BACKBONES or not workdir:
            raise app.UsageError("--save_threshold needs a --recognizer=BACKBONE:WORKDIR")
        print("threshold saved to", zoo.save_threshold(workdir, summary))


if __name__ == "__main__":
    app.run(main)

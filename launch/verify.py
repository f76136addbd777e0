"""LFW-protocol verification of a recognizer on a pairs file.

  python -m launch.verify --recognizer=ir_cbam50:runs/casia --pairs=lfw/pairs.txt --images=lfw-112 --flip=concat

Prints (and with --output writes) the mean +- std accuracy and threshold over the folds; --save_threshold stores
the result in the checkpoint directory, where `simadv_jax.recognizers.load("NAME:DIR")` picks the threshold up
(only with --flip=none, since the Recognizer scores single unflipped images).
Images must be aligned crops for the recognizer's template (e.g. 112x112 ArcFace-aligned LFW); other sizes are
resized, not aligned. See simadv_jax.training.verification.verify.
"""
from __future__ import annotations

from absl import app, flags

from simadv_jax.training import verification

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
    try:
        run = verification.verify(_RECOGNIZER.value, _PAIRS.value, _IMAGES.value, flip=_FLIP.value,
                                  grid_step=_GRID.value, batch_size=_BATCH.value, output=_OUTPUT.value,
                                  save=_SAVE.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    print(run.describe())
    if run.threshold_file:
        print("threshold saved to", run.threshold_file)


if __name__ == "__main__":
    app.run(main)

"""Realism report of a head (default the embedded one):
`python -m launch.realism --out=DIR [--num_identities=200] [--seed=0] [--head=embedded --texture=embedded]`.

Writes DIR/realism.json (detection rates, same-identity pass rate, ROC-AUC, random-pair accuracy in the paper's
setup, distance statistics), DIR/renders/*.png (every scored render, lossless, the pose in the name) and
DIR/contact_sheet.png (25 identities x frontal / yaw 45 / aligned yaw-30 chip) and DIR/realism.md (the whole table
per |yaw| bin, both detectors, both alignments: realism.json's `by_yaw`). See simadv_jax/realism.py.
"""
from __future__ import annotations

import json
import time

from absl import app, flags, logging

_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_NUM = flags.DEFINE_integer("num_identities", 200, "Random identities to render and score (>= 2).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of identities, lighting and pose signs.")
_HEAD = flags.DEFINE_string("head", "embedded", "Head model: 'embedded' or a FLAME file (generic_model.pkl or .npz).")
_TEXTURE = flags.DEFINE_string("texture", "embedded", "Albedo model: 'embedded' or a FLAME/BFM texture file.")


def main(argv):
    del argv
    if _NUM.value < 2:
        raise app.UsageError("--num_identities must be >= 2")
    from simadv_jax import realism
    from simadv_jax.setup import load_head, load_recognizer

    start = time.time()
    try:
        model, texture = load_head(_HEAD.value, _TEXTURE.value)
    except ValueError as e:
        raise app.UsageError(str(e))
    metrics, renders = realism.measure(model, texture, load_recognizer("dlib_resnet"), _NUM.value, _SEED.value,
                                       log=logging.info)
    metrics["model"], metrics["recognizer"] = model.name, "dlib_resnet"
    metrics["seconds"] = round(time.time() - start, 1)
    try:
        realism.write_outputs(_OUT.value, metrics, renders)
    except OSError as e:
        raise SystemExit(f"error: --out={_OUT.value}: {e.strerror or e}")
    keys = ("detection_rate_frontal", "detection_rate_yaw45", "same_identity_pass_rate", "roc_auc",
            "random_pair_accuracy", "blazeface_detection_rate_frontal", "blazeface_detection_rate_yaw45", "blazeface")
    print(json.dumps({k: metrics[k] for k in keys if k in metrics}))


if __name__ == "__main__":
    app.run(main)

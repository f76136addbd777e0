"""Realism report of the embedded head (issue 5): `python -m launch.realism --out=DIR [--num_identities=200]`.

Writes DIR/realism.json (detection rates, same-identity pass rate, ROC-AUC, random-pair accuracy in the paper's
setup, distance statistics), DIR/renders/*.png (every scored render, lossless, the pose in the name) and
DIR/contact_sheet.png (25 identities x frontal / yaw 45 / aligned yaw-30 chip). See simadv_jax/realism.py.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import app, flags, logging
from PIL import Image

import flame
from simadv_jax import realism
from simadv_jax.recognizers import load

_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_NUM = flags.DEFINE_integer("num_identities", 200, "Random identities to render and score (>= 2).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of identities, lighting and pose signs.")


def _pose_names(metrics: dict, n: int) -> dict:
    yaw45, yaw30 = metrics["yaw45_deg"], metrics["yaw30_deg"]
    return {
        "frontal": ["yaw+0"] * n, "yaw45": [f"yaw{y:+d}" for y in yaw45],
        "chip_frontal": ["chip_yaw+0"] * n, "chip_yaw30": [f"chip_yaw{y:+d}" for y in yaw30],
        "paper_frontal": ["paper_chip_yaw+0"] * n, "paper_profile": ["paper_chip_profile"] * n,
    }


def write_outputs(out: str, metrics: dict, renders: dict) -> None:
    """realism.json, renders/id{i:03d}_{pose}.png and contact_sheet.png under `out`."""
    os.makedirs(os.path.join(out, "renders"), exist_ok=True)
    n = metrics["num_identities"]
    for key, poses in _pose_names(metrics, n).items():
        for i, (image, pose) in enumerate(zip(renders[key], poses)):
            Image.fromarray(image).save(os.path.join(out, "renders", f"id{i:03d}_{key}_{pose}.png"))
    rows = []
    for i in range(min(25, n)):
        chip = np.asarray(Image.fromarray(renders["chip_yaw30"][i]).resize((realism.FRAMED_SIZE,) * 2))
        rows.append(np.concatenate([renders["frontal"][i], renders["yaw45"][i], chip], axis=1))
    columns = 5 if len(rows) >= 5 else len(rows)
    rows += [np.full_like(rows[0], 128)] * (-len(rows) % columns)
    sheet = np.concatenate([np.concatenate(rows[r:r + columns], axis=1) for r in range(0, len(rows), columns)])
    Image.fromarray(sheet).save(os.path.join(out, "contact_sheet.png"))
    with open(os.path.join(out, "realism.json"), "w") as f:
        json.dump(metrics, f, indent=1)


def main(argv):
    del argv
    if _NUM.value < 2:
        raise app.UsageError("--num_identities must be >= 2")
    start = time.time()
    metrics, renders = realism.measure(flame.embedded_model(), flame.embedded_texture(), load("dlib_resnet"),
                                       _NUM.value, _SEED.value, log=logging.info)
    metrics["model"], metrics["recognizer"] = flame.embedded_model().name, "dlib_resnet"
    metrics["seconds"] = round(time.time() - start, 1)
    write_outputs(_OUT.value, metrics, renders)
    keys = ("detection_rate_frontal", "detection_rate_yaw45", "same_identity_pass_rate", "roc_auc",
            "random_pair_accuracy")
    print(json.dumps({k: metrics[k] for k in keys}))


if __name__ == "__main__":
    app.run(main)

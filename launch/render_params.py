"""Re-render a saved sample: `python -m launch.render_params DIR/adversarials/0003.json [--output_dir=D]`.

Renders the reference and probe crops of the saved parameters again (`simadv_jax.samples`), writes them as
lossless PNGs (default: next to FILE, as NNNN_rerender_*.png) and, unless --noscore, scores them with the saved
recognizer (or --recognizer) and prints the score next to the saved one.
"""
from __future__ import annotations

import json
import os

from absl import app, flags, logging

OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to write the PNGs (default: the JSON file's folder).")
SCORE = flags.DEFINE_boolean("score", True, "Re-score the pair with the recognizer.")
RECOGNIZER = flags.DEFINE_string("recognizer", None, "Recognizer for --score (default: the one saved in FILE).")


def main(argv):
    if len(argv) != 2:
        raise SystemExit("error: give exactly one saved sample file, e.g. DIR/adversarials/0000.json")
    from simadv_jax import samples
    from simadv_jax.report.files import write_bytes_atomic
    from simadv_jax.report.images import png_bytes

    path = argv[1]
    try:
        if SCORE.value:
            sample, images, scores, evaluation = samples.rescore(path, RECOGNIZER.value)
        else:
            sample, images = samples.rerender(path)
    except ValueError as e:
        raise SystemExit(f"error: {e}" + (" (pass --noscore to only render)" if "--recognizer" in str(e) else ""))
    for warning in sample.warnings:
        logging.warning(warning)
    directory = OUTPUT_DIR.value or os.path.dirname(os.path.abspath(path))
    stem = os.path.splitext(os.path.basename(path))[0]
    for name, image in (("reference", images.reference[0]), ("probe", images.probe[0])):
        out = os.path.join(directory, f"{stem}_rerender_{name}.png")
        try:
            write_bytes_atomic(out, png_bytes(image))
        except OSError as e:
            raise SystemExit(f"error: --output_dir={directory}: {e.strerror or e}")
        print(out)
    if SCORE.value:
        print(json.dumps({"recognizer": evaluation.recognizer.name, "score": float(scores.similarity[0]),
                          "saved_score": sample.record.get("score"), "threshold": evaluation.similarity_threshold,
                          "adversarial": bool(scores.adversarial[0])}))


if __name__ == "__main__":
    app.run(main)

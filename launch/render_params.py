"""Re-render a saved sample: `python -m launch.render_params DIR/adversarials/0003.json [--output_dir=D]`.

Reads the parameters a search saved (head, texture, space, named params, template, resolution), renders the
reference and probe crops again, writes them as lossless PNGs (default: next to FILE, as NNNN_rerender_*.png),
and, unless --noscore, re-embeds them with the saved recognizer (or --recognizer) and prints the score next to
the saved one.
"""
from __future__ import annotations

import json
import os

from absl import app, flags

OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where to write the PNGs (default: the JSON file's folder).")
SCORE = flags.DEFINE_boolean("score", True, "Re-score the pair with the recognizer.")
RECOGNIZER = flags.DEFINE_string("recognizer", None, "Recognizer for --score (default: the one saved in FILE).")

FIELDS = ("space", "params", "head", "texture", "template", "resolution", "supersample", "background")


def load_record(path: str) -> dict:
    """The saved sample; ValueError naming the file when unreadable or incomplete."""
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read it as a saved sample: {e}") from None
    missing = [k for k in FIELDS if k not in record] if isinstance(record, dict) else list(FIELDS)
    if missing:
        raise ValueError(f"{path}: not a saved sample, missing {missing}")
    return record


def render_record(record: dict):
    """-> (reference, probe) float32 (R, R, 3) images exactly as the search rendered them."""
    from simadv_jax.params import ParamSpace
    from simadv_jax.report.images import pair_renderer
    from simadv_jax.search.experiment import load_head

    model, texture = load_head(record["head"], record["texture"])
    space = ParamSpace.parse(record["space"], num_shape=model.num_shape, num_texture=texture.num_components,
                             num_expression=model.num_expression)
    render = pair_renderer(model, texture, space, record["template"], int(record["resolution"]),
                           int(record["supersample"]), tuple(record["background"]))
    ref, probe = render(space.from_dict(record["params"])[None])
    return ref[0], probe[0]


def main(argv):
    if len(argv) != 2:
        raise SystemExit("error: give exactly one saved sample file, e.g. DIR/adversarials/0000.json")
    path = argv[1]
    try:
        record = load_record(path)
        reference, probe = render_record(record)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    from simadv_jax.report.files import write_bytes_atomic
    from simadv_jax.report.images import png_bytes

    directory = OUTPUT_DIR.value or os.path.dirname(os.path.abspath(path))
    stem = os.path.splitext(os.path.basename(path))[0]
    for name, image in (("reference", reference), ("probe", probe)):
        out = os.path.join(directory, f"{stem}_rerender_{name}.png")
        write_bytes_atomic(out, png_bytes(image))
        print(out)
    if SCORE.value:
        import jax.numpy as jnp

        from simadv_jax import recognizers

        try:
            recognizer = recognizers.load(RECOGNIZER.value or record.get("recognizer", ""))
        except (ValueError, ImportError, OSError) as e:
            raise SystemExit(f"error: --recognizer: {e} (pass --noscore to only render)")
        a = recognizer.embed(recognizer.params, jnp.asarray(reference)[None])
        b = recognizer.embed(recognizer.params, jnp.asarray(probe)[None])
        score = float(recognizer.score(a, b)[0])
        print(json.dumps({"recognizer": recognizer.name, "score": score, "saved_score": record.get("score"),
                          "threshold": recognizer.threshold}))


if __name__ == "__main__":
    app.run(main)

"""The TFJS reader and the faceres / mobileface recognizers against TensorFlow.js itself (node, pure-JS CPU
backend), on the fetched photos (detected and aligned by the project's pipeline) and rendered chips."""
import json

import jax
import numpy as np
import pytest

from simadv_jax import fetch
from simadv_jax.recognizers import faceres, load, tfjs
from tests import model_fixtures

TOLERANCE = 1e-4  # max |delta| per descriptor value, float16 faceres included: both sides dequantize exactly


def test_dequantize_as_tfjs():
    half = np.array([1.0, -2.5, 6.1e-5, 65504.0, 5.96e-8], np.float16)  # incl. the largest and a subnormal
    out = tfjs.dequantize(half.tobytes(), {"name": "w", "dtype": "float32", "shape": [5],
                                           "quantization": {"dtype": "float16"}}, "test")
    np.testing.assert_array_equal(out, half.astype(np.float32))
    q = np.array([0, 1, 200, 255], np.uint8)
    spec = {"name": "w", "dtype": "float32", "shape": [4], "quantization": {"dtype": "uint8", "scale": 0.1,
                                                                           "min": -1.3}}
    expected = np.array([np.float32(v * 0.1 + -1.3) for v in (0, 1, 200, 255)])  # float64 then one rounding
    np.testing.assert_array_equal(tfjs.dequantize(q.tobytes(), spec, "test"), expected)


def test_unsupported_op_names_node(tmp_path):
    document = {"format": "graph-model", "modelTopology": {"node": [
        {"name": "x", "op": "Placeholder"}, {"name": "weird", "op": "Einsum", "input": ["x"]}]},
        "weightsManifest": []}
    path = tmp_path / "model.json"
    path.write_text(json.dumps(document))
    with pytest.raises(tfjs.TfjsFormatError, match="node 'weird': op 'Einsum' is not supported"):
        tfjs.graph_function(tfjs.read_model(str(path)), ["weird"])


@pytest.fixture(scope="module", params=sorted(faceres.MODELS))
def model(request):
    model_fixtures.fetched()
    return request.param


def test_matches_tensorflow_js(model, tmp_path):
    """6 photo faces (3 people of the single photos, 2 of the group photo) and 2 rendered chips through the JAX
    graph and through TFJS (pure-JS CPU, ~1.5 s per 224² image): max |delta| <= 1e-4."""
    recognizer = load(model)
    asset, node, size, template, preprocess = faceres.MODELS[model]
    images = np.concatenate([model_fixtures.photo_crops(template)[:6], model_fixtures.rendered_chips(template)[:2]])
    ours = np.asarray(recognizer.embed(recognizer.params, images))
    inputs = np.asarray(jax.jit(preprocess)(images))
    reference = model_fixtures.run_tfjs(fetch.asset_path(asset), inputs, node, tmp_path)
    delta = np.abs(ours - reference).max()
    print(f"{model}: max |delta| {delta:.3g} over {images.shape[0]} images, max |value| {np.abs(reference).max():.3g}")
    assert ours.shape == reference.shape and delta <= TOLERANCE, f"max |delta| = {delta:.3g}"


def test_tfjs_dir_spec(tmp_path):
    """`tfjs:DIR:options` loads a copied model folder; missing files and bad options name the flag."""
    model_fixtures.fetched()
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("mobileface.json", "mobileface.bin"):
        (folder / ("model.json" if name.endswith(".json") else name)).write_bytes(
            open(fetch.asset_path(name), "rb").read())
    mine = load(f"tfjs:{folder}:threshold=0.3")
    assert (mine.input_size, mine.template, mine.threshold) == (112, "arcface112", 0.3)
    images = model_fixtures.rendered_chips("arcface112")[:2]
    named = load("mobileface")
    np.testing.assert_array_equal(np.asarray(mine.embed(mine.params, images)),
                                  np.asarray(named.embed(named.params, images)))
    with pytest.raises(ValueError, match="--recognizer=tfjs:.*bad option 'colour=red'"):
        load(f"tfjs:{folder}:colour=red")
    with pytest.raises(ValueError, match="does not exist"):
        load(f"tfjs:{tmp_path / 'nothing'}")

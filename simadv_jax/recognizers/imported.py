"""What turns an imported graph (TFJS, ONNX) into a Recognizer: input preprocessing and the `:options` text.

`--recognizer=onnx:PATH:size=112,channels=bgr,mean=127.5,std=127.5` and `tfjs:DIR:...` take these options
(comma-separated KEY=VALUE; three-channel values as A/B/C in the model's channel order):

  size       input side in pixels (default: the model's declared input size)
  template   alignment template (default: arcface112 at 112, dlib150 at 150, facebox224 at 224)
  channels   rgb or bgr, the order the model takes (default rgb)
  scale      pixels are x * scale for images x in [0, 1] (default 255)
  mean, std  then (pixels - mean) / std (defaults 0 and 1)
  output     the graph output taken as the embedding (default: the only or first output)
  metric     cosine or euclidean (default cosine)
  threshold  decision threshold on the score (default DEFAULT_THRESHOLD, the paper's T)
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp

from simadv_jax.recognizers.zoo import DEFAULT_THRESHOLD

DEFAULT_TEMPLATES = {112: "arcface112", 150: "dlib150", 224: "facebox224"}


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """images (B, S, S, 3) float32 RGB in [0, 1] -> model input: x * scale, channels reordered ("rgb"/"bgr"),
    minus mean, divided by std (per channel, in the model's order), NHWC or NCHW."""

    scale: float = 255.0
    channels: str = "rgb"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: str = "NHWC"

    def __call__(self, images: jax.Array) -> jax.Array:
        x = images.astype(jnp.float32) * self.scale
        if self.channels == "bgr":
            x = x[..., ::-1]
        x = (x - jnp.asarray(self.mean, jnp.float32)) / jnp.asarray(self.std, jnp.float32)
        return jnp.transpose(x, (0, 3, 1, 2)) if self.layout == "NCHW" else x


@dataclasses.dataclass(frozen=True)
class Options:
    """Parsed `:options` (see the module docstring); None = the model's own or the default."""

    size: Optional[int] = None
    template: Optional[str] = None
    preprocess: Preprocess = Preprocess()
    output: Optional[str] = None
    metric: str = "cosine"
    threshold: float = DEFAULT_THRESHOLD

    def template_for(self, size: int, flag: str) -> str:
        template = self.template or DEFAULT_TEMPLATES.get(size)
        if template is None:
            raise ValueError(f"{flag}: no default alignment template for input size {size}; give template=NAME")
        return template


def _triple(text: str) -> tuple[float, float, float]:
    values = [float(v) for v in text.split("/")]
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise ValueError(f"expected one value or A/B/C, got {text!r}")
    return tuple(values)


def parse_options(text: Optional[str], flag: str, layout: str) -> Options:
    """Options from "KEY=VALUE,..." (None or "" -> defaults); errors name `flag` and the option."""
    fields: dict = {}
    pre: dict = {"layout": layout}
    known = ("size", "template", "channels", "scale", "mean", "std", "output", "metric", "threshold")
    for entry in filter(None, (text or "").split(",")):
        key, equals, value = entry.partition("=")
        if not equals or key not in known:
            raise ValueError(f"{flag}: bad option {entry!r}; expected KEY=VALUE with KEY one of {', '.join(known)}")
        try:
            if key == "size":
                fields["size"] = int(value)
            elif key in ("template", "output", "metric"):
                fields[key] = value
            elif key == "threshold":
                fields["threshold"] = float(value)
            elif key == "channels":
                if value not in ("rgb", "bgr"):
                    raise ValueError("expected rgb or bgr")
                pre["channels"] = value
            elif key == "scale":
                pre["scale"] = float(value)
            else:
                pre[key] = _triple(value)
        except ValueError as e:
            raise ValueError(f"{flag}: option {key}={value}: {e}") from None
    if fields.get("metric", "cosine") not in ("cosine", "euclidean"):
        raise ValueError(f"{flag}: option metric={fields['metric']}: expected cosine or euclidean")
    return Options(preprocess=Preprocess(**pre), **fields)


def split_spec(argument: Optional[str], flag: str) -> tuple[str, Optional[str]]:
    """"PATH" or "PATH:OPTIONS" -> (PATH, OPTIONS or None); the options part is what follows the last ':' when
    it holds a '='."""
    if not argument:
        raise ValueError(f"{flag}: a path is required")
    path, colon, options = argument.rpartition(":")
    if colon and "=" in options:
        return path, options
    return argument, None

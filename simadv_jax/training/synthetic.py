"""Synthetic training identities rendered on the fly by the simulator (a data.BatchSource).

Identity c in [0, num_classes) is a fixed draw of shape and albedo coefficients (`identity_distribution`: N(0, 1)
clipped to +-2 sigma, or U(-2, 2)) from numpy's default_rng(identity_seed). Each training image of step t draws,
from default_rng((seed, t)), its label uniformly and its pose and light: yaw in [-1, 1], pitch in [-1/4, 1/4] (the
paper's units, 1 = pi/2), a random light (`lighting`: "study", the simulator's plausible lighting for studies, or
"wide", harsher light from further to the side) and a per-channel gain (`white_balance` w: U(1 - w, 1 + w) per
channel, a camera's colour cast, applied to the whole rendered image). These options let training data differ
from the renders a sweep tests on, the way real photos differ from a simulator. Attribute filters ("yaw>-0.5", "pitch<0") restrict the pose the
way they restrict a folder's images (data.AttributeFilter), e.g. the paper's NYF/PYF training sets. Images are
rendered straight into the aligned crop of `template` at `image_size`, so a step's batch depends only on
(seed, step) and resumed runs see exactly the same data.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from flame.model import FlameModel, TextureModel
from simadv_jax import simulator
from simadv_jax.training.data import AttributeFilter, Batch

ATTRIBUTE_RANGES = {"yaw": (-1.0, 1.0), "pitch": (-0.25, 0.25)}  # paper units (1 = pi/2 rad)
_MAX_REDRAWS = 64


def wide_lighting(rng: np.random.Generator, n: int) -> simulator.Lighting:
    """Harsher random light than `simulator.random_lighting`: from up to 80 deg sideways, -30..60 deg elevation,
    directional intensity 0.2-1.0 over an ambient 0.15-0.6."""
    return simulator.Lighting(*(np.asarray(a, np.float32) for a in (
        rng.uniform(np.deg2rad(-80), np.deg2rad(80), n), rng.uniform(np.deg2rad(-30), np.deg2rad(60), n),
        rng.uniform(0.2, 1.0, n), rng.uniform(0.15, 0.6, n))))


LIGHTINGS = {"study": simulator.random_lighting, "wide": wide_lighting}


class SyntheticSource:
    """Rendered identities of a FLAME-format head.

    Args:
      model, texture_model: the head (with landmarks) and its albedo model.
      num_classes: number of identities.
      image_size: side S of the rendered crops.
      template: alignment template of the crops ("arcface112" for the zoo backbones).
      filters: pose filters on "yaw" / "pitch" (paper units).
      num_shape, num_texture: identity coefficients drawn (the rest stay 0).
      identity_seed: seed of the identities (fixed across training seeds, so runs share people).
      supersample: anti-aliasing factor of the renders.
      identity_distribution: "normal" or "uniform" (`simulator.sample_identities`).
      lighting: a LIGHTINGS name. white_balance: w >= 0, the per-channel gain range (module docstring).
    """

    def __init__(self, model: FlameModel, texture_model: TextureModel, num_classes: int, image_size: int = 112,
                 template: str = "arcface112", filters: Sequence[AttributeFilter] = (), num_shape: int = 30,
                 num_texture: int = 30, identity_seed: int = 0, supersample: int = 1,
                 identity_distribution: str = "normal", lighting: str = "study", white_balance: float = 0.0):
        if lighting not in LIGHTINGS:
            raise ValueError(f"lighting: expected one of {sorted(LIGHTINGS)}, got {lighting!r}")
        if not 0.0 <= white_balance < 1.0:
            raise ValueError(f"white_balance: must be in [0, 1), got {white_balance}")
        self.lighting, self.white_balance = LIGHTINGS[lighting], float(white_balance)
        if num_classes < 2:
            raise ValueError(f"--synthetic_identities: need at least 2 identities, got {num_classes}")
        for rule in filters:
            if rule.attribute not in ATTRIBUTE_RANGES:
                raise ValueError(f"--filters: synthetic data has attributes {sorted(ATTRIBUTE_RANGES)},"
                                 f" not {rule.attribute!r}")
        self.filters = tuple(filters)
        self._check_satisfiable()
        self.num_classes = num_classes
        rng = np.random.default_rng(identity_seed)
        self.identities = simulator.sample_identities(rng, num_classes, min(num_shape, model.num_shape),
                                                    min(num_texture, texture_model.num_components),
                                                    identity_distribution)
        model, texture_model = jax.tree.map(jnp.asarray, (model, texture_model))

        def render(shape, texture, yaw, pitch, light):
            params = simulator.neutral_params(model, shape, texture, yaw, pitch, light)
            return simulator.render_image(model, texture_model, params, template=template, resolution=image_size,
                                          supersample=supersample, background=simulator.STUDY_BACKGROUND).image

        self._render = jax.jit(jax.vmap(render))

    def _check_satisfiable(self) -> None:
        """A filter set that no pose in the sampled ranges passes is an error naming --filters."""
        for name, (low, high) in ATTRIBUTE_RANGES.items():
            grid = np.linspace(low, high, 1001)
            if not self._keep(name, grid).any():
                rules = [f"{r.attribute}{r.op}{r.value}" for r in self.filters]
                raise ValueError(f"--filters: no {name} in [{low}, {high}] passes {rules}")

    def _keep(self, name: str, values: np.ndarray) -> np.ndarray:
        """(n,) bool: the values of attribute `name` that pass every filter on it."""
        keep = np.ones(values.shape, bool)
        for rule in self.filters:
            if rule.attribute == name:
                keep &= rule.keep(values)
        return keep

    def _attribute(self, rng: np.random.Generator, name: str, n: int) -> np.ndarray:
        """(n,) values of `name` drawn uniformly from its range restricted by the filters (rejection)."""
        low, high = ATTRIBUTE_RANGES[name]
        values = rng.uniform(low, high, n)
        for _ in range(_MAX_REDRAWS):
            bad = ~self._keep(name, values)
            if not bad.any():
                return values
            values[bad] = rng.uniform(low, high, int(bad.sum()))
        raise ValueError(f"--filters: the allowed {name} range is too narrow to sample")

    def attributes(self, batch_size: int, seed: int, step: int) -> dict[str, np.ndarray]:
        """The labels and pose of step `step`: {"label", "yaw", "pitch"} (paper units), the "light" (a Lighting)
        and the "gain" (B, 3) per channel."""
        rng = np.random.default_rng((seed, step))
        labels = rng.integers(0, self.num_classes, batch_size).astype(np.int32)
        yaw, pitch = self._attribute(rng, "yaw", batch_size), self._attribute(rng, "pitch", batch_size)
        light = self.lighting(rng, batch_size)
        gain = rng.uniform(1.0 - self.white_balance, 1.0 + self.white_balance, (batch_size, 3)).astype(np.float32)
        return {"label": labels, "yaw": yaw, "pitch": pitch, "light": light, "gain": gain}

    def images(self, drawn: dict[str, np.ndarray]) -> np.ndarray:
        """The (B, S, S, 3) float32 crops of `attributes`' draws (labels, pose, light and gain)."""
        labels = drawn["label"]
        images = self._render(self.identities.shape[labels], self.identities.albedo[labels],
                              jnp.asarray(drawn["yaw"] * math.pi / 2, jnp.float32),
                              jnp.asarray(drawn["pitch"] * math.pi / 2, jnp.float32), drawn["light"])
        return np.clip(np.asarray(images, np.float32) * drawn["gain"][:, None, None, :], 0.0, 1.0)

    def batches(self, batch_size: int, seed: int, start_step: int) -> Iterator[Batch]:
        step = start_step
        while True:
            drawn = self.attributes(batch_size, seed, step)
            yield self.images(drawn), drawn["label"]
            step += 1

"""Synthetic training identities rendered on the fly by the simulator (a data.BatchSource).

Identity c in [0, num_classes) is a fixed draw of shape and albedo coefficients, N(0, 1) clipped to +-2 sigma,
from numpy's default_rng(identity_seed). Each training image of step t draws, from default_rng((seed, t)), its
label uniformly and its pose and light: yaw in [-1, 1], pitch in [-1/4, 1/4] (the paper's units, 1 = pi/2) and
the simulator's plausible random lighting for studies. Attribute filters ("yaw>-0.5", "pitch<0") restrict the pose the
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
    """

    def __init__(self, model: FlameModel, texture_model: TextureModel, num_classes: int, image_size: int = 112,
                 template: str = "arcface112", filters: Sequence[AttributeFilter] = (), num_shape: int = 30,
                 num_texture: int = 30, identity_seed: int = 0, supersample: int = 1):
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
                                                    min(num_texture, texture_model.num_components))
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
        """The labels and pose of step `step`: {"label", "yaw", "pitch"} (paper units) and the lighting."""
        rng = np.random.default_rng((seed, step))
        labels = rng.integers(0, self.num_classes, batch_size).astype(np.int32)
        yaw, pitch = self._attribute(rng, "yaw", batch_size), self._attribute(rng, "pitch", batch_size)
        return {"label": labels, "yaw": yaw, "pitch": pitch, "light": simulator.random_lighting(rng, batch_size)}

    def batches(self, batch_size: int, seed: int, start_step: int) -> Iterator[Batch]:
        step = start_step
        while True:
            drawn = self.attributes(batch_size, seed, step)
            labels = drawn["label"]
            images = self._render(self.identities.shape[labels], self.identities.albedo[labels],
                                  jnp.asarray(drawn["yaw"] * math.pi / 2, jnp.float32),
                                  jnp.asarray(drawn["pitch"] * math.pi / 2, jnp.float32), drawn["light"])
            yield np.asarray(images, np.float32), labels
            step += 1

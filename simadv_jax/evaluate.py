"""The one hot path: a batch of search vectors rho -> recognizer scores, as one jitted call.

    rho (B, n) --space.decode--> SceneParams --simulator.render_image (vmap)--> reference, probe crops
        --recognizer.embed--> embeddings --recognizer.score--> similarity (B,)

Scenarios (the `--scenario` flag):
  - "genuine" (the paper's): reference and probe show one identity; loss = similarity; adversarial iff
    valid and similarity < T (a false non-match).
  - "impostor": the reference shows a second identity (the space must search or fix `ref.shape`/`ref.texture`
    apart from the probe's); loss = -similarity, threshold -T; adversarial iff similarity > T (a false match).
`search.step` sees only the loss and the loss threshold (`Evaluation.threshold`).

When no reference value depends on rho (`space.reference_is_constant`), the reference is rendered and
embedded once, at build time, not per sample. A sample is valid iff both images rendered validly
(`simulator.Image.valid`) and every image pixel, embedding entry and the score are finite.

With several devices the batch axis is sharded over a 1-D mesh ("batch") of `jax.devices()` (every host's,
under `jax.distributed`): each device renders its shard in `RENDER_GROUP`s and the recognizer runs data-parallel;
B is padded to a multiple of the device count inside the call, and the (B,) results come back replicated, so
every process can read them.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from flame.model import FlameModel, TextureModel
from simadv_jax import simulator
from simadv_jax.params import ParamSpace
from simadv_jax.recognizers.base import Recognizer

SCENARIOS = ("genuine", "impostor")
# Images rendered per vmapped group on one device; groups run one after another (`lax.map`). On XLA:CPU this
# is ~1.5x faster than one vmap over the whole batch (the rasterizer's per-image buffers stay in cache).
RENDER_GROUP = 8


class EvalResult(NamedTuple):
    """scores: (B,) float32 losses to minimize (similarity, or -similarity for "impostor").
    valid: (B,) bool. Unpacks as the `(scores, valid)` pair `search.step` expects."""

    scores: jax.Array
    valid: jax.Array


class Evaluation(NamedTuple):
    """What `make_evaluate` returns.

    evaluate: `rho (B, n) -> EvalResult`, one jitted call (= `jax.jit(apply)` with `data` bound).
    apply: the pure `(data, rho) -> EvalResult`; jit callers that embed it in a larger step pass `data` as
      an argument, so weights and meshes are traced inputs rather than compile-time constants.
    data: pytree ((head, texture model) with their bases cut to the components the space moves, recognizer
      params, precomputed reference embedding or None).
    threshold: the loss threshold (adversarial iff valid and loss < threshold).
    scenario: the scenario name; sign: +1 (genuine) or -1 (impostor), similarity = sign * loss.
    mesh: the 1-D "batch" device mesh the batch is sharded over; None on one device.
    """

    evaluate: Callable[[jax.Array], EvalResult]
    apply: Callable
    data: Any
    threshold: float
    scenario: str
    sign: float
    mesh: Optional[Mesh]


def _sign(scenario: str) -> float:
    if scenario not in SCENARIOS:
        raise ValueError(f"--scenario: unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    return 1.0 if scenario == "genuine" else -1.0


def check_scenario(space: ParamSpace, scenario: str) -> None:
    """Raises ValueError naming --scenario when the space cannot express it (impostor needs two identities)."""
    _sign(scenario)
    if scenario == "impostor" and space.identity_is_tied:
        raise ValueError(
            "--scenario=impostor: the reference shares the probe's identity in --space; give it its own, "
            "e.g. 'ref.shape[0:15]=-2:2,ref.texture[0:15]=-2:2'"
        )


def batch_sharding(devices=None) -> Optional[NamedSharding]:
    """NamedSharding of a leading batch axis over a 1-D mesh of `devices` (default all); None for one device."""
    devices = jax.devices() if devices is None else devices
    if len(devices) < 2:
        return None
    return NamedSharding(Mesh(np.asarray(devices), ("batch",)), PartitionSpec("batch"))


def make_evaluate(
    space: ParamSpace,
    model: FlameModel,
    texture_model: TextureModel,
    recognizer: Recognizer,
    *,
    scenario: str = "genuine",
    threshold: Optional[float] = None,
    resolution: Optional[int] = None,
    supersample: int = 1,
    background=simulator.DEFAULT_BACKGROUND,
    devices=None,
) -> Evaluation:
    """Builds the batched evaluation for one space, head and recognizer.

    Args:
      space: the ParamSpace rho lives in (paper units; rho is used as given, clip before).
      model, texture_model: the head.
      recognizer: the Recognizer record; images are rendered at `resolution` (default its input_size) into
        its alignment template.
      scenario: "genuine" or "impostor" (module docstring).
      threshold: the recognizer's decision threshold on the similarity (default `recognizer.threshold`).
      resolution, supersample, background: rendering options (see `simulator.render_image`).
      devices: devices to shard the batch over (default `jax.devices()`).
    Returns:
      Evaluation; `evaluate(rho)` is one jitted call for any B (recompiles per distinct B).
    """
    sign = _sign(scenario)
    check_scenario(space, scenario)
    threshold = float(recognizer.threshold if threshold is None else threshold)
    size = recognizer.input_size if resolution is None else resolution
    sharding = batch_sharding(devices)
    num_devices = 1 if sharding is None else sharding.mesh.size

    def render(head, params):
        return simulator.render_image(head[0], head[1], params, template=recognizer.template, resolution=size,
                                      supersample=supersample, background=background, check_finite=False)

    def render_local(head, params):
        """Batched `params` -> batched Image: lax.map over vmapped groups of RENDER_GROUP."""
        return jax.lax.map(lambda p: render(head, p), params, batch_size=RENDER_GROUP)

    if sharding is None:
        render_batch = render_local
    else:  # each device loops over its own shard
        render_batch = jax.shard_map(render_local, mesh=sharding.mesh, in_specs=(PartitionSpec(), sharding.spec),
                                     out_specs=sharding.spec)

    def embed(params, images):
        embeddings = recognizer.embed(params, images)
        finite = jnp.all(jnp.isfinite(embeddings), axis=-1) & jnp.all(jnp.isfinite(images), axis=(1, 2, 3))
        return embeddings, finite

    # Only the basis components the space can move travel with the data (the others multiply zeros): less
    # memory to stream per image.
    head = (model.leading_components(space.sizes["shape"], space.sizes["expression"]),
            texture_model.leading_components(space.sizes["texture"]))
    reference = None
    if space.reference_is_constant:
        @jax.jit
        def reference_embedding(head, params):
            image = render(head, space.decode(jnp.zeros((space.size,), jnp.float32)).reference)
            embedding, finite = embed(params, image.image[None])
            return embedding[0], finite[0] & image.valid

        reference = reference_embedding(head, recognizer.params)

    def apply(data, rho: jax.Array) -> EvalResult:
        head, params, reference = data
        batch = rho.shape[0]
        padded = -batch % num_devices
        rho = jnp.pad(jnp.asarray(rho, jnp.float32), ((0, padded), (0, 0)))
        if sharding is not None:
            rho = jax.lax.with_sharding_constraint(rho, sharding)
        scene = space.decode(rho)
        if reference is not None:
            probe = render_batch(head, scene.probe)
            probe_embedding, probe_finite = embed(params, probe.image)
            ref_embedding = jnp.broadcast_to(reference[0], probe_embedding.shape)
            ok = probe_finite & probe.valid & reference[1]
        else:
            # Sample i's reference and probe are images 2i and 2i + 1: both stay on the device that holds
            # sample i, so rendering and embedding them moves no image between devices.
            pairs = jax.tree.map(lambda r, p: jnp.stack([r, p], axis=1).reshape(2 * r.shape[0], *r.shape[1:]),
                                 scene.reference, scene.probe)
            images = render_batch(head, pairs)
            embeddings, finite = embed(params, images.image)
            embeddings = embeddings.reshape(-1, 2, embeddings.shape[-1])
            ref_embedding, probe_embedding = embeddings[:, 0], embeddings[:, 1]
            ok = jnp.all((finite & images.valid).reshape(-1, 2), axis=1)
        loss = sign * recognizer.score(ref_embedding, probe_embedding)
        valid = ok & jnp.isfinite(loss)
        result = EvalResult(loss[:batch], valid[:batch])
        if sharding is not None:
            result = jax.lax.with_sharding_constraint(result, NamedSharding(sharding.mesh, PartitionSpec()))
        return result

    data = (head, recognizer.params, reference)
    return Evaluation(
        evaluate=functools.partial(jax.jit(apply), data),
        apply=apply,
        data=data,
        threshold=sign * threshold,
        scenario=scenario,
        sign=sign,
        mesh=None if sharding is None else sharding.mesh,
    )

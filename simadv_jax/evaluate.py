"""The one hot path (search vectors rho -> recognizer scores) and the one host-side batcher.

    rho (B, n) --space.decode--> SceneParams --simulator.render_view (lax.map of vmapped groups)--> crops
        [--alignment=pipeline: photos --acquire (face box, 5-point shape predictor, dlib chip)--> chips]
        --recognizer.embed--> embeddings --recognizer.score--> similarity (B,) --scenario--> loss (B,)

Two objects, both built once per space and head:
  - `Renderer` (`make_renderer`): rho -> the reference and probe images of each pair, for one `simulator.View`
    (a recognizer's aligned crop, or a detector's framing).
  - `Evaluation` (`make_evaluate`): rho -> loss and validity for one recognizer; it renders with a Renderer of
    the recognizer's aligned view. `apply(data, rho)` is the pure function a jitted search step embeds; the
    host methods `score_points`, `images`, `score_images` and `embed_images` take any number N of points or
    images and run them through one compiled call per chunk of `batch_size` (the last chunk padded with copies
    of its first row; padding never reaches the results). Every re-render, re-score, report, realism study,
    region flood fill and sweep uses these, so the crops a report shows are the crops that were scored.

Scenarios (`--scenario`, `Scenario`) are the one place the sign between similarity and loss is applied:
  - "genuine" (the paper's): reference and probe show one identity; loss = similarity; adversarial iff valid and
    similarity < T (a false non-match).
  - "impostor": the reference shows a second identity; loss = -similarity, loss threshold -T; adversarial iff
    similarity > T (a false match).
Search code sees only losses and `Evaluation.loss_threshold`; reports see similarities and
`Evaluation.similarity_threshold` (the recognizer's decision threshold T).

When no reference value depends on rho (`space.reference_is_constant`), the reference is rendered and embedded
once, at build time. A sample is valid iff both images rendered validly (`simulator.Image.valid`) and every pixel,
embedding entry and the score are finite.

The batching itself (the host batcher `map_batches`, the device loop `map_groups`, the mesh helpers) lives in
`simadv_jax.batching`; this module is where it is applied to rendering and scoring.

Devices. `apply` shards the batch axis over a 1-D mesh ("batch") of `devices` (default `jax.devices()`, every
host's under `jax.distributed`): each device renders its shard in RENDER_GROUP-image groups, the recognizer runs
data-parallel, B is padded to a multiple of the device count inside the call and the (B,) results come back
replicated. The host methods shard over this process's local devices only, so one process can call them alone
(e.g. the process that writes a report).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from flame.model import FlameModel, TextureModel
from simadv_jax import simulator
from simadv_jax.batching import (RENDER_GROUP, batch_sharding, interleave, local_devices, map_batches, map_groups,
                                 pad_to_devices, replicated, round_up)
from simadv_jax.params import ParamSpace
from simadv_jax.recognizers import pipeline
from simadv_jax.recognizers.base import Recognizer

SCENARIOS = ("genuine", "impostor")
ALIGNMENTS = ("oracle", "pipeline")
# Points per compiled call of the host methods (a multiple of RENDER_GROUP).
DEFAULT_BATCH_SIZE = 32


# ---- scenarios --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scenario:
    """name: "genuine" or "impostor"; sign: +1 or -1, loss = sign * similarity."""

    name: str
    sign: float

    def loss(self, similarity):
        """Similarity (higher = same person) -> loss (lower = more adversarial)."""
        return self.sign * similarity

    def similarity(self, loss):
        """Inverse of `loss`."""
        return self.sign * loss

    @classmethod
    def named(cls, name: str) -> "Scenario":
        """The Scenario `name`; ValueError naming --scenario for an unknown one."""
        if name not in SCENARIOS:
            raise ValueError(f"--scenario: unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
        return cls(name, 1.0 if name == "genuine" else -1.0)


def check_scenario(space: ParamSpace, name: str) -> None:
    """Raises ValueError naming --scenario when the space cannot express it (impostor needs two identities)."""
    Scenario.named(name)
    if name == "impostor" and space.identity_is_tied:
        raise ValueError(
            "--scenario=impostor: the reference shares the probe's identity in --space; give it its own, "
            "e.g. 'ref.shape[0:15]=-2:2,ref.texture[0:15]=-2:2'"
        )


# ---- results ------------------------------------------------------------------------------------------------


class EvalResult(NamedTuple):
    """What `Evaluation.apply` returns for B points (device arrays).

    loss: (B,) float32 losses to minimize (scenario.loss of the similarity; NaN possible). valid: (B,) bool.
    Unpacks as the `(scores, valid)` pair `search.step` expects.
    """

    loss: jax.Array
    valid: jax.Array


class PointScores(NamedTuple):
    """Host results for N points (numpy). loss, similarity: (N,) float32; valid, adversarial, acquired: (N,) bool
    (adversarial = valid and loss < loss_threshold; acquired: the pipeline found both faces, always True with
    oracle alignment; a point not acquired is a failure to acquire, not valid, so never a false non-match)."""

    loss: np.ndarray
    similarity: np.ndarray
    valid: np.ndarray
    adversarial: np.ndarray
    acquired: np.ndarray


class PairImages(NamedTuple):
    """Host images for N points (numpy). reference, probe: (N, R, R, 3) float32 RGB in [0, 1];
    valid: (N,) bool, both images rendered validly with finite pixels and acquired; acquired: (N, 2) bool, the
    pipeline found the reference's / the probe's face (always True with oracle alignment)."""

    reference: np.ndarray
    probe: np.ndarray
    valid: np.ndarray
    acquired: np.ndarray


@struct.dataclass
class Head:
    """The head the renderer draws, with its bases cut to the components the space moves (less memory to
    stream per image): model: FlameModel; texture_model: TextureModel; acquisition: the deployed pipeline's models
    (`recognizers.pipeline.Acquisition`) that crop each rendered photo ("pipeline" alignment), or None (the render
    is the aligned crop: "oracle")."""

    model: FlameModel
    texture_model: TextureModel
    acquisition: Optional[pipeline.Acquisition] = None


@struct.dataclass
class ReferenceEmbedding:
    """A constant reference, embedded once: embedding (D,) float32; valid, acquired () bool."""

    embedding: jax.Array
    valid: jax.Array
    acquired: jax.Array


@struct.dataclass
class EvaluationData:
    """The traced inputs of `Evaluation.apply` (arguments, so weights are not compile-time constants).

    head: Head. recognizer_params: the recognizer's weights pytree. reference: ReferenceEmbedding when the
    space's reference is constant, else None.
    """

    head: Head
    recognizer_params: Any
    reference: Optional[ReferenceEmbedding]


# ---- the renderer ----------------------------------------------------------------------------------------


def acquire(acquisition: pipeline.Acquisition, photo: simulator.Image) -> tuple[simulator.Image, jax.Array]:
    """A rendered photo -> (the deployed pipeline's 150x150 chip of it as a simulator.Image: image, mask and
    landmarks carried into the chip, valid as the photo's; acquired () bool). Pure; one image."""
    out = pipeline.acquire(acquisition, jnp.concatenate([photo.image, photo.mask[..., None]], axis=-1),
                           photo.landmarks)
    chip = simulator.Image(out.chip[..., :3], photo.valid, out.chip[..., 3], pipeline.to_chip(out.to_photo,
                                                                                              photo.landmarks))
    return chip, out.acquired


@dataclasses.dataclass(frozen=True, eq=False)
class Renderer:
    """rho -> the images of each pair, for one space, head and view. Build with `make_renderer`.

    space: the ParamSpace. view: the simulator.View (with "pipeline" alignment, the photo's framing). head: the
    Head it draws. batch_size: points per compiled host call. render(head, params, sharding): traced, batched
    ImageParams (B leading) -> batched (Image, acquired), each device rendering its shard as `lax.map` over
    vmapped groups of RENDER_GROUP.
    """

    space: ParamSpace
    view: simulator.View
    head: Head
    batch_size: int
    devices: Optional[tuple]
    _compiled: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def alignment(self) -> str:
        """"oracle" (rendered straight into the aligned crop) or "pipeline" (a photo cropped by `acquire`)."""
        return "oracle" if self.head.acquisition is None else "pipeline"

    @property
    def box_source(self) -> Optional[str]:
        """Where the pipeline's face box comes from ("blazeface" or "landmarks"); None with oracle alignment."""
        return None if self.head.acquisition is None else self.head.acquisition.box_source

    def render_one(self, head: Head, params) -> tuple[simulator.Image, jax.Array]:
        """Traced: unbatched ImageParams -> (the Image a recognizer sees, acquired () bool). Pixels are not checked
        for finiteness here (callers check whole batches: inside the vmapped render XLA:CPU would compute every
        pixel twice for the check)."""
        image = simulator.render_view(head.model, head.texture_model, params, self.view, check_finite=False)
        if head.acquisition is None:
            return image, jnp.ones((), bool)
        return acquire(head.acquisition, image)

    def render(self, head: Head, params, sharding: Optional[NamedSharding]) -> tuple[simulator.Image, jax.Array]:
        """Traced: batched ImageParams (B divisible by the mesh size) -> (batched simulator.Image, (B,) acquired)."""
        return map_groups(self.render_one, head, params, sharding)

    def render_pairs(self, head: Head, rho: jax.Array,
                     sharding: Optional[NamedSharding]) -> tuple[simulator.Image, jax.Array]:
        """Traced: (B, n) rho (B divisible by the mesh size) -> `render` of 2B interleaved rows (reference and
        probe of sample i at 2i and 2i + 1: `batching.interleave`)."""
        scene = self.space.decode(rho)
        return self.render(head, interleave(scene.reference, scene.probe), sharding)

    @property
    def local_sharding(self) -> Optional[NamedSharding]:
        """The batch sharding of the host methods: this process's devices."""
        return batch_sharding(local_devices(self.devices))

    def images(self, rho) -> PairImages:
        """(N, n) rho (used as given: clip first) -> PairImages (numpy), any N."""
        if "images" not in self._compiled:
            sharding = self.local_sharding

            @jax.jit
            def images(head, rho):
                batch = rho.shape[0]
                out, acquired = self.render_pairs(head, pad_to_devices(rho, sharding), sharding)
                pixels = out.image.reshape(-1, 2, *out.image.shape[1:])[:batch]
                finite = jnp.all(jnp.isfinite(pixels), axis=(1, 2, 3, 4))
                acquired = acquired.reshape(-1, 2)[:batch]
                ok = jnp.all(out.valid.reshape(-1, 2)[:batch] & acquired, axis=1) & finite
                return PairImages(pixels[:, 0], pixels[:, 1], ok, acquired)

            self._compiled["images"] = images
        rho = np.asarray(rho, np.float32).reshape(-1, self.space.size)
        return map_batches(lambda r: self._compiled["images"](self.head, r), [rho], self.batch_size)


def make_renderer(space: ParamSpace, model: FlameModel, texture_model: TextureModel, view: simulator.View, *,
                  batch_size: int = DEFAULT_BATCH_SIZE, devices=None,
                  acquisition: Optional[pipeline.Acquisition] = None) -> Renderer:
    """The Renderer of `space`'s pairs on this head, framed by `view`; with `acquisition` (a framed `view`),
    every rendered photo is cropped by the deployed pipeline (`acquire`).

    Only the basis components the space can move travel with the head (the others multiply zeros).
    """
    simulator.check_head(model, texture_model)
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    if acquisition is not None and view.template is not None:
        raise ValueError("--alignment=pipeline: the pipeline crops a framed photo, not an aligned view")
    head = Head(model.leading_components(space.sizes["shape"], space.sizes["expression"]),
                texture_model.leading_components(space.sizes["texture"]), acquisition)
    return Renderer(space, view, head, round_up(batch_size, RENDER_GROUP),
                    None if devices is None else tuple(devices))


# ---- the evaluation --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluation:
    """The batched evaluation of one space, head and recognizer. Build with `make_evaluate`.

    renderer: the Renderer of the recognizer's aligned view. recognizer: the Recognizer record.
    scenario: the Scenario. similarity_threshold: the recognizer's decision threshold T on the similarity;
    loss_threshold: scenario.loss(T) (adversarial iff valid and loss < loss_threshold).
    data: EvaluationData (on this process's devices). sharding: the batch sharding `apply` uses over its
    devices; None on one device. reference_image: (R, R, 3) numpy image of a constant reference, else None.
    """

    renderer: Renderer
    recognizer: Recognizer
    scenario: Scenario
    similarity_threshold: float
    data: EvaluationData
    sharding: Optional[NamedSharding]
    reference_image: Optional[np.ndarray]
    _compiled: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def mesh(self) -> Optional[Mesh]:
        """The 1-D "batch" device mesh `apply` shards over; None on one device."""
        return None if self.sharding is None else self.sharding.mesh

    @property
    def space(self) -> ParamSpace:
        return self.renderer.space

    @property
    def loss_threshold(self) -> float:
        return self.scenario.loss(self.similarity_threshold)

    @property
    def batch_size(self) -> int:
        return self.renderer.batch_size

    # -- traced ------------------------------------------------------------------------------------------
    def _embed(self, params, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(M, R, R, 3) -> ((M, D) embeddings, (M,) bool every pixel and entry finite)."""
        embeddings = self.recognizer.embed(params, images)
        finite = jnp.all(jnp.isfinite(embeddings), axis=-1) & jnp.all(jnp.isfinite(images), axis=(1, 2, 3))
        return embeddings, finite

    def _result(self, ref_embedding, probe_embedding, ok, batch, sharding) -> EvalResult:
        loss = self.scenario.loss(self.recognizer.score(ref_embedding, probe_embedding))
        return replicated(EvalResult(loss[:batch], (ok & jnp.isfinite(loss))[:batch]), sharding)

    def _apply(self, data: EvaluationData, rho: jax.Array,
               sharding: Optional[NamedSharding]) -> tuple[EvalResult, jax.Array]:
        """(EvalResult, (B,) acquired: both faces acquired; valid includes it)."""
        batch = rho.shape[0]
        rho = pad_to_devices(jnp.asarray(rho, jnp.float32), sharding)
        if data.reference is not None:
            probe, acquired = self.renderer.render(data.head, self.space.decode(rho).probe, sharding)
            probe_embedding, probe_finite = self._embed(data.recognizer_params, probe.image)
            ref_embedding = jnp.broadcast_to(data.reference.embedding, probe_embedding.shape)
            acquired = acquired & data.reference.acquired
            ok = probe_finite & probe.valid & data.reference.valid
        else:
            images, acquired = self.renderer.render_pairs(data.head, rho, sharding)
            embeddings, finite = self._embed(data.recognizer_params, images.image)
            embeddings = embeddings.reshape(-1, 2, embeddings.shape[-1])
            ref_embedding, probe_embedding = embeddings[:, 0], embeddings[:, 1]
            acquired = jnp.all(acquired.reshape(-1, 2), axis=1)
            ok = jnp.all((finite & images.valid).reshape(-1, 2), axis=1)
        return (self._result(ref_embedding, probe_embedding, ok & acquired, batch, sharding),
                replicated(acquired[:batch], sharding))

    def apply(self, data: EvaluationData, rho: jax.Array) -> EvalResult:
        """Pure `(data, rho (B, n)) -> EvalResult` sharded over `mesh`, for jitted callers that embed it in a
        larger step (pass `self.data`). rho is used as given (clip first). A point whose face the pipeline did not
        acquire is not valid."""
        return self.apply_acquired(data, rho)[0]

    def apply_acquired(self, data: EvaluationData, rho: jax.Array) -> tuple[EvalResult, jax.Array]:
        """`apply` and the (B,) bool acquired flags of the same call (both faces acquired; always True with oracle
        alignment), so a caller tells a failure to acquire from a failed render without scoring again."""
        return self._apply(data, rho, self.sharding)

    def evaluate(self, rho: jax.Array) -> EvalResult:
        """`apply` with `data` bound, jitted (recompiles per distinct B)."""
        if "evaluate" not in self._compiled:
            self._compiled["evaluate"] = jax.jit(self.apply)
        return self._compiled["evaluate"](self.data, rho)

    # -- host ------------------------------------------------------------------------------------------
    def _host(self, name: str, fn: Callable, arrays: Sequence[np.ndarray], batch_size: int):
        """map_batches of `fn(data, *chunks)` jitted once per name."""
        if name not in self._compiled:
            self._compiled[name] = jax.jit(fn)
        return map_batches(lambda *chunks: self._compiled[name](self.data, *chunks), arrays, batch_size)

    def _point_scores(self, result: EvalResult, acquired) -> PointScores:
        loss, valid = np.asarray(result.loss, np.float32), np.asarray(result.valid, bool)
        return PointScores(loss, np.asarray(self.scenario.similarity(loss), np.float32), valid,
                           valid & (loss < np.float32(self.loss_threshold)), np.asarray(acquired, bool))

    def score_points(self, rho) -> PointScores:
        """(N, n) rho, any N (used as given: clip first) -> PointScores; the same numbers `evaluate` gives."""
        sharding = self.renderer.local_sharding
        rho = np.asarray(rho, np.float32).reshape(-1, self.space.size)
        result, acquired = self._host("score_points", lambda data, r: self._apply(data, r, sharding), [rho],
                                      self.batch_size)
        return self._point_scores(result, acquired)

    def images(self, rho) -> PairImages:
        """(N, n) rho -> the exact crops `score_points` scores (numpy), any N."""
        return self.renderer.images(rho)

    def embed_images(self, images) -> np.ndarray:
        """(M, R, R, 3) float RGB in [0, 1] (e.g. saved 8-bit crops / 255) -> (M, D) float32 embeddings."""
        sharding = self.renderer.local_sharding

        def embed(data, chunk):
            batch = chunk.shape[0]
            return self.recognizer.embed(data.recognizer_params, pad_to_devices(chunk, sharding))[:batch]

        images = np.asarray(images, np.float32)
        return self._host("embed_images", embed, [images], 2 * self.batch_size)

    def score_images(self, reference, probe) -> PointScores:
        """(N, R, R, 3) reference and probe images (e.g. re-read PNGs) -> PointScores of each pair."""
        sharding = self.renderer.local_sharding

        def score(data, ref, prb):
            batch = ref.shape[0]
            embeddings, finite = self._embed(data.recognizer_params,
                                             pad_to_devices(interleave(ref, prb), sharding))
            embeddings = embeddings.reshape(-1, 2, embeddings.shape[-1])
            ok = jnp.all(finite.reshape(-1, 2), axis=1)
            return self._result(embeddings[:, 0], embeddings[:, 1], ok, batch, sharding)

        arrays = [np.asarray(reference, np.float32), np.asarray(probe, np.float32)]
        return self._point_scores(self._host("score_images", score, arrays, self.batch_size),
                                  np.ones(len(arrays[0]), bool))


def make_evaluate(
    space: ParamSpace,
    model: FlameModel,
    texture_model: TextureModel,
    recognizer: Recognizer,
    *,
    scenario: str = "genuine",
    similarity_threshold: Optional[float] = None,
    alignment: str = "oracle",
    resolution: Optional[int] = None,
    supersample: int = 1,
    background=simulator.DEFAULT_BACKGROUND,
    batch_size: int = DEFAULT_BATCH_SIZE,
    devices=None,
) -> Evaluation:
    """Builds the batched evaluation of one space, head and recognizer.

    Args:
      space: the ParamSpace rho lives in (paper units).
      model, texture_model: the head (with landmarks).
      recognizer: the Recognizer record; images are rendered at `resolution` (default its input_size) into its
        alignment template.
      scenario: "genuine" or "impostor" (module docstring).
      similarity_threshold: the decision threshold T on the similarity (default `recognizer.threshold`).
      alignment: "oracle" (each image rendered straight into the recognizer's aligned crop) or "pipeline" (each
        image rendered as a photo, `simulator.View.photo`, and cropped as a deployed dlib system does: face box,
        5-point shape predictor, 150x150 chip; `acquire`; dlib's template only). With "pipeline" a pair whose
        face is not acquired is a failure to acquire (`PointScores.acquired`), never valid.
      resolution, supersample, background: the view's options (`simulator.View`; with "pipeline" the chip is
        150x150 and `resolution` must be None or 150).
      batch_size: points per compiled call of the host methods (rounded up to a multiple of RENDER_GROUP).
      devices: devices `apply` shards the batch over (default `jax.devices()`).
    """
    check_scenario(space, scenario)
    threshold = float(recognizer.threshold if similarity_threshold is None else similarity_threshold)
    size = recognizer.input_size if resolution is None else resolution
    if alignment == "oracle":
        view, acquisition = simulator.View.aligned(recognizer.template, size, supersample=supersample,
                                                   background=background), None
    elif alignment == "pipeline":
        if recognizer.template != "dlib150" or size != pipeline.CHIP_SIZE:
            raise ValueError(f"--alignment=pipeline: crops dlib's {pipeline.CHIP_SIZE}x{pipeline.CHIP_SIZE} chip; "
                             f"recognizer {recognizer.name!r} takes {recognizer.template!r} at {size} px")
        view, acquisition = simulator.View.photo(supersample=supersample, background=background), \
            pipeline.load_acquisition()
    else:
        raise ValueError(f"--alignment: expected one of {', '.join(ALIGNMENTS)}, got {alignment!r}")
    renderer = make_renderer(space, model, texture_model, view, batch_size=batch_size, devices=devices,
                             acquisition=acquisition)
    local = renderer.local_sharding
    # On this process's devices once (replicated), rather than copied from the host at every call.
    data = jax.device_put(EvaluationData(renderer.head, recognizer.params, None),
                          jax.local_devices()[0] if local is None else NamedSharding(local.mesh, PartitionSpec()))
    evaluation = Evaluation(renderer, recognizer, Scenario.named(scenario), threshold, data, batch_sharding(devices),
                            None)
    if not space.reference_is_constant:
        return evaluation

    @jax.jit
    def reference(head, params):
        image, acquired = renderer.render_one(head, space.decode(jnp.zeros((space.size,), jnp.float32)).reference)
        embedding, finite = evaluation._embed(params, image.image[None])
        return image.image, ReferenceEmbedding(embedding[0], finite[0] & image.valid, acquired)

    image, embedding = reference(data.head, data.recognizer_params)
    return dataclasses.replace(evaluation, data=data.replace(reference=embedding), reference_image=np.asarray(image),
                               _compiled={})

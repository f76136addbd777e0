"""The loaded pieces of a study (head, space, recognizer, evaluation) from the values of its flags.

Every study that scores points - a search, a saved sample's re-render, a region flood fill, a sweep - names the
same things: `--head`, `--texture`, `--space`, `--recognizer`, `--threshold`, `--scenario`, `--supersample`,
`--alignment`.
`build_setup(config)` takes any object with those attributes (a SearchConfig, a saved sample's `EvaluationSpec`)
and returns a `Setup`; every error names the flag.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

from flame import embedded
from flame.model import FlameModel, TextureModel, fingerprint
from simadv_jax.evaluate import DEFAULT_BATCH_SIZE, Evaluation, check_scenario, make_evaluate
from simadv_jax.params import ParamSpace
from simadv_jax.recognizers.base import Recognizer
from simadv_jax.recognizers.registry import family

EMBEDDED = "embedded"
EVALUATION_FIELDS = ("head", "texture", "space", "recognizer", "threshold", "scenario", "supersample", "alignment")


@dataclasses.dataclass(frozen=True)
class EvaluationSpec:
    """What decides an evaluation, as flag values (the fields of EVALUATION_FIELDS; threshold: the similarity
    threshold, None for the recognizer's own)."""

    head: str = EMBEDDED
    texture: str = EMBEDDED
    space: str = "yaw=-1:1"
    recognizer: str = "dlib_resnet"
    threshold: Optional[float] = None
    scenario: str = "genuine"
    supersample: int = 1
    alignment: str = "oracle"


def load_head(head: str, texture: str) -> tuple[FlameModel, TextureModel]:
    """(FlameModel, TextureModel) from "embedded" or file paths; errors name --head / --texture."""
    import flame

    try:
        model = flame.embedded_model() if head == EMBEDDED else flame.load_model(head)
    except (OSError, ValueError) as e:
        raise ValueError(f"--head={head}: {e}") from None
    try:
        texture_model = flame.embedded_texture() if texture == EMBEDDED else flame.load_texture(texture)
    except (OSError, ValueError) as e:
        raise ValueError(f"--texture={texture}: {e}") from None
    return model, texture_model


def head_fingerprints(model: FlameModel, texture_model: TextureModel) -> dict[str, str]:
    """{"head", "texture"}: the loaded models' content fingerprints (`flame.fingerprint`) by flag, as a run
    directory records them (`report.rundir.check_fingerprints`)."""
    return {"head": fingerprint(model), "texture": fingerprint(texture_model)}


def head_record(model: FlameModel, texture_model: TextureModel) -> dict:
    """A study payload's "head": `flame.embedded.head_record` plus "judged_family" (the judge and every recognizer
    that shares its network, `recognizers.registry.family`; None without a judge)."""
    record = embedded.head_record(model, texture_model)
    return {**record, "judged_family": family(record["judged_with"]) if record["judged_with"] else None}


def parse_space(spec: str, model: FlameModel, texture_model: TextureModel) -> ParamSpace:
    """`--space` parsed against this head's basis sizes."""
    return ParamSpace.parse(spec, num_shape=model.num_shape, num_texture=texture_model.num_components,
                            num_expression=model.num_expression)


def load_recognizer(name: str, flag: str = "--recognizer") -> Recognizer:
    """The recognizer `name` from the registry; any failure is one ValueError naming `flag`."""
    from simadv_jax import recognizers

    try:
        return recognizers.load(name)
    except (ImportError, OSError) as e:
        raise ValueError(f"{flag}={name}: {e}") from None
    except ValueError as e:
        message = str(e)
        raise ValueError(message if message.startswith("--") else f"{flag}={name}: {message}") from None


@dataclasses.dataclass
class Setup:
    """The loaded pieces: config (the object built from), model, texture_model, space, recognizer, evaluation;
    cache: compiled functions and other evaluations, reused across calls."""

    config: Any
    model: FlameModel
    texture_model: TextureModel
    space: ParamSpace
    recognizer: Recognizer
    evaluation: Evaluation
    cache: dict = dataclasses.field(default_factory=dict)

    def compatible(self, config) -> None:
        """Raises ValueError unless `config` names the same pieces this setup holds."""
        for field in EVALUATION_FIELDS:
            if getattr(config, field) != getattr(self.config, field):
                raise ValueError(f"--{field}: differs from the setup's ({getattr(self.config, field)!r})")

    def evaluation_for(self, name: str, flag: str = "--rescore_with") -> Evaluation:
        """The same space, head, scenario, supersampling, alignment and batch size scored by recognizer `name` at
        its own threshold, template and input size (cached)."""
        key = ("evaluation", name)
        if key not in self.cache:
            other = self.recognizer if name == self.config.recognizer else load_recognizer(name, flag)
            self.cache[key] = make_evaluate(self.space, self.model, self.texture_model, other,
                                            scenario=self.config.scenario, supersample=self.config.supersample,
                                            alignment=self.config.alignment, batch_size=self.evaluation.batch_size)
        return self.cache[key]


def build_setup(config, recognizer: Optional[Recognizer] = None,
                head: Optional[tuple[FlameModel, TextureModel]] = None, batch_size: int = DEFAULT_BATCH_SIZE) -> Setup:
    """Loads everything `config` names (an object with the EVALUATION_FIELDS attributes) and builds the
    evaluation (`batch_size` points per compiled call of its host methods); a given `recognizer` record /
    `(model, texture)` head replaces the named one (tests, notebooks)."""
    model, texture_model = head if head is not None else load_head(config.head, config.texture)
    space = parse_space(config.space, model, texture_model)
    check_scenario(space, config.scenario)
    recognizer = load_recognizer(config.recognizer) if recognizer is None else recognizer
    evaluation = make_evaluate(space, model, texture_model, recognizer, scenario=config.scenario,
                               similarity_threshold=config.threshold, supersample=config.supersample,
                               alignment=config.alignment, batch_size=batch_size)
    return Setup(config, model, texture_model, space, recognizer, evaluation)

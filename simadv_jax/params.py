"""ParamSpace: named, bounded simulator parameter groups <-> flat search vectors rho.

Units of rho. rho holds the searched parameters *in the paper's units*, one coordinate per searched
dimension, unscaled: identity/expression coefficients in standard deviations of their basis (shape
in [-2, 2] means [-2 sigma, 2 sigma]); angles in units of pi/2 rad (yaw 1 = pi/2 = profile, pitch
1/4 = pi/8). Strategies therefore act on the units the paper's hyperparameters were stated in: the
policy's sigma^2 = 0.05, random optimization's std = w_p / 10 and Gaussian sampling's std = w_p / 2
(w_p = hi - lo of the dimension) mean what they meant in the paper. `decode` converts to the
simulator's internal units (radians) and fills in every fixed value.

Groups (name: unit of the value written in a spec -> unit in SceneParams; default):
  shape[a:b], texture[a:b], expression[a:b]: standard deviations -> same; 0 (the mean).
  yaw, pitch, roll: pi/2 rad -> rad; 0 (frontal). FLAME axes: yaw about y (up), pitch about x,
    roll about z, applied as the head's global rotation.
  jaw: pi/2 rad -> rad, the jaw joint's opening rotation about x; 0 (closed).
  light_azimuth, light_elevation: pi/2 rad -> rad, direction of a directional light in view space
    (0, 0 = from the camera; azimuth > 0 towards image right, elevation > 0 from above); 0.
  light_intensity: directional light strength, unitless; 0.7.  ambient: ambient term; 0.3.
    The simulator turns the four light values into DECA's 9 SH coefficients per channel
    (`simadv_jax.render.directional_light_sh`): irradiance ~ ambient + intensity * max(0, n . d).
  camera_distance: metres from the camera to the head's origin; 1.0.
  focal_length: focal length divided by the image width; 5.0.

Reference and probe. Every sample is a pair: a reference image and a probe image of one scene.
A spec entry without prefix sets the *probe's* value. The reference image takes, per dimension:
  - shape, texture: the probe's value (tied: one identity per pair), unless overridden;
  - every other group: its default (frontal, neutral, default light and camera), unless overridden.
Overrides are entries prefixed `ref.`: `ref.yaw=0.5` (fixed), `ref.yaw=-1:1` (searched on its own,
named "ref.yaw" in rho), `ref.jaw=tied` (shares the probe's value). The paper's default scenario
(identity shared, pose/expression/light probe-only, reference frontal neutral) needs no `ref.`
entry; the impostor scenario searches a second identity with `ref.shape[0:15]=-2:2`.

Spec syntax (the `--space` flag): comma-separated `TARGET=VALUE` entries,
  TARGET = [ref.]GROUP | [ref.]GROUP[i] | [ref.]GROUP[a:b]   (indices only on shape/texture/expression)
  VALUE  = lo:hi (searched in [lo, hi]) | v (fixed) | tied (ref. targets only)
e.g. `shape[0:15]=-2:2,texture[0:15]=-2:2,yaw=-1:1,pitch=-0.25:0.25`. Dimensions no entry names
keep their defaults. Coefficient vectors in SceneParams have length one past the highest index the
spec names (the simulator zero-pads to the basis).
"""
from __future__ import annotations

import dataclasses
import math
import re
from typing import Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

FLAG = "--space"
VECTOR_GROUPS = ("shape", "texture", "expression")


class _Scalar(NamedTuple):
    scale: float  # paper unit -> SceneParams unit
    default: float  # paper units


SCALAR_GROUPS = {
    "yaw": _Scalar(math.pi / 2, 0.0),
    "pitch": _Scalar(math.pi / 2, 0.0),
    "roll": _Scalar(math.pi / 2, 0.0),
    "jaw": _Scalar(math.pi / 2, 0.0),
    "light_azimuth": _Scalar(math.pi / 2, 0.0),
    "light_elevation": _Scalar(math.pi / 2, 0.0),
    "light_intensity": _Scalar(1.0, 0.7),
    "ambient": _Scalar(1.0, 0.3),
    "camera_distance": _Scalar(1.0, 1.0),
    "focal_length": _Scalar(1.0, 5.0),
}
GROUPS = VECTOR_GROUPS + tuple(SCALAR_GROUPS)
_TIED_BY_DEFAULT = ("shape", "texture")
_IMAGES = ("probe", "ref")


@struct.dataclass
class ImageParams:
    """Simulator inputs of one image (leading batch axes allowed on every field).

    shape (S,), texture (T,), expression (E,): float32 coefficients in standard deviations.
    yaw, pitch, roll, jaw, light_azimuth, light_elevation: float32 radians.
    light_intensity, ambient: float32 unitless. camera_distance: float32 metres.
    focal_length: float32 focal length / image width.
    """

    shape: jax.Array
    texture: jax.Array
    expression: jax.Array
    yaw: jax.Array
    pitch: jax.Array
    roll: jax.Array
    jaw: jax.Array
    light_azimuth: jax.Array
    light_elevation: jax.Array
    light_intensity: jax.Array
    ambient: jax.Array
    camera_distance: jax.Array
    focal_length: jax.Array


@struct.dataclass
class SceneParams:
    """One reference/probe pair as the simulator consumes it."""

    reference: ImageParams
    probe: ImageParams


def clip_to_box(rho: jax.Array, lows: jax.Array, highs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(..., n) -> ((..., n) rho clipped to [lows, highs], (...) int32 count of clipped coordinates).

    Non-finite coordinates are left as they are (the evaluation marks such samples invalid).
    """
    clipped = jnp.clip(rho, lows, highs)
    outside = (rho < lows) | (rho > highs)
    return clipped, jnp.sum(outside, axis=-1, dtype=jnp.int32)


class _Entry(NamedTuple):
    image: str  # "probe" | "ref"
    group: str
    start: int  # first index for vector groups, 0 for scalars
    stop: int
    kind: str  # "fixed" | "range" | "tied"
    lo: float
    hi: float
    text: str  # the entry with whitespace removed


def _error(message: str) -> ValueError:
    return ValueError(f"{FLAG}: {message}")


_TARGET = re.compile(r"^(ref\.)?([a-z_]+)(?:\[(\d+)(?::(\d+))?\])?$")


def _number(text: str, entry: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _error(f"entry {entry!r}: {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise _error(f"entry {entry!r}: {text.strip()!r} is not finite")
    return value


def _parse_entry(entry: str, basis: Mapping[str, int]) -> _Entry:
    if entry.count("=") != 1:
        raise _error(f"malformed entry {entry!r}: expected TARGET=VALUE, e.g. 'yaw=-1:1'")
    target, value = (part.strip() for part in entry.split("="))
    match = _TARGET.match(target)
    if match is None:
        raise _error(f"malformed target {target!r}: expected GROUP, GROUP[i] or GROUP[a:b], optionally prefixed 'ref.'")
    prefix, group, first, last = match.groups()
    image = "ref" if prefix else "probe"
    if group not in GROUPS:
        raise _error(f"unknown group {group!r} in {entry!r}; known groups: {', '.join(GROUPS)}")
    if group in VECTOR_GROUPS:
        if first is None:
            raise _error(f"{group!r} needs an index range, e.g. '{group}[0:15]'")
        start = int(first)
        stop = int(last) if last is not None else start + 1
        if stop <= start:
            raise _error(f"empty index range in {target!r}")
        if stop > basis[group]:
            raise _error(f"{target!r} goes past the model's {group} basis of {basis[group]} components")
    else:
        if first is not None:
            raise _error(f"{group!r} is a scalar group and takes no index ({target!r})")
        start, stop = 0, 1
    if value == "tied":
        if image != "ref":
            raise _error(f"'tied' is only valid on reference targets, e.g. 'ref.{target}=tied'")
        return _Entry(image, group, start, stop, "tied", 0.0, 0.0, f"{target}={value}")
    if ":" in value:
        lo_text, _, hi_text = value.partition(":")
        lo, hi = _number(lo_text, entry), _number(hi_text, entry)
        if lo > hi:
            raise _error(f"inverted range in {entry!r}: low {lo} > high {hi}")
        if lo == hi:
            raise _error(f"empty range in {entry!r}: write the fixed value '{target}={lo}' instead")
        return _Entry(image, group, start, stop, "range", lo, hi, f"{target}={lo_text.strip()}:{hi_text.strip()}")
    fixed = _number(value, entry)
    return _Entry(image, group, start, stop, "fixed", fixed, fixed, f"{target}={value}")


def _dimension_name(image: str, group: str, index: int | None) -> str:
    prefix = "ref." if image == "ref" else ""
    return f"{prefix}{group}" if index is None else f"{prefix}{group}[{index}]"


@dataclasses.dataclass(frozen=True, eq=False)
class ParamSpace:
    """A parsed `--space`: which simulator inputs are searched, within which bounds.

    Build with `ParamSpace.parse`. Static (hashable by identity, safe as a jit static argument);
    `decode`/`encode`/`clip` are pure jnp functions of rho and work on any leading batch axes.

    Attributes:
      spec: the spec text without whitespace (re-parses to the same space).
      names: per-dimension names, e.g. ("shape[0]", ..., "yaw", "ref.shape[0]").
      lows, highs: (n,) float32 bounds of rho, paper units.
      sizes: {"shape": S, "texture": T, "expression": E} coefficient vector lengths in SceneParams.
    """

    spec: str
    names: tuple[str, ...]
    lows: np.ndarray
    highs: np.ndarray
    sizes: Mapping[str, int]
    # Per image, per slot of the layout [shape S | texture T | expression E | SCALAR_GROUPS]:
    # source dimension of rho (-1: fixed), fixed value (paper units), and scale to SceneParams units.
    _source: Mapping[str, np.ndarray]
    _value: Mapping[str, np.ndarray]
    _scale: np.ndarray
    # For encode: per rho dimension, the image and slot it was first read from.
    _encode_image: np.ndarray
    _encode_slot: np.ndarray

    @classmethod
    def parse(cls, text: str, *, num_shape: int, num_texture: int, num_expression: int) -> "ParamSpace":
        """Parses a spec (syntax in the module docstring) against the model's basis sizes.

        Raises ValueError naming `--space` for malformed text, unknown groups, inverted or empty
        ranges, indices past the basis, a dimension set twice, or a space with nothing searched.
        """
        basis = {"shape": num_shape, "texture": num_texture, "expression": num_expression}
        pieces = [piece.strip() for piece in text.split(",")]
        if not text.strip() or any(not piece for piece in pieces):
            raise _error(f"malformed spec {text!r}: expected comma-separated TARGET=VALUE entries")
        entries = [_parse_entry(piece, basis) for piece in pieces]

        sizes = {group: 0 for group in VECTOR_GROUPS}
        for entry in entries:
            if entry.group in VECTOR_GROUPS:
                sizes[entry.group] = max(sizes[entry.group], entry.stop)
        # The layout of one image: [shape S | texture T | expression E | one slot per scalar group].
        layout = [(group, index) for group in VECTOR_GROUPS for index in range(sizes[group])]
        layout += [(group, None) for group in SCALAR_GROUPS]
        offsets: dict[str, int] = {}
        for slot, (group, _) in enumerate(layout):
            offsets.setdefault(group, slot)
        num_slots = len(layout)

        scale = np.ones(num_slots, np.float32)
        default = np.zeros(num_slots, np.float32)
        for group, info in SCALAR_GROUPS.items():
            scale[offsets[group]] = info.scale
            default[offsets[group]] = info.default

        assigned: dict[str, dict[int, _Entry]] = {image: {} for image in _IMAGES}  # image -> slot -> entry
        for entry in entries:
            for index in range(entry.start, entry.stop):
                slot = offsets[entry.group] + index
                if slot in assigned[entry.image]:
                    name = _dimension_name(entry.image, *layout[slot])
                    raise _error(f"{name} is set more than once")
                assigned[entry.image][slot] = entry

        names, lows, highs = [], [], []
        source = {image: np.full(num_slots, -1, np.int32) for image in _IMAGES}
        value = {image: default.copy() for image in _IMAGES}
        encode_image, encode_slot = [], []

        for image in _IMAGES:
            for slot in range(num_slots):
                entry = assigned[image].get(slot)
                group, index = layout[slot]
                if entry is None and image == "ref" and group in _TIED_BY_DEFAULT:
                    entry = _Entry("ref", group, 0, 0, "tied", 0.0, 0.0, "")
                if entry is None:
                    continue
                if entry.kind == "tied":
                    source["ref"][slot] = source["probe"][slot]
                    value["ref"][slot] = value["probe"][slot]
                elif entry.kind == "fixed":
                    value[image][slot] = entry.lo
                else:
                    source[image][slot] = len(names)
                    names.append(_dimension_name(image, group, index))
                    lows.append(entry.lo)
                    highs.append(entry.hi)
                    encode_image.append(_IMAGES.index(image))
                    encode_slot.append(slot)
        if not names:
            raise _error(f"nothing is searched in {text!r}: give at least one range 'GROUP=lo:hi'")

        def frozen(array: np.ndarray) -> np.ndarray:
            array.setflags(write=False)
            return array

        return cls(
            spec=",".join(entry.text for entry in entries),
            names=tuple(names),
            lows=frozen(np.asarray(lows, np.float32)),
            highs=frozen(np.asarray(highs, np.float32)),
            sizes=dict(sizes),
            _source={image: frozen(array) for image, array in source.items()},
            _value={image: frozen(array) for image, array in value.items()},
            _scale=frozen(scale),
            _encode_image=frozen(np.asarray(encode_image, np.int32)),
            _encode_slot=frozen(np.asarray(encode_slot, np.int32)),
        )

    # ---- bounds ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """n, the number of searched dimensions."""
        return len(self.names)

    @property
    def widths(self) -> np.ndarray:
        """(n,) float32 highs - lows (the paper's w_p)."""
        return self.highs - self.lows

    @property
    def center(self) -> np.ndarray:
        """(n,) float32 centre of the box."""
        return (self.lows + self.highs) / 2

    @property
    def reference_is_constant(self) -> bool:
        """True when no reference value depends on rho (its embedding can be computed once)."""
        return bool(np.all(self._source["ref"] < 0))

    @property
    def identity_is_tied(self) -> bool:
        """True when the reference's shape and texture are the probe's (one identity per pair)."""
        layout = slice(0, self.sizes["shape"] + self.sizes["texture"])
        same_source = np.array_equal(self._source["ref"][layout], self._source["probe"][layout])
        return same_source and np.array_equal(self._value["ref"][layout], self._value["probe"][layout])

    def clip(self, rho: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(..., n) -> ((..., n) rho clipped to the box, (...) int32 clipped coordinates per sample)."""
        return clip_to_box(rho, self.lows, self.highs)

    # ---- rho <-> simulator inputs ---------------------------------------------------------
    def _image(self, rho: jax.Array, image: str) -> ImageParams:
        source = self._source[image]
        taken = jnp.take(rho, np.maximum(source, 0), axis=-1)
        flat = jnp.where(source >= 0, taken, self._value[image]) * self._scale  # (..., slots)
        fields, slot = {}, 0
        for group in VECTOR_GROUPS:
            fields[group] = flat[..., slot : slot + self.sizes[group]]
            slot += self.sizes[group]
        for group in SCALAR_GROUPS:
            fields[group] = flat[..., slot]
            slot += 1
        return ImageParams(**fields)

    def decode(self, rho: jax.Array) -> SceneParams:
        """(..., n) rho in paper units -> SceneParams in simulator units (radians for angles).

        rho is used as given (clip first if it may leave the box).
        """
        rho = jnp.asarray(rho, jnp.float32)
        if rho.shape[-1:] != (self.size,):
            raise ValueError(f"{FLAG}: rho has trailing size {rho.shape[-1:]}, the space has {self.size} dimensions")
        return SceneParams(reference=self._image(rho, "ref"), probe=self._image(rho, "probe"))

    def encode(self, scene: SceneParams) -> jax.Array:
        """SceneParams -> (..., n) rho: the searched values read back (inverse of `decode`)."""
        flats = []
        for image in (scene.probe, scene.reference):
            parts = [getattr(image, group) for group in VECTOR_GROUPS]
            parts += [getattr(image, group)[..., None] for group in SCALAR_GROUPS]
            flats.append(jnp.concatenate(parts, axis=-1) / self._scale)
        stacked = jnp.stack(flats, axis=-2)  # (..., 2, slots)
        return stacked[..., self._encode_image, self._encode_slot]

    def to_dict(self, rho) -> dict[str, float]:
        """(n,) rho -> {dimension name: value in paper units} (host values, for reports)."""
        values = np.asarray(rho, np.float64)
        if values.shape != (self.size,):
            raise ValueError(f"{FLAG}: expected rho of shape ({self.size},), got {values.shape}")
        return {name: float(v) for name, v in zip(self.names, values)}

    def from_dict(self, values: Mapping[str, float]) -> np.ndarray:
        """{dimension name: value} (exactly the space's names) -> (n,) float32 rho."""
        missing = [name for name in self.names if name not in values]
        unknown = [name for name in values if name not in self.names]
        if missing or unknown:
            raise ValueError(f"{FLAG}={self.spec}: parameter names do not match; missing {missing}, unknown {unknown}")
        return np.asarray([values[name] for name in self.names], np.float32)

"""The simulator: ImageParams / SceneParams -> rendered face images (pure, one sample; batch with `jax.vmap`).

One image is made in four stages:
  1. geometry: `flame.forward` with the identity (shape), expression and jaw opening; the head's global
     rotation (yaw about +y, then pitch about +x, then roll about +z, R = Ry Rx Rz) is applied about the
     posed root joint, exactly like FLAME's global pose.
  2. albedo: `flame.albedo` with the texture coefficients.
  3. camera: a perspective camera on the +z axis at `camera_distance` metres from the landmarks' centroid,
     looking at it (the face looks down +z at zero pose), with focal length `focal_length` x image width.
     `render_image` then folds the similarity that puts the 5 template landmarks onto the recognizer's
     template into the projection (`simadv_jax.render.align_camera`), so the face is rasterized straight
     into the aligned crop; `render_framed` keeps a fixed framing instead (for detectors).
  4. light: a directional light (azimuth/elevation in radians, view space; 0, 0 = from the camera) of
     strength `light_intensity` plus an `ambient` term, expressed as DECA's 9 SH coefficients per channel
     (`render.directional_light_sh`), shading albedo x irradiance.

Images are float32 RGB in [0, 1], (H, W, 3). `valid` is False when the image is not finite, no face pixel
was drawn, or a landmark lies behind the camera.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

import flame
from flame.model import FlameModel, TextureModel
from simadv_jax.params import ImageParams, SceneParams
from simadv_jax.render import (Camera, align_camera, directional_light_sh, get_template, look_at,
                               perspective_from_focal, render_mesh, to_pixels)

DEFAULT_BACKGROUND = (0.5, 0.5, 0.5)
# The camera and background of studies that sample scenes (realism, synthetic training): a head 0.6 m away,
# focal length 1.2 x image width (aligned crops rescale anyway), a grey-blue background.
STUDY_CAMERA_DISTANCE = 0.6
STUDY_FOCAL_LENGTH = 1.2
STUDY_BACKGROUND = (0.45, 0.47, 0.5)
# render_framed: pixels per metre are face_width_px / FACE_WIDTH_M at the landmarks' depth.
FACE_WIDTH_M = 0.15
# A photo as detectors and the deployed pipeline see it (`View.photo`): 256x256, the face ~100-140 px wide.
PHOTO_SIZE = 256
PHOTO_FACE_WIDTH_PX = 115.0


class Image(NamedTuple):
    """image: (H, W, 3) float32 RGB in [0, 1]. valid: () bool. mask: (H, W) float32 face coverage.
    landmarks: (L, 2) float32 landmark positions in continuous pixel coordinates (u right, v down)."""

    image: jax.Array
    valid: jax.Array
    mask: jax.Array
    landmarks: jax.Array


def rotation(yaw, pitch, roll) -> jax.Array:
    """(3, 3) R = Ry(yaw) Rx(pitch) Rz(roll), radians, right-handed (yaw > 0 turns the face towards +x)."""
    cy, sy, cp, sp, cr, sr = jnp.cos(yaw), jnp.sin(yaw), jnp.cos(pitch), jnp.sin(pitch), jnp.cos(roll), jnp.sin(roll)
    one, zero = jnp.ones_like(cy), jnp.zeros_like(cy)
    ry = jnp.array([[cy, zero, sy], [zero, one, zero], [-sy, zero, cy]])
    rx = jnp.array([[one, zero, zero], [zero, cp, -sp], [zero, sp, cp]])
    rz = jnp.array([[cr, -sr, zero], [sr, cr, zero], [zero, zero, one]])
    return ry @ rx @ rz


def check_head(model: FlameModel, texture_model: TextureModel) -> None:
    """Raises ValueError naming the head model when the simulator cannot render it."""
    if model.landmarks is None:
        raise ValueError(f"head model {model.name!r}: the simulator needs a landmark embedding (for alignment)")
    if texture_model.is_uv and (model.uv_coords is None or model.uv_faces is None):
        raise ValueError(f"head model {model.name!r}: a UV texture model needs the head's uv_coords and uv_faces")


def _geometry(model: FlameModel, params: ImageParams):
    """Posed (V, 3) vertices and (L, 3) landmarks, and the (4, 4) look-at view matrix."""
    pose = flame.pose(model.num_joints, jaw=params.jaw)
    out = flame.rotate_about_root(flame.forward(model, params.shape, params.expression, pose),
                                  rotation(params.yaw, params.pitch, params.roll))
    vertices, landmarks = out.vertices, out.landmarks
    target = jnp.mean(landmarks, axis=0)
    eye = target + jnp.stack([0.0, 0.0, params.camera_distance])
    return vertices, landmarks, look_at(eye, target)


def aligned_geometry(model: FlameModel, params: ImageParams, template: str, size: int):
    """The geometry of one aligned render (pure; vmap over `params`).

    Returns (vertices (V, 3) posed and rotated, metres; landmarks (L, 3); the Camera whose projection puts the
    5 template landmarks onto `template` in a `size` x `size` image).
    """
    vertices, landmarks, view = _geometry(model, params)
    camera = Camera(view, perspective_from_focal(params.focal_length * size, size))
    return vertices, landmarks, align_camera(camera, landmarks, template, model.landmarks.layout)


def _render(model, texture_model, params, camera, resolution, supersample, background, vertices, landmarks,
            check_finite=True) -> Image:
    albedo = flame.albedo(texture_model, params.texture)
    sh = directional_light_sh(params.light_azimuth, params.light_elevation, params.light_intensity, params.ambient)
    size = _size(resolution)
    rendered = render_mesh(vertices, model.faces, camera, size, albedo, uv_coords=model.uv_coords,
                           uv_faces=model.uv_faces, sh_coeffs=sh, background=jnp.asarray(background, jnp.float32),
                           supersample=supersample)
    clip = camera.to_clip(landmarks)
    pixels = to_pixels(clip, size)
    valid = (jnp.sum(rendered.mask) > 0) & jnp.all(clip[:, 3] > 0)
    if check_finite:
        valid = valid & jnp.all(jnp.isfinite(rendered.image))
    return Image(rendered.image, valid, rendered.mask, pixels)


def _size(resolution: int) -> int:
    """The static square output side in pixels (validated)."""
    if not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution: expected a positive int, got {resolution!r}")
    return resolution


def render_image(
    model: FlameModel,
    texture_model: TextureModel,
    params: ImageParams,
    *,
    template: str,
    resolution: Optional[int] = None,
    supersample: int = 1,
    background=DEFAULT_BACKGROUND,
    check_finite: bool = True,
) -> Image:
    """One image rendered straight into a recognizer's aligned crop (pure; vmap over `params`).

    Args:
      model, texture_model: the head and its albedo model (FLAME format; the head needs landmarks).
      params: unbatched ImageParams (simulator units: radians, metres, standard deviations).
      template: static alignment template name ("dlib150", "arcface112"); the 5 template landmarks land on it.
      resolution: static output side in pixels; default the template's size. Any other size renders the same
        crop scaled (the alignment lives in normalized device coordinates).
      supersample: static anti-aliasing factor (rasterize at supersample x resolution, box filter down).
      background: (3,) RGB or scalar in [0, 1].
      check_finite: static; with False, `valid` leaves out the check that every pixel is finite, for callers
        that check the pixels of a whole batch themselves (inside a vmapped render, XLA:CPU would compute
        every pixel a second time for the check).
    Returns:
      Image(image (R, R, 3) in [0, 1], valid, mask (R, R), landmarks (L, 2) pixels).
    """
    check_head(model, texture_model)
    size = get_template(template).size if resolution is None else resolution
    vertices, landmarks, camera = aligned_geometry(model, params, template, size)
    return _render(model, texture_model, params, camera, size, supersample, background, vertices, landmarks,
                   check_finite)


def render_framed(
    model: FlameModel,
    texture_model: TextureModel,
    params: ImageParams,
    *,
    resolution: int = 256,
    face_width_px: Optional[float] = None,
    supersample: int = 1,
    background=DEFAULT_BACKGROUND,
    check_finite: bool = True,
) -> Image:
    """One image with fixed framing (no alignment), e.g. as input to a face detector.

    The landmarks' centroid is at the image centre. Scale: with `face_width_px`, FACE_WIDTH_M metres at the
    centroid's depth span `face_width_px` pixels (independent of `camera_distance`, which then only changes
    perspective); without it, the focal length is `params.focal_length * resolution` pixels.
    Returns Image as `render_image` (check_finite as there).
    """
    check_head(model, texture_model)
    vertices, landmarks, view = _geometry(model, params)
    if face_width_px is None:
        focal = params.focal_length * resolution
    else:
        focal = face_width_px / FACE_WIDTH_M * params.camera_distance
    camera = Camera(view, perspective_from_focal(focal, resolution))
    return _render(model, texture_model, params, camera, resolution, supersample, background, vertices, landmarks,
                   check_finite)


@dataclasses.dataclass(frozen=True)
class View:
    """How an image is framed and drawn (static: hashable, a jit static argument).

    aligned (template set): rendered straight into `template`'s aligned crop (`render_image`), as a recognizer
      sees a face; framed (template None): fixed framing with the landmarks' centroid at the centre
      (`render_framed`), as a detector sees a photo, FACE_WIDTH_M metres spanning `face_width_px` pixels.
    resolution: output side in pixels. supersample: anti-aliasing factor. background: RGB in [0, 1].
    """

    resolution: int
    template: Optional[str] = None
    face_width_px: Optional[float] = None
    supersample: int = 1
    background: tuple = DEFAULT_BACKGROUND

    def __post_init__(self):
        _size(self.resolution)
        if not isinstance(self.supersample, int) or self.supersample < 1:
            raise ValueError(f"--supersample: must be a positive int, got {self.supersample!r}")
        if self.template is not None:
            get_template(self.template)  # raises naming the known templates
        object.__setattr__(self, "background", tuple(float(c) for c in self.background))

    @classmethod
    def aligned(cls, template: str, resolution: Optional[int] = None, **options) -> "View":
        """The aligned crop of `template` (default resolution: the template's own size)."""
        return cls(get_template(template).size if resolution is None else resolution, template, **options)

    @classmethod
    def framed(cls, resolution: int, face_width_px: Optional[float] = None, **options) -> "View":
        """A fixed framing for detectors (see `render_framed`)."""
        return cls(resolution, None, face_width_px, **options)

    @classmethod
    def photo(cls, **options) -> "View":
        """The photo detectors and the deployed pipeline see: `framed(PHOTO_SIZE, PHOTO_FACE_WIDTH_PX)`."""
        return cls.framed(PHOTO_SIZE, PHOTO_FACE_WIDTH_PX, **options)


def render_view(model: FlameModel, texture_model: TextureModel, params: ImageParams, view: View,
                check_finite: bool = True) -> Image:
    """One image as `view` frames it (pure; vmap over `params`): `render_image` or `render_framed`."""
    if view.template is not None:
        return render_image(model, texture_model, params, template=view.template, resolution=view.resolution,
                            supersample=view.supersample, background=view.background, check_finite=check_finite)
    return render_framed(model, texture_model, params, resolution=view.resolution,
                         face_width_px=view.face_width_px, supersample=view.supersample,
                         background=view.background, check_finite=check_finite)


def render_pair(
    model: FlameModel,
    texture_model: TextureModel,
    scene: SceneParams,
    recognizer_template: str,
    resolution: Optional[int] = None,
    *,
    supersample: int = 1,
    background=DEFAULT_BACKGROUND,
) -> tuple[Image, Image]:
    """A scene's (reference, probe) aligned Images for a recognizer's template (pure; vmap over `scene`)."""
    def one(params):
        return render_image(model, texture_model, params, template=recognizer_template, resolution=resolution,
                            supersample=supersample, background=background)

    return one(scene.reference), one(scene.probe)


# ---- scene sampling for studies (realism, synthetic training) ---------------------------------------------


class Identities(NamedTuple):
    """shape: (N, S) and albedo: (N, K) float32 coefficients in standard deviations."""

    shape: np.ndarray
    albedo: np.ndarray


def sample_identities(rng: np.random.Generator, n: int, num_shape: int, num_albedo: int,
                      distribution: str = "normal") -> Identities:
    """N(0, 1) clipped to +-2 ("normal") or U(-2, 2) ("uniform") coefficients."""
    if distribution == "normal":
        draw = lambda k: rng.normal(size=(n, k)).clip(-2.0, 2.0)  # noqa: E731
    elif distribution == "uniform":
        draw = lambda k: rng.uniform(-2.0, 2.0, size=(n, k))  # noqa: E731
    else:
        raise ValueError(f"distribution: expected 'normal' or 'uniform', got {distribution!r}")
    return Identities(draw(num_shape).astype(np.float32), draw(num_albedo).astype(np.float32))


class Lighting(NamedTuple):
    """(N,) float32 each: the simulator's directional + ambient light (radians, unitless)."""

    azimuth: np.ndarray
    elevation: np.ndarray
    intensity: np.ndarray
    ambient: np.ndarray


def random_lighting(rng: np.random.Generator, n: int) -> Lighting:
    """Plausible random light: from within 45 deg of the camera sideways, -10..35 deg elevation, directional
    intensity 0.2-0.6 over an ambient 0.45-0.75 (irradiance ~0.7-1.3 on the lit side)."""
    return Lighting(*(np.asarray(a, np.float32) for a in (
        rng.uniform(-np.pi / 4, np.pi / 4, n), rng.uniform(np.deg2rad(-10), np.deg2rad(35), n),
        rng.uniform(0.2, 0.6, n), rng.uniform(0.45, 0.75, n))))


def neutral_params(model: FlameModel, shape, albedo, yaw, pitch, light: Lighting) -> ImageParams:
    """Unbatched ImageParams of a neutral face (no expression, roll or jaw) at the study camera:
    shape (S,), albedo (K,) in std units, yaw/pitch in radians, light: a Lighting of scalars."""
    zero = jnp.zeros((), jnp.float32)
    return ImageParams(shape=shape, texture=albedo, expression=jnp.zeros(model.num_expression), yaw=yaw,
                       pitch=pitch, roll=zero, jaw=zero, light_azimuth=light.azimuth,
                       light_elevation=light.elevation, light_intensity=light.intensity, ambient=light.ambient,
                       camera_distance=zero + STUDY_CAMERA_DISTANCE, focal_length=zero + STUDY_FOCAL_LENGTH)

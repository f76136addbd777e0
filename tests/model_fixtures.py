"""Fetched models and photos, the reference runtimes, and the inputs the model tests share.

`fetched()` runs the library fetch (`simadv_jax.fetch.fetch`, under a timeout) once per session; when a client
or the registry cannot be reached the tests that need it skip with the reason. `tfjs_node()` installs
TensorFlow.js (tfjs-core, tfjs-converter and the pure-JS CPU backend, no native binaries) with npm into the cache
folder, once. Faces: the fetched photos detected and aligned by the project's own pipeline
(`recognizers.detectors`), and rendered chips of the embedded head (`evaluate.make_renderer`).
"""
from __future__ import annotations

import functools
import os
import subprocess

import numpy as np
import pytest

from simadv_jax import fetch

FETCH_TIMEOUT_S = 180  # per client call; the first failing source ends the fetch
TFJS_VERSION = "4.22.0"
TFJS_PACKAGES = tuple(f"@tensorflow/{p}@{TFJS_VERSION}" for p in ("tfjs-core", "tfjs-converter", "tfjs-backend-cpu"))
TFJS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference", "tfjs_run.js")
# person of each photo; t1.jpg is one group photo of 6 different people.
PHOTOS = (("obama.jpg", "obama"), ("obama2.jpg", "obama"), ("obama3.jpg", "obama"), ("biden.jpg", "biden"),
          ("t1.jpg", None))
T1_FACES = 6


@functools.lru_cache(maxsize=1)
def _fetch() -> str | None:
    try:
        fetch.fetch(timeout=FETCH_TIMEOUT_S)
    except fetch.FetchError as e:
        return str(e)
    return None


def fetched() -> None:
    """Every asset of simadv_jax.fetch cached, or the calling test skipped with the reason."""
    reason = _fetch()
    if reason:
        pytest.skip(f"models not fetched: {reason}")


@functools.lru_cache(maxsize=1)
def _tfjs_node() -> tuple[str | None, str | None]:
    folder = os.path.join(fetch.cache_root(), "node", f"tfjs-{TFJS_VERSION}")
    modules = os.path.join(folder, "node_modules")
    if all(os.path.isdir(os.path.join(modules, *p.rsplit("@", 1)[0].split("/"))) for p in TFJS_PACKAGES):
        return modules, None
    try:
        result = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "--prefix", folder,
                                 *TFJS_PACKAGES], capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
    except FileNotFoundError:
        return None, "npm is not installed (install Node.js and npm)"
    except subprocess.TimeoutExpired:
        return None, f"npm install {' '.join(TFJS_PACKAGES)} timed out (no network?)"
    if result.returncode != 0:
        return None, f"npm install {' '.join(TFJS_PACKAGES)} failed: {result.stderr.strip()[-300:]}"
    return modules, None


def tfjs_node() -> str:
    """NODE_PATH holding TensorFlow.js, or the calling test skipped with the reason."""
    modules, reason = _tfjs_node()
    if reason:
        pytest.skip(f"TensorFlow.js reference runtime unavailable: {reason}")
    return modules


def run_tfjs(model_json: str, inputs: np.ndarray, node: str, tmp_path) -> np.ndarray:
    """The TFJS runtime's value of `node` for NHWC float32 `inputs` -> (B, -1) float32."""
    inputs = np.ascontiguousarray(inputs, "<f4")
    source, target = os.path.join(tmp_path, "in.f32"), os.path.join(tmp_path, "out.f32")
    inputs.tofile(source)
    result = subprocess.run(["node", TFJS_SCRIPT, model_json, source, ",".join(map(str, inputs.shape)), target,
                             node], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NODE_PATH": tfjs_node()})
    assert result.returncode == 0, result.stderr[-2000:]
    return np.fromfile(target, "<f4").reshape(len(inputs), -1)


def read_photo(name: str) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] of a fetched photo."""
    from PIL import Image

    with Image.open(fetch.asset_path(name)) as image:
        return np.asarray(image.convert("RGB"), np.float32) / 255.0


@functools.lru_cache(maxsize=1)
def photo_faces() -> tuple:
    """((person, photo name, image, (468, 2) mesh landmarks), ...) of every face found in PHOTOS, in order; the
    group photo's faces are persons "t1_0".."t1_5"."""
    from simadv_jax.recognizers import detectors

    faces = []
    for name, person in PHOTOS:
        image = read_photo(name)
        for k, detection in enumerate(detectors.detect(image)):
            mesh, _ = detectors.face_mesh(image, detection)
            faces.append((person or f"t1_{k}", name, image, mesh))
    return tuple(faces)


@functools.lru_cache(maxsize=4)
def photo_crops(template: str) -> np.ndarray:
    """(F, S, S, 3) float32 crops of `template` of every face of photo_faces(), rounded to 8 bits."""
    from simadv_jax.recognizers import detectors

    crops = np.stack([detectors.align_photo(image, mesh, template) for _, _, image, mesh in photo_faces()])
    return np.rint(crops * 255.0) / 255.0


@functools.lru_cache(maxsize=4)
def rendered_chips(template: str, n: int = 4) -> np.ndarray:
    """(n, S, S, 3) float32 aligned renders of the embedded head for `template` (random identities, yaw within
    +-0.5, reference and probe of n/2 pairs), rounded to 8 bits."""
    import flame
    from simadv_jax import simulator
    from simadv_jax.evaluate import make_renderer
    from simadv_jax.params import ParamSpace

    model, texture = flame.embedded_model(), flame.embedded_texture()
    space = ParamSpace.parse("shape[0:10]=-2:2,texture[0:10]=-2:2,yaw=-0.3:0.3", num_shape=model.num_shape,
                             num_texture=texture.num_components, num_expression=model.num_expression)
    renderer = make_renderer(space, model, texture, simulator.View.aligned(template), batch_size=8)
    rho = np.random.default_rng(0).uniform(space.lows, space.highs, (n // 2, space.size)).astype(np.float32)
    pairs = renderer.images(rho)
    images = np.concatenate([pairs.reference, pairs.probe])
    return np.rint(images * 255.0) / 255.0

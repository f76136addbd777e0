"""Rendering found samples for reports, lossless PNG files, and the adversarials/ folder."""
from __future__ import annotations

import io
import os

import jax
import jax.numpy as jnp
import numpy as np

from simadv_jax import simulator
from simadv_jax.recognizers.dlib_reference import to_uint8
from simadv_jax.report.files import write_bytes_atomic, write_json_atomic

CHUNK = 8  # pairs rendered per jitted call (padded, so it compiles once)


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) float RGB in [0, 1] or uint8 -> lossless PNG bytes."""
    from PIL import Image

    array = image if image.dtype == np.uint8 else to_uint8(image)
    buffer = io.BytesIO()
    Image.fromarray(array, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def read_png(path: str) -> np.ndarray:
    """PNG file -> (H, W, 3) uint8 RGB."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def pair_renderer(model, texture_model, space, template: str, resolution: int, supersample: int = 1,
                  background=simulator.DEFAULT_BACKGROUND):
    """Returns `render(rho (N, n)) -> (reference (N, R, R, 3), probe (N, R, R, 3))` float32 numpy, N any."""

    @jax.jit
    def chunk(head, rho):
        scene = space.decode(rho)
        ref, probe = jax.vmap(lambda s: simulator.render_pair(head[0], head[1], s, template, resolution,
                                                              supersample=supersample, background=background))(scene)
        return ref.image, probe.image

    def render(rho):
        rho = np.asarray(rho, np.float32).reshape(-1, space.size)
        refs, probes = [], []
        for start in range(0, rho.shape[0], CHUNK):
            part = rho[start:start + CHUNK]
            padded = np.concatenate([part, np.repeat(part[:1], CHUNK - part.shape[0], axis=0)])
            ref, probe = jax.device_get(chunk((model, texture_model), jnp.asarray(padded)))
            refs.append(ref[:part.shape[0]])
            probes.append(probe[:part.shape[0]])
        if not refs:
            empty = np.zeros((0, resolution, resolution, 3), np.float32)
            return empty, empty
        return np.concatenate(refs), np.concatenate(probes)

    return render


def write_adversarial_files(directory: str, index: int, reference: np.ndarray, probe: np.ndarray,
                            record: dict) -> dict:
    """Writes NNNN_reference.png, NNNN_probe.png (lossless) and NNNN.json; returns their names."""
    stem = f"{index:04d}"
    names = {"reference": f"{stem}_reference.png", "probe": f"{stem}_probe.png", "params": f"{stem}.json"}
    write_bytes_atomic(os.path.join(directory, names["reference"]), png_bytes(reference))
    write_bytes_atomic(os.path.join(directory, names["probe"]), png_bytes(probe))
    write_json_atomic(os.path.join(directory, names["params"]), record)
    return names

"""Images as files: 8-bit quantization, lossless PNG bytes, and the adversarials/ folder of a run."""
from __future__ import annotations

import io
import os

import numpy as np

from simadv_jax.report.files import write_bytes_atomic, write_json_atomic


def to_uint8(images: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) float RGB in [0, 1] -> uint8 0-255, rounded to nearest, clipped."""
    return np.clip(np.rint(np.asarray(images, np.float32) * 255.0), 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W, 3) float RGB in [0, 1] or uint8 -> lossless PNG bytes."""
    from PIL import Image

    array = image if image.dtype == np.uint8 else to_uint8(image)
    buffer = io.BytesIO()
    Image.fromarray(array, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def resized(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8 (PIL's default resampling)."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size)))


def contact_sheet(tiles: list, columns: int, fill: int = 128) -> np.ndarray:
    """Equal-size (H, W, 3) uint8 tiles in rows of `columns` (fewer if there are fewer tiles); the last row is
    padded with `fill`-grey tiles."""
    columns = min(columns, len(tiles))
    tiles = list(tiles) + [np.full_like(tiles[0], fill)] * (-len(tiles) % columns)
    return np.concatenate([np.concatenate(tiles[r:r + columns], axis=1) for r in range(0, len(tiles), columns)])


def read_png(path: str) -> np.ndarray:
    """PNG file -> (H, W, 3) uint8 RGB."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def write_adversarial_files(directory: str, index: int, reference: np.ndarray, probe: np.ndarray,
                            record: dict) -> dict:
    """Writes NNNN_reference.png, NNNN_probe.png (lossless) and NNNN.json; returns their names."""
    stem = f"{index:04d}"
    names = {"reference": f"{stem}_reference.png", "probe": f"{stem}_probe.png", "params": f"{stem}.json"}
    write_bytes_atomic(os.path.join(directory, names["reference"]), png_bytes(reference))
    write_bytes_atomic(os.path.join(directory, names["probe"]), png_bytes(probe))
    write_json_atomic(os.path.join(directory, names["params"]), record)
    return names

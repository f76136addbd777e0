"""Writing a posed head for other tools: the mesh as Wavefront OBJ, a UV map as binary PPM (atomic writes)."""
from __future__ import annotations

from typing import Optional

import numpy as np

from flame.atomic import write_bytes_atomic
from flame.io.fields import PathLike


def obj_text(vertices: np.ndarray, faces: np.ndarray, uv: Optional[np.ndarray] = None,
             uv_faces: Optional[np.ndarray] = None) -> str:
    """Wavefront OBJ of (V, 3) vertices and (F, 3) 0-based faces, with 1-based indices; with (T, 2) `uv` and
    (F, 3) `uv_faces`, `vt` lines and `f v/vt` corners."""
    vertices, faces = np.asarray(vertices), np.asarray(faces)
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    if uv is not None:
        lines += [f"vt {u:.6f} {v:.6f}" for u, v in np.asarray(uv)]
        lines += [f"f {a}/{ta} {b}/{tb} {c}/{tc}"
                  for (a, b, c), (ta, tb, tc) in zip(faces + 1, np.asarray(uv_faces) + 1)]
    else:
        lines += [f"f {a} {b} {c}" for a, b, c in faces + 1]
    return "\n".join(lines) + "\n"


def write_obj(path: PathLike, vertices: np.ndarray, faces: np.ndarray, uv: Optional[np.ndarray] = None,
              uv_faces: Optional[np.ndarray] = None) -> None:
    """Writes `obj_text(vertices, faces, uv, uv_faces)` to `path`."""
    write_bytes_atomic(path, obj_text(vertices, faces, uv, uv_faces).encode())


def write_ppm(path: PathLike, image: np.ndarray) -> None:
    """Writes an (H, W, 3) RGB image in [0, 1] as a binary (P6, 8-bit) PPM."""
    pixels = (np.clip(np.asarray(image), 0, 1) * 255 + 0.5).astype(np.uint8)
    write_bytes_atomic(path, b"P6 %d %d 255\n" % (pixels.shape[1], pixels.shape[0]) + pixels.tobytes())

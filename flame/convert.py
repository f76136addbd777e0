"""Converts an official FLAME file (or the project's .npz) to the project's .npz, once.

  python -m flame.convert IN OUT.npz [--kind=model|texture|landmarks]
      [--landmarks=EMBEDDING] [--uv=FLAME_texture.npz]

`--kind` is detected from the file's content when left out. For a model, `--landmarks` attaches a
landmark embedding (flame_static_embedding.pkl, DECA's landmark_embedding.npy or a project .npz)
and `--uv` attaches the `vt`/`ft` UV layout of a file such as FLAME_texture.npz.
"""
from __future__ import annotations

import sys
from typing import Optional

from absl import app, flags

from flame import io as flame_io
from flame.model import FlameModel

_KIND = flags.DEFINE_enum("kind", None, ["model", "texture", "landmarks"], "What IN holds (default: detect).")
_LANDMARKS = flags.DEFINE_string("landmarks", None, "Landmark embedding to attach to a model.")
_UV = flags.DEFINE_string("uv", None, "File with vt/ft UVs (e.g. FLAME_texture.npz) to attach to a model.")


def convert(source: str, target: str, kind: Optional[str] = None,
            landmarks: Optional[str] = None, uv: Optional[str] = None):
    """Reads `source`, optionally attaches landmarks/UVs to a model, writes `target` (.npz).

    Returns the converted model, texture model or landmark embedding.
    """
    value = flame_io.load(source, kind)
    if (landmarks or uv) and not isinstance(value, FlameModel):
        raise ValueError("--landmarks and --uv apply to a model only")
    if landmarks:
        value = flame_io.attach_landmarks(value, flame_io.load_landmarks(landmarks), landmarks)
    if uv:
        uv_coords, uv_faces = flame_io.load_uv(uv, value.num_faces)
        value = value.replace(uv_coords=uv_coords, uv_faces=uv_faces)
    flame_io.save_npz(target, value)
    return value


def main(argv):
    if len(argv) != 3:
        raise app.UsageError("usage: python -m flame.convert IN OUT.npz [--kind=...] [--landmarks=...] [--uv=...]")
    try:
        value = convert(argv[1], argv[2], _KIND.value, _LANDMARKS.value, _UV.value)
    except ValueError as e:  # FlameFileError names the file and field
        sys.exit(f"error: {e}")
    print(f"wrote {type(value).__name__} to {argv[2]}")


if __name__ == "__main__":
    app.run(main)

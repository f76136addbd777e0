"""Rebuilds the embedded head's assets bit for bit: `python -m flame.build_embedded [--skimage_wheel=PATH]`.

Writes flame/assets/embedded_head.npz (the FlameModel) and flame/assets/embedded_albedo.npz (the TextureModel)
through `flame.io.save_npz`, and flame/assets/SHA256SUMS with their hashes (checked by the tests).

Build-time input (not needed to load the assets): `skimage/data/lfw_subset.npy` (100 LFW face crops, 25x25 grey,
shipped with scikit-image, BSD-3-Clause package), read from an installed scikit-image or from its wheel
(`pip download --no-deps scikit-image`). Everything else is procedural code in flame/_head_geometry.py and
flame/_head_texture.py. `save_npz` writes bzip2 members with fixed timestamps, so equal arrays give equal files.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile

import numpy as np
from absl import app, flags

from flame import _head_geometry, _head_texture
from flame.io import save_npz

ASSET_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
MODEL_FILE = "embedded_head.npz"
TEXTURE_FILE = "embedded_albedo.npz"
HASH_FILE = "SHA256SUMS"
NAME = "simadv_embedded_head"
LICENSE = "Apache-2.0"
SOURCE = ("procedural geometry (flame/_head_geometry.py); albedo from procedural painting and the luminance "
          "statistics of 100 LFW face crops in scikit-image's skimage/data/lfw_subset.npy")
LFW_MEMBER = "skimage/data/lfw_subset.npy"

_WHEEL = flags.DEFINE_string("skimage_wheel", None, "scikit-image wheel to read lfw_subset.npy from "
                             "(default: the installed scikit-image).")
_OUT = flags.DEFINE_string("out", ASSET_DIR, "Directory for the assets and SHA256SUMS.")


def load_lfw_faces(wheel: str | None = None) -> np.ndarray:
    """(100, 25, 25) float64 LFW face crops in [0, 1] from scikit-image (installed, or its wheel file)."""
    if wheel is not None:
        try:
            with zipfile.ZipFile(wheel) as archive:
                data = archive.read(LFW_MEMBER)
        except (OSError, KeyError, zipfile.BadZipFile) as e:
            raise ValueError(f"--skimage_wheel={wheel}: cannot read {LFW_MEMBER}: {e}") from None
        array = np.load(io.BytesIO(data), allow_pickle=False)
    else:
        from importlib.resources import files

        try:
            path = files("skimage") / "data" / "lfw_subset.npy"
        except ModuleNotFoundError:
            raise ValueError("scikit-image is not installed: install it or pass --skimage_wheel=PATH") from None
        array = np.load(str(path), allow_pickle=False)
    if array.shape != (200, 25, 25):
        raise ValueError(f"{LFW_MEMBER}: expected shape (200, 25, 25), got {array.shape}")
    return array[:100]  # the first 100 are faces, the rest are not


def build(out_dir: str, lfw_faces: np.ndarray) -> dict:
    """Writes both assets and SHA256SUMS into `out_dir`; returns {file name: sha256 hex}."""
    model = _head_geometry.build_model(NAME, SOURCE, LICENSE)
    texture = _head_texture.build_texture(lfw_faces, NAME + "_albedo", SOURCE, LICENSE)
    hashes = {}
    for file_name, value in ((MODEL_FILE, model), (TEXTURE_FILE, texture)):
        path = os.path.join(out_dir, file_name)
        save_npz(path, value)
        hashes[file_name] = sha256(path)
    with open(os.path.join(out_dir, HASH_FILE), "w") as f:
        f.writelines(f"{digest}  {name}\n" for name, digest in hashes.items())
    return hashes


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def stored_hashes(directory: str = ASSET_DIR) -> dict:
    """{file name: sha256 hex} from `directory`/SHA256SUMS."""
    with open(os.path.join(directory, HASH_FILE)) as f:
        return {name: digest for digest, name in (line.split() for line in f if line.strip())}


def main(argv):
    del argv
    hashes = build(_OUT.value, load_lfw_faces(_WHEEL.value))
    for name, digest in hashes.items():
        print(f"{digest}  {os.path.join(_OUT.value, name)} ({os.path.getsize(os.path.join(_OUT.value, name))} bytes)")


if __name__ == "__main__":
    app.run(main)

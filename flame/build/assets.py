"""The embedded head's committed assets: `build` writes flame/assets/embedded_head.npz (the FlameModel),
flame/assets/embedded_albedo.npz (the TextureModel) and flame/assets/SHA256SUMS (their hashes, checked by the
tests), bit for bit reproducibly (`save_npz` writes bzip2 members with fixed timestamps).

Build-time input (not needed to load the assets): `skimage/data/lfw_subset.npy` (100 LFW face crops, 25x25 grey,
shipped with scikit-image, BSD-3-Clause package), read from an installed scikit-image or from its wheel
(`pip download --no-deps scikit-image`). Everything else is the procedural code of this package.
"""
from __future__ import annotations

import hashlib
import io
import os
import zipfile

import numpy as np

from flame.atomic import write_bytes_atomic
from flame.build.head import build_model
from flame.build.texture import build_texture
from flame.embedded import ASSET_DIR, JUDGED_WITH, MODEL_PATH, TEXTURE_PATH
from flame.io import save_npz

MODEL_FILE = os.path.basename(MODEL_PATH)
TEXTURE_FILE = os.path.basename(TEXTURE_PATH)
HASH_FILE = "SHA256SUMS"
NAME = "simadv_embedded_head"
LICENSE = "Apache-2.0"
# The independent recognizer whose scores judged the identity space's design (never dlib's; `flame.embedded.judged_with`
# reads it back): reports should flag runs that attack it (issue 16's rule).
JUDGE = "faceres"
SOURCE = ("procedural geometry and painting (flame/build/); albedo modulated by the luminance statistics of 100 LFW "
          f"face crops in scikit-image's skimage/data/lfw_subset.npy; {JUDGED_WITH}{JUDGE}")
LFW_MEMBER = "skimage/data/lfw_subset.npy"


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
    model = build_model(NAME, SOURCE, LICENSE)
    texture = build_texture(lfw_faces, NAME + "_albedo", SOURCE, LICENSE)
    hashes = {}
    for file_name, value in ((MODEL_FILE, model), (TEXTURE_FILE, texture)):
        path = os.path.join(out_dir, file_name)
        save_npz(path, value)
        hashes[file_name] = sha256(path)
    write_bytes_atomic(os.path.join(out_dir, HASH_FILE),
                       "".join(f"{digest}  {name}\n" for name, digest in hashes.items()).encode())
    return hashes


def sha256(path: str) -> str:
    """The SHA-256 hex digest of the file at `path`."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def stored_hashes(directory: str = ASSET_DIR) -> dict:
    """{file name: sha256 hex} from `directory`/SHA256SUMS."""
    with open(os.path.join(directory, HASH_FILE)) as f:
        return {name: digest for digest, name in (line.split() for line in f if line.strip())}

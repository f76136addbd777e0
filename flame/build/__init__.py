"""The embedded head's builder (build time only; `python -m flame.build_embedded` runs it): procedural code that
makes the FLAME-format head and its UV albedo model, and writes them as the committed assets.

By part of the head: `common.py` (facial layout, UV parametrisation, window functions), `surface.py` (skull,
facial relief, lids, hair, ears, neck), `eyes.py` (eyeballs), `mouth.py` (lip slit and mouth bag), `bases.py`
(skinning weights, joint regressor, identity and expression bases), `landmarks.py` (iBUG embedding),
`texture.py` (albedo model), `head.py` (the model assembled), `assets.py` (the files and their hashes).
"""
from flame.build.assets import (ASSET_DIR, HASH_FILE, MODEL_FILE, TEXTURE_FILE, build, load_lfw_faces, sha256,
                                stored_hashes)
from flame.build.head import build_model
from flame.build.texture import build_texture

__all__ = [
    "ASSET_DIR",
    "HASH_FILE",
    "MODEL_FILE",
    "TEXTURE_FILE",
    "build",
    "build_model",
    "build_texture",
    "load_lfw_faces",
    "sha256",
    "stored_hashes",
]

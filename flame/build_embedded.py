"""Rebuilds the embedded head's assets bit for bit: `python -m flame.build_embedded [--skimage_wheel=PATH]`.

Writes flame/assets/embedded_head.npz, flame/assets/embedded_albedo.npz and flame/assets/SHA256SUMS (or into
`--out`) with `flame.build.build`; see flame/build/ for the procedural code and its one input, scikit-image's
LFW face crops.
"""
from __future__ import annotations

import os

from absl import app, flags

from flame import build

_WHEEL = flags.DEFINE_string("skimage_wheel", None, "scikit-image wheel to read lfw_subset.npy from "
                             "(default: the installed scikit-image).")
_OUT = flags.DEFINE_string("out", build.ASSET_DIR, "Directory for the assets and SHA256SUMS.")


def main(argv):
    del argv
    hashes = build.build(_OUT.value, build.load_lfw_faces(_WHEEL.value))
    for name, digest in hashes.items():
        print(f"{digest}  {os.path.join(_OUT.value, name)} ({os.path.getsize(os.path.join(_OUT.value, name))} bytes)")


if __name__ == "__main__":
    app.run(main)

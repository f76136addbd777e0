"""Poses a FLAME-format head once and writes it out, to check that a model file loads.

  python -m launch.flame_demo --model=PATH|embedded --out=DIR
      [--landmarks=PATH] [--texture=PATH] [--yaw_deg=30] [--jaw_deg=10] [--shape_seed=0]

Writes DIR/mesh.obj (with UVs when the model has them), DIR/joints.json, DIR/landmarks.json
(when the model has a landmark embedding), DIR/albedo_mean.ppm (with a texture model) and prints
a short summary.
"""
from __future__ import annotations

import json
import os
import sys

import jax
import numpy as np
from absl import app, flags

import flame
from flame import embedded, io as flame_io

_MODEL = flags.DEFINE_string("model", "embedded", "generic_model.pkl, a project .npz, or 'embedded'.")
_TEXTURE = flags.DEFINE_string("texture", None, "Texture model file, or 'embedded'.")
_LANDMARKS = flags.DEFINE_string("landmarks", None, "Landmark embedding to attach to the model.")
_OUT = flags.DEFINE_string("out", None, "Output directory.", required=True)
_YAW = flags.DEFINE_float("yaw_deg", 0.0, "Global yaw (about +y), degrees.")
_JAW = flags.DEFINE_float("jaw_deg", 0.0, "Jaw opening (about +x), degrees.")
_SHAPE_SEED = flags.DEFINE_integer("shape_seed", None, "Seed of N(0, 1) shape coefficients (default: mean).")


def main(argv):
    del argv
    try:
        if _MODEL.value == "embedded":
            model = embedded.embedded_model()
            if _LANDMARKS.value:
                embedding = flame_io.load_landmarks(_LANDMARKS.value)
                model = flame_io.attach_landmarks(model, embedding, _LANDMARKS.value)
        else:
            model = flame_io.load_model(_MODEL.value, landmarks=_LANDMARKS.value)
        texture_model = None
        if _TEXTURE.value == "embedded":
            texture_model = embedded.embedded_texture()
        elif _TEXTURE.value:
            texture_model = flame_io.load_texture(_TEXTURE.value)
    except ValueError as e:  # FlameFileError names the file and the field
        sys.exit(f"error: {e}")

    shape = np.zeros(model.num_shape, np.float32)
    if _SHAPE_SEED.value is not None:
        shape = np.random.default_rng(_SHAPE_SEED.value).standard_normal(model.num_shape).astype(np.float32)
    pose = flame.pose(model.num_joints, yaw=np.deg2rad(_YAW.value), jaw=np.deg2rad(_JAW.value))
    out = jax.jit(flame.forward)(model, shape, np.zeros(model.num_expression, np.float32), pose)
    vertices = np.asarray(out.vertices)

    os.makedirs(_OUT.value, exist_ok=True)
    flame_io.write_obj(os.path.join(_OUT.value, "mesh.obj"), vertices, model.faces, model.uv_coords, model.uv_faces)
    with open(os.path.join(_OUT.value, "joints.json"), "w") as f:
        json.dump(dict(zip(flame.FLAME_JOINT_NAMES, np.asarray(out.joints).tolist())), f, indent=1)
    if out.landmarks is not None:
        with open(os.path.join(_OUT.value, "landmarks.json"), "w") as f:
            json.dump({"layout": model.landmarks.layout, "points": np.asarray(out.landmarks).tolist()}, f)
    if texture_model is not None and texture_model.is_uv:
        flame_io.write_ppm(os.path.join(_OUT.value, "albedo_mean.ppm"), texture_model.mean)

    extent = vertices.max(0) - vertices.min(0)
    print(f"model {model.name!r} ({model.source}; {model.license})")
    print(f"  {model.num_vertices} vertices, {model.num_faces} faces, {model.num_shape} shape, "
          f"{model.num_expression} expression components, UVs: {model.uv_coords is not None}, "
          f"landmarks: {model.landmarks.layout if model.landmarks is not None else None}")
    print(f"  posed extent (m): {np.round(extent, 4).tolist()}, yaw {_YAW.value} deg, jaw {_JAW.value} deg")
    if texture_model is not None:
        print(f"texture {texture_model.name!r}: mean {tuple(texture_model.mean.shape)}, "
              f"{texture_model.num_components} components")
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    app.run(main)

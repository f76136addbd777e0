"""FLAME head model as pure JAX functions, with loaders for the official files."""
from flame.embedded import embedded_model, embedded_texture
from flame.forward import FlameOutput, albedo, forward, pose, rotate_about_root
from flame.io import FlameFileError, load, load_landmarks, load_model, load_texture, save_npz
from flame.model import FLAME_JOINT_NAMES, FLAME_PARENTS, FlameModel, LandmarkEmbedding, TextureModel, fingerprint

__all__ = [
    "FLAME_JOINT_NAMES",
    "FLAME_PARENTS",
    "FlameFileError",
    "FlameModel",
    "FlameOutput",
    "LandmarkEmbedding",
    "TextureModel",
    "albedo",
    "embedded_model",
    "embedded_texture",
    "fingerprint",
    "forward",
    "load",
    "load_landmarks",
    "load_model",
    "load_texture",
    "pose",
    "rotate_about_root",
    "save_npz",
]

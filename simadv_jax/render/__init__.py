"""Differentiable rendering in pure JAX (nvdiffrast-style primitives), shading and aligned face crops.

Conventions (clip space, pixel centres, image rows, handedness) and the shared types (`Raster`,
`Resolution`) are in `simadv_jax.render.types`, which the other modules build on. Every primitive renders
one image; batch with `jax.vmap`. The primitives are re-exported here, so `simadv_jax.render.rasterize` (like
`interpolate`, `texture`, `composite`) names the function; import from a module with
`from simadv_jax.render.rasterize import resolve_backend`.

Rendering a FLAME head straight into a recognizer's aligned crop:

    out = flame.forward(model, shape, expression, pose)
    camera = Camera(look_at(eye, target), perspective(fov_y))
    camera = align_camera(camera, out.landmarks, "dlib150", model.landmarks.layout)
    sh = directional_light_sh(azimuth, elevation, intensity, ambient)
    rendered = render_mesh(out.vertices, model.faces, camera, get_template("dlib150").size, albedo,
                           uv_coords=model.uv_coords, uv_faces=model.uv_faces, sh_coeffs=sh)
    rendered.image  # (150, 150, 3) in [0, 1]
"""
from simadv_jax.render.align import TEMPLATES, align_camera, alignment_matrix, five_points, get_template, similarity
from simadv_jax.render.antialias import supersample
from simadv_jax.render.camera import (Camera, look_at, perspective, perspective_from_focal, to_pixels,
                                      weak_perspective)
from simadv_jax.render.composite import composite
from simadv_jax.render.interpolate import interpolate
from simadv_jax.render.pipeline import Rendered, render_mesh
from simadv_jax.render.rasterize import rasterize
from simadv_jax.render.shade import (directional_light_sh, lambertian_shading, light_direction, sh_shading, shade,
                                     vertex_normals)
from simadv_jax.render.texture import texture
from simadv_jax.render.types import Raster

__all__ = [
    "TEMPLATES", "Camera", "Raster", "Rendered", "align_camera", "alignment_matrix", "composite",
    "directional_light_sh", "five_points", "get_template", "interpolate", "lambertian_shading", "light_direction",
    "look_at", "perspective", "perspective_from_focal", "rasterize", "render_mesh", "sh_shading", "shade",
    "similarity", "supersample", "texture", "to_pixels", "vertex_normals", "weak_perspective",
]

"""The render types and conventions shared by every module of `simadv_jax.render` (imports nothing from it).

Conventions, stated once:

- Clip space is OpenGL's (as nvdiffrast): homogeneous (x, y, z, w); NDC = (x, y, z) / w; the visible
  volume is [-1, 1]^3. Camera/view space is OpenGL's too: x right, y up, the camera looks down -z.
- Image rows go DOWN: row 0 is the top of the image (NDC y = +1), column 0 the left (NDC x = -1). This is
  nvdiffrast's image flipped vertically (its row 0 is y = -1); it matches image files and recognizer crops.
- Continuous pixel coordinates (u, v) = ((x_ndc + 1) / 2 * W, (1 - y_ndc) / 2 * H): (0, 0) is the top-left
  corner of the image and pixel (i, j) (row i, column j) has its centre at (j + 0.5, i + 0.5). Landmarks and
  alignment templates use these coordinates (`camera.to_pixels`).
- Depth is NDC z = z / w; smaller is nearer (OpenGL's LESS test). Fragments with depth outside [-1, 1] are
  rejected per pixel, which is exact near/far clipping for triangles in front of the camera.
- Triangles with any vertex at w <= 0 (at or behind the eye plane) are DISCARDED, not clipped.
- Front faces are counter-clockwise in NDC (x right, y up), as in OpenGL; `cull_backfaces=True` drops the
  others. Degenerate (zero-area) triangles cover nothing.
- A pixel is covered when its centre is inside a triangle or on its edge; of fragments at equal (quantized)
  depth the smaller triangle id wins, so results differ from other rasterizers only where a pixel centre lies
  on an edge.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence, Union

import jax

BACKGROUND_DEPTH = 1.0  # depth reported where no triangle is visible (the far plane)

Resolution = Union[int, Sequence[int]]


class Raster(NamedTuple):
    """Rasterizer output for one image.

    triangle_id: (H, W) int32 index into `faces` of the visible triangle, -1 for background.
    barycentrics: (H, W, 3) float32 perspective-correct weights of the visible triangle's three corners
      (in `faces` order; they sum to 1), zeros on background.
    depth: (H, W) float32 NDC depth z / w of the visible surface, `BACKGROUND_DEPTH` on background.
    """

    triangle_id: jax.Array
    barycentrics: jax.Array
    depth: jax.Array

    @property
    def mask(self) -> jax.Array:
        """(H, W) bool coverage."""
        return self.triangle_id >= 0


def resolution_hw(resolution: Resolution) -> tuple[int, int]:
    """`resolution` (int S or (H, W)) -> (H, W) Python ints; anything else is a ValueError."""
    if isinstance(resolution, int):
        resolution = (resolution, resolution)
    hw = tuple(int(r) for r in resolution)
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"resolution: expected a positive int or (height, width), got {resolution!r}")
    return hw

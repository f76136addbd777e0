"""The embedded head assembled from its parts (build time only): `build_model`.

Three closed, consistently outward-wound surfaces, 4,558 vertices and 9,104 triangles in all:
  * the head, 4,330 vertices and 8,656 triangles (`surface.py`: a UV sphere of 4,242 vertices, plus the mouth of
    `mouth.py`): skull, facial relief, eyelids, ears, hair layer and neck, with the lips parted by a slit closed
    behind by a mouth bag;
  * two eyeballs (`eyes.py`, 114 vertices and 224 triangles each) behind the lid apertures, skinned 100% to the
    eye joints at their centres; eye closure (expression) fills the sockets and closes the lids over them.
FLAME's five joints in FLAME order; skinning weights, joint regressor, 60 identity and 12 expression components in
standard deviations (`bases.py`); zero pose correctives; a 68-point iBUG landmark embedding on the head surface
(`landmarks.py`).

Frame: metres, y up, the face looks down +z, the subject's left is +x (FLAME's convention); the head is
~0.21 m tall and centred at the origin. UV: u runs around the head with the face at u = 0.5 (seam at
the back), v = 1 at the top; texture row 0 is v = 1.
"""
from __future__ import annotations

import numpy as np

from flame.build import bases, eyes, landmarks, mouth, surface
from flame.build.common import EYEBALL_RADIUS, ramp, uv_area_sign
from flame.model import FLAME_PARENTS, FlameModel

# Rest joints of the head (the eye joints are their eyeballs' centres): global, at the base of the head where a
# neck would attach; neck; jaw hinge, at ear height below the eyes.
_HEAD_JOINTS = np.array([[0.0, -0.090, -0.015], [0.0, -0.060, -0.015], [0.0, -0.020, 0.000]])


def build_model(name: str, source: str, license_: str) -> FlameModel:
    """The procedural head as a FlameModel with numpy leaves (see the module docstring)."""
    rng = np.random.default_rng(20240601)
    dirs, faces, uv, uv_faces = surface.sphere()
    sphere_vertices = surface.template_points(dirs)
    shapedirs = bases.shape_basis(sphere_vertices, dirs, rng)
    vertices, faces, uv, uv_faces, inner, bag_rim, bag_blend = mouth.cut_mouth(sphere_vertices, faces, uv, uv_faces)
    lips = len(sphere_vertices) + len(inner)  # sphere vertices and the lower-lip duplicates
    weights = bases.skinning_weights(sphere_vertices, dirs)
    weights = np.concatenate([weights, mouth.lower_lip_weights(weights[inner], vertices[inner, 0])])
    sockets = surface.eye_sockets(dirs)
    sockets = np.concatenate([sockets, np.zeros((2, len(inner)))], 1)  # the lower lip has no socket
    expression = bases.expression_basis(vertices[:lips], weights, sockets)
    shapedirs = np.concatenate([shapedirs, shapedirs[inner]])
    weights, expression, shapedirs = (mouth.with_bag(values, bag_rim, bag_blend)
                                      for values in (weights, expression, shapedirs))
    head_faces = faces

    # The eyeballs (left, then its mirror image), skinned to the eye joints at their centres; identity moves each
    # with the affine fit of the surrounding face's displacement, expressions leave them alone.
    centres, balls, ball_faces, ball_uvs, ball_uv_faces = eyes.eyeballs(uv_area_sign(uv, uv_faces))
    front = ramp(dirs[:, 2] / 0.5)
    ball_shapes = [eyes.identity_shapes(sphere_vertices, shapedirs[:len(sphere_vertices)], front, centre, points)
                   for centre, points in zip(centres, balls)]
    n, e = len(vertices), len(balls[0])
    faces = np.concatenate([faces, ball_faces + n, ball_faces[:, ::-1] + n + e]).astype(np.int32)
    uv_faces = np.concatenate([uv_faces, ball_uv_faces + len(uv),
                               ball_uv_faces[:, ::-1] + len(uv) + len(ball_uvs[0])])
    uv = np.concatenate([uv] + ball_uvs).astype(np.float32)
    vertices = np.concatenate([vertices] + balls)
    weights = np.concatenate([weights, np.tile(np.eye(5)[3], (e, 1)), np.tile(np.eye(5)[4], (e, 1))])
    expression = np.concatenate([expression, np.zeros((2 * e,) + expression.shape[1:])])
    shapedirs = np.concatenate([shapedirs] + ball_shapes)

    regressor = np.zeros((len(FLAME_PARENTS), len(vertices)))
    regressor[:3, :n] = bases.regressor(vertices[:n], _HEAD_JOINTS)
    for k, centre in enumerate(centres):  # eye joints: affine combinations of their own eyeball's vertices
        regressor[3 + k, n + k * e:n + (k + 1) * e] = bases.regressor(balls[k], centre[None],
                                                                      sigma=EYEBALL_RADIUS)[0]
    return FlameModel(
        v_template=vertices.astype(np.float32),
        shapedirs=bases.by_magnitude(shapedirs).astype(np.float32),
        exprdirs=expression.astype(np.float32),
        posedirs=np.zeros((9 * (len(FLAME_PARENTS) - 1), 3 * len(vertices)), np.float32),
        J_regressor=regressor.astype(np.float32),
        lbs_weights=weights.astype(np.float32),
        faces=faces,
        parents=FLAME_PARENTS,
        uv_coords=uv,
        uv_faces=uv_faces.astype(np.int32),
        landmarks=landmarks.embedding(vertices, head_faces),
        name=name,
        source=source,
        license=license_,
    )

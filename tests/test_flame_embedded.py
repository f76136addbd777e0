"""The embedded head: committed assets (hash, rebuild, FLAME-format loading) and a mesh that behaves like a head."""
import json
import os
from importlib.util import find_spec

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.path import Path
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

import flame
from flame import build, embedded
from flame import io as flame_io
from subprocesses import run_module

# A scikit-image wheel to rebuild from where scikit-image is not installed (build-time input only).
SKIMAGE_WHEEL = os.environ.get("SIMADV_SKIMAGE_WHEEL")


@pytest.fixture(scope="module")
def model():
    return embedded.embedded_model()


@pytest.fixture(scope="module")
def forward():
    return jax.jit(flame.forward)


@pytest.fixture(scope="module")
def batched_forward():
    return jax.jit(jax.vmap(flame.forward, in_axes=(None, 0, 0, 0)))


def _edges(faces):
    return np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])


def _components(model):
    """(V,) connected-component label of every vertex (over the triangle edges) and the number of components."""
    edges = _edges(np.asarray(model.faces))
    n = model.num_vertices
    count, labels = connected_components(coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), (n, n)))
    return labels, count


@pytest.fixture(scope="module")
def parts(model):
    """(head, left eyeball, right eyeball) vertex masks; the eyeballs are the components skinned to joints 3 / 4."""
    labels, count = _components(model)
    assert count == 3
    weights = np.asarray(model.lbs_weights)
    masks = [labels == k for k in range(count)]
    left = next(m for m in masks if weights[m, 3].mean() > 0.5)
    right = next(m for m in masks if weights[m, 4].mean() > 0.5)
    return ~(left | right), left, right


def _cross2(a, b):
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _outside(vertices, faces, points):
    """(P,) bool: `points` (P, 3) outside the closed surface `faces` (ray parity along +z)."""
    corners = vertices[faces]  # (F, 3, 3)
    a, b, c = corners[:, 0, :2], corners[:, 1, :2], corners[:, 2, :2]
    area = _cross2(b - a, c - a)
    ok = np.abs(area) > 1e-14
    corners, a, b, c, area = corners[ok], a[ok], b[ok], c[ok], area[ok]
    q = points[:, None, :2]
    wa, wb = _cross2(c - b, q - b) / area, _cross2(a - c, q - c) / area
    wc = 1.0 - wa - wb
    inside = (wa >= 0) & (wb >= 0) & (wc >= 0)
    z = wa * corners[:, 0, 2] + wb * corners[:, 1, 2] + wc * corners[:, 2, 2]
    return np.sum(inside & (z > points[:, None, 2]), axis=1) % 2 == 0


def _near_polygon(points, polygon, tolerance):
    """(P,) bool: 2-D `points` inside `polygon` (N, 2) or within `tolerance` of its boundary."""
    near = Path(polygon).contains_points(points)
    for a, b in zip(polygon, np.roll(polygon, -1, 0)):
        t = np.clip(np.sum((points - a) * (b - a), -1) / np.sum((b - a) ** 2), 0.0, 1.0)
        near |= np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=-1) < tolerance
    return near


def test_committed_assets_match_their_stored_hashes():
    stored = build.stored_hashes()
    assert set(stored) == {build.MODEL_FILE, build.TEXTURE_FILE}
    for name, digest in stored.items():
        path = os.path.join(build.ASSET_DIR, name)
        assert build.sha256(path) == digest, f"{name} differs from SHA256SUMS: rerun flame.build_embedded"
    assert sum(os.path.getsize(os.path.join(build.ASSET_DIR, name)) for name in stored) <= 8 * 2**20


needs_skimage = pytest.mark.skipif(find_spec("skimage") is None and not SKIMAGE_WHEEL,
                                   reason="build-time input scikit-image (or SIMADV_SKIMAGE_WHEEL) not available")


@needs_skimage
def test_rebuild_reproduces_the_committed_assets_bit_for_bit(tmp_path):
    hashes = build.build(str(tmp_path), build.load_lfw_faces(SKIMAGE_WHEEL))
    assert hashes == build.stored_hashes()
    assert build.stored_hashes(str(tmp_path)) == hashes


@needs_skimage
def test_rebuild_command_writes_the_committed_assets(tmp_path):
    wheel = [f"--skimage_wheel={SKIMAGE_WHEEL}"] if SKIMAGE_WHEEL else []
    result = run_module("flame.build_embedded", f"--out={tmp_path}", *wheel, timeout=300)
    assert result.returncode == 0, result.stderr
    assert build.stored_hashes(str(tmp_path)) == build.stored_hashes()
    assert all(digest in result.stdout for digest in build.stored_hashes().values())


def test_bad_wheel_is_one_clear_error(tmp_path):
    bad = tmp_path / "not_a_wheel.whl"
    bad.write_bytes(b"nope")
    with pytest.raises(ValueError, match="skimage_wheel"):
        build.load_lfw_faces(str(bad))


def test_loads_through_the_flame_file_path(model, tmp_path):
    loaded = flame_io.load(embedded.MODEL_PATH)
    texture = flame_io.load(embedded.TEXTURE_PATH)
    assert isinstance(loaded, flame.FlameModel) and isinstance(texture, flame.TextureModel)
    assert (model.name, model.license) == ("simadv_embedded_head", "Apache-2.0") and "lfw_subset" in model.source
    assert embedded.judged_with(model.source) == embedded.judged_with(texture.source) == "faceres"
    assert embedded.judged_with("procedural") is None
    for a, b in zip(jax.tree_util.tree_leaves(model), jax.tree_util.tree_leaves(loaded)):
        np.testing.assert_array_equal(a, b)
    # And it round-trips through save_npz like any model.
    flame_io.save_npz(tmp_path / "head.npz", model)
    again = flame_io.load_model(tmp_path / "head.npz")
    for a, b in zip(jax.tree_util.tree_leaves(model), jax.tree_util.tree_leaves(again)):
        np.testing.assert_array_equal(a, b)


def test_mesh_is_closed_consistent_and_outward(model, parts):
    faces, vertices = np.asarray(model.faces), np.asarray(model.v_template, np.float64)
    assert faces.dtype == np.int32 and faces.min() >= 0 and faces.max() < len(vertices)
    assert 2000 <= len(vertices) <= 5000 and len(faces) <= 1.2 * 8016  # the renderer's cost grows with faces
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    areas = 0.5 * np.linalg.norm(normals, axis=1)
    assert areas.min() > 1e-8
    # Closed, consistently wound 2-manifolds: every directed edge once, its reverse once.
    directed = {tuple(e) for e in _edges(faces)}
    assert len(directed) == 3 * len(faces)
    assert all((b, a) in directed for a, b in directed)
    # Three spheres (head, two eyeballs), each outward: Euler characteristic 2, positive signed volume.
    for mask, (low, high) in zip(parts, [(3e-3, 1e-2), (5e-6, 1.5e-5), (5e-6, 1.5e-5)]):
        own = np.all(mask[faces], axis=1)
        assert np.all(own | ~np.any(mask[faces], axis=1))  # no triangle joins two parts
        part_edges = {e for e in directed if mask[e[0]]}
        assert mask.sum() - len(part_edges) // 2 + own.sum() == 2
        centre = vertices[mask].mean(0)
        outward = np.sum(normals[own] * (corners[own].mean(1) - centre), axis=1) > 0
        assert outward.mean() > 0.95
        c = corners[own] - centre
        volume = np.sum(np.einsum("fd,fd->f", c[:, 0], np.cross(c[:, 1], c[:, 2]))) / 6
        assert low < volume < high  # a head is a few litres, an eyeball ~8 ml
    assert all(np.all(np.any(m[faces], axis=1).sum() <= 400) for m in parts[1:])  # a few hundred triangles each


def test_head_frame_and_joints(model):
    vertices = np.asarray(model.v_template)
    height = vertices[:, 1].max() - vertices[:, 1].min()  # crown to the cut-off neck
    assert 0.3 < height < 0.4
    head = vertices[vertices[:, 1] > -0.1]
    assert 0.15 < np.ptp(head[:, 0]) < 0.2 and 0.18 < np.ptp(head[:, 2]) < 0.24
    joints = np.asarray(model.J_regressor) @ vertices
    assert model.parents == flame.FLAME_PARENTS
    left_eye, right_eye = joints[3], joints[4]
    assert left_eye[0] > 0.02 and right_eye[0] < -0.02  # the subject's left is +x
    np.testing.assert_allclose(left_eye * [-1, 1, 1], right_eye, atol=1e-6)
    assert left_eye[2] > joints[2][2] > joints[0][2] - 0.01  # eyes in front of the jaw hinge
    assert joints[0][1] < joints[1][1] < joints[2][1] < left_eye[1]  # root, neck, jaw, eyes upward
    np.testing.assert_allclose(np.asarray(model.lbs_weights).sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model.J_regressor).sum(1), 1.0, atol=1e-5)


def test_landmarks_on_the_face(model, forward):
    out = forward(model, jnp.zeros(1), jnp.zeros(1), jnp.zeros((5, 3)))
    landmarks = np.asarray(out.landmarks)
    assert model.landmarks.layout == "ibug68" and landmarks.shape == (68, 3)
    nose_tip, eye_corners = landmarks[30], landmarks[[36, 39, 42, 45]]
    assert nose_tip[2] > eye_corners[:, 2].max() + 0.01  # nose tip in front of the eye line
    assert np.all(landmarks[27:68, 2] > 0.04)  # inner points on the front of the face
    assert landmarks[36, 0] < landmarks[39, 0] < 0 < landmarks[42, 0] < landmarks[45, 0]
    # iBUG mirror pairs are symmetric at zero shape (x -> -x).
    mirror = [(0, 16), (4, 12), (17, 26), (19, 24), (36, 45), (39, 42), (37, 44), (41, 46), (31, 35),
              (48, 54), (60, 64)]
    for a, b in mirror:
        np.testing.assert_allclose(landmarks[a] * [-1, 1, 1], landmarks[b], atol=1e-3)
    # Vertical order: brows above eyes above nose tip above mouth above chin.
    heights = landmarks[[19, 37, 30, 51, 57, 8], 1]
    assert np.all(np.diff(heights) < 0)


def test_jaw_opens_the_mouth_only(model, forward):
    rest_landmarks = np.asarray(forward(model, jnp.zeros(1), jnp.zeros(1), jnp.zeros((5, 3))).landmarks)
    pose = np.zeros((5, 3), np.float32)
    pose[2, 0] = np.deg2rad(20.0)
    out = forward(model, jnp.zeros(1), jnp.zeros(1), pose)
    moved = np.linalg.norm(np.asarray(out.vertices) - model.v_template, axis=1) > 1e-6
    rest = np.asarray(model.v_template)
    assert moved.any() and rest[moved, 1].max() < -0.045  # only below the upper lip
    assert rest[moved, 1].min() > -0.15 and rest[moved, 2].min() > -0.02  # not the neck or the back of the head
    landmarks = np.asarray(out.landmarks)
    assert landmarks[57, 1] < rest_landmarks[57, 1] - 0.005  # lower lip went down
    assert landmarks[8, 1] < rest_landmarks[8, 1] - 0.01  # and the chin
    np.testing.assert_allclose(landmarks[51], rest_landmarks[51], atol=1e-3)  # upper lip stayed
    np.testing.assert_allclose(landmarks[17:48], rest_landmarks[17:48], atol=1e-4)  # brows, nose, eyes stayed


def test_jaw_parts_the_lips_into_a_closed_mouth(model, forward):
    rest = np.asarray(model.v_template)
    gaps, posed = [], None
    for degrees in (0.0, 10.0, 20.0):
        pose = np.zeros((5, 3), np.float32)
        pose[2, 0] = np.deg2rad(degrees)
        out = forward(model, jnp.zeros(1), jnp.zeros(1), pose)
        gaps.append(float(out.landmarks[62, 1] - out.landmarks[66, 1]))  # inner upper lip above inner lower lip
        posed = np.asarray(out.vertices)
    assert gaps[0] < 0.005 and gaps[1] > gaps[0] + 0.004 and gaps[2] > gaps[1] + 0.004
    # The slit: pairs of coincident rest vertices (upper lip, lower lip) on the mouth line that separate at 20
    # degrees; the mesh stays closed (test_mesh_is_closed_consistent_and_outward): the mouth bag fills the gap.
    _, first, counts = np.unique(rest, axis=0, return_index=True, return_counts=True)
    assert np.all(counts <= 2) and 8 <= np.sum(counts == 2) <= 20
    slit = np.argwhere(np.all(rest[:, None] == rest[first[counts == 2]][None], axis=-1))[:, 0]
    assert np.all(np.abs(rest[slit, 1] + 0.057) < 0.002) and np.all(np.abs(rest[slit, 0]) < 0.026)
    centre = slit[np.abs(rest[slit, 0]) < 0.005].reshape(-1, 2)
    assert np.all(np.abs(posed[centre[:, 0], 1] - posed[centre[:, 1], 1]) > 0.008)  # lips 8+ mm apart
    # The mouth bag: a pocket behind the lips, its upper half on the head, its lower half on the jaw.
    depth = rest[slit, 2].min() - rest[:, 2]
    bag = (depth > 0.002) & (depth < 0.04) & (np.abs(rest[:, 1] + 0.057) < 0.008) & (np.abs(rest[:, 0]) < 0.026)
    on_jaw = np.asarray(model.lbs_weights)[bag, 2] > 0.5
    moved = np.linalg.norm(posed - rest, axis=1) > 1e-6
    assert 40 <= bag.sum() <= 200 and 0.3 < on_jaw.mean() < 0.7 and np.all(moved[bag][on_jaw])
    # Its texture is the mouth interior (dark cavity and teeth, not skin), which no albedo component changes.
    texture_model = embedded.embedded_texture()
    uv = np.asarray(model.uv_coords)[np.asarray(model.uv_faces)[np.all(bag[np.asarray(model.faces)], 1)]]
    size = texture_model.mean.shape[0]
    rows, cols = (np.clip(t.ravel() * size, 0, size - 1).astype(int) for t in (1.0 - uv[..., 1], uv[..., 0]))
    texels = np.asarray(texture_model.mean)[rows, cols]
    assert np.mean(texels.mean(1) < 0.25) > 0.5 and np.any(texels.min(1) > 0.55)  # cavity and teeth
    cheek = np.asarray(texture_model.mean)[size // 2, size * 5 // 16]
    assert np.linalg.norm(texels - cheek, axis=1).min() > 0.1  # not the cheek
    assert np.all(np.asarray(texture_model.basis)[rows, cols] == 0)


def test_eyeballs_are_skinned_to_the_eye_joints_at_their_centres(model, parts):
    head, left, right = parts
    weights, vertices = np.asarray(model.lbs_weights), np.asarray(model.v_template, np.float64)
    np.testing.assert_array_equal(weights[left], np.tile(np.eye(5)[3], (left.sum(), 1)))
    np.testing.assert_array_equal(weights[right], np.tile(np.eye(5)[4], (right.sum(), 1)))
    assert np.all(weights[head][:, 3:] == 0)
    joints = np.asarray(model.J_regressor, np.float64) @ vertices
    for joint, mask in ((joints[3], left), (joints[4], right)):
        radii = np.linalg.norm(vertices[mask] - joint, axis=1)  # a sphere around the joint
        assert 0.010 < radii.mean() < 0.014 and np.ptp(radii) < 1e-5
    assert joints[3][0] > 0.02 and np.all(vertices[left, 0] > 0)  # the subject's left eye is at +x


def test_gaze_moves_only_the_eyeball_and_turns_the_iris(model, parts, forward):
    head, left, right = parts
    rest = np.asarray(model.v_template)
    front = np.flatnonzero(left)[np.argmax(rest[left, 2])]  # the front pole: the pupil's centre
    for yaw, pitch in ((0.3, 0.0), (0.0, 0.3)):
        pose = np.zeros((5, 3), np.float32)
        pose[3] = [pitch, yaw, 0.0]
        posed = np.asarray(forward(model, jnp.zeros(1), jnp.zeros(1), pose).vertices)
        moved = np.linalg.norm(posed - rest, axis=1) > 1e-6
        assert moved.any() and not np.any(moved & ~left)
        shift = posed[front] - rest[front]
        if yaw:
            assert shift[0] > 0.003  # gaze turns towards +x (the subject's left)
        else:
            assert shift[1] < -0.003  # positive pitch about x turns the gaze down


def test_frontal_render_shows_the_eyeballs_through_the_lids(model, parts):
    from simadv_jax.render.camera import Camera, look_at, perspective_from_focal
    from simadv_jax.render.rasterize import rasterize

    size = 128
    out = flame.forward(model, jnp.zeros(1), jnp.zeros(1), jnp.zeros((5, 3)))
    target = jnp.mean(out.landmarks, axis=0)
    camera = Camera(look_at(target + jnp.array([0.0, 0.0, 0.6]), target), perspective_from_focal(400.0, size))
    clip = camera.to_clip(out.vertices)
    ids = np.asarray(rasterize(clip, model.faces, size).triangle_id)
    landmarks = camera.to_clip(out.landmarks)
    pixels = (np.asarray(landmarks[:, :2] / landmarks[:, 3:]) * [0.5, -0.5] + 0.5) * size
    faces = np.asarray(model.faces)
    head, left, right = parts
    for eye, mask in ((range(36, 42), right), (range(42, 48), left)):
        col, row = pixels[list(eye)].mean(0).astype(int)
        assert ids[row, col] >= 0 and np.all(mask[faces[ids[row, col]]]), "the eye's centre shows its eyeball"
    col, row = pixels[[19, 24]].mean(0).astype(int)
    above_brow = ids[row - 6, col]
    assert above_brow >= 0 and np.all(head[faces[above_brow]])


def test_lids_cover_the_eyeballs_outside_the_aperture(model, parts, batched_forward):
    """Eyeball points outside the closed head surface (visible from somewhere) lie in their lid aperture (the eye
    landmarks' polygon, 1 mm tolerance); points inside it are hidden from every camera, so this holds at every
    pose (global and neck rotations move head and eyeballs rigidly), checked at rest, for N(0, 1) identities,
    every identity component at +-2 sigma, and with the eyes closed (expression +2 sigma: nothing shows)."""
    head, left, right = parts
    rng = np.random.default_rng(5)
    shapes = [np.zeros(model.num_shape)] + [rng.normal(size=model.num_shape).clip(-2, 2) for _ in range(4)]
    shapes += [2.0 * sign * np.eye(model.num_shape)[k] for k in range(model.num_shape) for sign in (-1.0, 1.0)]
    expressions = [np.zeros(model.num_expression)] * len(shapes)
    closed = np.zeros(model.num_expression)
    closed[5:7] = 2.0  # left and right eye closure
    shapes.append(np.zeros(model.num_shape))
    expressions.append(closed)
    out = batched_forward(model, np.stack(shapes).astype(np.float32), np.stack(expressions).astype(np.float32),
                          np.zeros((len(shapes), 5, 3), np.float32))
    faces = np.asarray(model.faces)
    head_faces = faces[np.all(head[faces], axis=1)]
    rest = np.asarray(model.v_template)
    front = head_faces[np.all(rest[head_faces][:, :, 2] > 0.03, axis=1)]  # the face side is enough for +z rays
    shown = []
    for vertices, landmarks in zip(np.asarray(out.vertices, np.float64), np.asarray(out.landmarks, np.float64)):
        count = 0
        for eye, mask in ((range(36, 42), right), (range(42, 48), left)):
            outside = _outside(vertices, front, vertices[mask])
            covered = _near_polygon(vertices[mask][:, :2], landmarks[list(eye), :2], 0.001)
            assert not np.any(outside & ~covered)
            count += outside.sum()
        shown.append(count)
    assert shown[0] > 40  # the open eyes show (the front of the eyeballs) ...
    assert shown[-1] == 0  # ... and closed lids hide them


def test_forward_finite_and_not_degenerate_at_extremes(model, batched_forward):
    rng = np.random.default_rng(0)
    cases = []
    for sign in (-1.0, 1.0):
        for yaw, pitch in [(np.pi / 2, 0.0), (-np.pi / 2, 0.0), (0.0, np.pi / 8), (0.0, -np.pi / 8)]:
            pose = np.zeros((5, 3), np.float32)
            pose[0] = [pitch, yaw, 0.0]
            pose[2, 0] = 0.3
            cases.append((sign * 2.0 * np.ones(model.num_shape), sign * 2.0 * np.ones(model.num_expression), pose))
    for _ in range(4):
        cases.append((rng.choice([-2.0, 2.0], model.num_shape), np.zeros(model.num_expression), np.zeros((5, 3))))
    shape, expression, pose = (np.stack(x).astype(np.float32) for x in zip(*cases))
    out = batched_forward(model, shape, expression, pose)
    assert all(np.all(np.isfinite(x)) for x in out)
    vertices = np.asarray(out.vertices, np.float64)
    heights = np.ptp(vertices[:, :, 1], axis=1)
    assert np.all((heights > 0.25) & (heights < 0.5))  # crown to the cut-off neck
    corners = vertices[:, np.asarray(model.faces)]
    normals = np.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0])
    assert np.linalg.norm(normals, axis=-1).min() > 1e-10  # no collapsed triangle
    # +-2 sigma identities (unposed) keep every triangle's orientation: no fold-over or local inversion.
    rest_corners = np.asarray(model.v_template, np.float64)[np.asarray(model.faces)]
    rest_normals = np.cross(rest_corners[:, 1] - rest_corners[:, 0], rest_corners[:, 2] - rest_corners[:, 0])
    assert np.all(np.sum(normals[-4:] * rest_normals, axis=-1) > 0)


def test_bases_are_ordered_smooth_and_active(model):
    shapedirs = np.asarray(model.shapedirs)
    assert model.num_shape >= 50 and model.num_expression >= 10
    scale = np.sqrt(np.mean(np.sum(shapedirs**2, axis=1), axis=0))
    assert np.all(np.diff(scale) <= 1e-9) and scale[-1] > 0
    assert 1e-3 < scale[0] < 1e-2  # millimetres per standard deviation, not metres
    expression_scale = np.abs(np.asarray(model.exprdirs)).max(axis=(0, 1))
    assert np.all(expression_scale > 1e-3)
    np.testing.assert_array_equal(model.posedirs, 0.0)
    # Neighbouring vertices move together (smooth fields; per-vertex noise would give ratios ~1-2).
    edges = _edges(np.asarray(model.faces))
    jump = np.linalg.norm(shapedirs[edges[:, 0]] - shapedirs[edges[:, 1]], axis=1).max(0)
    ratio = jump / np.abs(shapedirs).max(axis=(0, 1))
    assert ratio.max() < 0.8 and np.median(ratio) < 0.3


def test_uv_layout(model):
    uv, uv_faces = np.asarray(model.uv_coords), np.asarray(model.uv_faces)
    assert uv_faces.shape == model.faces.shape and uv_faces.max() < len(uv)
    assert uv.min() >= 0 and uv.max() <= 1
    corners = uv[uv_faces]
    d1, d2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    area = d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0]
    assert np.all(np.abs(area) > 0) and (np.all(area > 0) or np.all(area < 0))  # no fold-overs at the seam


def test_texture_model(model):
    texture_model = embedded.embedded_texture()
    size = 256
    assert texture_model.is_uv and texture_model.mean.shape == (size, size, 3)
    assert texture_model.num_components >= 40 and np.all(np.asarray(texture_model.std) > 0)
    np.testing.assert_allclose(np.abs(np.asarray(texture_model.basis)).max(axis=(0, 1, 2)), 1.0, atol=1e-6)
    mean = np.asarray(texture_model.mean)
    assert 0 <= mean.min() and mean.max() <= 1
    cheek_texel = size // 2, size * 5 // 16  # below the eye line, left of the nose
    cheek = mean[cheek_texel]
    assert cheek[0] > cheek[2] and 0.3 < cheek.mean() < 0.7  # skin, reddish, medium tone
    # Component 0 is the skin tone: -2 sigma is very dark, +2 sigma very light.
    def cheek_at(tone):
        coefficients = np.zeros(texture_model.num_components, np.float32)
        coefficients[0] = tone
        return np.asarray(flame.albedo(texture_model, coefficients))[cheek_texel]

    dark, light = cheek_at(-2.0), cheek_at(2.0)
    assert dark.mean() < 0.3 and light.mean() > 0.65
    albedo = flame.albedo(texture_model, 2.0 * np.ones(texture_model.num_components))
    assert albedo.shape == (size, size, 3) and np.all(np.isfinite(albedo))


def test_eyeball_texture_pupil_iris_sclera(model, parts):
    head, left, right = parts
    texture_model = embedded.embedded_texture()
    faces, uv_faces = np.asarray(model.faces), np.asarray(model.uv_faces)
    vertices, uv = np.asarray(model.v_template, np.float64), np.asarray(model.uv_coords)
    joint = (np.asarray(model.J_regressor, np.float64) @ vertices)[3]
    size = texture_model.mean.shape[0]
    for mask in (left, right):
        own = np.all(mask[faces], axis=1)
        corner_vertices, corner_uv = faces[own].ravel(), uv[uv_faces[own].ravel()]
        direction = vertices[corner_vertices] - joint * [np.sign(vertices[corner_vertices[0], 0]), 1, 1]
        polar = np.degrees(np.arccos(direction[:, 2] / np.linalg.norm(direction, axis=1)))
        rows = np.clip(((1.0 - corner_uv[:, 1]) * size).astype(int), 0, size - 1)
        cols = np.clip((corner_uv[:, 0] * size).astype(int), 0, size - 1)
        texels = np.asarray(texture_model.mean)[rows, cols]
        basis = np.abs(np.asarray(texture_model.basis)[rows, cols]).max(axis=1)  # (corners, K)
        pupil, iris, sclera = polar < 1.0, (polar > 12.0) & (polar < 22.0), polar > 50.0
        assert pupil.any() and iris.any() and sclera.any()
        assert np.all(texels[pupil].mean(1) < 0.1) and np.all(texels[sclera].mean(1) > 0.6)
        assert np.all(texels[iris].mean(1) < 0.4) and np.all(texels[iris, 0] > texels[iris, 2])  # brown iris
        # Exactly one component (the iris colour) changes the iris; none changes the pupil or the sclera.
        assert np.sum(basis[iris].max(0) > 0.5) == 1 and np.all(basis[pupil | sclera] < 0.05)


def test_demo_writes_mesh_joints_and_landmarks(model, tmp_path):
    result = run_module("launch.flame_demo", "--model=embedded", "--texture=embedded", f"--out={tmp_path}",
                        "--yaw_deg=30", "--jaw_deg=10", "--shape_seed=0", timeout=300)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "mesh.obj").read_text().splitlines()
    assert sum(line.startswith("v ") for line in lines) == model.num_vertices
    assert sum(line.startswith("vt ") for line in lines) == len(model.uv_coords)
    assert sum(line.startswith("f ") for line in lines) == model.num_faces
    joints = json.loads((tmp_path / "joints.json").read_text())
    assert list(joints) == list(flame.FLAME_JOINT_NAMES)
    landmarks = json.loads((tmp_path / "landmarks.json").read_text())
    assert landmarks["layout"] == "ibug68" and len(landmarks["points"]) == 68
    assert (tmp_path / "albedo_mean.ppm").exists() and f"{model.num_vertices} vertices" in result.stdout

"""flame.forward, flame.albedo, flame.pose, flame.rotate_about_root and flame.lbs against independent references on
a small random model, jitted and not."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import flame
from flame import lbs
from flame_fixtures import random_model

ATOL = 2e-5


@pytest.fixture(scope="module")
def model():
    return random_model(np.random.default_rng(0))


@pytest.fixture(scope="module")
def jit_forward():
    return jax.jit(flame.forward)


def _params(rng, model, pose_scale=0.5):
    return (
        rng.normal(size=model.num_shape).astype(np.float32),
        rng.normal(size=model.num_expression).astype(np.float32),
        rng.normal(scale=pose_scale, size=(5, 3)).astype(np.float32),
        rng.normal(scale=0.1, size=3).astype(np.float32),
    )


def _numpy_rodrigues(r):
    theta = np.linalg.norm(r)
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


def _numpy_flame(model, shape, expression, pose, translation):
    """Straightforward float64 FLAME/SMPL linear blend skinning, one vertex at a time."""
    m = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), model)
    shaped = m.v_template + m.shapedirs @ shape + m.exprdirs @ expression
    rest_joints = m.J_regressor @ shaped
    rotations = [_numpy_rodrigues(np.asarray(p, np.float64)) for p in pose]
    features = np.concatenate([(r - np.eye(3)).ravel() for r in rotations[1:]])
    shaped = shaped + (features @ m.posedirs).reshape(-1, 3)
    world = []
    for j, parent in enumerate(model.parents):
        local = np.eye(4)
        local[:3, :3] = rotations[j]
        local[:3, 3] = rest_joints[j] - (rest_joints[parent] if parent >= 0 else 0)
        world.append(local if parent < 0 else world[parent] @ local)
    vertices = np.zeros_like(shaped)
    for v in range(len(shaped)):
        blended = np.zeros((4, 4))
        for j in range(len(world)):
            undo_rest = np.eye(4)
            undo_rest[:3, 3] = -rest_joints[j]
            blended += m.lbs_weights[v, j] * (world[j] @ undo_rest)
        vertices[v] = (blended @ np.append(shaped[v], 1.0))[:3]
    joints = np.array([w[:3, 3] for w in world])
    corners = vertices[np.asarray(model.faces)[np.asarray(model.landmarks.face_idx)]]
    landmarks = np.einsum("lc,lcd->ld", m.landmarks.bary_coords, corners)
    return vertices + translation, joints + translation, landmarks + translation


class VariantsTest(chex.TestCase):
    """The pure functions, each with and without `jax.jit`."""

    def setUp(self):
        super().setUp()
        self.model = random_model(np.random.default_rng(0))

    @chex.variants(with_jit=True, without_jit=True)
    def test_matches_numpy_reference(self):
        forward = self.variant(flame.forward)
        rng = np.random.default_rng(1)
        for _ in range(3):
            params = _params(rng, self.model)
            out = forward(self.model, *params)
            chex.assert_shape([out.vertices, out.joints, out.landmarks],
                              [(self.model.num_vertices, 3), (5, 3), (self.model.landmarks.num_landmarks, 3)])
            vertices, joints, landmarks = _numpy_flame(self.model, *[np.float64(p) for p in params])
            np.testing.assert_allclose(out.vertices, vertices, atol=ATOL)
            np.testing.assert_allclose(out.joints, joints, atol=ATOL)
            np.testing.assert_allclose(out.landmarks, landmarks, atol=ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_rodrigues_matches_scipy_and_is_a_rotation(self):
        rng = np.random.default_rng(4)
        axis_angles = np.concatenate([
            rng.normal(size=(20, 3)),
            [[0.0, 0.0, 0.0], [1e-5, 0.0, 0.0], [0.0, np.pi - 1e-3, 0.0], [2.0, -2.0, 1.0]],
        ]).astype(np.float32)
        rotations = np.asarray(self.variant(lbs.rodrigues)(axis_angles), np.float64)
        np.testing.assert_allclose(rotations, Rotation.from_rotvec(axis_angles).as_matrix(), atol=2e-6)
        identity = np.broadcast_to(np.eye(3), rotations.shape)
        np.testing.assert_allclose(rotations @ np.swapaxes(rotations, 1, 2), identity, atol=2e-6)
        np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=2e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_posed_joint_frames_are_rotations(self):
        _, _, pose, _ = _params(np.random.default_rng(5), self.model, pose_scale=1.0)
        rest = self.model.J_regressor @ self.model.v_template
        chain = self.variant(lambda p, j: lbs.rigid_transforms(lbs.rodrigues(p), j, self.model.parents))
        posed_joints, transforms = chain(pose, rest)
        chex.assert_shape([posed_joints, transforms], [(5, 3), (5, 4, 4)])
        world = np.asarray(transforms[:, :3, :3], np.float64)
        identity = np.broadcast_to(np.eye(3), world.shape)
        np.testing.assert_allclose(world @ np.swapaxes(world, 1, 2), identity, atol=1e-5)
        np.testing.assert_allclose(np.linalg.det(world), 1.0, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_small_matmul_is_a_matmul(self):
        rng = np.random.default_rng(11)
        a, b = rng.normal(size=(7, 4)).astype(np.float32), rng.normal(size=(4, 12)).astype(np.float32)
        product = self.variant(lbs.small_matmul)(a, b)
        chex.assert_shape(product, (7, 12))
        np.testing.assert_allclose(product, a.astype(np.float64) @ b, atol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_albedo_is_mean_plus_scaled_basis(self):
        rng = np.random.default_rng(9)
        texture_model = flame.TextureModel(
            mean=rng.uniform(0.3, 0.7, (4, 5, 3)).astype(np.float32),
            basis=rng.normal(scale=0.1, size=(4, 5, 3, 3)).astype(np.float32),
            std=np.array([0.5, 1.0, 2.0], np.float32),
        )
        coefficients = np.array([1.0, -0.5], np.float32)
        expected = texture_model.mean + texture_model.basis[..., 0] * 0.5 - texture_model.basis[..., 1] * 0.5
        albedo = self.variant(flame.albedo)(texture_model, coefficients)
        chex.assert_shape(albedo, (4, 5, 3))
        np.testing.assert_allclose(albedo, np.clip(expected, 0, 1), atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_pose_sets_global_yaw_and_jaw_only(self):
        pose = self.variant(lambda yaw, jaw: flame.pose(5, yaw=yaw, jaw=jaw))(0.3, -0.2)
        chex.assert_shape(pose, (5, 3))
        chex.assert_type(pose, jnp.float32)
        expected = np.zeros((5, 3), np.float32)
        expected[0, 1], expected[2, 0] = 0.3, -0.2  # FLAME order: global (about +y), jaw (about +x)
        np.testing.assert_array_equal(pose, expected)
        np.testing.assert_array_equal(flame.pose(5), np.zeros((5, 3)))
        with pytest.raises(ValueError, match="jaw"):
            flame.pose(2, jaw=0.1)

    @chex.variants(with_jit=True, without_jit=True)
    def test_rotate_about_root_matches_numpy(self):
        out = flame.forward(self.model, *_params(np.random.default_rng(10), self.model))
        rotation = Rotation.from_rotvec([0.3, -0.5, 0.2]).as_matrix()
        turned = self.variant(flame.rotate_about_root)(out, rotation.astype(np.float32))
        root = np.asarray(out.joints[0], np.float64)
        expected = [(np.asarray(x, np.float64) - root) @ rotation.T + root for x in out]
        chex.assert_trees_all_close(tuple(turned), tuple(expected), atol=1e-6)
        np.testing.assert_allclose(turned.joints[0], out.joints[0], atol=1e-6)  # the root stays put
        bare = self.variant(flame.rotate_about_root)(out._replace(landmarks=None), rotation.astype(np.float32))
        assert bare.landmarks is None
        chex.assert_trees_all_equal(bare.vertices, turned.vertices)

    @chex.variants(with_jit=True, without_jit=True)
    def test_global_pose_is_a_rotation_about_the_root(self):
        """FLAME's global joint turns the whole posed head about the root joint: forward with a global rotation
        r equals rotate_about_root(forward without it, R(r)) (what the simulator relies on)."""
        shape, expression, pose, translation = _params(np.random.default_rng(12), self.model)
        forward = self.variant(flame.forward)
        rest = pose.copy()
        rest[0] = 0.0
        turned = self.variant(flame.rotate_about_root)(forward(self.model, shape, expression, rest, translation),
                                                       lbs.rodrigues(pose[0]))
        chex.assert_trees_all_close(tuple(turned), tuple(forward(self.model, shape, expression, pose, translation)),
                                    atol=1e-5)
        # flame.pose's yaw is that rotation about +y.
        yawed = forward(self.model, shape, expression, flame.pose(5, yaw=0.4))
        unposed = forward(self.model, shape, expression, flame.pose(5))
        rotation = Rotation.from_rotvec([0.0, 0.4, 0.0]).as_matrix().astype(np.float32)
        chex.assert_trees_all_close(tuple(yawed), tuple(flame.rotate_about_root(unposed, rotation)), atol=1e-5)


def test_zero_parameters_reproduce_template(model, jit_forward):
    out = jit_forward(model, jnp.zeros(model.num_shape), jnp.zeros(model.num_expression), jnp.zeros((5, 3)))
    np.testing.assert_allclose(out.vertices, model.v_template, atol=1e-6)
    np.testing.assert_allclose(out.joints, model.J_regressor @ model.v_template, atol=1e-6)


@pytest.mark.parametrize("which", ["shape", "expression"])
def test_linear_in_shape_and_expression(model, jit_forward, which):
    rng = np.random.default_rng(2)
    size = model.num_shape if which == "shape" else model.num_expression
    a, b = rng.normal(size=(2, size)).astype(np.float32)
    _, _, pose, _ = _params(rng, model)

    def vertices(coefficients):
        shape = coefficients if which == "shape" else jnp.zeros(model.num_shape)
        expression = coefficients if which == "expression" else jnp.zeros(model.num_expression)
        return np.asarray(jit_forward(model, shape, expression, pose).vertices, np.float64)

    base = vertices(np.zeros(size, np.float32))
    np.testing.assert_allclose(vertices(a + b) - base, (vertices(a) - base) + (vertices(b) - base), atol=ATOL)
    np.testing.assert_allclose(vertices(3 * a) - base, 3 * (vertices(a) - base), atol=ATOL)
    assert np.abs(vertices(a) - base).max() > 1e-3  # the basis does act
    if which == "shape":  # at zero pose the offset is exactly the blend shape
        zero_pose = jit_forward(model, a, jnp.zeros(model.num_expression), jnp.zeros((5, 3))).vertices
        np.testing.assert_allclose(zero_pose, model.v_template + model.shapedirs @ a, atol=1e-5)


def test_short_coefficients_are_zero_padded(model, jit_forward):
    rng = np.random.default_rng(3)
    shape, expression, pose, _ = _params(rng, model)
    short = jit_forward(model, shape[:2], expression[:1], pose).vertices
    padded = jit_forward(model, np.pad(shape[:2], (0, model.num_shape - 2)),
                         np.pad(expression[:1], (0, model.num_expression - 1)), pose).vertices
    np.testing.assert_array_equal(short, padded)
    with pytest.raises(ValueError, match="shape"):
        flame.forward(model, np.zeros(model.num_shape + 1), expression, pose)


def test_jaw_rotation_moves_only_jaw_weighted_vertices(jit_forward):
    rng = np.random.default_rng(6)
    model = random_model(rng, posedirs=False)
    weights = np.asarray(model.lbs_weights).copy()
    weights[::2, 2] = 0.0  # half of the vertices get no jaw weight
    weights /= weights.sum(1, keepdims=True)
    model = model.replace(lbs_weights=weights)
    pose = np.zeros((5, 3), np.float32)
    pose[2, 0] = np.pi / 2
    zeros = (jnp.zeros(model.num_shape), jnp.zeros(model.num_expression))
    moved = np.linalg.norm(jit_forward(model, *zeros, pose).vertices - model.v_template, axis=1)
    jaw_weighted = weights[:, 2] > 0
    np.testing.assert_allclose(moved[~jaw_weighted], 0.0, atol=1e-6)
    assert np.all(moved[jaw_weighted] > 1e-5)


def test_jit_equals_eager(model, jit_forward):
    params = _params(np.random.default_rng(7), model)
    eager = flame.forward(model, *params)
    jitted = jit_forward(model, *params)
    for a, b in zip(eager, jitted):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_vmap_equals_loop(model):
    rng = np.random.default_rng(8)
    batch = [np.stack(p) for p in zip(*[_params(rng, model) for _ in range(4)])]
    batched = jax.jit(jax.vmap(flame.forward, in_axes=(None, 0, 0, 0, 0)))(model, *batch)
    for i in range(4):
        single = flame.forward(model, *(p[i] for p in batch))
        for a, b in zip(batched, single):
            np.testing.assert_allclose(a[i], b, atol=1e-5)


def test_gradients_finite_at_zero_pose(model):
    @jax.jit
    def loss(pose, shape):
        out = flame.forward(model, shape, jnp.zeros(model.num_expression), pose)
        return jnp.sum(out.vertices**2) + jnp.sum(out.landmarks**2)

    pose, shape = jnp.zeros((5, 3)), jnp.zeros(model.num_shape)
    grad_pose, grad_shape = jax.jit(jax.grad(loss, argnums=(0, 1)))(pose, shape)
    assert np.all(np.isfinite(grad_pose)) and np.all(np.isfinite(grad_shape))
    # Central finite differences (float64 numpy reference of the same loss) agree.
    eps = 1e-3
    for j, axis in [(0, 1), (2, 0), (3, 2)]:
        delta = np.zeros((5, 3), np.float32)
        delta[j, axis] = eps
        numeric = (loss(pose + delta, shape) - loss(pose - delta, shape)) / (2 * eps)
        np.testing.assert_allclose(grad_pose[j, axis], numeric, rtol=2e-2, atol=1e-3)
    assert np.abs(grad_pose).max() > 1e-3


def test_leading_components_give_the_same_head(model, jit_forward):
    rng = np.random.default_rng(5)
    shape, expression, pose, _ = _params(rng, model)
    trimmed = model.leading_components(3, 2)
    assert trimmed.shapedirs.shape[-1] == 3 and trimmed.exprdirs.shape[-1] == 2
    assert trimmed.shapedirs.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(jit_forward(trimmed, shape[:3], expression[:2], pose).vertices,
                               jit_forward(model, shape[:3], expression[:2], pose).vertices, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):  # the cut basis has only 3 components
        flame.forward(trimmed, shape[:4], expression[:2], pose)
    texture = flame.TextureModel(mean=rng.uniform(0, 1, (4, 5, 3)).astype(np.float32),
                                 basis=rng.normal(0, 0.1, (4, 5, 3, 6)).astype(np.float32),
                                 std=rng.uniform(0.5, 2, 6).astype(np.float32))
    coefficients = rng.normal(size=2).astype(np.float32)
    np.testing.assert_allclose(flame.albedo(texture.leading_components(2), coefficients),
                               flame.albedo(texture, coefficients), atol=1e-6)

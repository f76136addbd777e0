import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from simadv_jax.params import ParamSpace, clip_to_box

BASIS = dict(num_shape=50, num_texture=40, num_expression=10)
TABLE3 = "shape[0:30]=-2:2,texture[0:30]=-2:2,yaw=-1:1,pitch=-0.25:0.25"


def parse(text):
    return ParamSpace.parse(text, **BASIS)


def test_table3_space_layout():
    space = parse(TABLE3)
    assert space.size == 62
    assert space.names[:2] == ("shape[0]", "shape[1]")
    assert space.names[30] == "texture[0]"
    assert space.names[-2:] == ("yaw", "pitch")
    np.testing.assert_array_equal(space.lows, [-2] * 60 + [-1, -0.25])
    np.testing.assert_array_equal(space.highs, [2] * 60 + [1, 0.25])
    np.testing.assert_array_equal(space.widths, [4] * 60 + [2, 0.5])
    np.testing.assert_array_equal(space.center, np.zeros(62))
    assert space.sizes == {"shape": 30, "texture": 30, "expression": 0}


def test_decode_paper_units_and_default_scenario():
    space = parse("shape[2:4]=-2:2,texture[1]=-2:2,yaw=-1:1,pitch=-0.25:0.25,expression[0:2]=-1:1")
    rho = jnp.array([0.5, -1.5, 1.25, 1.0, 0.25, 0.3, -0.7], jnp.float32)
    assert space.names == ("shape[2]", "shape[3]", "texture[1]", "expression[0]", "expression[1]", "yaw", "pitch")
    scene = space.decode(rho)
    probe, reference = scene.probe, scene.reference
    np.testing.assert_allclose(probe.shape, [0, 0, 0.5, -1.5])
    np.testing.assert_allclose(probe.texture, [0, 1.25])
    np.testing.assert_allclose(probe.expression, [1.0, 0.25])
    np.testing.assert_allclose(probe.yaw, 0.3 * math.pi / 2, rtol=1e-6)
    np.testing.assert_allclose(probe.pitch, -0.7 * math.pi / 2, rtol=1e-6)
    # The identity is shared; the reference is frontal and neutral.
    np.testing.assert_allclose(reference.shape, probe.shape)
    np.testing.assert_allclose(reference.texture, probe.texture)
    np.testing.assert_allclose(reference.expression, [0, 0])
    assert float(reference.yaw) == 0 and float(reference.pitch) == 0
    assert float(probe.light_intensity) == pytest.approx(0.7) and float(probe.ambient) == pytest.approx(0.3)
    assert float(probe.camera_distance) == 1.0 and float(probe.focal_length) == 5.0
    assert not space.reference_is_constant


def test_yaw_one_is_profile_and_pitch_quarter_is_pi_over_8():
    space = parse("yaw=-1:1,pitch=-0.25:0.25,roll=0.5,jaw=0.2")
    scene = space.decode(jnp.array([1.0, 0.25]))
    assert float(scene.probe.yaw) == pytest.approx(math.pi / 2)
    assert float(scene.probe.pitch) == pytest.approx(math.pi / 8)
    assert float(scene.probe.roll) == pytest.approx(math.pi / 4)
    assert float(scene.probe.jaw) == pytest.approx(0.1 * math.pi)
    assert float(scene.reference.roll) == 0 and float(scene.reference.jaw) == 0
    assert space.reference_is_constant


def test_reference_overrides_fixed_tied_and_searched():
    space = parse("shape[0:2]=-2:2,yaw=-1:1,jaw=0.2,light_azimuth=-0.5:0.5,"
                  "ref.yaw=0.5,ref.jaw=tied,ref.light_azimuth=tied,ref.shape[0:2]=-1:1,ref.texture[0]=1")
    assert space.names == ("shape[0]", "shape[1]", "yaw", "light_azimuth", "ref.shape[0]", "ref.shape[1]")
    rho = jnp.array([0.1, 0.2, -0.6, 0.4, -0.9, 0.8])
    scene = space.decode(rho)
    np.testing.assert_allclose(scene.probe.shape, [0.1, 0.2])
    np.testing.assert_allclose(scene.reference.shape, [-0.9, 0.8])
    np.testing.assert_allclose(scene.probe.texture, [0.0])  # ref.texture does not reach the probe
    np.testing.assert_allclose(scene.reference.texture, [1.0])
    assert float(scene.reference.yaw) == pytest.approx(math.pi / 4)
    assert float(scene.reference.jaw) == pytest.approx(float(scene.probe.jaw))
    assert float(scene.reference.light_azimuth) == pytest.approx(0.4 * math.pi / 2)
    np.testing.assert_allclose(space.encode(scene), rho, rtol=1e-6)


def test_encode_decode_and_dict_round_trips():
    space = parse(TABLE3 + ",light_intensity=0.2:1.2,camera_distance=0.6:2")
    rho = jax.random.uniform(jax.random.key(0), (space.size,), minval=space.lows, maxval=space.highs)
    np.testing.assert_allclose(space.encode(space.decode(rho)), rho, rtol=1e-6, atol=1e-7)
    named = space.to_dict(rho)
    assert list(named) == list(space.names)
    assert named["yaw"] == pytest.approx(float(rho[60]))
    np.testing.assert_array_equal(space.from_dict(named), np.asarray(rho))
    with pytest.raises(ValueError, match="missing.*'yaw'"):
        space.from_dict({k: v for k, v in named.items() if k != "yaw"})


def test_decode_is_batched_vmappable_and_jittable():
    space = parse("shape[0:3]=-2:2,yaw=-1:1,ref.yaw=-0.5:0.5")
    rho = jax.random.uniform(jax.random.key(1), (5, space.size), minval=-1, maxval=1)
    batched = space.decode(rho)
    mapped = jax.jit(jax.vmap(space.decode))(rho)
    single = [space.decode(r) for r in rho]
    assert batched.probe.shape.shape == (5, 3) and batched.reference.yaw.shape == (5,)
    for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(mapped)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(batched.reference.yaw, [float(s.reference.yaw) for s in single], rtol=1e-6)


def test_clip_counts_out_of_range_coordinates():
    space = parse("shape[0:2]=-2:2,pitch=-0.25:0.25")
    rho = np.array([[0.0, 2.5, 0.3], [-3.0, -2.0, -0.3], [1.0, 1.0, 0.0]], np.float32)
    clipped, count = space.clip(rho)
    np.testing.assert_array_equal(clipped, [[0, 2, 0.25], [-2, -2, -0.25], [1, 1, 0]])
    np.testing.assert_array_equal(count, [2, 2, 0])
    _, count = clip_to_box(jnp.asarray(rho), space.lows, space.highs)
    np.testing.assert_array_equal(count, [2, 2, 0])


def test_canonical_spec_reparses_identically():
    space = parse(" shape[0:3] = -2:2 , yaw=1, ref.yaw = 0.5 , pitch=-0.25:0.25")
    assert space.spec == "shape[0:3]=-2:2,yaw=1,ref.yaw=0.5,pitch=-0.25:0.25"
    again = parse(space.spec)
    assert again.names == space.names
    np.testing.assert_array_equal(again.lows, space.lows)
    np.testing.assert_array_equal(again.highs, space.highs)


@pytest.mark.parametrize(
    "text, message",
    [
        ("shape[0:3]=-2:2,nose=0:1", "unknown group 'nose'"),
        ("yaw=1:-1", "inverted range"),
        ("yaw=0.5:0.5", "empty range"),
        ("yaw", "malformed entry"),
        ("yaw=a:1", "'a' is not a number"),
        ("yaw=-1:1,,pitch=0", "malformed spec"),
        ("", "malformed spec"),
        ("shape[0:3=-2:2", "malformed target"),
        ("shape[45:51]=-2:2", "past the model's shape basis of 50"),
        ("texture[40]=-2:2", "past the model's texture basis of 40"),
        ("yaw[0]=-1:1", "scalar group"),
        ("shape=-2:2", "needs an index range"),
        ("shape[3:3]=-2:2", "empty index range"),
        ("yaw=tied", "only valid on reference targets"),
        ("shape[0:5]=-2:2,shape[4]=1", r"shape\[4\] is set more than once"),
        ("yaw=1,pitch=0", "nothing is searched"),
        ("yaw=inf:1", "not finite"),
    ],
)
def test_bad_specs_name_the_flag(text, message):
    with pytest.raises(ValueError, match=r"^--space: .*" + message):
        parse(text)


def test_decode_rejects_wrong_size():
    with pytest.raises(ValueError, match="--space: rho has trailing size"):
        parse("yaw=-1:1").decode(jnp.zeros(2))

"""Training on synthetic identities rendered by the simulator (training.synthetic.SyntheticSource)."""
import dataclasses

import numpy as np
import pytest

import flame
from simadv_jax.training.data import AttributeFilter
from simadv_jax.training.loop import read_metrics, train_and_evaluate
from simadv_jax.training.synthetic import SyntheticSource
from test_training import TINY

SIZE = 24


@pytest.fixture(scope="module")
def source():
    return SyntheticSource(flame.embedded_model(), flame.embedded_texture(), num_classes=3, image_size=SIZE,
                           filters=[AttributeFilter.parse("yaw>-0.5"), AttributeFilter.parse("pitch<0")])


def test_attributes_respect_filters_and_depend_only_on_seed_and_step(source):
    drawn = source.attributes(512, seed=3, step=7)
    assert drawn["yaw"].min() > -0.5 and drawn["yaw"].max() <= 1.0
    assert drawn["pitch"].min() >= -0.25 and drawn["pitch"].max() < 0.0
    assert set(np.unique(drawn["label"])) == {0, 1, 2}
    again = source.attributes(512, seed=3, step=7)
    for name in ("label", "yaw", "pitch"):
        np.testing.assert_array_equal(drawn[name], again[name])
    assert not np.array_equal(drawn["yaw"], source.attributes(512, seed=3, step=8)["yaw"])
    # uniform over the allowed interval: about a quarter of (-0.5, 1] lies below 0.125
    assert 0.3 < np.mean(drawn["yaw"] < 0.25) < 0.7


def test_batches_are_rendered_faces_and_reproducible(source):
    images, labels = next(source.batches(6, seed=0, start_step=5))
    assert images.shape == (6, SIZE, SIZE, 3) and images.dtype == np.float32 and labels.shape == (6,)
    assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0
    # a face fills the aligned crop's centre: it differs from the flat background there
    centre = images[:, SIZE // 3: 2 * SIZE // 3, SIZE // 3: 2 * SIZE // 3]
    assert (np.abs(centre - np.asarray([0.45, 0.47, 0.5])).max(axis=(1, 2, 3)) > 0.1).all()
    resumed_images, resumed_labels = next(source.batches(6, seed=0, start_step=5))
    np.testing.assert_array_equal(images, resumed_images)
    np.testing.assert_array_equal(labels, resumed_labels)


def test_identities_are_fixed_distinct_draws(source):
    ids = source.identities
    assert ids.shape.shape == (3, 30) and ids.albedo.shape[0] == 3
    assert np.abs(ids.shape).max() <= 2.0 and not np.allclose(ids.shape[0], ids.shape[1])
    other = SyntheticSource(flame.embedded_model(), flame.embedded_texture(), num_classes=3, image_size=SIZE)
    np.testing.assert_array_equal(ids.shape, other.identities.shape)  # the same people for every training seed


@pytest.mark.parametrize("text, message", [("yaw<-1.5", "no yaw"), ("age>3", "attributes")])
def test_bad_filters_are_clear_errors(text, message):
    with pytest.raises(ValueError, match=f"--filters: .*{message}"):
        SyntheticSource(flame.embedded_model(), flame.embedded_texture(), num_classes=3, image_size=SIZE,
                        filters=[AttributeFilter.parse(text)])


def test_tiny_backbone_learns_synthetic_identities(tmp_path):
    config = dataclasses.replace(TINY, input_size=SIZE, synthetic_identities=3, num_steps=30, batch_size=16,
                                 head_margin=0.1, lr_boundaries=(), checkpoint_every=30,
                                 filters=("yaw>-0.3", "yaw<0.3"))
    train_and_evaluate(config, str(tmp_path))
    losses = [r["loss"] for r in read_metrics(str(tmp_path))]
    assert len(losses) == 30 and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_two_sources_is_an_error(tmp_path):
    config = dataclasses.replace(TINY, synthetic_identities=3, data=str(tmp_path))
    with pytest.raises(ValueError, match="--data and --synthetic_identities"):
        train_and_evaluate(config, str(tmp_path / "run"))


@pytest.mark.parametrize("rule, low, high", [("yaw>-0.5", -0.5, 1.0), ("yaw<0.5", -1.0, 0.5)])
def test_yaw_filters_never_produce_a_sample_outside_their_range(rule, low, high):
    """The paper's NYF / PYF streams: 51,200 draws over many steps and two seeds, every one inside, the allowed
    range covered to its edges."""
    filtered = SyntheticSource(flame.embedded_model(), flame.embedded_texture(), num_classes=3, image_size=SIZE,
                               filters=[AttributeFilter.parse(rule)])
    yaws = np.concatenate([filtered.attributes(256, seed, step)["yaw"] for seed in (0, 1) for step in range(100)])
    assert AttributeFilter.parse(rule).keep(yaws).all()
    assert yaws.min() >= low and yaws.max() <= high
    assert yaws.min() < low + 0.01 and yaws.max() > high - 0.01


def test_training_conditions_options_change_identities_light_and_colour():
    model, texture = flame.embedded_model(), flame.embedded_texture()
    harsh = SyntheticSource(model, texture, num_classes=200, image_size=SIZE, identity_distribution="uniform",
                            lighting="wide", white_balance=0.2)
    drawn = harsh.attributes(512, seed=0, step=0)
    assert drawn["gain"].shape == (512, 3) and 0.8 <= drawn["gain"].min() and drawn["gain"].max() <= 1.2
    assert np.abs(drawn["light"].azimuth).max() > np.deg2rad(60)  # the study lighting stays within 45 deg
    assert np.abs(SyntheticSource(model, texture, 3, image_size=SIZE).attributes(512, 0, 0)["light"].azimuth).max() \
        <= np.pi / 4
    assert np.abs(harsh.identities.shape).max() <= 2.0 and harsh.identities.shape.std() > 1.05  # U(-2, 2): 1.15
    few = {k: v[:2] for k, v in drawn.items() if k != "light"}
    few["light"] = type(drawn["light"])(*(a[:2] for a in drawn["light"]))
    plain = harsh.images({**few, "gain": np.ones((2, 3), np.float32)})
    np.testing.assert_allclose(harsh.images(few), np.clip(plain * few["gain"][:, None, None], 0, 1), rtol=1e-6)
    for options, message in ((dict(lighting="sunny"), "lighting"), (dict(white_balance=1.5), "white_balance")):
        with pytest.raises(ValueError, match=message):
            SyntheticSource(model, texture, 3, image_size=SIZE, **options)

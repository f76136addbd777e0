"""Realism measurement: the statistics against independent references, and a detection smoke test of the head."""
import itertools

import numpy as np
import pytest

import flame
from simadv_jax import realism, simulator
from simadv_jax.evaluate import make_renderer
from simadv_jax.report.images import to_uint8


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    positive = np.round(rng.normal(1.0, 1.0, 40), 1)  # rounding makes ties
    negative = np.round(rng.normal(0.0, 1.0, 70), 1)
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positive, negative))
    assert realism.roc_auc(positive, negative) == pytest.approx(wins / (40 * 70), abs=1e-12)
    assert realism.roc_auc([2.0, 3.0], [0.0, 1.0]) == 1.0 and realism.roc_auc([0.0], [1.0]) == 0.0


def test_identities_and_lighting_are_in_range():
    rng = np.random.default_rng(1)
    normal = simulator.sample_identities(rng, 500, 7, 5)
    uniform = simulator.sample_identities(rng, 500, 7, 5, "uniform")
    for ids in (normal, uniform):
        assert ids.shape.shape == (500, 7) and ids.albedo.shape == (500, 5)
        assert np.abs(ids.shape).max() <= 2.0 and np.abs(ids.albedo).max() <= 2.0
    assert 0.7 < normal.shape.std() < 1.0 and 1.0 < uniform.shape.std() < 1.3  # clipped N(0,1) vs U(-2,2)
    with pytest.raises(ValueError, match="distribution"):
        simulator.sample_identities(rng, 2, 1, 1, "cauchy")
    light = simulator.random_lighting(rng, 100)
    assert np.abs(light.azimuth).max() <= np.pi / 4 and light.ambient.min() >= 0.45


def test_detector_finds_most_embedded_heads_frontal():
    """Smoke test of the realism protocol: dlib's CNN detector finds one face in >= 8 of 10 random heads."""
    pytest.importorskip("dlib")
    model, texture = flame.embedded_model(), flame.embedded_texture()
    rng = np.random.default_rng(3)
    n = 10
    ids = simulator.sample_identities(rng, n, model.num_shape, texture.num_components)
    light = simulator.random_lighting(rng, n)
    pairs = realism.space(model, texture)
    view = simulator.View.photo(supersample=2, background=simulator.STUDY_BACKGROUND)
    rendered = make_renderer(pairs, model, texture, view).images(realism.points(pairs, ids, 0.0, light, light))
    images = to_uint8(rendered.probe)
    assert images.shape == (n, simulator.PHOTO_SIZE, simulator.PHOTO_SIZE, 3) and rendered.valid.all()
    np.testing.assert_array_equal(images, to_uint8(rendered.reference))  # both frontal under the same light
    counts = realism.count_faces(images)
    assert np.sum(counts == 1) >= 8, counts
    # A blank image has no face: the detector is not simply saying yes.
    assert realism.count_faces(np.full((1, 256, 256, 3), 118, np.uint8))[0] == 0


def test_points_put_each_value_where_the_space_reads_it():
    model, texture = flame.embedded_model(), flame.embedded_texture()
    pairs = realism.space(model, texture)
    rng = np.random.default_rng(0)
    ids = simulator.sample_identities(rng, 3, model.num_shape, texture.num_components)
    light_a, light_b = simulator.random_lighting(rng, 3), simulator.random_lighting(rng, 3)
    yaw = np.array([0.1, -0.7, 1.5], np.float32)
    scene = pairs.decode(realism.points(pairs, ids, yaw, light_a, light_b))
    np.testing.assert_allclose(scene.probe.shape, ids.shape, atol=1e-6)
    np.testing.assert_allclose(scene.reference.texture, ids.albedo, atol=1e-6)  # identity tied
    np.testing.assert_allclose(scene.probe.yaw, yaw, atol=1e-6)
    np.testing.assert_allclose(scene.reference.yaw, 0.0)
    for image, light in ((scene.reference, light_a), (scene.probe, light_b)):
        np.testing.assert_allclose(image.light_azimuth, light.azimuth, atol=1e-6)
        np.testing.assert_allclose(image.light_elevation, light.elevation, atol=1e-6)
        np.testing.assert_allclose(image.light_intensity, light.intensity, atol=1e-6)
        np.testing.assert_allclose(image.ambient, light.ambient, atol=1e-6)
        np.testing.assert_allclose(image.camera_distance, simulator.STUDY_CAMERA_DISTANCE, atol=1e-6)
        np.testing.assert_allclose(image.focal_length, simulator.STUDY_FOCAL_LENGTH, atol=1e-6)


def test_launch_realism_writes_every_output(tmp_path):
    """The command end to end with the main install's dependencies (dlib-bin is one of them)."""
    import json

    from tests.subprocesses import last_line, run_module

    summary = json.loads(last_line(run_module("launch.realism", f"--out={tmp_path}", "--num_identities=2",
                                              timeout=600)))
    metrics = json.load(open(tmp_path / "realism.json"))
    for key in ("detection_rate_frontal", "detection_rate_yaw45", "same_identity_pass_rate", "roc_auc",
                "random_pair_accuracy", "different_identity_reject_rate", "yaw45_deg", "seconds"):
        assert key in metrics, key
    assert summary["roc_auc"] == metrics["roc_auc"] and metrics["num_identities"] == 2
    assert len(list((tmp_path / "renders").iterdir())) == 2 * 6
    assert (tmp_path / "contact_sheet.png").stat().st_size > 0
    # The whole table per |yaw| bin, both alignments; a rate is None only where nothing was there to count.
    table = metrics["by_yaw"]
    assert [row["abs_yaw"] for row in table["rows"]] == list(realism.YAW_BINS)
    assert table["box_source"] in ("blazeface", "landmarks")
    for row in table["rows"]:
        for alignment in ("oracle", "pipeline"):
            keys = row[alignment]
            assert sum(keys[k] for k in ("same_identity_pass_rate", "false_non_match_rate", "failure_to_acquire_rate",
                                         "invalid_render_rate")) == pytest.approx(1.0)
        assert row["oracle"]["failure_to_acquire_rate"] == 0.0 and row["oracle"]["table2_uniform"]["count"] == 2
    assert sum(row["pipeline"]["table3_uniform"]["count"] for row in table["rows"]) == 2
    assert (tmp_path / "realism.md").read_text().count("\n| ") == len(realism.TABLE_LINES) + 1

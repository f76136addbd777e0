"""Realism measurement: the statistics against independent references, and a detection smoke test of the head."""
import itertools

import numpy as np
import pytest

import flame
from simadv_jax import realism, simulator


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
    images = realism.render_batches(realism.make_renderer(model, texture, aligned=False), ids, 0.0,
                                    simulator.random_lighting(rng, n), batch=n)
    assert images.shape == (n, realism.FRAMED_SIZE, realism.FRAMED_SIZE, 3) and images.dtype == np.uint8
    counts = realism.count_faces(images)
    assert np.sum(counts == 1) >= 8, counts
    # A blank image has no face: the detector is not simply saying yes.
    assert realism.count_faces(np.full((1, 256, 256, 3), 118, np.uint8))[0] == 0

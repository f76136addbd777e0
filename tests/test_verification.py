"""LFW protocol: pairs parser, k-fold threshold selection with a known answer, flip-augmented embeddings, the run."""
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from simadv_jax.recognizers.base import Recognizer
from simadv_jax.recognizers.checkpoints import VERIFICATION_FILE, read_threshold
from simadv_jax.training.verification import (
    Verification,
    best_threshold,
    embed_images,
    kfold_verification,
    pair_scores,
    parse_pairs,
    save_threshold,
    threshold_grid,
    verify,
)

PAIRS = """2\t2
Abel_Pacheco\t1\t4
Ann\t2\t3
Abdel_Madi\t1\tDean_Barker\t1
Ann\t1\tBob\t12
Bob\t1\t2
Cid\t1\t2
Ann\t3\tCid\t1
Bob\t2\tDean_Barker\t1
"""


def write(path, text):
    path.write_text(text)
    return str(path)


def test_parse_pairs(tmp_path):
    pairs = parse_pairs(write(tmp_path / "pairs.txt", PAIRS))
    assert pairs.num_folds == 2
    assert pairs.first[0] == os.path.join("Abel_Pacheco", "Abel_Pacheco_0001.jpg")
    assert pairs.second[0] == os.path.join("Abel_Pacheco", "Abel_Pacheco_0004.jpg")
    assert pairs.second[3] == os.path.join("Bob", "Bob_0012.jpg")
    np.testing.assert_array_equal(pairs.same, [1, 1, 0, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(pairs.fold, [0, 0, 0, 0, 1, 1, 1, 1])


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "empty"),
        ("ten folds\nA 1 2\n", ":1: expected a header"),
        ("1 2\nA 1 2\nB 1 2\nC 1 D 1\n", "found 3 pair lines"),
        ("1 1\nA 1 x\nC 1 D 1\n", ":2: expected 'name n1 n2'"),
        ("1 2\nA 1 2\nB 1 C 2\nC 1 D 1\nE 1 F 1\n", "fold 1 has 1 same-person pairs"),
    ],
)
def test_parse_pairs_errors(tmp_path, text, message):
    path = write(tmp_path / "bad.txt", text)
    with pytest.raises(ValueError, match=message) as info:
        parse_pairs(path)
    assert "bad.txt" in str(info.value)
    with pytest.raises(ValueError, match="missing.txt"):
        parse_pairs(str(tmp_path / "missing.txt"))


def test_best_threshold_ties_take_the_mean():
    # candidates 0.1, 0.3, 0.6, 0.8, >0.9 give 2, 3, 2, 3, 2 correct: tie between 0.3 and 0.8
    threshold, acc = best_threshold(np.array([0.5, 0.9, 0.1, 0.7]), np.array([1, 1, 0, 0], bool))
    assert threshold == pytest.approx(0.55)
    assert acc == pytest.approx(0.75)


def test_best_threshold_matches_brute_force():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=200), 2)  # rounded: many exact ties among the scores
    same = rng.random(200) < 0.5
    scores[same] += 0.8
    threshold, acc = best_threshold(scores, same)
    grid = np.linspace(scores.min() - 0.01, scores.max() + 0.01, 40001)
    correct = np.array([np.sum((scores >= t) == same) for t in grid])
    assert acc == pytest.approx(correct.max() / 200)
    assert np.sum((scores >= threshold) == same) <= correct.max()
    # the grid version of the same protocol (Face_Pytorch style) agrees with the exact one on the accuracy
    assert best_threshold(scores, same, grid)[1] == pytest.approx(acc)


def test_kfold_known_answer():
    # 10 folds, each: same 0.7, 0.8; different 0.2, 0.3. Fold 0 also holds an impostor pair scoring 0.9.
    scores = np.tile([0.7, 0.8, 0.2, 0.3], 10)
    same = np.tile([True, True, False, False], 10)
    fold = np.repeat(np.arange(10), 4)
    scores, same, fold = np.append(scores, 0.9), np.append(same, False), np.append(fold, 0)
    result = kfold_verification(scores, same, fold)
    # every fold's threshold: the only gap with the best training accuracy is (0.3, 0.7) -> midpoint 0.5
    np.testing.assert_allclose(result.thresholds, 0.5)
    np.testing.assert_allclose(result.accuracies, [0.8] + [1.0] * 9)
    assert result.accuracy == pytest.approx(0.98)
    assert result.accuracy_std == pytest.approx(np.std([0.8] + [1.0] * 9))
    # Face_Pytorch's grid over [-1, 1] step 1e-4: every t in (0.3, 0.7] ties -> mean 0.50005
    grid = kfold_verification(scores, same, fold, np.arange(-1.0, 1.0, 1e-4))
    np.testing.assert_allclose(grid.thresholds, 0.50005, atol=1e-4)
    assert grid.accuracy == pytest.approx(0.98)
    summary = result.summary()
    assert summary["threshold"] == pytest.approx(0.5) and len(summary["fold_accuracies"]) == 10


def test_kfold_errors():
    with pytest.raises(ValueError, match="at least 2 folds"):
        kfold_verification(np.zeros(4), np.ones(4, bool), np.zeros(4, int))
    with pytest.raises(ValueError, match="non-finite"):
        kfold_verification(np.array([0.1, np.nan]), np.ones(2, bool), np.arange(2))


def linear_recognizer(size=4, metric="cosine"):
    weights = np.random.default_rng(1).normal(size=(size * size * 3, 3)).astype(np.float32)
    return Recognizer(
        params=jnp.asarray(weights),
        name="linear",
        input_size=size,
        template="test",
        apply_fn=lambda w, images: images.reshape(images.shape[0], -1) @ w,
        metric=metric,
    ), weights


def test_embed_images_flip_modes():
    recognizer, weights = linear_recognizer()
    images = np.random.default_rng(2).random((5, 4, 4, 3)).astype(np.float32)
    plain = images.reshape(5, -1) @ weights
    mirrored = images[:, :, ::-1, :].reshape(5, -1) @ weights
    np.testing.assert_allclose(embed_images(recognizer, images, "none", batch_size=2), plain, rtol=1e-5)
    np.testing.assert_allclose(embed_images(recognizer, images, "sum", batch_size=3), plain + mirrored, rtol=1e-5)
    np.testing.assert_allclose(
        embed_images(recognizer, images, "concat", batch_size=8), np.concatenate([plain, mirrored], 1), rtol=1e-5
    )
    with pytest.raises(ValueError, match="--flip"):
        embed_images(recognizer, images, "both")


def test_pair_scores_reads_lfw_layout(tmp_path):
    recognizer, weights = linear_recognizer(size=4)
    pairs = parse_pairs(write(tmp_path / "pairs.txt", PAIRS))
    rng = np.random.default_rng(3)
    pixels = {}
    for path in set(pairs.first) | set(pairs.second):
        os.makedirs(tmp_path / "lfw" / os.path.dirname(path), exist_ok=True)
        image = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)  # stored at 8x8, read at 4x4
        Image.fromarray(image).save(tmp_path / "lfw" / path.replace(".jpg", ".png"))
        os.replace(tmp_path / "lfw" / path.replace(".jpg", ".png"), tmp_path / "lfw" / path)
        pixels[path] = np.asarray(Image.fromarray(image).resize((4, 4), Image.BILINEAR), np.float32) / 255
    scores = pair_scores(recognizer, pairs, str(tmp_path / "lfw"), flip="none", batch_size=4)
    a = np.stack([pixels[p] for p in pairs.first]).reshape(8, -1) @ weights
    b = np.stack([pixels[p] for p in pairs.second]).reshape(8, -1) @ weights
    expected = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-5)
    os.remove(tmp_path / "lfw" / pairs.first[0])
    with pytest.raises(ValueError, match="Abel_Pacheco_0001.jpg"):
        pair_scores(recognizer, pairs, str(tmp_path / "lfw"))
    with pytest.raises(ValueError, match="--images"):
        pair_scores(recognizer, pairs, str(tmp_path / "nowhere"))


def test_threshold_grid():
    scores = np.array([0.2, -0.1, 0.35])
    assert threshold_grid(scores, 0.0) is None
    np.testing.assert_allclose(threshold_grid(scores, 0.1), [-0.1, 0.0, 0.1, 0.2, 0.3, 0.4], atol=1e-12)


def test_save_threshold_round_trip(tmp_path):
    assert read_threshold(str(tmp_path), 0.25) == 0.25  # not verified: the default
    path = save_threshold(str(tmp_path), {"threshold": 0.42, "accuracy": 0.9})
    assert path == os.path.join(str(tmp_path), VERIFICATION_FILE)
    assert json.loads(open(path).read()) == {"threshold": 0.42, "accuracy": 0.9}
    assert read_threshold(str(tmp_path), 0.25) == 0.42
    assert os.listdir(tmp_path) == [VERIFICATION_FILE]  # no temporary file left behind


def test_verification_summary_and_description():
    result = kfold_verification(np.tile([0.7, 0.8, 0.2, 0.3], 2), np.tile([True, True, False, False], 2),
                                np.repeat(np.arange(2), 4))
    run = Verification("ir50:runs/x", "pairs.txt", "none", 8, 2, result)
    assert run.summary() == {"recognizer": "ir50:runs/x", "pairs": "pairs.txt", "flip": "none", **result.summary()}
    assert run.describe() == (
        "ir50:runs/x: accuracy 100.00 +- 0.00 %, threshold 0.5000 +- 0.0000 (2 folds, 8 pairs, flip=none)"
    )


@pytest.mark.parametrize(
    "spec,flip,message",
    [
        ("ir50:runs/x", "concat", "--save_threshold needs --flip=none"),
        ("dlib_resnet", "none", "--recognizer=dlib_resnet: expected BACKBONE:WORKDIR"),
        ("ir50", "none", "--recognizer=ir50: expected BACKBONE:WORKDIR"),
    ],
)
def test_verify_checks_save_before_any_work(tmp_path, spec, flip, message):
    with pytest.raises(ValueError, match=message):
        verify(spec, str(tmp_path / "missing.txt"), str(tmp_path), flip=flip, save=True)

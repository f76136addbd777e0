"""flame.io / flame.convert on synthetic files in the official FLAME/DECA layouts; the OBJ and PPM writers."""
import importlib.util
import os
import pickle
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest

import flame
from flame import convert
from flame import io as flame_io
from flame.io import FlameFileError
import flame_fixtures as ff
from subprocesses import run_module

NUM_VERTICES, NUM_FACES = 40, 60


@pytest.fixture(scope="module")
def official():
    return ff.random_official(np.random.default_rng(0), NUM_VERTICES, NUM_FACES)


@pytest.fixture(scope="module")
def pkl_path(official, tmp_path_factory):
    path = tmp_path_factory.mktemp("flame") / "generic_model.pkl"
    ff.write_official_pkl(path, official)
    return path


@pytest.fixture(scope="module")
def jit_forward():
    return jax.jit(flame.forward)


def _pose(seed=1):
    return np.random.default_rng(seed).normal(scale=0.4, size=(5, 3)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Official model layout.


def test_official_pickle_loads_without_chumpy(official, pkl_path):
    assert importlib.util.find_spec("chumpy") is None and "chumpy" not in sys.modules
    raw = pkl_path.read_bytes()
    assert b"cchumpy.ch\nCh\n" in raw and b"cscipy.sparse.csc\ncsc_matrix\n" in raw
    model = flame_io.load_model(pkl_path)
    assert "chumpy" not in sys.modules and "torch" not in sys.modules
    np.testing.assert_allclose(model.v_template, official["v_template"], rtol=1e-6)
    np.testing.assert_allclose(model.shapedirs, official["shapedirs"][:, :, :300], rtol=1e-6)
    np.testing.assert_allclose(model.exprdirs, official["shapedirs"][:, :, 300:], rtol=1e-6)
    assert model.posedirs.shape == (36, 3 * NUM_VERTICES)
    v, d, p = 7, 2, 11  # posedirs[p, 3 v + d] is the official posedirs[v, d, p]
    np.testing.assert_allclose(model.posedirs[p, 3 * v + d], official["posedirs"][v, d, p], rtol=1e-6)
    np.testing.assert_allclose(model.J_regressor, official["J_regressor"], rtol=1e-6)
    np.testing.assert_allclose(model.lbs_weights, official["weights"], rtol=1e-6)
    np.testing.assert_array_equal(model.faces, official["f"])
    assert model.faces.dtype == np.int32 and model.v_template.dtype == np.float32
    assert model.parents == (-1, 0, 1, 1, 1)


@pytest.mark.parametrize("protocol,marker", [(0, b"copy_reg\n_reconstructor"), (5, b"_frombuffer")])
def test_other_pickle_protocols_load(official, tmp_path, protocol, marker):
    path = tmp_path / "generic_model.pkl"
    ff.write_official_pkl(path, official, protocol=protocol)
    assert marker in path.read_bytes()
    model = flame_io.load_model(path)
    np.testing.assert_allclose(model.shapedirs, official["shapedirs"][:, :, :300], rtol=1e-6)
    np.testing.assert_allclose(model.J_regressor, official["J_regressor"], rtol=1e-6)


def test_chumpy_expression_without_value_is_refused(official, tmp_path):
    select = ff.named(type("Select", (), {}), "chumpy.reordering", "Select")
    expression = select.__new__(select)
    expression.__dict__.update({"a": ff.chumpy_array(official["shapedirs"]), "idxs": np.arange(3)})
    with ff.registered(ff.Ch, select):
        data = pickle.dumps(dict(official, shapedirs=expression), protocol=2)
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(data)
    with pytest.raises(FlameFileError, match=r"generic_model\.pkl: field 'shapedirs'.*chumpy\.reordering\.Select"):
        flame_io.load_model(path)


@pytest.mark.parametrize("sparse", ["csc_matrix", "csr_matrix", "coo_matrix", "csc_array"])
def test_current_scipy_sparse_classes_load(official, tmp_path, sparse):
    path = tmp_path / "generic_model_2023.pkl"
    ff.write_official_pkl(path, official, sparse=sparse)
    assert f"scipy.sparse._{sparse[:3]}".encode() in path.read_bytes()
    np.testing.assert_allclose(flame_io.load_model(path).J_regressor, official["J_regressor"], rtol=1e-6)


@pytest.mark.parametrize("columns,shape,expression", [(310, 300, 10), (50, 50, 0)])
def test_fewer_shapedirs_columns(official, tmp_path, columns, shape, expression, jit_forward):
    values = dict(official, shapedirs=official["shapedirs"][:, :, :columns])
    ff.write_official_pkl(tmp_path / "m.pkl", values)
    model = flame_io.load_model(tmp_path / "m.pkl")
    assert (model.num_shape, model.num_expression) == (shape, expression)
    out = jit_forward(model, np.ones(3, np.float32), np.zeros(0, np.float32), _pose())
    assert np.all(np.isfinite(out.vertices))


def test_convert_pkl_to_npz_gives_identical_forward(official, pkl_path, tmp_path, jit_forward):
    landmark_path = tmp_path / "flame_static_embedding.pkl"
    rng = np.random.default_rng(2)
    ff.write_static_embedding(landmark_path, rng.integers(0, NUM_FACES, 51), rng.dirichlet(np.ones(3), 51))
    npz_path = tmp_path / "flame.npz"
    convert.convert(str(pkl_path), str(npz_path), landmarks=str(landmark_path))
    from_pkl = flame_io.load_model(pkl_path, landmarks=landmark_path)
    from_npz = flame_io.load_model(npz_path)
    assert from_npz.landmarks.layout == "flame51" and from_npz.parents == from_pkl.parents
    shape = rng.normal(size=20).astype(np.float32)
    expression = rng.normal(size=10).astype(np.float32)
    a = jit_forward(from_pkl, shape, expression, _pose())
    b = jit_forward(from_npz, shape, expression, _pose())
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_convert_command_line(pkl_path, tmp_path):
    out = tmp_path / "model.npz"
    result = run_module("flame.convert", str(pkl_path), str(out), timeout=120)
    assert result.returncode == 0, result.stderr
    assert flame_io.load_model(out).num_vertices == NUM_VERTICES
    bad = run_module("flame.convert", str(tmp_path / "missing.pkl"), str(out), timeout=120)
    assert bad.returncode != 0 and "missing.pkl" in bad.stderr and "Traceback" not in bad.stderr


def test_npz_round_trip_keeps_everything(tmp_path):
    model = ff.random_model(np.random.default_rng(3))
    uv = np.random.default_rng(4).random((50, 2)).astype(np.float32)
    model = model.replace(uv_coords=uv, uv_faces=np.asarray(model.faces) % 50, name="m", source="s", license="l")
    path = tmp_path / "m.npz"
    flame_io.save_npz(path, model)
    flame_io.save_npz(path, model)  # overwriting is atomic and leaves no temporary files
    assert os.listdir(tmp_path) == ["m.npz"]
    loaded = flame_io.load_model(path)
    for a, b in zip(jax.tree_util.tree_leaves(model), jax.tree_util.tree_leaves(loaded)):
        np.testing.assert_array_equal(a, b)
    assert (loaded.name, loaded.source, loaded.license, loaded.landmarks.layout) == ("m", "s", "l", "test7")
    with pytest.raises(FlameFileError, match="kind"):
        flame_io.load_texture(path)


def _obj_records(text, tag):
    """The whitespace-separated fields of every `tag` line of an OBJ text."""
    return [line.split()[1:] for line in text.splitlines() if line.split()[:1] == [tag]]


def test_obj_round_trip(tmp_path):
    rng = np.random.default_rng(15)
    model = ff.random_model(rng, NUM_VERTICES, NUM_FACES)
    uv = rng.random((50, 2)).astype(np.float32)
    uv_faces = (np.asarray(model.faces) + 7) % 50
    flame_io.write_obj(tmp_path / "mesh.obj", jax.device_put(model.v_template), model.faces, uv, uv_faces)
    text = (tmp_path / "mesh.obj").read_text()
    assert text == flame_io.obj_text(model.v_template, model.faces, uv, uv_faces) and text.endswith("\n")
    vertices = np.array(_obj_records(text, "v"), np.float64)
    chex.assert_shape(vertices, (NUM_VERTICES, 3))
    np.testing.assert_allclose(vertices, model.v_template, atol=5e-7)  # 6 decimals
    np.testing.assert_allclose(np.array(_obj_records(text, "vt"), np.float64), uv, atol=5e-7)
    corners = np.array([[corner.split("/") for corner in face] for face in _obj_records(text, "f")], np.int64)
    chex.assert_shape(corners, (NUM_FACES, 3, 2))
    assert corners.min() == 1  # 1-based
    np.testing.assert_array_equal(corners[..., 0] - 1, model.faces)
    np.testing.assert_array_equal(corners[..., 1] - 1, uv_faces)
    # Without UVs: plain `f a b c` corners, no `vt` lines.
    plain = flame_io.obj_text(model.v_template, model.faces)
    assert not _obj_records(plain, "vt")
    np.testing.assert_array_equal(np.array(_obj_records(plain, "f"), np.int64) - 1, model.faces)
    assert os.listdir(tmp_path) == ["mesh.obj"]  # the atomic write leaves no temporary file


def test_ppm_round_trip(tmp_path):
    image = np.random.default_rng(16).uniform(-0.1, 1.1, (3, 4, 3)).astype(np.float32)
    flame_io.write_ppm(tmp_path / "albedo.ppm", image)
    data = (tmp_path / "albedo.ppm").read_bytes()
    header = b"P6 4 3 255\n"
    assert data.startswith(header) and len(data) == len(header) + 3 * 4 * 3
    pixels = np.frombuffer(data[len(header):], np.uint8).reshape(3, 4, 3)
    np.testing.assert_allclose(pixels / 255.0, np.clip(image, 0, 1), atol=0.5 / 255 + 1e-6)  # the nearest level


# ----------------------------------------------------------------------------------------------
# Textures.


def test_flame_texture_bgr_255_to_rgb_unit(tmp_path):
    rng = np.random.default_rng(5)
    mean = rng.uniform(0, 255, (1, 8, 8, 3))
    tex_dir = rng.normal(scale=20, size=(1, 8, 8, 3, 4))
    mean[0, 2, 5] = [10.0, 20.0, 30.0]  # B, G, R
    tex_dir[0, 2, 5, :, 1] = [51.0, 0.0, -25.5]
    path = tmp_path / "FLAME_texture.npz"
    np.savez(path, mean=mean, tex_dir=tex_dir, vt=rng.random((9, 2)), ft=rng.integers(0, 9, (NUM_FACES, 3)))
    texture_model = flame_io.load_texture(path)
    assert texture_model.mean.shape == (8, 8, 3) and texture_model.basis.shape == (8, 8, 3, 4)
    np.testing.assert_allclose(texture_model.mean[2, 5], [30 / 255, 20 / 255, 10 / 255], rtol=1e-6)
    np.testing.assert_allclose(texture_model.basis[2, 5, :, 1], [-0.1, 0.0, 0.2], rtol=1e-6)
    np.testing.assert_array_equal(texture_model.std, np.ones(4))
    albedo = flame.albedo(texture_model, np.array([0.0, 1.0]))
    np.testing.assert_allclose(albedo[2, 5], np.clip([30 / 255 - 0.1, 20 / 255, 10 / 255 + 0.2], 0, 1), atol=1e-6)
    # The same file provides the UV layout of a model.
    uv, uv_faces = flame_io.load_uv(path, NUM_FACES)
    assert uv.shape == (9, 2) and uv_faces.shape == (NUM_FACES, 3)


def test_bfm_albedo_bgr_to_rgb(tmp_path):
    rng = np.random.default_rng(6)
    side, k = 6, 5
    mu = rng.uniform(0, 1, side * side * 3)
    pc = rng.normal(scale=0.05, size=(side * side * 3, k))
    pixel = (3 * side + 4) * 3  # row 3, column 4
    mu[pixel:pixel + 3] = [0.1, 0.2, 0.3]
    pc[pixel:pixel + 3, 2] = [0.01, 0.02, 0.03]
    path = tmp_path / "FLAME_albedo_from_BFM.npz"
    np.savez(path, MU=mu, PC=pc)
    texture_model = flame_io.load_texture(path)
    np.testing.assert_allclose(texture_model.mean[3, 4], [0.3, 0.2, 0.1], rtol=1e-6)
    np.testing.assert_allclose(texture_model.basis[3, 4, :, 2], [0.03, 0.02, 0.01], rtol=1e-6)
    np.testing.assert_array_equal(texture_model.std, np.ones(k))
    round_trip = tmp_path / "albedo.npz"
    assert isinstance(convert.convert(str(path), str(round_trip)), flame.TextureModel)  # kind detected
    np.testing.assert_array_equal(flame_io.load_texture(round_trip).basis, texture_model.basis)


# ----------------------------------------------------------------------------------------------
# Landmarks.


def test_static_embedding_pkl(tmp_path):
    rng = np.random.default_rng(7)
    face_idx, bary = rng.integers(0, NUM_FACES, 51), rng.dirichlet(np.ones(3), 51)
    ff.write_static_embedding(tmp_path / "e.pkl", face_idx, bary)
    embedding = flame_io.load_landmarks(tmp_path / "e.pkl")
    assert embedding.layout == "flame51" and embedding.face_idx.dtype == np.int32
    np.testing.assert_array_equal(embedding.face_idx, face_idx)
    np.testing.assert_allclose(embedding.bary_coords, bary, rtol=1e-6)


def test_deca_embedding_with_torch_tensors(tmp_path, jit_forward):
    values = ff.deca_values(np.random.default_rng(8), NUM_FACES)
    path = tmp_path / "landmark_embedding.npy"
    ff.write_deca_embedding(path, values)
    assert b"_rebuild_tensor_v2" in path.read_bytes() and b"_load_from_bytes" in path.read_bytes()
    embedding = flame_io.load_landmarks(path)
    assert "torch" not in sys.modules
    assert embedding.layout == "ibug68" and embedding.num_landmarks == 68
    np.testing.assert_array_equal(embedding.face_idx, values["full_lmk_faces_idx"][0])
    np.testing.assert_allclose(embedding.bary_coords, values["full_lmk_bary_coords"][0], rtol=1e-6)
    np.testing.assert_array_equal(embedding.dynamic_face_idx, values["dynamic_lmk_faces_idx"].array)
    np.testing.assert_array_equal(embedding.dynamic_bary_coords, values["dynamic_lmk_bary_coords"].array)
    model = flame_io.attach_landmarks(ff.random_model(np.random.default_rng(9), NUM_VERTICES, NUM_FACES),
                                      embedding, path)
    assert jit_forward(model, np.zeros(1), np.zeros(1), np.zeros((5, 3))).landmarks.shape == (68, 3)


def test_landmark_index_out_of_range_for_model(tmp_path):
    rng = np.random.default_rng(10)
    ff.write_static_embedding(tmp_path / "e.pkl", [0, NUM_FACES], rng.dirichlet(np.ones(3), 2))
    model = ff.random_model(rng, NUM_VERTICES, NUM_FACES)
    with pytest.raises(FlameFileError, match=r"e\.pkl.*face_idx"):
        flame_io.attach_landmarks(model, flame_io.load_landmarks(tmp_path / "e.pkl"), tmp_path / "e.pkl")


# ----------------------------------------------------------------------------------------------
# Malicious pickles.


class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "subprocess.call"])
def test_malicious_pickle_is_refused(tmp_path, kind):
    marker = tmp_path / "pwned"
    command = f"touch {marker}"
    payload = {
        "os.system": _Evil(os.system, command),
        "builtins.eval": _Evil(eval, f"open({str(marker)!r}, 'w')"),
        "subprocess.call": _Evil(subprocess.call, ["touch", str(marker)]),
    }[kind]
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps({"v_template": payload}, protocol=4))
    expected_class = {"os.system": os.system.__module__ + ".system", "builtins.eval": "builtins.eval",
                      "subprocess.call": "subprocess.call"}[kind]
    with pytest.raises(FlameFileError) as error:
        flame_io.load_model(path)
    assert expected_class in str(error.value) and str(path) in str(error.value)
    assert not marker.exists()


def test_malicious_npy_and_nested_torch_payload_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Evil(os.system, f"touch {marker}")
    path = tmp_path / "landmark_embedding.npy"
    np.save(path, np.array({"full_lmk_faces_idx": evil}, dtype=object), allow_pickle=True)
    with pytest.raises(FlameFileError, match="system"):
        flame_io.load_landmarks(path)
    values = ff.deca_values(np.random.default_rng(11), NUM_FACES)
    values["dynamic_lmk_faces_idx"] = ff.TorchTensor(np.zeros((2, 2), np.int64), payload=evil)
    ff.write_deca_embedding(path, values)
    with pytest.raises(FlameFileError, match="system"):
        flame_io.load_landmarks(path)
    assert not marker.exists()


# ----------------------------------------------------------------------------------------------
# Corrupt files: one clear FlameFileError naming the file and the field.


def _corrupt_cases(official):
    nan = dict(official, v_template=official["v_template"].copy())
    nan["v_template"][3, 1] = np.nan
    inf = dict(official, weights=official["weights"].copy())
    inf["weights"][0, 0] = np.inf
    bad_faces = dict(official, f=official["f"].copy())
    bad_faces["f"][5, 2] = NUM_VERTICES
    bad_tree = dict(official, kintree_table=np.array([[ff.ROOT_SENTINEL, 0, 3, 1, 1], [0, 1, 2, 3, 4]]))
    return {
        "missing": ({k: v for k, v in official.items() if k != "weights"}, "weights"),
        "wrong_shape": (dict(official, posedirs=official["posedirs"][:, :, :30]), "posedirs"),
        "wrong_dtype": (dict(official, f=official["f"].astype(np.float64)), "f"),
        "string_dtype": (dict(official, v_template=np.full((NUM_VERTICES, 3), "x")), "v_template"),
        "nan": (nan, "v_template"),
        "inf": (inf, "weights"),
        "face_out_of_range": (bad_faces, "f"),
        "invalid_parents": (bad_tree, "kintree_table"),
    }


@pytest.mark.parametrize("case", ["missing", "wrong_shape", "wrong_dtype", "string_dtype", "nan", "inf",
                                  "face_out_of_range", "invalid_parents"])
def test_corrupt_official_model(official, tmp_path, case):
    values, field = _corrupt_cases(official)[case]
    path = tmp_path / f"{case}.pkl"
    ff.write_official_pkl(path, values)
    with pytest.raises(FlameFileError) as error:
        flame_io.load_model(path)
    assert error.value.field == field and str(path) in str(error.value) and f"'{field}'" in str(error.value)


def test_truncated_and_garbage_files(pkl_path, tmp_path):
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(pkl_path.read_bytes()[: len(pkl_path.read_bytes()) // 2])
    npz = tmp_path / "model.npz"
    flame_io.save_npz(npz, ff.random_model(np.random.default_rng(12)))
    truncated_npz = tmp_path / "truncated.npz"
    truncated_npz.write_bytes(npz.read_bytes()[:-200])
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a model at all")
    for path in (truncated, truncated_npz, garbage, tmp_path / "does_not_exist.pkl"):
        with pytest.raises(FlameFileError) as error:
            flame_io.load_model(path)
        assert str(path) in str(error.value)


@pytest.mark.parametrize("case", ["missing", "nan", "out_of_range", "wrong_dtype", "newer_version"])
def test_corrupt_project_npz(tmp_path, case):
    path = tmp_path / "model.npz"
    flame_io.save_npz(path, ff.random_model(np.random.default_rng(13)))
    values = dict(np.load(path))
    field = {"missing": "J_regressor", "nan": "shapedirs", "out_of_range": "landmarks.face_idx",
             "wrong_dtype": "faces", "newer_version": "format_version"}[case]
    if case == "missing":
        del values[field]
    elif case == "nan":
        values[field] = values[field].copy()
        values[field][0, 0, 0] = np.nan
    elif case == "out_of_range":
        values[field] = values[field] + 1000
    elif case == "wrong_dtype":
        values[field] = values[field].astype(np.float32)
    else:
        values[field] = np.array(99)
    np.savez(path, **values)
    with pytest.raises(FlameFileError) as error:
        flame_io.load_model(path)
    assert error.value.field == field and str(path) in str(error.value)


@pytest.mark.parametrize("case", ["missing", "wrong_shape", "nan"])
def test_corrupt_texture_and_landmarks(tmp_path, case):
    rng = np.random.default_rng(14)
    mu, pc = rng.random(4 * 4 * 3), rng.random((4 * 4 * 3, 2))
    values, field = {
        "missing": ({"MU": mu}, "PC"),
        "wrong_shape": ({"MU": mu, "PC": pc[:-3]}, "PC"),
        "nan": ({"MU": np.where(np.arange(mu.size) == 5, np.nan, mu), "PC": pc}, "MU"),
    }[case]
    np.savez(tmp_path / "albedo.npz", **values)
    with pytest.raises(FlameFileError, match=f"albedo.npz: field '{field}'"):
        flame_io.load_texture(tmp_path / "albedo.npz")
    bary = rng.dirichlet(np.ones(3), 51)
    if case == "nan":
        bary[4, 1] = np.nan
    embedding = {"lmk_face_idx": np.arange(51, dtype=np.uint32), "lmk_b_coords": bary}
    if case == "missing":
        del embedding["lmk_b_coords"]
    if case == "wrong_shape":
        embedding["lmk_b_coords"] = bary[:, :2]
    with open(tmp_path / "e.pkl", "wb") as f:
        pickle.dump(embedding, f, protocol=2)
    with pytest.raises(FlameFileError, match="e.pkl: field 'lmk_b_coords'"):
        flame_io.load_landmarks(tmp_path / "e.pkl")


def test_fingerprint_is_the_content_stable_across_loads_and_changes_with_any_array(tmp_path):
    rng = np.random.default_rng(8)
    model = ff.random_model(rng).replace(uv_coords=rng.random((50, 2)).astype(np.float32), name="m")
    model = model.replace(uv_faces=np.asarray(model.faces) % 50)
    texture = flame.TextureModel(mean=rng.random((4, 4, 3)).astype(np.float32),
                                 basis=rng.normal(size=(4, 4, 3, 2)).astype(np.float32),
                                 std=np.asarray([0.2, 0.1], np.float32), name="t")
    for value, load in ((model, flame_io.load_model), (texture, flame_io.load_texture)):
        flame_io.save_npz(tmp_path / "a.npz", value)
        flame_io.save_npz(tmp_path / "b.npz", value.replace(source="copied", license="other text"))
        fingerprint = flame.fingerprint(value)
        assert len(fingerprint) == 16 and set(fingerprint) <= set("0123456789abcdef")
        assert {flame.fingerprint(load(tmp_path / name)) for name in ("a.npz", "a.npz", "b.npz")} == {fingerprint}
        leaves, tree = jax.tree_util.tree_flatten(value)
        for i, leaf in enumerate(leaves):
            changed = np.array(leaf)
            changed.flat[-1] += 1
            assert flame.fingerprint(jax.tree_util.tree_unflatten(tree, leaves[:i] + [changed] + leaves[i + 1:])) \
                != fingerprint, i
        assert flame.fingerprint(value.replace(name="renamed")) != fingerprint
    assert flame.fingerprint(model.replace(J_regressor=np.asarray(model.J_regressor).T)) != flame.fingerprint(model)
    assert flame.fingerprint(model.replace(parents=(-1, 0, 0, 1, 1))) != flame.fingerprint(model)

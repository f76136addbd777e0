"""The render benchmark runs and reports sane numbers (speed targets are not tested)."""
from simadv_jax.render import benchmark


def test_flame_size_mesh_counts():
    vertices, faces, uv, uv_faces = benchmark.flame_size_mesh()
    assert vertices.shape == (5023, 3) and faces.shape == (9976, 3)
    assert uv.shape == (5023, 2) and uv_faces.shape == (9976, 3)
    assert faces.max() < 5023 and faces.min() >= 0


def test_run_reports_each_configuration():
    results = benchmark.run(resolutions=(16,), batches=(2,), repeats=1)
    assert len(results) == 1
    row = results[0]
    assert row["resolution"] == 16 and row["batch"] == 2
    assert row["images_per_s"] > 0 and row["compile_s"] > 0 and row["peak_rss_mb"] > 0

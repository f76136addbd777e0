"""The benchmarks report what they claim: one row per configuration, every documented key, sane units.

Speed targets are never tested (they live in `python -m launch.bench`)."""
import math

from simadv_jax.benchmarks import render

RENDER_KEYS = {"resolution", "batch", "supersample", "render_group", "images_per_s", "compile_s", "temp_mb",
               "peak_rss_mb", "device", "num_devices", "rasterizer"}


def test_flame_size_mesh_counts():
    vertices, faces, uv, uv_faces = render.flame_size_mesh()
    assert vertices.shape == (5023, 3) and faces.shape == (9976, 3)
    assert uv.shape == (5023, 2) and uv_faces.shape == (9976, 3)
    assert faces.max() < 5023 and faces.min() >= 0


def test_render_rows_one_per_configuration_with_units():
    rows = render.run(resolutions=(16, 24), batches=(1, 2), repeats=1, render_group=2)
    assert [(r["resolution"], r["batch"]) for r in rows] == [(16, 1), (16, 2), (24, 1), (24, 2)]
    for row in rows:
        assert set(row) == RENDER_KEYS
        assert row["render_group"] == 2 and row["supersample"] == 1
        assert math.isfinite(row["images_per_s"]) and row["images_per_s"] > 0
        assert 0 < row["compile_s"] < 600  # seconds, not milliseconds
        assert row["peak_rss_mb"] > 50  # a JAX process in MiB (not bytes, not KiB)
        assert row["temp_mb"] is None or 0 <= row["temp_mb"] < 1024
        assert row["batch"] % row["num_devices"] == 0
        assert row["rasterizer"] in ("native", "jax")

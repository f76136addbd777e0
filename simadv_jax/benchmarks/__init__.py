"""Benchmarks (`python -m launch.bench --what=...`): speed is measured here, never in timed tests."""

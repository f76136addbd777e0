"""Fixtures shared by the search tests: a module's CONFIG (a tiny search) set up once and run once."""
import pytest

from simadv_jax.search.experiment import run_search
from tests.search_fixtures import tiny_setup


@pytest.fixture(scope="module")
def setup(request):
    """tiny_setup of the requesting module's CONFIG."""
    return tiny_setup(request.module.CONFIG)


@pytest.fixture(scope="module")
def straight(request, setup, tmp_path_factory):
    """(output dir, results) of the module's CONFIG run once, uninterrupted."""
    out = str(tmp_path_factory.mktemp("straight"))
    return out, run_search(request.module.CONFIG, out, setup=setup, flags_text="--runs=2\n")

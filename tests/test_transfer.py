"""`launch.search --transfer_to`: the saved adversarials re-scored by other recognizers, as a transfer matrix."""
import pytest

from simadv_jax.search.experiment import run_search
from tests import model_fixtures
from tests.search_fixtures import tiny_config, tiny_setup

CONFIG = tiny_config(transfer_to=("tiny", "mobileface"), max_iterations=1)


def test_transfer_matrix(tmp_path):
    model_fixtures.fetched()
    results = run_search(CONFIG, str(tmp_path), setup=tiny_setup(CONFIG), flags_text="--runs=2\n")
    transfer = results["transfer"]
    assert list(transfer["targets"]) == ["tiny", "mobileface"]
    mobileface = transfer["targets"]["mobileface"]
    assert mobileface["recognizer"] == "mobileface" and mobileface["threshold"] == pytest.approx(0.30)
    saved = sum(1 for s in CONFIG.strategies for a in results["strategies"][s]["adversarials"] if "index" in a)
    assert saved > 0 and mobileface["rescored"] == saved
    for strategy, row in transfer["matrix"].items():
        for target, fraction in row.items():
            counts = transfer["targets"][target]["strategies"][strategy]
            assert fraction == counts["still_adversarial"] / counts["rescored"]
    # the search's own recognizer re-scores its 8-bit PNGs: (nearly) all stay adversarial
    assert transfer["targets"]["tiny"]["fraction_still_adversarial"] >= 0.5


def test_unknown_target_fails_before_searching(tmp_path):
    config = tiny_config(transfer_to=("no_such_recognizer",))
    with pytest.raises(ValueError, match="--transfer_to=no_such_recognizer"):
        run_search(config, str(tmp_path), setup=tiny_setup(config), flags_text="--runs=2\n")
    assert not (tmp_path / "results.json").exists()

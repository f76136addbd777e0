"""README's "Use it from Python" example runs as printed (so it cannot rot)."""
import os
import re

from tests.subprocesses import ROOT, run_script


def _example() -> str:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text[text.index("## Use it from Python"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_python_example_runs():
    out = run_script(_example(), timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "vertices (4558, 3) landmarks (68, 3)"
    distance = float(lines[1].split()[1])
    assert 0.0 < distance < 2.0 and lines[1].endswith("same person below 0.6")
    assert re.fullmatch(r"adversarial \d+ of 20", lines[2])
    assert len([line for line in lines if line.startswith("largest distance this iteration")]) == 3

"""docs/tutorial.py runs end to end with its small settings, as a user runs it (a script in a fresh process),
writes what it says, and finds what the bundled model is known to do; its cells read as a notebook."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "tutorial.py"


def test_the_tutorial_is_a_percent_format_notebook():
    text = TUTORIAL.read_text()
    cells = re.split(r"^# %%", text, flags=re.M)
    assert cells[0] == "" and len(cells) >= 10  # starts with a cell marker; one marker per cell
    markdown = [c for c in cells[1:] if c.startswith(" [markdown]")]
    code = [c for c in cells[1:] if not c.startswith(" [markdown]")]
    assert len(markdown) >= 5 and len(code) >= 5
    for cell in markdown:  # markdown cells are comments only
        assert all(line.startswith("#") for line in cell.splitlines()[1:] if line.strip()), cell[:80]
    compile(text, str(TUTORIAL), "exec")


@pytest.mark.slow
def test_the_tutorial_runs_end_to_end_with_small_settings(tmp_path):
    # one torch thread: on two busy cores, two threads make these small problems several times slower
    env = {**os.environ, "AVXAI_TUTORIAL_SMALL": "1", "AVXAI_TUTORIAL_OUT": str(tmp_path / "out"),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, str(TUTORIAL)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    out = tmp_path / "out"
    for name in ("occlusion.html", "curves.pdf", "curves.png", "occlusion_map.pdf", "occlusion_map.png",
                 "extremal/explanation.json", "extremal/figure.png"):
        assert (out / name).stat().st_size > 1000, name
    page = (out / "occlusion.html").read_text()
    assert page.count("<audio controls") == 3 and 'src="data:image/png;base64,' in page
    # what the bundled model is known to do: occlusion puts most of A's evidence in A's turns
    uniform = float(re.search(r"uniform map: ([\d.]+)", run.stdout).group(1))
    occlusion_share = float(re.search(r"occlusion, positive evidence in A's turns: ([\d.]+)", run.stdout).group(1))
    assert 0.6 < uniform < 0.7 and occlusion_share > uniform + 0.1, run.stdout
    deletion, insertion = map(float, re.search(r"occlusion: deletion AUC ([\d.]+) .* insertion AUC ([\d.]+)",
                                               run.stdout).groups())
    assert deletion < insertion, run.stdout
    if importlib.util.find_spec("resemblyzer") is not None:  # the extra is installed (make test installs it)
        assert "Resemblyzer: cosine to A's enrollment" in run.stdout
        assert (out / "resemblyzer.html").stat().st_size > 1000
    else:
        assert "pip install avxai[resemblyzer]" in run.stdout

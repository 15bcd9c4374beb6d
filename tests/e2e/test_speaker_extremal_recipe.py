"""recipes/speaker_extremal in --debug mode (5 iterations): every experiment runs on the bundled model and writes
its explanation, the summary and the area-growth figure; a debug run never fails the acceptance check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~10 s: four explanations of 3 s utterances, 5 iterations each
def test_speaker_extremal_recipe_debug(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "recipes" / "speaker_extremal" / "run.py"), "--debug",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "debug"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["experiments"]) == {"single", "verification", "aba", "noise"}
    for name, exp in summary["experiments"].items():
        assert len(exp["preserved"]) == 4 and len(exp["mask_area"]) == 4, name
        assert (out / name / "explanation.json").is_file() and (out / name / "figure.png").is_file()
    assert (out / "area_growth.png").is_file() and "aba_acceptance" in summary
    bad = subprocess.run([sys.executable, str(REPO / "recipes" / "speaker_extremal" / "run.py"), "--debug",
                          "--out", str(tmp_path), "--set", "n_mel=64"], capture_output=True, text=True, timeout=60,
                         cwd=REPO)
    assert bad.returncode == 2 and "RecipeConfig has no field n_mel (from --set n_mel=64)" in bad.stderr

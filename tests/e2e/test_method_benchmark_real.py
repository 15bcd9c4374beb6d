"""recipes/method_benchmark/real.py --quick: the real-model track on a short real input (Resemblyzer's pretrained
encoder on 3 s of the real A-B-A) runs every stage, and its numbers follow their definitions."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


# the recipes set torch's thread count (--threads): the rest of the suite gets its own back
pytestmark = pytest.mark.usefixtures("restore_threads")


def _real():
    spec = importlib.util.spec_from_file_location("method_benchmark_real",
                                                  REPO / "recipes" / "method_benchmark" / "real.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass resolves annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_quick_real_track_on_resemblyzer(tmp_path):
    pytest.importorskip("resemblyzer", reason="resemblyzer is not installed (pip install avxai[resemblyzer])")
    rows = _real().main(["--quick", "--tasks", "aba", "--methods", "occlusion,saliency,extremal,gradcam",
                         "--set", "extremal.iterations=2", "--out", str(tmp_path)])
    by_method = {r["method"]: r for r in rows}
    assert set(by_method) == {"occlusion", "saliency", "extremal"}     # gradcam does not apply: skipped, said why
    saved = json.loads((tmp_path / "results.json").read_text())
    assert "LSTM" in saved["skipped"]["aba/gradcam"]
    # 3 s of A-B-A: A's turn is the first 2.35 s, so a uniform map puts about 0.78 of its mass there
    assert by_method["saliency"]["uniform"] == pytest.approx(2.35 / 3.0, abs=0.01)
    for r in rows:
        assert 0.0 <= r["mass"] <= 1.0 and 0.0 <= r["li_auc"] <= 1.0 and 0.0 <= r["segment_auc"] <= 1.0
        p, pm, pd = r["unmasked"], r["preserved"], r["deleted"]
        assert r["AD"] == pytest.approx(100 * max(p - pm, 0.0) / p, rel=1e-6, abs=1e-9)
        assert r["AI"] == (100.0 if pm > p else 0.0) and r["FF"] == pytest.approx(p - pd)
        assert math.isnan(r["Fid-In"])                                   # a cosine has no argmax
        assert r["seconds"] > 0
    assert (tmp_path / "extremal.csv").read_text().count("\n") == 2    # header + one area in quick mode
    assert "| aba | extremal |" in (tmp_path / "results.md").read_text()
    assert saved["config"]["method_configs"]["extremal"]["iterations"] == 2     # --set reached the method


def test_bad_arguments_are_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown real task"):
        _real().main(["--quick", "--tasks", "nope", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="METHOD.FIELD=VALUE"):
        _real().main(["--quick", "--set", "iterations=3", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="unknown method"):
        _real().main(["--quick", "--set", "extremel.iterations=3", "--out", str(tmp_path)])

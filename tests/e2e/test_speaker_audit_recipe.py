"""recipes/speaker_audit in debug mode (what CI runs): 8 generated trials audited on the bundled model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_speaker_audit_recipe_debug(tmp_path):
    out = tmp_path / "speaker_audit"
    proc = subprocess.run([sys.executable, str(REPO / "recipes" / "speaker_audit" / "run.py"), "--debug", "--quiet",
                           "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads((out / "audit" / "summary.json").read_text())
    assert summary["counts"] == {"trials": 8, "finished": 8, "pending": 0, "ok": 8, "failed": 0, "target": 4,
                                 "nontarget": 4}
    assert set(summary["conditions"]) == {"single", "aba", "noisy", "padded"}
    assert summary["info"]["method"] == "extremal" and summary["info"]["model"] == "speaker_net.pt"
    assert summary["eer"] is not None and summary["min_dcf"] is not None
    # the labelled target segments of the A-B-A, noisy and padded target trials are measured
    assert summary["statistics"]["target_mass"]["target"]["n"] == 3
    assert len(summary["suspicious"]) == 8 and [t["rank"] for t in summary["trials"]] == list(range(1, 9))
    assert summary["decision"]["source"] == "EER" and summary["decision"]["threshold"] is not None
    assert {t["label"] for t in summary["trials"]} == {"target", "non-target"}
    assert {t["decision"] for t in summary["trials"]} <= {"accept", "reject"}
    assert set(summary["speakers"]) == {f"spk{i:03d}" for i in range(16, 24)}
    page = (out / "audit" / "report.html").read_text()
    assert page.count('<section class="trial"') == 8 and page.count("<audio") == 32
    assert page.count('arrays.npz"') == 16 and 'id="findings"' in page
    assert "EER" in proc.stdout and "findings: the model decides" in proc.stdout
    # a second run continues the finished audit: nothing to do, the same report
    again = subprocess.run([sys.executable, str(REPO / "recipes" / "speaker_audit" / "run.py"), "--debug", "--quiet",
                            "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert again.returncode == 0 and "audit: 0 trials run now" in again.stdout
    assert (out / "audit" / "report.html").read_text() == page


def test_switching_the_recipe_to_occlusion_drops_extremal_options():
    import importlib.util

    spec = importlib.util.spec_from_file_location("speaker_audit_run", REPO / "recipes" / "speaker_audit" / "run.py")
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    cfg, _ = run.parse_args(["--debug", "--set", "audit.method=occlusion"])
    config = run.audit_config(cfg)
    assert config.method == "occlusion" and dict(config.method_options) == {}
    config.method_config()  # occlusion's config accepts what it was given
    cfg, _ = run.parse_args(["--debug", "--set", "audit.method_options.extremal.iterations=3"])
    assert dict(run.audit_config(cfg).method_options)["iterations"] == 3

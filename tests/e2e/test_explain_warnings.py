"""avxai explain prints the explanation's warnings (issue 16) and keeps them in explanation.json."""

from __future__ import annotations

import json

import pytest

from avxai.cli import main
from avxai.demo import speaker_assets


@pytest.mark.usefixtures("one_thread")
def test_explain_prints_and_saves_the_warnings(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["explain", "--task", "speaker", "--method", "extremal", "--iterations", "2", "--areas", "0.1",
               "--input", str(speaker_assets() / "aba.wav"), "--out", str(out)])
    assert rc == 0
    err = capsys.readouterr().err
    assert "avxai explain: warning: final mask area off its target" in err  # 2 iterations cannot reach 0.1
    saved = json.loads((out / "explanation.json").read_text())["metadata"]["warnings"]
    assert len(saved) == 1 and "area off its target" in saved[0]

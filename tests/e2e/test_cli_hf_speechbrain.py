"""``avxai explain`` / ``avxai audit --model FOLDER`` on local HuggingFace and SpeechBrain folders (tiny random
weights written in the test, nothing downloads): every family explains from the command line with a finite
attribution, the audit resolves the folder in its workers, and a missing package is one line naming the extra."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
pytest.importorskip("transformers")
pytest.importorskip("speechbrain")

from avxai.cli import main  # noqa: E402
from toys.audit import read_results, small_trial_list  # noqa: E402
from toys.hf import (  # noqa: E402
    ast_classifier_folder, wav2vec2_classifier_folder, wavlm_xvector_folder, whisper_classifier_folder,
)
from toys.speechbrain import ecapa_folder, enhancer_folder, sepformer_folder  # noqa: E402

COARSE = ["--window", "64,16", "--stride", "64,16"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The model folders and a tone-plus-noise recording per (rate, seed)."""
    root = tmp_path_factory.mktemp("real-models")
    wavlm_xvector_folder(root / "wavlm")
    wav2vec2_classifier_folder(root / "w2v")
    ast_classifier_folder(root / "ast")
    whisper_classifier_folder(root / "whisper")
    ecapa_folder(root / "ecapa")
    sepformer_folder(root / "sepformer")
    enhancer_folder(root / "metricgan")
    for rate in (8000, 16000):
        for seed in (0, 1):
            g = torch.Generator().manual_seed(seed)
            t = torch.arange(rate // 2) / rate
            x = 0.3 * torch.sin(2 * torch.pi * (300 + 150 * seed) * t) + 0.05 * torch.randn(t.numel(), generator=g)
            sf.write(root / f"s{seed}_{rate}.wav", x.numpy(), rate)
    return root


CASES = [
    ("wavlm", ["--task", "speaker", "--input", "s0_16000.wav", "--enroll", "s1_16000.wav", "--method", "saliency"]),
    ("wavlm", ["--task", "speaker", "--input", "s0_16000.wav", "--enroll", "s1_16000.wav"]),
    ("w2v", ["--task", "speaker", "--input", "s0_16000.wav"]),
    ("ast", ["--task", "speaker", "--input", "s0_16000.wav", "--score", "probability"]),
    ("whisper", ["--task", "speaker", "--input", "s0_16000.wav", "--method", "saliency"]),
    ("ecapa", ["--task", "speaker", "--input", "s0_16000.wav", "--enroll", "s1_16000.wav"]),
    ("sepformer", ["--task", "separation", "--input", "s0_8000.wav", "--source", "1"]),
    ("metricgan", ["--task", "enhancement", "--input", "s0_16000.wav"]),
]


@pytest.mark.parametrize("folder, argv", CASES, ids=[f"{f}-{a[1]}-{len(a)}" for f, a in CASES])
def test_explain_every_family_from_the_command_line(files, folder, argv, tmp_path, capsys):
    argv = [a if not a.endswith(".wav") else str(files / a) for a in argv]
    out = tmp_path / "out"
    coarse = [] if "saliency" in argv else COARSE
    rc = main(["explain", *argv, "--model", str(files / folder), "--out", str(out), *coarse, "--quiet", "--threads",
               "1"])
    assert rc == 0, capsys.readouterr().err
    arrays = np.load(out / "arrays.npz")
    assert arrays["attribution"].shape == arrays["grid"].shape and np.isfinite(arrays["attribution"]).all()
    assert json.loads((out / "explanation.json").read_text())["metadata"]["model"].startswith(("HF", "SpeechBrain"))


def test_audit_resolves_the_folder(files, tmp_path, capsys):
    trials = small_trial_list(tmp_path / "data", {"single": 2})
    for folder in ("wavlm", "ecapa"):
        out = tmp_path / folder
        rc = main(["audit", str(trials), "--model", str(files / folder), "--method", "saliency", "--areas", "0.3",
                   "--out", str(out), "--quiet", "--no-media", "--threads", "1"])
        assert rc == 0, capsys.readouterr().err
        records = read_results(out)
        assert len(records) == 2 and all(r["status"] == "ok" for r in records.values())


def test_a_missing_package_is_one_line_naming_the_extra(files, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.setitem(sys.modules, "hyperpyyaml", None)
    for folder, extra in (("wavlm", "hf"), ("ecapa", "speechbrain")):
        rc = main(["explain", "--task", "speaker", "--input", str(files / "s0_16000.wav"), "--model",
                   str(files / folder), "--out", str(tmp_path / "o"), "--quiet"])
        err = capsys.readouterr().err
        assert rc == 2 and f"pip install avxai[{extra}]" in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1, err

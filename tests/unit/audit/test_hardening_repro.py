"""Reproducibility: the same seed and threads give bitwise-equal masks, and an explanation records the threads,
device and library versions it was computed with (``metadata.runtime`` in explanation.json)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from toys.problems import HOP, N_FFT, SR, SpectrogramRegion, toy_waveform
from avxai.cli import main
from avxai.explanation import runtime_info
from avxai.methods import get_method
from avxai.modalities import Spectrogram
from avxai.scorers import ClassLogit


def _extremal(threads: int):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        method = get_method("extremal")
        config = method.config_class(areas=(0.1, 0.2), iterations=15, seed=3, progress=False)
        modality = Spectrogram(toy_waveform(batch=1), SR, n_fft=N_FFT, hop_length=HOP)
        explanation = method(SpectrogramRegion(), modality, ClassLogit(0), config)
        explanation.metadata["runtime"] = runtime_info()
        return explanation
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_same_seed_and_threads_give_bitwise_equal_masks(threads, tmp_path):
    first, second = _extremal(threads), _extremal(threads)
    assert torch.equal(first.masks, second.masks) and torch.equal(first.attribution, second.attribution)
    runtime = json.loads((first.save(tmp_path, figure=False) / "explanation.json").read_text())["metadata"]["runtime"]
    assert runtime["threads"] == threads and runtime["device"] == "cpu"
    assert {"torch", "numpy", "python", "avxai"} <= set(runtime["versions"])


def test_save_records_the_runtime_when_the_caller_did_not(tmp_path):
    explanation = _extremal(1)
    del explanation.metadata["runtime"]
    doc = json.loads((explanation.save(tmp_path, figure=False) / "explanation.json").read_text())
    assert doc["metadata"]["runtime"]["threads"] == torch.get_num_threads()


@pytest.mark.slow
def test_cli_threads_are_set_and_recorded(tmp_path):
    sf.write(str(tmp_path / "a.wav"), (0.1 * np.random.default_rng(0).standard_normal(16000)).astype("float32"), 16000)
    before = torch.get_num_threads()
    try:
        outs = []
        for run in ("one", "two"):
            assert main(["explain", "--task", "speaker", "--input", str(tmp_path / "a.wav"), "--out",
                         str(tmp_path / run), "--threads", "2", "--window", "64,20", "--quiet"]) == 0
            outs.append(tmp_path / run)
    finally:
        torch.set_num_threads(before)
    runtime = json.loads((outs[0] / "explanation.json").read_text())["metadata"]["runtime"]
    assert runtime["threads"] == 2
    first, second = (np.load(o / "arrays.npz")["attribution"] for o in outs)
    assert np.array_equal(first, second)

"""Shared pieces of the audit tests: a tiny speaker checkpoint, a small generated trial list, a toy model
whose evidence lies in a known time window, and result readers that drop timing."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from avxai.io.audio import save_audio
from avxai.models import SpeakerNet
from avxai.models.registry import ModelBlob, save_model

RATE = 16000
#: occlusion windows of 64 bins x 20 frames without overlap: few forward passes per trial
WINDOW_64 = {"window": (64, 20), "stride": (64, 20)}


def tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised SpeakerNet small enough for tests (no training needed), saved through the registry."""
    torch.manual_seed(seed)
    kwargs = dict(n_speakers=4, channels=16, embedding_dim=16, n_mels=20)
    return save_model(SpeakerNet(**kwargs), Path(folder) / "tiny_speaker.pt", architecture="speakernet", kwargs=kwargs)


def small_trial_list(folder: Path, per_condition: "int | dict[str, int]" = 2) -> Path:
    """Generated trials (single, A-B-A, noisy, padded) with short utterances."""
    from avxai.audit.generate import build_trial_list

    return build_trial_list(folder, per_condition, speaker_ids=(0, 1, 2), enroll_s=1.0, test_s=0.8,
                            aba_durations=(0.4, 0.4, 0.4), noisy_layout=(0.3, 0.4, 0.3), padded_s=(0.3, 0.3))


def read_results(folder: Path) -> dict[str, dict]:
    """``results.jsonl`` as id -> record, without the timing fields (the only ones that may differ)."""
    out = {}
    for line in (Path(folder) / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        record.pop("seconds")
        record.pop("cpu_seconds", None)  # failed trials have none
        if record.get("error"):
            record["error"].pop("traceback", None)
        out[record["id"]] = record
    return out


# ------------------------------------------------------------------------------------------------
# a toy "speaker model" that listens only to a known time window
# ------------------------------------------------------------------------------------------------
class WindowEmbedder(nn.Module):
    """Embedding = square root of the energy in ``bands`` equal frequency bands of the samples in
    ``[start_s, end_s)``, plus a fixed offset on the first band (so that silence does not embed like
    white noise); nothing outside that window can change it.

    Shape: ``(batch, 1, time) -> (batch, bands)``.
    """

    def __init__(self, start_s: float, end_s: float, sample_rate: int = RATE, bands: int = 16):
        super().__init__()
        self.a, self.b = int(start_s * sample_rate), int(end_s * sample_rate)
        self.bands = bands
        self.sample_rate = sample_rate
        self.gain = nn.Parameter(torch.ones(1))
        self.register_buffer("offset", torch.zeros(bands).index_fill_(0, torch.tensor([0]), 0.05))

    def forward(self, waveform: Tensor) -> Tensor:
        power = torch.fft.rfft(waveform[:, 0, self.a:self.b], dim=-1).abs().pow(2)  # (batch, freq)
        usable = power.shape[-1] // self.bands * self.bands
        energy = power[:, :usable].reshape(power.shape[0], self.bands, -1).sum(-1)
        return self.gain * (energy + 1e-6).sqrt() + self.offset


class WindowSpeakerModel(nn.Module):
    """What the audit's trial runner needs of a model (the contract of :mod:`avxai.models.contract`: an
    ``nn.Module`` with ``sample_rate``) and ``embedder()``."""

    def __init__(self, start_s: float, end_s: float, sample_rate: int = RATE):
        super().__init__()
        self.sample_rate = sample_rate
        self._embedder = WindowEmbedder(start_s, end_s, sample_rate)

    def embedder(self) -> nn.Module:
        return self._embedder


def voiced(seconds: float, speech: tuple[float, float], sample_rate: int = RATE, seed: int = 0) -> Tensor:
    """``(1, time)``: a steady harmonic complex (150 Hz, 12 harmonics, amplitude 0.3) inside ``speech``
    (seconds) and white noise 60 dB below it everywhere, so energy VAD marks exactly ``speech`` active."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * sample_rate)
    t = torch.arange(n) / sample_rate
    tone = sum(torch.sin(2 * math.pi * 150 * k * t + k) / k for k in range(1, 13))
    tone = 0.3 * tone / tone.abs().max()
    inside = ((t >= speech[0]) & (t < speech[1])).float()
    return (tone * inside + 3e-4 * torch.randn(n, generator=g)).reshape(1, -1).float()


def write_voiced(path: Path, seconds: float, speech: tuple[float, float], seed: int = 0) -> Path:
    save_audio(path, voiced(seconds, speech, seed=seed), RATE)
    return path


# ------------------------------------------------------------------------------------------------
# a model blob whose first build kills its worker process (a crash in native code, say)
# ------------------------------------------------------------------------------------------------
def dying_blob(blob: ModelBlob, marker: Path) -> "DyingModelBlob":
    """A copy of ``blob`` whose worker process exits the first time it builds the model anywhere
    (``marker`` records that it happened); later builds work."""
    return DyingModelBlob(path=blob.path, config=blob.config, state=blob.state, digest=blob.digest,
                          config_file=blob.config_file, marker=str(marker))


@dataclass(frozen=True)
class DyingModelBlob(ModelBlob):
    marker: str = ""

    def build(self):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return super().build()
        os.close(fd)
        os._exit(3)

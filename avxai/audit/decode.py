"""A trial's audio: the bytes the driver reads (:class:`TrialPayload`) and their decoding in the worker.

The driver reads each trial's two files and ships the bytes with the trial, so the workers and Ray nodes
need no shared file system; a file that cannot be read becomes the payload's error and the trial fails
with it. :func:`decode_audio` turns the bytes into a checked waveform at the model's rate.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from avxai.audit.config import AuditConfig
from avxai.audit.trials import Trial
from avxai.io.audio import resample, wav_truncation
from avxai.safety import read_regular

__all__ = ["TrialPayload", "prepare_payload", "decode_audio"]


@dataclass(frozen=True)
class TrialPayload:
    """A trial and the bytes of its two audio files (read by the driver), or the error reading them."""

    trial: Trial
    enroll: bytes | None = field(default=None, repr=False)
    test: bytes | None = field(default=None, repr=False)
    error: str | None = None


def prepare_payload(trial: Trial, max_bytes: int | None = None) -> TrialPayload:
    """Read the trial's audio bytes; a file that cannot be read becomes the payload's error.

    Only regular files of at most ``max_bytes`` are read (default :func:`avxai.safety.max_bytes_for`
    ``"audio"``): a FIFO, a device or a directory is refused without reading (nothing blocks, nothing
    unbounded is read), and a WAV cut shorter than its header says is refused too.
    """
    data = {}
    for name in ("enroll", "test"):
        p = Path(getattr(trial, f"{name}_path"))
        try:
            data[name] = read_regular(p, what=f"{name} audio {getattr(trial, name)} at", kind="audio",
                                      max_bytes=max_bytes)
        except ValueError as err:
            return TrialPayload(trial, error=str(err))
        except OSError as err:
            return TrialPayload(trial, error=f"{name} audio {getattr(trial, name)} ({p}) cannot be read "
                                             f"({err.strerror or err})")
        problem = wav_truncation(data[name][:1 << 16], len(data[name]))
        if problem:
            return TrialPayload(trial, error=f"{name} audio {getattr(trial, name)} ({p}) is truncated: {problem}; "
                                             "re-export or repair the file")
    return TrialPayload(trial, data["enroll"], data["test"])


def decode_audio(name: str, shown: str, data: bytes, rate: int, n_fft: int, config: AuditConfig) -> Tensor:
    """Audio bytes -> float32 at ``rate`` Hz; ``ValueError`` saying what is wrong and how to fix it.

    ``name`` (``"enroll"`` / ``"test"``) and ``shown`` (the path as written in the trial list) name the
    file in errors. Multi-channel audio is averaged with ``config.mono``, other rates are resampled with
    ``config.resample``; shorter than ``config.min_duration_s`` or one STFT frame (``n_fft``) fails.

    Shape: ``(1, 1, time)``.
    """
    try:
        samples, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError on unreadable data
        raise ValueError(f"cannot read {name} audio {shown}: {err}; is it a WAV/FLAC/OGG file?") from None
    wav = torch.from_numpy(np.ascontiguousarray(samples.T)).unsqueeze(0)
    if wav.shape[-1] == 0:
        raise ValueError(f"{name} audio {shown} holds no samples")
    if wav.shape[1] != 1:
        if not config.mono:
            raise ValueError(f"{name} audio {shown} has {wav.shape[1]} channels but the speaker model is mono; "
                             "pass --mono to average the channels")
        wav = wav.mean(dim=1, keepdim=True)
    if sr != rate:
        if not config.resample:
            raise ValueError(f"{name} audio {shown} is at {sr} Hz but the model expects {rate} Hz; resample the "
                             "files or pass --resample")
        wav = resample(wav, int(sr), rate)
    duration = wav.shape[-1] / rate
    need = max(config.min_duration_s, n_fft / rate)
    if duration < need:
        raise ValueError(f"{name} audio {shown} is too short: {duration:.3f} s, the audit needs at least {need:.3f} s "
                         "(min_duration_s / one STFT frame)")
    if not torch.isfinite(wav).all():
        raise ValueError(f"{name} audio {shown} contains NaN or infinite samples")
    return wav

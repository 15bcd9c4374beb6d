"""Audio files: read and write with soundfile; the sample rate always travels with the samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch import Tensor


def resample(waveform: Tensor, from_rate: int, to_rate: int) -> Tensor:
    """Resample ``(..., time)`` from ``from_rate`` to ``to_rate`` Hz (band-limited sinc, torchaudio)."""
    if from_rate == to_rate:
        return waveform
    return torchaudio.functional.resample(waveform, from_rate, to_rate)


_resample = resample  # load_audio's argument `resample` hides the function's name there


def load_audio(path: "str | Path", *, sample_rate: int | None = None, resample: bool = False,
               mono: bool = False) -> tuple[Tensor, int]:
    """Read an audio file as ``(1, channels, time)`` float32 in [-1, 1] and its sample rate (Hz).

    ``sample_rate``: the rate the caller needs. A file at another rate raises ``ValueError`` unless
    ``resample=True``, which resamples it (torchaudio's band-limited sinc). ``mono=True`` averages channels.
    """
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise ValueError(f"audio file {path} does not exist")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError on corrupt files
        raise ValueError(f"cannot read audio file {path}: {err}. Is it a WAV/FLAC/OGG file?") from err
    if data.shape[0] == 0:
        raise ValueError(f"audio file {path} holds no samples")
    wav = torch.from_numpy(np.ascontiguousarray(data.T)).unsqueeze(0)
    if mono:
        wav = wav.mean(dim=1, keepdim=True)
    if sample_rate is not None and rate != sample_rate:
        if not resample:
            raise ValueError(
                f"{path} is sampled at {rate} Hz but {sample_rate} Hz is needed; resample the file or pass "
                "resample=True (--resample on the command line)"
            )
        wav, rate = _resample(wav, rate, sample_rate), sample_rate
    return wav, int(rate)


def save_audio(path: "str | Path", waveform: Tensor, sample_rate: int) -> Path:
    """Write ``(channels, time)`` or ``(1, channels, time)`` float audio as a 32-bit float WAV."""
    import soundfile as sf

    wav = waveform.detach().cpu().float()
    if wav.dim() == 3:
        if wav.shape[0] != 1:
            raise ValueError(f"save_audio writes one signal; got a batch of {wav.shape[0]}")
        wav = wav[0]
    if wav.dim() == 1:
        wav = wav.unsqueeze(0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav.numpy().T, int(sample_rate), subtype="FLOAT")
    return path

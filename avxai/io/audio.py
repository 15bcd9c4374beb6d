"""Audio files: read and write with soundfile; the sample rate always travels with the samples."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import torch
import torchaudio
from torch import Tensor

from avxai.safety import open_regular


def resample(waveform: Tensor, from_rate: int, to_rate: int) -> Tensor:
    """Resample ``(..., time)`` from ``from_rate`` to ``to_rate`` Hz (band-limited sinc, torchaudio)."""
    if from_rate == to_rate:
        return waveform
    return torchaudio.functional.resample(waveform, from_rate, to_rate)


_resample = resample  # load_audio's argument `resample` hides the function's name there


def wav_truncation(head: bytes, size: int) -> str | None:
    """Why a RIFF/WAVE file is truncated, or ``None``: its ``data`` chunk announces more bytes than the file
    (``size`` bytes, ``head`` its first bytes) holds. libsndfile reads what is there without a word, so a file
    cut short would otherwise be explained as if it were whole. Other formats, and WAVs whose sizes were left
    open by a streaming writer (0 or 0xFFFFFFFF), give ``None``."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    offset, rate, align = 12, None, None
    while offset + 8 <= len(head):
        chunk, length = head[offset:offset + 4], struct.unpack("<I", head[offset + 4:offset + 8])[0]
        if chunk == b"fmt " and offset + 22 <= len(head):
            rate = struct.unpack("<I", head[offset + 12:offset + 16])[0]
            align = struct.unpack("<H", head[offset + 20:offset + 22])[0]
        if chunk == b"data":
            if length in (0, 0xFFFFFFFF):
                return None
            held = size - (offset + 8)
            if length <= held:
                return None
            if rate and align:
                return (f"its header announces {length / align / rate:.3f} s of audio but the file holds "
                        f"{max(held, 0) / align / rate:.3f} s")
            return f"its header announces {length} bytes of samples but the file holds {max(held, 0)}"
        offset += 8 + length + (length & 1)
    return None


def load_audio(path: "str | Path", *, sample_rate: int | None = None, resample: bool = False,
               mono: bool = False, max_bytes: int | None = None) -> tuple[Tensor, int]:
    """Read an audio file as ``(1, channels, time)`` float32 in [-1, 1] and its sample rate (Hz).

    ``sample_rate``: the rate the caller needs. A file at another rate raises ``ValueError`` unless
    ``resample=True``, which resamples it (torchaudio's band-limited sinc). ``mono=True`` averages channels.
    Only a regular file of at most ``max_bytes`` is read (default :func:`avxai.safety.max_bytes_for`
    ``"audio"``: 1 GiB, or ``AVXAI_MAX_AUDIO_MB``); a WAV cut shorter than its header says is an error.
    """
    import soundfile as sf

    path = Path(path)
    with open_regular(path, what="audio file", kind="audio", max_bytes=max_bytes) as f:
        size = os.fstat(f.fileno()).st_size
        problem = wav_truncation(f.read(1 << 16), size)
        if problem:
            raise ValueError(f"audio file {path} is truncated: {problem}; re-export or repair the file")
        f.seek(0)
        try:
            data, rate = sf.read(f, dtype="float32", always_2d=True)
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
    if path.is_symlink():
        raise ValueError(f"{path} is a symlink; avxai does not write through symlinks: remove it or write elsewhere")
    sf.write(str(path), wav.numpy().T, int(sample_rate), subtype="FLOAT")
    return path

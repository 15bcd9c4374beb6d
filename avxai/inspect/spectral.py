"""The STFT the inspection tools draw and optimise on: its default size, magnitudes in dB, phase by Griffin-Lim."""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio.functional as AF
from torch import Tensor

__all__ = ["default_stft", "magnitude_db", "griffin_lim", "istft_with_phase", "GRIFFIN_LIM"]

#: how audio is made from an optimised magnitude (stated in every result's metadata)
GRIFFIN_LIM = "Griffin-Lim (torchaudio.functional.griffinlim, momentum 0.99, random initial phase seeded)"


def default_stft(sample_rate: int, n_fft: int | None = None, hop_length: int | None = None) -> tuple[int, int]:
    """``(n_fft, hop_length)``: about 32 ms windows (512 at 16 kHz, 256 at 8 kHz) and a quarter hop, unless given."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1:
        raise ValueError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
    n = n_fft or 2 ** max(3, round(math.log2(0.032 * sample_rate)))
    hop = hop_length or max(1, n // 4)
    if not 1 <= hop <= n:
        raise ValueError(f"need 1 <= hop_length <= n_fft, got n_fft={n}, hop_length={hop}")
    return int(n), int(hop)


def magnitude_db(waveform: Tensor, n_fft: int, hop_length: int, floor_db: float = -80.0) -> np.ndarray:
    """``(time,)`` -> ``(freq, frames)`` magnitude in dB re the loudest cell, floored at ``floor_db``."""
    spec = torch.stft(waveform.detach().float().reshape(-1), n_fft, hop_length, window=torch.hann_window(n_fft),
                      center=True, return_complex=True).abs()
    db = 20 * torch.log10(spec.clamp_min(1e-10) / spec.max().clamp_min(1e-10))
    return db.clamp_min(floor_db).numpy()


def istft_with_phase(magnitude: Tensor, phase: Tensor, n_fft: int, hop_length: int, length: int) -> Tensor:
    """Magnitudes ``(n, freq, frames)`` with a fixed phase ``(n, freq, frames)`` -> waveforms ``(n, 1, length)``."""
    spec = torch.polar(magnitude, phase)
    wav = torch.istft(spec, n_fft, hop_length, window=torch.hann_window(n_fft, dtype=magnitude.dtype),
                      center=True, length=length)
    return wav.unsqueeze(1)


def griffin_lim(magnitude: Tensor, n_fft: int, hop_length: int, length: int, n_iter: int = 64,
                seed: int = 0) -> Tensor:
    """Waveforms from magnitudes by Griffin-Lim (torchaudio). Shape: ``(n, freq, frames)`` -> ``(n, 1, length)``."""
    with torch.random.fork_rng(devices=[]):  # griffinlim draws its initial phase from the global generator
        torch.manual_seed(seed)
        wav = AF.griffinlim(magnitude.detach().float(), window=torch.hann_window(n_fft), n_fft=n_fft,
                            hop_length=hop_length, win_length=n_fft, power=1.0, n_iter=n_iter, momentum=0.99,
                            length=length, rand_init=True)
    return wav.unsqueeze(1)

"""Toy models whose correct attribution is known, shared by the core tests."""

from __future__ import annotations

import torch
from torch import Tensor, nn

FREQ_BAND = slice(10, 20)   # bins
FRAMES = slice(30, 60)      # STFT frames


class RegionEnergy(nn.Module):
    """Score = mean magnitude inside a known (freq, time) region; nothing else matters.

    Takes a magnitude spectrogram ``(n, channels, freq, time)`` (``model_input="magnitude"``) or a
    waveform ``(n, channels, time)`` that it transforms with the same STFT.
    """

    def __init__(self, freq=FREQ_BAND, frames=FRAMES, n_fft=256, hop_length=64, sample_rate=None):
        super().__init__()
        self.freq, self.frames, self.n_fft, self.hop = freq, frames, n_fft, hop_length
        self.scale = nn.Parameter(torch.ones(1))
        if sample_rate is not None:
            self.sample_rate = sample_rate

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            n, c, t = x.shape
            spec = torch.stft(x.reshape(n * c, t), self.n_fft, self.hop, window=torch.hann_window(self.n_fft),
                              return_complex=True).abs().reshape(n, c, self.n_fft // 2 + 1, -1)
        else:
            spec = x
        region = spec[:, :, self.freq, self.frames]
        return (self.scale * region.mean(dim=(1, 2, 3))).unsqueeze(1)


class GridRegion(nn.Module):
    """Score = sum of a (batch, channels, *grid) tensor inside a known region (any number of axes)."""

    def __init__(self, region: tuple[slice, ...]):
        super().__init__()
        self.region = region
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        idx = (slice(None), slice(None)) + self.region
        return (self.weight * x[idx].sum(dim=tuple(range(1, x.dim())))).unsqueeze(1)


def tone_in_noise(seconds: float = 1.0, sample_rate: int = 16000, seed: int = 0, batch: int = 1) -> Tensor:
    """A (batch, 1, time) tone plus white noise, deterministic."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.3 * torch.sin(2 * torch.pi * 700 * t)
    return (tone + 0.05 * torch.randn(batch, 1, t.numel(), generator=g)).float()

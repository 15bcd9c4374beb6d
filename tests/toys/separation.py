"""Toy signals and a toy separator whose answers are known: a band splitter at ``CUTOFF_HZ`` and tone mixtures
with one source below and one above it (``SR`` Hz, spectrogram ``N_FFT`` / ``HOP`` samples)."""

from __future__ import annotations

import math

import torch
from torch import nn

SR = 8000
N_FFT, HOP = 256, 64
CUTOFF_HZ = 1000.0  # the toy separator's band split


class BandSplit(nn.Module):
    """Toy separator: channel 0 = the input below ``CUTOFF_HZ``, channel 1 = above (ideal FFT filters).

    With ``sort_by_energy`` the louder band comes first, so masking one band can swap the outputs.
    Shape: ``(n, 1, time) -> (n, 2, time)``.
    """

    def __init__(self, sort_by_energy: bool = False, sample_rate: int = SR):
        super().__init__()
        self.sort_by_energy = sort_by_energy
        self.sample_rate = sample_rate

    def forward(self, x):
        spec = torch.fft.rfft(x[:, 0], dim=-1)
        low = torch.fft.rfftfreq(x.shape[-1], 1.0 / self.sample_rate) < CUTOFF_HZ
        a = torch.fft.irfft(spec * low, n=x.shape[-1])
        b = torch.fft.irfft(spec * ~low, n=x.shape[-1])
        out = torch.stack([a, b], dim=1)
        if self.sort_by_energy:
            louder_b = (b.pow(2).sum(-1) > a.pow(2).sum(-1)).view(-1, 1, 1)
            out = torch.where(louder_b, out.flip(1), out)
        return out


def tones(freqs_amps, seconds=0.5, seed=0):
    """Sum of sines plus a little noise per row: ``[(f, a), ...]`` -> ``(1, time)``."""
    t = torch.arange(int(seconds * SR)) / SR
    g = torch.Generator().manual_seed(seed)
    sig = sum(a * torch.sin(2 * math.pi * f * t + float(torch.rand(1, generator=g)) * 6.28) for f, a in freqs_amps)
    return sig.view(1, -1).float()


def low_high_mixture(low_amp=0.5, high_amp=0.2, seed=0, noise=0.0):
    """A low-band source (300 + 600 Hz) and a high-band source (2000 + 2600 Hz), plus white noise of std
    ``noise`` that belongs to neither (it keeps SDRs finite and away from numerical precision).

    Shape: mixture ``(1, 1, t)``, sources ``(1, 2, t)``.
    """
    low = tones([(300, low_amp), (600, low_amp / 2)], seed=seed)
    high = tones([(2000, high_amp), (2600, high_amp / 2)], seed=seed + 1)
    floor = noise * torch.randn(low.shape, generator=torch.Generator().manual_seed(seed + 2))
    return (low + high + floor).view(1, 1, -1), torch.stack([low, high], dim=1)


# ---------------------------------------------------------------------------------------------


def orthogonal(n=8000, seed=0):
    g = torch.Generator().manual_seed(seed)
    s, noise = torch.randn(n, generator=g), torch.randn(n, generator=g)
    s, noise = s - s.mean(), noise - noise.mean()
    return s, noise - (noise @ s) / (s @ s) * s

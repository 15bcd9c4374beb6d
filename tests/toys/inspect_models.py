"""Toy models and signals whose learned answer is known, for ``avxai.inspect``.

:class:`ToneUnits` has one unit per tone frequency: its first layer is a bank of Hann-windowed cosines (FIR band
passes at ``FREQS``), the layer ``"energy"`` squares them per frame, and the output averages over frames. Unit 1
responds only to energy near 1 kHz, so its filter peaks at 1 kHz, its maximally activating segments are the
1 kHz tone bursts, and activation maximisation puts energy at 1 kHz.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

FREQS = (500.0, 1000.0, 2000.0, 4000.0)  # Hz, one unit each
UNIT_1K = 1


class ToneUnits(nn.Module):
    """Waveform ``(batch, 1, time)`` at 16 kHz -> per-tone energy ``(batch, 4)``; layer ``"energy"``
    ``(batch, 4, frames)``."""

    def __init__(self, sample_rate: int = 16000, taps: int = 256, hop: int = 64):
        super().__init__()
        self.sample_rate = sample_rate
        self.front = nn.Conv1d(1, 2 * len(FREQS), taps, stride=hop, bias=False)  # a cosine and a sine per tone
        t = torch.arange(taps) / sample_rate
        window = torch.hann_window(taps, periodic=False)
        with torch.no_grad():
            for i, f in enumerate(FREQS):
                self.front.weight[2 * i, 0] = window * torch.cos(2 * math.pi * f * t) / window.sum()
                self.front.weight[2 * i + 1, 0] = window * torch.sin(2 * math.pi * f * t) / window.sum()
        self.energy = nn.Identity()

    def forward(self, wav: Tensor) -> Tensor:
        x = self.front(wav).pow(2)
        e = self.energy(x[:, 0::2] + x[:, 1::2])  # (batch, 4, frames): energy per tone, phase-free
        return e.mean(dim=-1)


def tone(freq: float, seconds: float, sample_rate: int = 16000, amplitude: float = 0.3) -> Tensor:
    """A sine of ``freq`` Hz with 5 ms raised-cosine ramps, ``(samples,)``."""
    n = int(seconds * sample_rate)
    t = torch.arange(n) / sample_rate
    ramp = min(n // 2, int(0.005 * sample_rate))
    env = torch.ones(n)
    if ramp:
        r = 0.5 - 0.5 * torch.cos(torch.linspace(0, math.pi, ramp))
        env[:ramp], env[-ramp:] = r, r.flip(0)
    return amplitude * env * torch.sin(2 * math.pi * freq * t)


def bursts(spec: list[tuple[float, float, float]], seconds: float = 1.0, sample_rate: int = 16000,
           noise: float = 0.01, seed: int = 0) -> Tensor:
    """``(1, 1, time)``: tone bursts ``(freq_hz, start_s, stop_s)`` over faint white noise (seeded)."""
    g = torch.Generator().manual_seed(seed)
    wav = noise * torch.randn(int(seconds * sample_rate), generator=g)
    for freq, start, stop in spec:
        a = int(start * sample_rate)
        burst = tone(freq, stop - start, sample_rate)
        wav[a:a + burst.numel()] += burst
    return wav.view(1, 1, -1)


#: three recordings; the 1 kHz bursts are at (recording, start_s, stop_s)
RECORDINGS = [
    [(1000.0, 0.20, 0.40), (2000.0, 0.60, 0.80)],
    [(500.0, 0.10, 0.30), (1000.0, 0.65, 0.85)],
    [(4000.0, 0.30, 0.50), (2000.0, 0.70, 0.90)],
]
BURSTS_1K = [(0, 0.20, 0.40), (1, 0.65, 0.85)]


class LowerHalfRed(nn.Module):
    """Face video ``(n, frames, 3, S, S)`` -> layer ``"region"`` ``(n * frames, 2, S, S)``: channel 0 is red minus
    green in the lower half of each frame (the mouth region of a face crop) and 0 in the upper half, channel 1 is
    blue everywhere. Its unit 0 wants a red lower half and leaves the upper half alone. Called as an audio-visual
    model ``(waveform, video)`` (the sound is ignored) or with the video alone."""

    def __init__(self, crop_size: int = 16, sample_rate: int = 16000, fps: float = 25.0):
        super().__init__()
        self.crop_size, self.sample_rate, self.fps = crop_size, sample_rate, fps
        self.colour = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.colour.weight.zero_()
            self.colour.weight[0, 0], self.colour.weight[0, 1], self.colour.weight[1, 2] = 1.0, -1.0, 1.0
        mask = torch.zeros(1, 2, crop_size, crop_size)
        mask[:, 0, crop_size // 2:] = 1.0
        mask[:, 1] = 1.0
        self.register_buffer("mask", mask)
        self.region = nn.Identity()

    def forward(self, *inputs: Tensor) -> Tensor:
        video = inputs[-1]
        n, t = video.shape[:2]
        x = self.region(self.colour(video.reshape(n * t, *video.shape[2:])) * self.mask)
        return x.reshape(n, t, -1).mean(dim=(1, 2))


class BandSplit(nn.Module):
    """A separator whose answer is known: source 0 = everything below ``cutoff`` Hz, source 1 = everything above
    (brick-wall FFT masks). Shape: ``(batch, 1, time) -> (batch, 2, time)``."""

    def __init__(self, sample_rate: int = 16000, cutoff: float = 1500.0):
        super().__init__()
        self.sample_rate, self.cutoff, self.num_sources = sample_rate, cutoff, 2
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, wav: Tensor) -> Tensor:
        spec = torch.fft.rfft(wav, dim=-1)
        low = (torch.fft.rfftfreq(wav.shape[-1], 1.0 / self.sample_rate) < self.cutoff).to(spec.dtype)
        parts = [torch.fft.irfft(spec * m, n=wav.shape[-1], dim=-1) for m in (low, 1 - low)]
        return self.gain * torch.cat(parts, dim=1)

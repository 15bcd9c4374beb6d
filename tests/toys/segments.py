"""A speaker-like toy whose class-0 logit is the energy of a 700 Hz tone: in a long input of noise with the tone
in one known span, that span is the evidence (for the segment-wise tests)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

RATE = 16000
TONE_HZ = 700.0


class Magnitude(nn.Module):
    """STFT magnitude (a module, so the memory planner's hooks see its output). Shape: ``(n, 1, t) -> (n, 257, frames)``."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.stft(x[:, 0], 512, 128, window=torch.hann_window(512, device=x.device), return_complex=True).abs()


class ToneSpeaker(nn.Module):
    """Logits ``(n, 2)``: class 0 = mean magnitude of the bins around 700 Hz (x 10), class 1 = a constant 0.1.
    ``fail_above``: raise ``RuntimeError`` on an input whose peak exceeds it (a segment that fails).

    Shape: waveform ``(n, 1, time)`` at 16 kHz -> ``(n, 2)``.
    """

    def __init__(self, fail_above: float | None = None):
        super().__init__()
        self.sample_rate = RATE
        self.magnitude = Magnitude()
        self.scale = nn.Parameter(torch.ones(1))
        self.fail_above = fail_above
        self.band = slice(int(TONE_HZ / (RATE / 512)) - 1, int(TONE_HZ / (RATE / 512)) + 3)

    def forward(self, x: Tensor) -> Tensor:
        if self.fail_above is not None and float(x.detach().abs().max()) > self.fail_above:
            raise RuntimeError("the toy fails on a spike")
        tone = self.magnitude(x)[:, self.band].mean(dim=(1, 2)) * 10 * self.scale
        return torch.stack([tone, torch.full_like(tone, 0.1)], dim=1)


def tone_speaker() -> ToneSpeaker:
    return ToneSpeaker()


def noise_with_tone(seconds: float, span: tuple[float, float], seed: int = 0) -> Tensor:
    """White noise (0.02) with a 700 Hz tone (0.3) in ``span`` seconds. Shape: ``(1, seconds * 16000)``."""
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * RATE)
    t = torch.arange(n) / RATE
    wav = 0.02 * torch.randn(1, n, generator=g)
    inside = (t >= span[0]) & (t < span[1])
    return (wav + inside * 0.3 * torch.sin(2 * math.pi * TONE_HZ * t)).float()

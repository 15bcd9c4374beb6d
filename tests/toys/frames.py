"""A toy frame-level model (an energy VAD) and a signal whose active frames are known."""

from __future__ import annotations

import torch
from torch import Tensor, nn

RATE = 16000
CHUNK = 512                      # samples per output frame: 32 ms
BURSTS = ((0.5, 1.0, 700.0), (1.4, 1.8, 1500.0))   # (start_s, end_s, tone Hz): the active spans


class EnergyVAD(nn.Module):
    """Per-frame speech probability = sigmoid(slope * (log10 frame energy - log10 floor)); nothing else matters.

    One frame per ``CHUNK`` samples (frame ``i`` covers samples ``i * CHUNK`` to ``(i + 1) * CHUNK``), so the
    frames of a burst are known. ``state_hop=False`` hides ``frame_hop_s`` (the hop is then derived from the
    output length); ``logits=True`` returns the logit instead of the probability; ``columns=2`` returns
    ``(batch, frames, 2)`` (silence, speech) logits.

    Shape: waveform ``(batch, 1, time)`` -> ``(batch, frames)`` (or ``(batch, frames, 2)``).
    """

    def __init__(self, state_hop: bool = True, logits: bool = False, columns: int = 1, floor: float = 1e-3,
                 slope: float = 4.0):
        super().__init__()
        self.sample_rate = RATE
        if state_hop:
            self.frame_hop_s = CHUNK / RATE
        self.logits, self.columns = logits, columns
        self.floor, self.slope = floor, slope
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[-1] // CHUNK
        frames = x[..., :n * CHUNK].reshape(x.shape[0], -1, n, CHUNK).mean(dim=1)   # (batch, frames, CHUNK)
        logit = self.gain * self.slope * (torch.log10(frames.pow(2).mean(-1) + 1e-10) - torch.log10(
            torch.tensor(self.floor)))
        if self.columns == 2:
            return torch.stack([-logit / 2, logit / 2], dim=-1)
        return logit if self.logits else logit.sigmoid()


def bursts(seconds: float = 2.2, seed: int = 0) -> Tensor:
    """Quiet noise with two tone bursts (:data:`BURSTS`). Shape: ``(1, time)`` at :data:`RATE`."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * RATE)) / RATE
    wav = 0.003 * torch.randn(t.numel(), generator=g)
    for start, end, hz in BURSTS:
        on = (t >= start) & (t < end)
        wav = wav + on * 0.3 * torch.sin(2 * torch.pi * hz * t)
    return wav.view(1, -1).float()


def build_vad(**kwargs) -> EnergyVAD:
    """Factory for ``--model toys.frames:build_vad`` (keyword arguments as :class:`EnergyVAD`)."""
    return EnergyVAD(**kwargs)

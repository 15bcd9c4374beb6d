"""Models named by ``package.module:factory`` specs in the CLI tests (``--model toys.specs:NAME``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from toys.audit import WindowEmbedder
from toys.frames import EnergyVAD

RATE = 16000


class WindowSpeaker(nn.Module):
    """A speaker model whose embedding hears only ``[start_s, end_s)`` (see :class:`toys.audit.WindowEmbedder`).

    Shape: waveform ``(batch, 1, time)`` -> embedding ``(batch, 16)``.
    """

    def __init__(self, start_s: float = 0.2, end_s: float = 0.6):
        super().__init__()
        self.sample_rate = RATE
        self.embed = WindowEmbedder(start_s, end_s, RATE)

    def embedder(self) -> nn.Module:
        return self.embed

    def forward(self, waveform: Tensor) -> Tensor:
        return self.embed(waveform)


class Returns(nn.Module):
    """A model at 16 kHz returning whatever ``what`` gives for the input."""

    def __init__(self, what):
        super().__init__()
        self.sample_rate = RATE
        self.what = what
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, waveform: Tensor):
        return self.what(self.scale * waveform)


def window_speaker(start_s: float = 0.2, end_s: float = 0.6) -> WindowSpeaker:
    return WindowSpeaker(start_s, end_s)


def vad(**kwargs) -> EnergyVAD:
    return EnergyVAD(**kwargs)


def raises(**kwargs):
    raise RuntimeError("the factory could not build the model (CUDA error: no device)")


def text_output() -> Returns:
    return Returns(lambda x: "speech")


def nan_output() -> Returns:
    return Returns(lambda x: torch.full((x.shape[0], 4), float("nan")))


def dict_output() -> Returns:
    return Returns(lambda x: {"logits": x.mean(dim=(1, 2)).unsqueeze(1).repeat(1, 3),
                              "embeddings": x.std(dim=(1, 2)).unsqueeze(1).repeat(1, 3)})


def not_a_module() -> str:
    return "a string"

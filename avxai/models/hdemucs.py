"""torchaudio's Hybrid Demucs as a separator of avxai shapes (registry row ``"hdemucs"``).

The checkpoint holds HDemucs' own keys, e.g. torchaudio's MUSDB-HQ weights: use the defaults of
``torchaudio.models.hdemucs_high`` (``nfft=4096, depth=6``) with ``sample_rate=44100``. A small test model:
``sources=("a", "b"), audio_channels=1, channels=4, depth=3, nfft=256``.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Sequence

from torch import Tensor, nn
from torchaudio.models import HDemucs

from avxai.models.registry import Architecture, register

__all__ = ["HDemucsSeparator", "build_hdemucs", "ARCHITECTURE"]


class HDemucsSeparator(nn.Module):
    """torchaudio's HDemucs as a separator of avxai shapes.

    A mono input is repeated to the model's ``audio_channels``; each source's audio channels are averaged
    (``mono_output=True``) so that a reference scorer compares one signal per source. ``source_names``
    keeps HDemucs' order.

    Shape: ``(batch, 1 | audio_channels, time)`` -> ``(batch, sources, time)`` (or
    ``(batch, sources, audio_channels, time)`` with ``mono_output=False``).
    """

    def __init__(self, network: nn.Module, sample_rate: int, mono_output: bool = True):
        super().__init__()
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive int in Hz, got {sample_rate!r}")
        self.network = network
        self.sample_rate = sample_rate
        self.source_names = list(network.sources)
        self.num_sources = len(self.source_names)
        self.audio_channels = int(network.audio_channels)
        self.mono_output = mono_output

    def forward(self, mixture: Tensor) -> Tensor:
        if not isinstance(mixture, Tensor) or mixture.dim() != 3 or mixture.shape[1] not in (1, self.audio_channels):
            shape = tuple(mixture.shape) if isinstance(mixture, Tensor) else type(mixture).__name__
            raise ValueError(f"HDemucsSeparator takes (batch, 1 or {self.audio_channels}, time), got {shape}")
        if mixture.shape[1] != self.audio_channels:
            mixture = mixture.expand(-1, self.audio_channels, -1)
        out = self.network(mixture)  # (batch, sources, audio_channels, time)
        return out.mean(dim=2) if self.mono_output else out


def build_hdemucs(sample_rate: int = 44100, sources: Sequence[str] = ("drums", "bass", "other", "vocals"),
                  mono_output: bool = True, **hdemucs_kwargs: Any) -> HDemucsSeparator:
    """``HDemucs(list(sources), **hdemucs_kwargs)`` (random weights) behind a :class:`HDemucsSeparator`."""
    return HDemucsSeparator(HDemucs(list(sources), **hdemucs_kwargs), sample_rate, mono_output)


#: the registry row
ARCHITECTURE = register(Architecture(
    "hdemucs", build_hdemucs, "torchaudio's Hybrid Demucs (sources, its keyword arguments, sample_rate default 44100)",
    weights=attrgetter("network"),
))

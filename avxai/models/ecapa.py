"""SpeechBrain's ECAPA-TDNN speaker embedder behind its own front end (registry row ``"ecapa-tdnn"``).

Needs the optional dependency: ``pip install avxai[speechbrain]``. The checkpoint is the embedding model's
state dict, e.g. ``embedding_model.ckpt`` of a SpeechBrain ``spkrec-ecapa-voxceleb`` folder you already have
(16 kHz, ``n_mels=80``, ``lin_neurons=192``: the defaults). Nothing is downloaded.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from torch import Tensor, nn

from avxai.models.registry import Architecture, register

__all__ = ["EcapaEmbedder", "build_ecapa_tdnn", "ARCHITECTURE"]


class EcapaEmbedder(nn.Module):
    """SpeechBrain's ECAPA-TDNN behind its own front end: waveform -> log-mel Fbank -> mean norm -> embedding.

    The front end is the one of SpeechBrain's ``spkrec-ecapa-voxceleb`` recipe: ``Fbank(n_mels)`` (25 ms
    windows, 10 ms hop) and sentence-level mean normalisation over time (no variance normalisation).

    Shape: waveform ``(batch, 1, time)`` -> embedding ``(batch, lin_neurons)``.
    """

    def __init__(self, embedding_model: nn.Module, fbank: nn.Module, sample_rate: int):
        super().__init__()
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive int in Hz, got {sample_rate!r}")
        self.embedding_model = embedding_model
        self.fbank = fbank
        self.sample_rate = sample_rate

    def embedder(self) -> "EcapaEmbedder":
        """Itself: it already returns embeddings (the interface of :meth:`avxai.models.SpeakerNet.embedder`)."""
        return self

    def forward(self, waveform: Tensor) -> Tensor:
        if not isinstance(waveform, Tensor) or waveform.dim() != 3 or waveform.shape[1] != 1:
            shape = tuple(waveform.shape) if isinstance(waveform, Tensor) else type(waveform).__name__
            raise ValueError(f"EcapaEmbedder takes a mono waveform (batch, 1, time), got {shape}")
        feats = self.fbank(waveform[:, 0])  # (batch, frames, n_mels)
        feats = feats - feats.mean(dim=1, keepdim=True)
        return self.embedding_model(feats).reshape(waveform.shape[0], -1)


def build_ecapa_tdnn(sample_rate: int = 16000, n_mels: int = 80, **ecapa_kwargs: Any) -> EcapaEmbedder:
    """``ECAPA_TDNN(input_size=n_mels, **ecapa_kwargs)`` and its ``Fbank(n_mels)`` (random weights).

    Shape: waveform ``(batch, 1, time)`` at ``sample_rate`` -> embedding ``(batch, lin_neurons)``.
    """
    # the optional dependency is imported lazily: avxai works without it (the registry names the extra)
    import speechbrain.lobes.features as features  # noqa: PLC0415
    import speechbrain.lobes.models.ECAPA_TDNN as ecapa  # noqa: PLC0415

    model = ecapa.ECAPA_TDNN(input_size=n_mels, **ecapa_kwargs)
    fbank = features.Fbank(n_mels=n_mels, sample_rate=sample_rate)
    return EcapaEmbedder(model, fbank, sample_rate)


#: the registry row
ARCHITECTURE = register(Architecture(
    "ecapa-tdnn", build_ecapa_tdnn, "SpeechBrain's ECAPA-TDNN speaker embedder (e.g. embedding_model.ckpt of "
    "spkrec-ecapa-voxceleb; sample_rate, n_mels and ECAPA_TDNN's arguments)", extra="speechbrain",
    weights=attrgetter("embedding_model"),
))

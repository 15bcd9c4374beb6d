"""Reference speaker model: log-mel front end, dilated 1-D convolutions (TDNN), statistics pooling.

``SpeakerNet`` identifies the speaker of a waveform (closed set, ``n_speakers`` classes) and
exposes the pooled embedding for verification. Its receptive field is short (15 frames = 150 ms at a
10 ms hop) and the utterance-level decision is a (weighted) mean and standard deviation over frames,
so the evidence for a speaker is local in time: frames of speaker A raise A's logit wherever they are.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torchaudio
from torch import Tensor, nn

from avxai.models.registry import Architecture, register

__all__ = ["SpeakerNet", "SpeakerEmbedder", "check_waveform", "ARCHITECTURE"]


def check_waveform(waveform: Any, min_samples: int, name: str = "waveform") -> Tensor:
    """Validate a mono batch ``(batch, 1, time)``; raise ``TypeError``/``ValueError`` saying how to fix it."""
    if not isinstance(waveform, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, 1, time), got {type(waveform).__name__}")
    if not waveform.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {waveform.dtype}; convert with .float()")
    if waveform.dim() != 3:
        hint = ("add batch and channel axes with waveform.view(1, 1, -1)" if waveform.dim() == 1 else
                "add a channel axis with waveform.unsqueeze(1)" if waveform.dim() == 2 else
                "reshape it to (batch, 1, time)")
        raise ValueError(f"{name} must be 3-D (batch, 1, time), got shape {tuple(waveform.shape)}; {hint}")
    if waveform.shape[1] != 1:
        raise ValueError(
            f"{name} has {waveform.shape[1]} channels but the speaker model is mono; average the channels "
            "with waveform.mean(dim=1, keepdim=True) or pick one with waveform[:, :1]"
        )
    if waveform.shape[-1] < min_samples:
        raise ValueError(f"{name} has {waveform.shape[-1]} samples, fewer than n_fft={min_samples}; "
                         "pass a longer waveform (or pad it)")
    if not torch.isfinite(waveform).all():
        raise ValueError(f"{name} contains NaN or infinite values; clean the audio before the model sees it")
    return waveform


class _TDNNBlock(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int):
        super().__init__(
            nn.Conv1d(c_in, c_out, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2),
            nn.BatchNorm1d(c_out),
            nn.ReLU(),
        )


class AttentiveStatsPool(nn.Module):
    """Attention-weighted mean and standard deviation over frames (Okabe et al. 2018).

    Shape: ``(batch, channels, frames) -> (batch, 2 * channels)``.
    """

    def __init__(self, channels: int, hidden: int = 64):
        super().__init__()
        self.attention = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.Tanh(), nn.Conv1d(hidden, channels, 1))

    def forward(self, h: Tensor) -> Tensor:
        w = torch.softmax(self.attention(h), dim=-1)
        mean = (w * h).sum(dim=-1)
        var = (w * h * h).sum(dim=-1) - mean * mean
        return torch.cat([mean, var.clamp(min=1e-5).sqrt()], dim=1)


class StatsPool(nn.Module):
    """Plain mean and standard deviation over frames. Shape: ``(batch, C, frames) -> (batch, 2C)``."""

    def forward(self, h: Tensor) -> Tensor:
        mean = h.mean(dim=-1)
        var = (h * h).mean(dim=-1) - mean * mean
        return torch.cat([mean, var.clamp(min=1e-5).sqrt()], dim=1)


class SpeakerNet(nn.Module):
    """Closed-set speaker identification from a mono waveform.

    log-mel (``log(mel + log_floor)``, minus its mean over frames) -> 4 dilated TDNN blocks ->
    1x1 expansion to ``2 * channels`` -> statistics pooling (attentive or plain mean+std) ->
    linear + BatchNorm embedding -> linear classifier.

    Parameters
    ----------
    n_speakers : int
        Number of classes.
    sample_rate : int
        Hz; inputs must already be at this rate (the model does not resample).
    n_mels, n_fft, hop_length : int
        Front end (``hop_length=160`` is 10 ms at 16 kHz).
    channels : int
        Width of the TDNN blocks.
    embedding_dim : int
        Size of the speaker embedding returned by :meth:`embed`.
    pooling : {"attentive", "stats"}
    log_floor : float
        Added to mel power before the log; sets the level that silence maps to.

    Shape: ``(batch, 1, time) -> (batch, n_speakers)`` logits.

    Example
    -------
    >>> net = SpeakerNet(n_speakers=16)
    >>> net(torch.randn(2, 1, 16000)).shape
    torch.Size([2, 16])
    """

    def __init__(self, n_speakers: int, sample_rate: int = 16000, n_mels: int = 40, n_fft: int = 512,
                 hop_length: int = 160, channels: int = 128, embedding_dim: int = 128,
                 pooling: str = "attentive", log_floor: float = 1e-4):
        super().__init__()
        for name, v in (("n_speakers", n_speakers), ("sample_rate", sample_rate), ("n_mels", n_mels),
                        ("n_fft", n_fft), ("hop_length", hop_length), ("channels", channels),
                        ("embedding_dim", embedding_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if n_speakers < 2:
            raise ValueError(f"n_speakers must be >= 2 for identification, got {n_speakers}")
        if pooling not in ("attentive", "stats"):
            raise ValueError(f"pooling must be 'attentive' or 'stats', got {pooling!r}")
        if not (isinstance(log_floor, (int, float)) and math.isfinite(log_floor) and log_floor > 0):
            raise ValueError(f"log_floor must be a positive number, got {log_floor!r}")
        if n_mels > n_fft // 2 + 1:
            raise ValueError(f"n_mels={n_mels} exceeds the {n_fft // 2 + 1} STFT bins of n_fft={n_fft}")
        self.config: dict[str, Any] = dict(
            n_speakers=n_speakers, sample_rate=sample_rate, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length,
            channels=channels, embedding_dim=embedding_dim, pooling=pooling, log_floor=float(log_floor),
        )
        self.sample_rate = sample_rate
        # private: the front end's STFT is not stated under the model contract (avxai.models.contract.stft_of), so
        # explanations keep the task's own spectrogram (512/128 at 16 kHz), not the model's 512/160
        self._n_fft = n_fft
        self.n_speakers = n_speakers
        self.embedding_dim = embedding_dim
        self.log_floor = float(log_floor)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, f_min=20.0,
            f_max=sample_rate / 2, power=2.0,
        )
        c = channels
        self.tdnn = nn.Sequential(
            _TDNNBlock(n_mels, c, 5, 1),
            _TDNNBlock(c, c, 3, 2),
            _TDNNBlock(c, c, 3, 3),
            _TDNNBlock(c, c, 1, 1),
            _TDNNBlock(c, 2 * c, 1, 1),
        )
        self.pool = AttentiveStatsPool(2 * c) if pooling == "attentive" else StatsPool()
        self.embedding = nn.Sequential(nn.Linear(4 * c, embedding_dim), nn.BatchNorm1d(embedding_dim))
        self.classifier = nn.Linear(embedding_dim, n_speakers)

    # -- stages -----------------------------------------------------------------------------
    def features(self, waveform: Tensor) -> Tensor:
        """Mean-normalised log-mel features. Shape: ``(batch, 1, time) -> (batch, n_mels, frames)``."""
        x = check_waveform(waveform, self._n_fft)
        logmel = torch.log(self.mel(x[:, 0]) + self.log_floor)
        return logmel - logmel.mean(dim=-1, keepdim=True)

    def frame_activations(self, waveform: Tensor) -> Tensor:
        """TDNN output before pooling. Shape: ``(batch, 1, time) -> (batch, 2 * channels, frames)``."""
        return self.tdnn(self.features(waveform))

    def embed(self, waveform: Tensor) -> Tensor:
        """Speaker embedding. Shape: ``(batch, 1, time) -> (batch, embedding_dim)``."""
        return self.embedding(self.pool(self.frame_activations(waveform)))

    def forward(self, waveform: Tensor) -> Tensor:
        """Speaker logits. Shape: ``(batch, 1, time) -> (batch, n_speakers)``."""
        return self.classifier(self.embed(waveform))

    def embedder(self) -> "SpeakerEmbedder":
        """An ``nn.Module`` sharing this model's weights whose ``forward`` is :meth:`embed`."""
        return SpeakerEmbedder(self)


class SpeakerEmbedder(nn.Module):
    """Wraps a :class:`SpeakerNet` so that calling it returns embeddings (for verification scorers).

    Shape: ``(batch, 1, time) -> (batch, embedding_dim)``.
    """

    def __init__(self, net: SpeakerNet):
        super().__init__()
        self.net = net
        self.sample_rate = net.sample_rate

    def forward(self, waveform: Tensor) -> Tensor:
        return self.net.embed(waveform)


#: the registry row: ``load_model("speakernet")`` is the bundled model
ARCHITECTURE = register(Architecture(
    "speakernet", SpeakerNet, "avxai's reference speaker model (closed-set identification; embedder())",
    bundled="speaker/speaker_net.pt", recipe="recipes/speaker/train.py",
))

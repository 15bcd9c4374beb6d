"""Toy inputs and toy models for the conformance tables over problem kinds (spectrogram, face video, audio-visual).

Every toy model scores a *known region* of its input and nothing else: a fixed 0/1 gate (its "attention")
zeros every cell outside the region, a cell-wise feature layer follows, and the score is a weighted sum of
those features. So the correct attribution is known (only region cells matter), and the feature layers have
the layouts Grad-CAM (``(batch, channels, *grid axes)``) and PCA-RGB (``(batch, channels, freq, frames)`` for
audio, per-frame maps ``(batch * frames, channels, h, w)`` for video) read.

Sizes are tiny on purpose: 0.24 s at 8 kHz (STFT 64 / 32: a 33 x 61 grid) and 6 frames of 16 x 16 crops at
25 fps (the same 0.24 s), so every method runs on every problem in a few seconds.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

SR, FPS = 8000, 25.0
FRAMES, CROP = 6, 16                              # video frames, crop side (pixels)
SAMPLES = int(FRAMES / FPS * SR)                  # 1920 samples: the clip's duration in audio
N_FFT, HOP = 64, 32                               # STFT: 33 bins of 125 Hz, 61 frames
TONE_HZ = 1500.0                                  # bin 12, inside the spectrogram region
# The regions are off-centre on every axis, so that a map flipped or transposed along any axis misses them.
SPEC_REGION = (slice(9, 15), slice(36, 56))       # bins 9-14 (1125-1750 Hz) x STFT frames 36-55
VIDEO_REGION = (slice(3, 6), slice(9, 15), slice(1, 8))  # frames 3-5 x a "mouth" box low and left in the crop




# -- inputs --------------------------------------------------------------------------------------------------
def toy_waveform(batch: int = 2, seed: int = 1) -> Tensor:
    """A 1500 Hz tone in white noise, ``(batch, 1, SAMPLES)``, deterministic (each input its own noise)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(SAMPLES) / SR
    return (0.3 * torch.sin(2 * math.pi * TONE_HZ * t) + 0.05 * torch.randn(batch, 1, SAMPLES, generator=g)).float()


def toy_crops(batch: int = 2, seed: int = 0) -> Tensor:
    """Random face crops in [0.1, 0.9], ``(batch, FRAMES, 3, CROP, CROP)``, deterministic."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, FRAMES, 3, CROP, CROP, generator=g) * 0.8 + 0.1


def region_mask(shape: tuple[int, ...], region: tuple[slice, ...]) -> Tensor:
    """A 0/1 float tensor of ``shape`` with ones on ``region``."""
    mask = torch.zeros(shape)
    mask[region] = 1.0
    return mask


def spec_grid_shape() -> tuple[int, int]:
    """The (freq, frames) grid of a linear ``Spectrogram`` of :func:`toy_waveform` with ``N_FFT`` / ``HOP``."""
    return N_FFT // 2 + 1, SAMPLES // HOP + 1


# -- building blocks of the toy models -----------------------------------------------------------------------
class PointwiseFeatures(nn.Module):
    """Four cell-wise features of a non-negative map: ``x, x^2, tanh(2x), x sigmoid(x)``; each 0 at 0 and
    increasing for ``x >= 0``, smooth everywhere (finite gradients at 0).

    Shape: ``(n, 1, *axes)`` -> ``(n, 4, *axes)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, x * x, torch.tanh(2 * x), x * torch.sigmoid(x)], dim=1)


class ChannelsFirst(nn.Module):
    """``(n, frames, C, h, w)`` -> ``(n, C, frames, h, w)``: a video feature map in Grad-CAM's layout."""

    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


def _logits(score: Tensor) -> Tensor:
    """Logits ``(n, 2)``: class 0 = the score, class 1 = 0."""
    return torch.stack([score, torch.zeros_like(score)], dim=1)


class SpectrogramRegion(nn.Module):
    """A waveform model that listens to one T-F region: logit 0 = weighted mean of the features of the STFT
    magnitude (``N_FFT`` / ``HOP``, Hann, centred: the cells of a ``Spectrogram`` grid) inside ``SPEC_REGION``.

    Layers: ``features`` ``(n, 4, freq, frames)`` (Grad-CAM, and PCA-RGB's ``"audio"`` layer).
    Shape: waveform ``(n, 1, time)`` -> logits ``(n, 2)``.
    """

    sample_rate = SR
    pca_layers = {"audio": "features"}

    def __init__(self):
        super().__init__()
        self.register_buffer("gate", region_mask(spec_grid_shape(), SPEC_REGION))
        self.features = PointwiseFeatures()
        self.weight = nn.Parameter(torch.tensor([1.0, 0.5, 1.0, 0.5]))

    def score(self, waveform: Tensor) -> Tensor:
        spec = torch.stft(waveform[:, 0], N_FFT, HOP, window=torch.hann_window(N_FFT, dtype=waveform.dtype),
                          center=True, return_complex=True).abs()
        feats = self.features((spec * self.gate).unsqueeze(1))
        return (feats * self.weight.view(1, 4, 1, 1)).sum(dim=(1, 2, 3)) / self.gate.sum()

    def forward(self, waveform: Tensor) -> Tensor:
        return _logits(self.score(waveform))


class FaceRegion(nn.Module):
    """A face-video model that looks at one mouth region: logit 0 = weighted mean of the features of the grey
    level inside ``VIDEO_REGION`` (frames x crop pixels).

    Layers: ``frame_features`` ``(n * frames, 4, S, S)`` (PCA-RGB's ``"video"`` layer), ``clip_features``
    ``(n, 4, frames, S, S)`` (Grad-CAM). Shape: crops ``(n, frames, 3, S, S)`` -> logits ``(n, 2)``.
    """

    fps = FPS
    pca_layers = {"video": "frame_features"}

    def __init__(self):
        super().__init__()
        self.register_buffer("gate", region_mask((FRAMES, CROP, CROP), VIDEO_REGION))
        self.frame_features = PointwiseFeatures()
        self.clip_features = ChannelsFirst()
        self.weight = nn.Parameter(torch.tensor([1.0, 0.5, 1.0, 0.5]))

    def score(self, video: Tensor) -> Tensor:
        n, t, _, h, w = video.shape
        grey = video.mean(dim=2, keepdim=True) * self.gate.unsqueeze(1)  # (n, frames, 1, S, S)
        feats = self.frame_features(grey.reshape(n * t, 1, h, w)).reshape(n, t, 4, h, w)
        feats = self.clip_features(feats)  # (n, 4, frames, S, S)
        return (feats * self.weight.view(1, 4, 1, 1, 1)).sum(dim=(1, 2, 3, 4)) / self.gate.sum()

    def forward(self, video: Tensor) -> Tensor:
        return _logits(self.score(video))


class AVRegion(nn.Module):
    """An audio-visual model whose logit 0 is the sum of :class:`SpectrogramRegion`'s and :class:`FaceRegion`'s
    scores: it needs the T-F region AND the mouth region. Takes ``model(waveform, video)`` or
    ``model((waveform, video))``.

    Shape: waveform ``(n, 1, time)``, video ``(n, frames, 3, S, S)`` -> logits ``(n, 2)``.
    """

    sample_rate = SR
    fps = FPS
    pca_layers = {"audio": "audio.features", "video": "video.frame_features"}

    def __init__(self):
        super().__init__()
        self.audio = SpectrogramRegion()
        self.video = FaceRegion()

    def forward(self, waveform, video: Tensor | None = None) -> Tensor:
        if video is None:
            waveform, video = waveform
        return _logits(self.audio.score(waveform) + self.video.score(video))

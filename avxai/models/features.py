"""Torch front ends: a waveform becomes the features a model on features takes, differentiably.

A model trained on mel spectrograms, log-mels, MFCCs or Kaldi fbanks becomes a waveform model (the model avxai
explains) with ``avxai.wrap(model, sample_rate=16000, features=LogMel(16000, n_mels=40, ...))``. Each front end
takes the model's own parameters (``n_fft``, ``hop_length``, ``win_length``, ``n_mels``, ``f_min``, ``f_max``,
the log offset, per-utterance normalisation) and is written with torch operations only, so a gradient reaches
the waveform.

Every front end mixes the channels to mono (their mean) and returns ``(batch, n_mels, frames)`` (``layout="bft"``,
torchaudio's order), ``(batch, frames, n_mels)`` (``"btf"``, Kaldi/SpeechBrain's order) or
``(batch, 1, n_mels, frames)`` (``"bcft"``, an image-like model's order).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
import torchaudio
from torch import Tensor, nn

from avxai.checks import check_sample_rate

__all__ = ["FrontEnd", "MelSpectrogram", "LogMel", "MFCC", "Fbank", "LAYOUTS", "NORMALISATIONS", "FRONT_ENDS",
           "build_front_end"]

#: feature layouts a front end can return (b: batch, f: feature bins, t: frames, c: one channel)
LAYOUTS = ("bft", "btf", "bcft")
#: per-utterance normalisation over the frames: none, mean (CMN), mean and variance (CMVN)
NORMALISATIONS = (None, "mean", "meanvar")


class FrontEnd(nn.Module):
    """The shared part of the front ends: mono mix, per-utterance normalisation, layout.

    Subclasses implement :meth:`features`: ``(batch, time)`` -> ``(batch, bins, frames)``.

    Shape: waveform ``(batch, channels, time)`` -> features in ``layout`` (see the module docstring).
    """

    def __init__(self, sample_rate: int, *, hop_length: int, layout: str = "bft", normalize: str | None = None,
                 norm_eps: float = 1e-5):
        super().__init__()
        self.sample_rate = check_sample_rate(sample_rate, "sample_rate")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        if normalize not in NORMALISATIONS:
            raise ValueError(f"normalize must be None, 'mean' or 'meanvar', got {normalize!r}")
        self.hop_length = int(hop_length)
        self.layout = layout
        self.normalize = normalize
        self.norm_eps = float(norm_eps)

    @property
    def frame_hop_s(self) -> float:
        """Seconds between two feature frames."""
        return self.hop_length / self.sample_rate

    def features(self, waveform: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, waveform: Tensor) -> Tensor:
        if not isinstance(waveform, Tensor) or waveform.dim() != 3:
            shape = tuple(waveform.shape) if isinstance(waveform, Tensor) else type(waveform).__name__
            raise ValueError(f"{type(self).__name__} takes a waveform (batch, channels, time), got {shape}")
        feats = self.features(waveform.mean(dim=1))  # (batch, bins, frames)
        if self.normalize is not None:
            feats = feats - feats.mean(dim=-1, keepdim=True)
            if self.normalize == "meanvar":
                feats = feats / (feats.std(dim=-1, keepdim=True) + self.norm_eps)
        if self.layout == "btf":
            return feats.transpose(1, 2)
        return feats.unsqueeze(1) if self.layout == "bcft" else feats

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, layout={self.layout!r}, normalize={self.normalize!r}"


class MelSpectrogram(FrontEnd):
    """torchaudio's mel spectrogram (power ``power``; HTK mel scale, no filter normalisation by default).

    Shape: waveform ``(batch, channels, time)`` -> ``(batch, n_mels, frames)`` in ``layout``;
    ``frames = 1 + time // hop_length`` with ``center=True``.
    """

    def __init__(self, sample_rate: int, *, n_fft: int = 400, hop_length: int | None = None,
                 win_length: int | None = None, n_mels: int = 80, f_min: float = 0.0, f_max: float | None = None,
                 power: float = 2.0, center: bool = True, pad_mode: str = "reflect", mel_scale: str = "htk",
                 norm: str | None = None, window: str = "hann", layout: str = "bft", normalize: str | None = None):
        hop_length = hop_length or (win_length or n_fft) // 2
        super().__init__(sample_rate, hop_length=hop_length, layout=layout, normalize=normalize)
        windows = {"hann": torch.hann_window, "hamming": torch.hamming_window}
        if window not in ("hann", "hamming"):
            raise ValueError(f"window must be 'hann' or 'hamming', got {window!r}")
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=n_fft, hop_length=hop_length, win_length=win_length, n_mels=n_mels,
            f_min=f_min, f_max=f_max, power=power, center=center, pad_mode=pad_mode, mel_scale=mel_scale, norm=norm,
            window_fn=windows[window])
        self.n_fft, self.n_mels = int(n_fft), int(n_mels)

    def features(self, waveform: Tensor) -> Tensor:
        return self.mel(waveform)


class LogMel(MelSpectrogram):
    """``log(mel + log_offset)`` (``base`` e, 10, or ``"db"``: ``10 * log10``) of :class:`MelSpectrogram`.

    Shape: waveform ``(batch, channels, time)`` -> ``(batch, n_mels, frames)`` in ``layout``.
    """

    def __init__(self, sample_rate: int, *, log_offset: float = 1e-6, base: str = "e", **mel_kwargs: Any):
        super().__init__(sample_rate, **mel_kwargs)
        if base not in ("e", "10", "db"):
            raise ValueError(f"base must be 'e', '10' or 'db', got {base!r}")
        self.log_offset, self.base = float(log_offset), base

    def features(self, waveform: Tensor) -> Tensor:
        mel = self.mel(waveform) + self.log_offset
        if self.base == "e":
            return torch.log(mel)
        return torch.log10(mel) * (10.0 if self.base == "db" else 1.0)


class MFCC(FrontEnd):
    """torchaudio's MFCC: DCT-II (ortho) of the log-mel (dB, ``log_mels=False``) or ``log(mel + 1e-6)``.

    Shape: waveform ``(batch, channels, time)`` -> ``(batch, n_mfcc, frames)`` in ``layout``.
    """

    def __init__(self, sample_rate: int, *, n_mfcc: int = 40, n_fft: int = 400, hop_length: int | None = None,
                 win_length: int | None = None, n_mels: int = 80, f_min: float = 0.0, f_max: float | None = None,
                 log_mels: bool = False, center: bool = True, mel_scale: str = "htk", norm: str | None = None,
                 layout: str = "bft", normalize: str | None = None):
        hop_length = hop_length or (win_length or n_fft) // 2
        super().__init__(sample_rate, hop_length=hop_length, layout=layout, normalize=normalize)
        self.mfcc = torchaudio.transforms.MFCC(
            sample_rate=self.sample_rate, n_mfcc=n_mfcc, log_mels=log_mels,
            melkwargs=dict(n_fft=n_fft, hop_length=hop_length, win_length=win_length, n_mels=n_mels, f_min=f_min,
                           f_max=f_max, center=center, mel_scale=mel_scale, norm=norm))
        self.n_fft, self.n_mfcc = int(n_fft), int(n_mfcc)

    def features(self, waveform: Tensor) -> Tensor:
        return self.mfcc(waveform)


class Fbank(FrontEnd):
    """Kaldi-style log mel filter banks (``torchaudio.compliance.kaldi.fbank``, differentiable), per utterance.

    Windows of ``frame_length_ms`` every ``frame_shift_ms`` (25 / 10 ms, Povey window, pre-emphasis 0.97, DC
    removal, no dither: deterministic); ``scale`` multiplies the waveform first (``32768``: the int16 range
    that Kaldi-trained models such as WavLM x-vectors and many SpeechBrain recipes expect).

    Shape: waveform ``(batch, channels, time)`` -> ``(batch, n_mels, frames)`` in ``layout`` (Kaldi's own order
    is ``layout="btf"``); ``frames = 1 + (time - frame_length) // frame_shift``.
    """

    def __init__(self, sample_rate: int, *, n_mels: int = 80, frame_length_ms: float = 25.0,
                 frame_shift_ms: float = 10.0, f_min: float = 20.0, f_max: float = 0.0, scale: float = 1.0,
                 layout: str = "btf", normalize: str | None = None, **kaldi_kwargs: Any):
        hop = round(sample_rate * frame_shift_ms / 1000)
        super().__init__(sample_rate, hop_length=hop, layout=layout, normalize=normalize)
        self.kaldi = dict(num_mel_bins=int(n_mels), frame_length=float(frame_length_ms),
                          frame_shift=float(frame_shift_ms), low_freq=float(f_min), high_freq=float(f_max),
                          dither=0.0, sample_frequency=float(self.sample_rate), **kaldi_kwargs)
        self.win_length = round(sample_rate * frame_length_ms / 1000)
        self.n_mels, self.scale = int(n_mels), float(scale)

    def features(self, waveform: Tensor) -> Tensor:
        if waveform.shape[-1] < self.win_length:
            raise ValueError(f"Fbank needs at least one {self.win_length}-sample window, got {waveform.shape[-1]} "
                             "samples; pass a longer waveform")
        rows = [torchaudio.compliance.kaldi.fbank(w.unsqueeze(0) * self.scale, **self.kaldi) for w in waveform]
        return torch.stack(rows).transpose(1, 2)  # (batch, frames, mels) -> (batch, mels, frames)


#: front ends by name, for a model given on the command line (``--model-arg 'features={kind: logmel, n_mels: 40}'``)
FRONT_ENDS: dict[str, type[FrontEnd]] = {"mel": MelSpectrogram, "logmel": LogMel, "mfcc": MFCC, "fbank": Fbank}


def build_front_end(spec: "str | Mapping[str, Any]", sample_rate: int) -> FrontEnd:
    """A front end from its name (``"logmel"``) or a mapping ``{"kind": "logmel", "n_mels": 40, ...}`` (the
    keyword arguments of its class) at ``sample_rate``; an unknown kind or argument: one ``ValueError``."""
    if isinstance(spec, str):
        spec = {"kind": spec}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("kind"), str):
        raise ValueError(f"features must be a front end, its name or {{kind: NAME, ...its arguments}} with NAME one "
                         f"of {', '.join(FRONT_ENDS)}; got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k != "kind"}
    kind = spec["kind"].lower()
    if kind not in FRONT_ENDS:
        raise ValueError(f"unknown front end {spec['kind']!r}; choose one of {', '.join(FRONT_ENDS)}")
    try:
        return FRONT_ENDS[kind](sample_rate, **kwargs)
    except TypeError as err:
        raise ValueError(f"front end {kind!r} cannot be built with {kwargs}: {err}") from None

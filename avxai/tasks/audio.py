"""What the audio tasks share: their common options, reading an input (file or tensor) at the model's rate,
and the spectrogram the explanation lives on.

The STFT, one rule for ``avxai explain``, the audit, the demo and the recipes (:func:`stft_for`): the
options' ``n_fft`` / ``hop_length`` when given; else the model's own STFT (:func:`avxai.models.contract.stft_of`,
as the enhancement and AV models state); else about 32 ms -- ``n_fft`` = the power of two nearest
``0.032 * sample_rate`` (512 at 16 kHz, 256 at 8 kHz) -- with a hop of ``n_fft // 4`` (128 at 16 kHz: 8 ms).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from torch import Tensor, nn

from avxai.hygiene import model_device
from avxai.io.audio import load_audio, resample as resample_audio
from avxai.modalities.spectrogram import Spectrogram
from avxai.models.contract import stft_of

__all__ = ["AudioOptions", "default_stft", "describe_input", "read_waveform", "spectrogram_for", "stft_for"]


@dataclass(frozen=True)
class AudioOptions:
    """The inputs and spectrogram settings every audio task takes.

    input : an audio file (WAV/FLAC/OGG) or a waveform tensor ``(channels, time)`` or ``(batch, channels,
        time)`` (then ``sample_rate`` is required).
    sample_rate : Hz of a tensor ``input`` (ignored for files, which carry their own).
    n_fft, hop_length : STFT of the explained spectrogram in samples (``None``: see :func:`stft_for`).
    n_mels : mask on this many mel bands instead of linear frequency bins.
    perturbation : what masked cells become (``"zero"``, ``"noise:10"``, ...; ``None``: ``"zero"``).
    resample : resample inputs at another rate to the model's (otherwise a mismatch is an error).
    mono : average the input's channels (otherwise more than one channel is an error).
    segments : labelled segments (a JSON file or a list of ``{"start_s", "end_s", "label"}``) drawn on figures.
    """

    input: "str | Path | Tensor"
    sample_rate: int | None = None
    n_fft: int | None = None
    hop_length: int | None = None
    n_mels: int | None = None
    perturbation: str | None = None
    resample: bool = False
    mono: bool = False
    segments: "str | Path | list | None" = None


def default_stft(sample_rate: int) -> tuple[int, int]:
    """About 32 ms: ``(n_fft, hop_length)`` = (the power of two nearest ``0.032 * sample_rate``, a quarter of it)."""
    n_fft = 2 ** round(math.log2(0.032 * sample_rate))
    return n_fft, n_fft // 4


def stft_for(model: nn.Module, sample_rate: int, n_fft: int | None = None,
             hop_length: int | None = None) -> tuple[int, int]:
    """``(n_fft, hop_length)`` of the explained spectrogram: the given values, else the model's own STFT, else
    :func:`default_stft` (see the module docstring)."""
    own = stft_of(model) or (None, None)
    # a given 0 stays 0 (the spectrogram refuses it), never replaced by a default
    n_fft = n_fft if n_fft is not None else own[0] or default_stft(sample_rate)[0]
    hop = hop_length if hop_length is not None else own[1] or int(n_fft) // 4
    return int(n_fft), int(hop)


def describe_input(source: "str | Path | Tensor") -> str:
    """The input as metadata: the file path, or ``"tensor (1, 1, 48000)"``."""
    if isinstance(source, Tensor):
        return f"tensor {tuple(source.shape)}"
    return str(source)


def read_waveform(source: "str | Path | Tensor", model_rate: int, *, sample_rate: int | None = None,
                  resample: bool = False, mono: bool = False, what: str = "input") -> Tensor:
    """A waveform ``(batch, 1, time)`` at ``model_rate`` from a file or a tensor.

    A tensor is ``(channels, time)`` or ``(batch, channels, time)`` at ``sample_rate`` Hz. Another rate than
    the model's raises unless ``resample``; more than one channel raises unless ``mono`` (averages them).

    Shape: file or tensor -> ``(batch, 1, time)`` float.
    """
    if isinstance(source, Tensor):
        if sample_rate is None:
            raise ValueError(f"the {what} is a tensor: give its sample_rate (Hz) as well")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 1:
            raise ValueError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
        if source.dim() not in (2, 3) or not source.is_floating_point():
            raise ValueError(f"the {what} tensor must be a float waveform (channels, time) or (batch, channels, "
                             f"time), got {source.dtype} of shape {tuple(source.shape)}")
        wav = source.unsqueeze(0) if source.dim() == 2 else source
        if mono:
            wav = wav.mean(dim=1, keepdim=True)
        if sample_rate != model_rate:
            if not resample:
                raise ValueError(f"the {what} is at {sample_rate} Hz but the model takes {model_rate} Hz; pass "
                                 "resample=True (--resample) to resample it")
            wav = resample_audio(wav, sample_rate, model_rate)
        name = what
    else:
        wav, _ = load_audio(source, sample_rate=model_rate, resample=resample, mono=mono)
        name = f"{what} {source}"
    if wav.shape[1] != 1:
        raise ValueError(f"{name} has {wav.shape[1]} channels but the model takes mono audio; pass mono=True "
                         "(--mono) to average the channels")
    return wav


def spectrogram_for(model: nn.Module, waveform: Tensor, sample_rate: int, options: AudioOptions) -> Spectrogram:
    """The spectrogram modality of ``waveform`` ``(batch, 1, time)`` with the options' STFT (:func:`stft_for`),
    mel bands and perturbation (default ``"zero"``)."""
    n_fft, hop = stft_for(model, sample_rate, options.n_fft, options.hop_length)
    waveform = waveform.to(model_device(model))  # the explanation runs where the model is (--device)
    return Spectrogram(waveform, sample_rate, n_fft=n_fft, hop_length=hop, n_mels=options.n_mels,
                       perturbation=options.perturbation or "zero")

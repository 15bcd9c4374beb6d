"""Maximally activating segments: the time-frequency patches of a set of recordings that drive one unit most.

For unit ``u`` (a channel) of a named layer, every recording runs through the model once; every position of the
unit's activation map (frames, or (freq, frames) cells; for a layer called several times per input, e.g. on
partial utterances, every row) is a candidate, and the local maxima along time are ranked by activation over
all recordings. Each candidate's **receptive field is measured empirically**: the gradient of that one
activation with respect to the recording's STFT magnitude (the :class:`~avxai.modalities.Spectrogram` modality:
magnitude with the recording's phase, inverse STFT to the model's waveform) gives a (freq, frames) sensitivity
map ``|gradient|``; the field drawn spans the frames around the peak of its time marginal where that marginal stays
at or above ``rf_level`` times the peak, and, over those frames, the bins around the peak of the frequency
marginal where it does (a span, not a mass quantile: a model that normalises
over the whole input, e.g. by subtracting the mean over frames, makes every frame matter a little, and a mass
quantile would then cover the whole recording). A candidate no gradient reaches, or one of a non-negative
(ReLU) map that is not active (activation 0), is skipped. Greedy non-maximum suppression then keeps a candidate
only if its box overlaps no kept box of the same recording by more than ``nms_iou`` (intersection over union)
nor lies within ``min_gap_s`` of one it shares frequencies with, and its recording has fewer than
``per_recording`` kept segments, so one recording does not fill the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avxai.hygiene import evaluation_mode, model_device
from avxai.inspect.probe import capture, default_channel_dim, unit_map
from avxai.inspect.spectral import default_stft, magnitude_db
from avxai.modalities.spectrogram import Spectrogram

__all__ = ["TopSegmentsConfig", "TopSegments", "top_segments", "field_box"]

RECEPTIVE_FIELD = ("empirical: gradient of the unit's activation at the position wrt the STFT magnitude of the "
                   "recording; along each axis the box is the contiguous span around the peak of |gradient|'s "
                   "marginal where it stays >= rf_level x its peak")


@dataclass(frozen=True)
class TopSegmentsConfig:
    """Settings of :func:`top_segments`.

    unit : channel of the layer's output. channel_dim : its axis (``None``: 2 for a batch-first LSTM/GRU, else 1).
    top : segments shown. per_recording : at most this many from one recording.
    nms_iou : a candidate whose box overlaps a kept box of its recording by more than this is dropped.
    min_gap_s : so is one whose box comes closer in time than this to a kept box of its recording that it
        overlaps in frequency (one sustained event gives one segment, not several neighbours).
    rf_level : the receptive-field box spans, per axis, the cells around the peak whose |gradient| marginal is at
        least this fraction of the peak's.
    margin_s : seconds of context on each side of the box in the saved audio and patch.
    max_candidates : at most this many receptive fields are computed (one backward pass each).
    n_fft, hop_length : STFT of the gradient and of the figures (``None``: ~32 ms windows, quarter hop).
    """

    unit: int = 0
    channel_dim: int | None = None
    top: int = 8
    per_recording: int = 2
    nms_iou: float = 0.3
    min_gap_s: float = 0.1
    rf_level: float = 0.1
    margin_s: float = 0.05
    max_candidates: int = 64
    n_fft: int | None = None
    hop_length: int | None = None

    def __post_init__(self):
        for name in ("top", "per_recording", "max_candidates"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if isinstance(self.unit, bool) or not isinstance(self.unit, int) or self.unit < 0:
            raise ValueError(f"unit must be a channel index >= 0, got {self.unit!r}")
        if not 0.0 <= self.nms_iou < 1.0:
            raise ValueError(f"nms_iou must be in [0, 1), got {self.nms_iou!r}")
        if not 0.0 < self.rf_level < 1.0:
            raise ValueError(f"rf_level must be in (0, 1), got {self.rf_level!r}")
        for name in ("margin_s", "min_gap_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be seconds >= 0, got {v!r}")


@dataclass
class TopSegments:
    """The kept segments, best first. Each is a dict: ``recording`` (index), ``name``, ``activation``,
    ``position`` (index into the unit's activation map), ``time_s`` / ``freq_hz`` (the receptive-field box),
    ``peak_time_s`` / ``peak_freq_hz`` (where the gradient peaks), ``clip_s`` (the saved audio's span);
    ``audio`` ``(1, 1, samples)``, ``patch_db`` ``(freq, frames)`` and ``field`` ``(freq, frames)`` over the
    clip are kept beside, in ``audio``, ``patches`` and ``fields``."""

    segments: list[dict[str, Any]]
    audio: list[Tensor]
    patches: list[np.ndarray]
    fields: list[np.ndarray]
    sample_rate: int
    metadata: dict[str, Any] = field(default_factory=dict)


def _span(marginal: np.ndarray, level: float) -> tuple[int, int]:
    peak = int(marginal.argmax())
    above = marginal >= level * marginal[peak]
    lo, hi = peak, peak
    while lo > 0 and above[lo - 1]:
        lo -= 1
    while hi < len(marginal) - 1 and above[hi + 1]:
        hi += 1
    return lo, hi


def field_box(sensitivity: np.ndarray, level: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """``((f0, f1), (t0, t1))`` inclusive cells of ``sensitivity`` ``(freq, frames)``: the frames around the peak of
    the time marginal where it stays >= ``level`` x its peak, then the bins around the peak of the frequency
    marginal over those frames where it does."""
    t0, t1 = _span(sensitivity.sum(axis=0), level)
    f0, f1 = _span(sensitivity[:, t0:t1 + 1].sum(axis=1), level)
    return (f0, f1), (t0, t1)


def _same_event(a: dict, b: dict, iou: float, gap: float) -> bool:
    """Whether boxes ``a`` and ``b`` (of one recording) overlap by more than ``iou`` or lie within ``gap`` seconds
    of each other while sharing frequencies."""
    if _iou(a, b) > iou:
        return True
    apart = max(a["time_s"][0] - b["time_s"][1], b["time_s"][0] - a["time_s"][1])
    shared = min(a["freq_hz"][1], b["freq_hz"][1]) > max(a["freq_hz"][0], b["freq_hz"][0])
    return apart < gap and shared


def _iou(a: dict, b: dict) -> float:
    def overlap(x, y):
        return max(0.0, min(x[1], y[1]) - max(x[0], y[0]))
    inter = overlap(a["time_s"], b["time_s"]) * overlap(a["freq_hz"], b["freq_hz"])
    area = lambda s: (s["time_s"][1] - s["time_s"][0]) * (s["freq_hz"][1] - s["freq_hz"][0])  # noqa: E731
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 1.0


def _candidates(maps: list[Tensor], limit: int) -> list[tuple[float, int, tuple[int, ...]]]:
    """Local maxima along the last (time) axis of every recording's unit map, highest first."""
    found = []
    for rec, m in enumerate(maps):
        if m.shape[-1] >= 3:
            shape = m.shape
            flat = m.reshape(-1, 1, shape[-1])
            peak = F.max_pool1d(F.pad(flat, (1, 1), value=-math.inf), 3, stride=1).reshape(shape)
            keep = m >= peak
        else:
            keep = torch.ones_like(m, dtype=torch.bool)
        for idx in keep.nonzero().tolist():
            found.append((float(m[tuple(idx)]), rec, tuple(idx)))
    found.sort(key=lambda c: -c[0])
    return found[:limit]


def top_segments(model: nn.Module, layer: str, waveforms: Sequence[Tensor], sample_rate: int,
                 config: TopSegmentsConfig = TopSegmentsConfig(), names: Sequence[str] | None = None) -> TopSegments:
    """The segments of ``waveforms`` (each ``(1, 1, time)`` at ``sample_rate``) that drive ``config.unit`` of ``layer``.

    Shape: each segment's audio ``(1, 1, samples)``, patch and field ``(freq, frames)`` over its clip.
    """
    if not waveforms:
        raise ValueError("top_segments needs at least one recording")
    names = list(names) if names is not None else [f"recording {i}" for i in range(len(waveforms))]
    cdim = default_channel_dim(model, layer) if config.channel_dim is None else config.channel_dim
    n_fft, hop = default_stft(sample_rate, config.n_fft, config.hop_length)
    device = model_device(model)
    kept: list[dict] = []
    result = TopSegments([], [], [], [], sample_rate)
    with evaluation_mode(model), capture(model, layer) as cap:
        maps = []
        with torch.no_grad():
            for wav in waveforms:
                cap.outputs.clear()
                model(wav.to(device))
                maps.append(unit_map(cap.output, config.unit, cdim).cpu())
        modalities = {}
        relu = min(float(m.min()) for m in maps) >= 0  # a non-negative map: 0 means the unit is off
        for value, rec, idx in _candidates(maps, config.max_candidates):
            if len(kept) >= config.top or (relu and value <= 0):
                break
            if sum(s["recording"] == rec for s in kept) >= config.per_recording:
                continue
            if rec not in modalities:
                modalities[rec] = Spectrogram(waveforms[rec].to(device), sample_rate, n_fft=n_fft, hop_length=hop)
            mod = modalities[rec]
            rep = mod.representation.detach().clone().requires_grad_(True)
            cap.outputs.clear()
            model(mod.to_model_input(rep))
            unit_map(cap.output, config.unit, cdim)[idx].backward()
            sens = rep.grad.abs().sum(dim=(0, 1)).cpu().numpy()  # (freq, frames)
            if not np.isfinite(sens).all() or sens.max() <= 0:
                continue  # no gradient reaches the input from this position: no field to draw
            (f0, f1), (t0, t1) = field_box(sens, config.rf_level)
            freqs, times = mod.coordinates()["freq"], mod.frame_times()
            df, dt = freqs[1] - freqs[0], hop / sample_rate
            seg = {"recording": rec, "name": names[rec], "activation": value, "position": list(idx),
                   "time_s": (float(times[t0] - dt / 2), float(times[t1] + dt / 2)),
                   "freq_hz": (float(max(0.0, freqs[f0] - df / 2)), float(min(sample_rate / 2, freqs[f1] + df / 2))),
                   "peak_time_s": float(times[sens.sum(axis=0).argmax()]),
                   "peak_freq_hz": float(freqs[sens.sum(axis=1).argmax()])}
            if any(s["recording"] == rec and _same_event(s, seg, config.nms_iou, config.min_gap_s) for s in kept):
                continue
            kept.append(seg)
            _clip(result, seg, waveforms[rec], sens, sample_rate, n_fft, hop, config.margin_s)
    result.segments = kept
    result.metadata = {"layer": layer, "unit": config.unit, "channel_dim": cdim, "recordings": names,
                       "receptive_field": RECEPTIVE_FIELD, "rf_level": config.rf_level, "nms_iou": config.nms_iou,
                       "min_gap_s": config.min_gap_s, "per_recording": config.per_recording, "n_fft": n_fft,
                       "hop_length": hop, "sample_rate": sample_rate, "segments": kept}
    return result


def _clip(result: TopSegments, seg: dict, wav: Tensor, sens: np.ndarray, rate: int, n_fft: int, hop: int,
          margin: float) -> None:
    """Cut the segment's audio, its dB patch and its sensitivity over the box's time span plus the margin."""
    n = wav.shape[-1]
    start = max(0, int((seg["time_s"][0] - margin) * rate))
    stop = min(n, max(start + n_fft, int(math.ceil((seg["time_s"][1] + margin) * rate))))
    start = max(0, min(start, stop - n_fft))
    seg["clip_s"] = (start / rate, stop / rate)
    audio = wav[..., start:stop].detach().cpu()
    result.audio.append(audio)
    result.patches.append(magnitude_db(wav[..., :].cpu(), n_fft, hop)[:, start // hop: stop // hop + 1])
    result.fields.append(sens[:, start // hop: stop // hop + 1] / max(float(sens.max()), 1e-30))

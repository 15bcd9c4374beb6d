"""Test signals with known answers: A-B-A speaker turns, speech with silences and noise, mixtures at an SNR.

Every builder returns the waveform together with the ground-truth :class:`Segment` list, so an
explanation can be checked against where the evidence really is. Waveforms are ``(1, time)`` float32
(``(..., time)`` where a function says so); times are in seconds.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from avxai.safety import read_regular

__all__ = [
    "Segment", "build_aba", "add_noise", "mix_at_snr", "pad_with_silence", "build_noisy_with_silence",
    "energy_vad", "mask_to_segments", "segments_to_mask", "save_segments", "load_segments",
]


@dataclass(frozen=True)
class Segment:
    """A labelled time interval ``[start_s, end_s)`` in seconds, e.g. ``Segment(0.0, 1.0, "A")``."""

    start_s: float
    end_s: float
    label: str

    def __post_init__(self):
        if not isinstance(self.label, str) or not self.label:
            raise ValueError(f"segment label must be a non-empty string such as 'A', got {self.label!r}")
        for name in ("start_s", "end_s"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"segment {name} must be a finite number of seconds, got {v!r}")
        if self.start_s < 0 or self.end_s <= self.start_s:
            raise ValueError(
                f"segment must satisfy 0 <= start_s < end_s, got start_s={self.start_s}, end_s={self.end_s}"
            )

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------
def _check_wave(name: str, x) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (..., time), got {type(x).__name__}")
    if x.dim() < 1 or x.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (..., time) with time > 0, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}; convert with .float()")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values; clean it before mixing")
    return x


def _check_rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int in Hz, got {sample_rate!r}")
    return int(sample_rate)


def _check_speaker(name: str, spk) -> None:
    if not callable(getattr(spk, "utterance", None)):
        raise TypeError(
            f"{name} must have an utterance(duration_s, sample_rate, seed) method (e.g. a SyntheticSpeaker), "
            f"got {type(spk).__name__}"
        )


def _check_durations(name: str, durations: Sequence[float], count: int | None = None) -> tuple[float, ...]:
    durations = tuple(durations)
    if count is not None and len(durations) != count:
        raise ValueError(f"{name} must hold {count} durations in seconds, got {len(durations)}: {durations}")
    for d in durations:
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d) or d < 0:
            raise ValueError(f"{name} must be non-negative finite seconds, got {durations}")
    return durations


def _sub_seeds(seed: int, tag: int, n: int) -> list[int]:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return [int(s) for s in np.random.default_rng([int(seed), tag]).integers(0, 2**31 - 1, size=n)]


def _fade(x: Tensor, n: int) -> Tensor:
    n = min(n, x.shape[-1] // 2)
    if n > 0:
        ramp = torch.linspace(0.0, 1.0, n, dtype=x.dtype)
        x = x.clone()
        x[..., :n] *= ramp
        x[..., -n:] *= ramp.flip(0)
    return x


# ---------------------------------------------------------------------------------------------
# builders
# ---------------------------------------------------------------------------------------------
def build_aba(speaker_a, speaker_b, durations: Sequence[float] = (1.0, 1.0, 1.0), sample_rate: int = 16000,
              seed: int = 0, fade_s: float = 0.005) -> tuple[Tensor, list[Segment]]:
    """Speaker A, then speaker B, then A again (three different utterances, no overlap).

    Parameters
    ----------
    speaker_a, speaker_b
        Objects with ``utterance(duration_s, sample_rate, seed) -> (1, time)``, e.g. SyntheticSpeaker.
    durations : (float, float, float)
        Seconds of the A, B and second A turn, each > 0.
    fade_s : float
        Raised-linear fade in/out at each turn boundary (avoids clicks).

    Returns
    -------
    waveform, segments
        ``(1, time)`` float32 with ``time = sum of round(d * sample_rate)``; segments
        ``[Segment(0, d0, 'A'), Segment(d0, d0 + d1, 'B'), Segment(d0 + d1, total, 'A')]`` that tile
        the whole waveform (boundaries on sample positions).

    Shape: ``(1, time)``.
    """
    _check_speaker("speaker_a", speaker_a)
    _check_speaker("speaker_b", speaker_b)
    durations = _check_durations("durations", durations, 3)
    if min(durations) <= 0:
        raise ValueError(f"every ABA turn must last > 0 s, got durations={durations}")
    sr = _check_rate(sample_rate)
    seeds = _sub_seeds(seed, 0xABA, 3)
    pieces, segments, pos = [], [], 0
    for spk, label, d, s in zip((speaker_a, speaker_b, speaker_a), "ABA", durations, seeds):
        n = int(round(d * sr))
        if n < 1:
            raise ValueError(f"turn of {d} s has no samples at {sr} Hz; use longer durations")
        wav = spk.utterance(n / sr, sample_rate=sr, seed=s).reshape(1, -1)[:, :n].float()
        if wav.shape[-1] != n:
            raise ValueError(f"{label} speaker returned {wav.shape[-1]} samples for a {n}-sample turn")
        pieces.append(_fade(wav, int(fade_s * sr)))
        segments.append(Segment(pos / sr, (pos + n) / sr, label))
        pos += n
    return torch.cat(pieces, dim=-1), segments


def _noise(shape: tuple[int, ...], kind: str, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(shape)
    if kind == "white":
        return white
    n = shape[-1]
    spec = np.fft.rfft(white, axis=-1)
    f = np.arange(spec.shape[-1], dtype=float)
    f[0] = 1.0
    spec = spec / np.sqrt(f)
    spec[..., 0] = 0.0
    pink = np.fft.irfft(spec, n=n, axis=-1)
    return pink / (pink.std(axis=-1, keepdims=True) + 1e-12)


def add_noise(waveform: Tensor, snr_db: float, seed: int, kind: str = "white",
              active: Tensor | None = None) -> Tensor:
    """Add white or pink (1/f) Gaussian noise at ``snr_db`` relative to the signal power.

    The signal power is measured per row of the last axis, over the samples where ``active`` is true
    (all samples when ``None``), so that silences do not dilute the speech level.

    Shape: waveform ``(..., time)``, active ``(time,)`` bool -> ``(..., time)``.
    """
    x = _check_wave("waveform", waveform)
    if kind not in ("white", "pink"):
        raise ValueError(f"noise kind must be 'white' or 'pink', got {kind!r}")
    if isinstance(snr_db, bool) or not isinstance(snr_db, (int, float)) or not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be a finite number in dB, got {snr_db!r}")
    (s,) = _sub_seeds(seed, 0x1015E, 1)
    if active is None:
        ref = x
    else:
        if active.shape != (x.shape[-1],) or active.dtype != torch.bool:
            raise ValueError(f"active must be a bool tensor of shape ({x.shape[-1]},), got {active.dtype} "
                             f"{tuple(active.shape)}")
        ref = x[..., active]
    power = ref.double().pow(2).mean(dim=-1, keepdim=True)
    if (power <= 0).any() or ref.shape[-1] == 0:
        raise ValueError("the (active part of the) waveform is silent, so an SNR is undefined; pass a "
                         "non-silent waveform or a different active mask")
    noise = torch.from_numpy(_noise(tuple(x.shape), kind, np.random.default_rng(s)))
    noise = noise / noise.pow(2).mean(dim=-1, keepdim=True).sqrt()
    noise = noise * torch.sqrt(power / 10.0 ** (snr_db / 10.0))
    return (x.double() + noise).to(x.dtype)


def mix_at_snr(target: Tensor, interferer: Tensor, snr_db: float) -> Tensor:
    """``target + g * interferer`` with ``g`` chosen so that ``10 log10(P_target / P_g*interferer) = snr_db``.

    Powers are mean squares per row of the last axis; both inputs must have the same shape.

    Shape: ``(..., time), (..., time) -> (..., time)``.
    """
    t = _check_wave("target", target)
    i = _check_wave("interferer", interferer)
    if t.shape != i.shape:
        raise ValueError(f"target {tuple(t.shape)} and interferer {tuple(i.shape)} must have the same shape; "
                         "crop or pad the interferer first")
    if isinstance(snr_db, bool) or not isinstance(snr_db, (int, float)) or not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be a finite number in dB, got {snr_db!r}")
    pt = t.double().pow(2).mean(dim=-1, keepdim=True)
    pi = i.double().pow(2).mean(dim=-1, keepdim=True)
    if (pi <= 0).any() or (pt <= 0).any():
        raise ValueError("target and interferer must both be non-silent for an SNR to be defined")
    gain = torch.sqrt(pt / (pi * 10.0 ** (snr_db / 10.0)))
    return (t.double() + gain * i.double()).to(t.dtype)


def pad_with_silence(waveform: Tensor, sample_rate: int, before_s: float, after_s: float,
                     label: str = "speech") -> tuple[Tensor, Segment]:
    """Surround ``waveform`` with digital silence; returns the padded waveform and where the input now lies.

    Shape: ``(..., time) -> (..., round(before_s*sr) + time + round(after_s*sr))``.
    """
    x = _check_wave("waveform", waveform)
    sr = _check_rate(sample_rate)
    before_s, after_s = _check_durations("before_s/after_s", (before_s, after_s))
    nb, na = int(round(before_s * sr)), int(round(after_s * sr))
    out = torch.nn.functional.pad(x, (nb, na))
    return out, Segment(nb / sr, (nb + x.shape[-1]) / sr, label)


def build_noisy_with_silence(speaker, sample_rate: int = 16000, seed: int = 0,
                             layout: Sequence[float] = (0.5, 1.0, 0.6, 1.0, 0.5), snr_db: float = 10.0,
                             kind: str = "white") -> tuple[Tensor, list[Segment]]:
    """An utterance with silent sections and added noise.

    ``layout`` alternates silence and speech durations in seconds, starting with silence:
    ``(silence, speech, silence, speech, ..., [silence])``; each speech part is a different utterance of
    ``speaker``. Noise of ``kind`` is added everywhere at ``snr_db`` relative to the speech power.

    Returns
    -------
    waveform, segments
        ``(1, time)`` float32, and one ``Segment(start, end, 'speech')`` per speech part.

    Shape: ``(1, time)``.
    """
    _check_speaker("speaker", speaker)
    layout = _check_durations("layout", layout)
    sr = _check_rate(sample_rate)
    if len(layout) < 2 or not any(d > 0 for d in layout[1::2]):
        raise ValueError(f"layout must be (silence, speech, ...) with at least one speech part > 0 s, got {layout}")
    seeds = _sub_seeds(seed, 0x5111, len(layout) + 1)
    pieces, segments, pos = [], [], 0
    for k, d in enumerate(layout):
        n = int(round(d * sr))
        if n == 0:
            continue
        if k % 2:
            wav = speaker.utterance(n / sr, sample_rate=sr, seed=seeds[k]).reshape(1, -1)[:, :n].float()
            pieces.append(_fade(wav, int(0.005 * sr)))
            segments.append(Segment(pos / sr, (pos + n) / sr, "speech"))
        else:
            pieces.append(torch.zeros(1, n))
        pos += n
    clean = torch.cat(pieces, dim=-1)
    active = segments_to_mask(segments, torch.arange(pos) / sr)
    return add_noise(clean, snr_db, seed=seeds[-1], kind=kind, active=active), segments


# ---------------------------------------------------------------------------------------------
# voice activity and segment <-> mask
# ---------------------------------------------------------------------------------------------
def energy_vad(waveform: Tensor, sample_rate: int, frame_s: float = 0.02, threshold_db: float = -30.0) -> Tensor:
    """Energy-based voice activity: a frame is active when its energy is within ``threshold_db`` of the loudest.

    Frames are non-overlapping, ``round(frame_s * sample_rate)`` samples long; frame ``i`` covers
    ``[i * frame_s, (i + 1) * frame_s)``; a trailing partial frame is dropped. Energies are compared per
    row of the last axis.

    Shape: ``(..., time) -> (..., time // frame_len)`` bool.
    """
    x = _check_wave("waveform", waveform)
    sr = _check_rate(sample_rate)
    if not (isinstance(frame_s, (int, float)) and frame_s > 0):
        raise ValueError(f"frame_s must be > 0 seconds, got {frame_s!r}")
    if not (isinstance(threshold_db, (int, float)) and threshold_db < 0):
        raise ValueError(f"threshold_db must be negative (dB below the loudest frame), got {threshold_db!r}")
    flen = max(int(round(frame_s * sr)), 1)
    n_frames = x.shape[-1] // flen
    if n_frames == 0:
        raise ValueError(f"waveform of {x.shape[-1]} samples is shorter than one {flen}-sample frame")
    frames = x[..., : n_frames * flen].double().reshape(*x.shape[:-1], n_frames, flen)
    energy_db = 10.0 * torch.log10(frames.pow(2).mean(dim=-1) + 1e-20)
    return energy_db > energy_db.amax(dim=-1, keepdim=True) + threshold_db


def mask_to_segments(mask: Tensor, frame_s: float, label: str = "speech", min_gap_s: float = 0.0) -> list[Segment]:
    """Runs of ``True`` in a per-frame mask ``(frames,)`` as segments; gaps shorter than ``min_gap_s`` are merged."""
    if mask.dim() != 1:
        raise ValueError(f"mask must be 1-D (frames,), got shape {tuple(mask.shape)}")
    m = mask.to(torch.int8).tolist()
    segs: list[Segment] = []
    start = None
    for i, v in enumerate(m + [0]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            s, e = start * frame_s, i * frame_s
            if segs and s - segs[-1].end_s < min_gap_s:
                segs[-1] = Segment(segs[-1].start_s, e, label)
            else:
                segs.append(Segment(s, e, label))
            start = None
    return segs


def segments_to_mask(segments: Sequence[Segment], times: Tensor, label: str | None = None) -> Tensor:
    """Bool mask of which ``times`` (seconds) fall inside a segment (of ``label``, or any label when ``None``).

    Shape: times ``(n,)`` -> ``(n,)`` bool.
    """
    out = torch.zeros(times.shape, dtype=torch.bool)
    for seg in segments:
        if label is None or seg.label == label:
            out |= (times >= seg.start_s) & (times < seg.end_s)
    return out


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
def save_segments(path: str | Path, segments: Sequence[Segment], metadata: dict[str, Any] | None = None) -> Path:
    """Write ``{"segments": [{"start_s", "end_s", "label"}, ...], "metadata": {...}}`` as JSON."""
    path = Path(path)
    for s in segments:
        if not isinstance(s, Segment):
            raise TypeError(f"segments must be Segment objects, got {type(s).__name__}")
    doc = {"segments": [asdict(s) for s in segments], "metadata": dict(metadata or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def load_segments(path: str | Path, with_metadata: bool = False):
    """Read segments written by :func:`save_segments` (or a bare JSON list of segment dicts).

    Returns ``list[Segment]``, or ``(list[Segment], metadata dict)`` when ``with_metadata``.
    """
    path = Path(path)
    data = read_regular(path, what="segments file", kind="text")  # a FIFO or a directory is refused unread
    try:
        doc = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); write it with save_segments") from None
    items, meta = (doc, {}) if isinstance(doc, list) else (doc.get("segments"), doc.get("metadata", {}))
    if not isinstance(items, list):
        raise ValueError(f"{path} has no 'segments' list; expected the format written by save_segments")
    try:
        segs = [Segment(float(d["start_s"]), float(d["end_s"]), str(d["label"])) for d in items]
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path}: each segment needs start_s, end_s and label ({err!r})") from None
    return (segs, meta) if with_metadata else segs

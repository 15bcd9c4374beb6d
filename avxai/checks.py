"""Checks of inputs at the bottom layer: waveforms, videos, rates and sizes, each in one place.

Every check raises ``ValueError`` (a wrong value) or ``TypeError`` (a wrong type) with one sentence that
names the problem and the fix. Nothing here imports another avxai module.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

__all__ = ["check_finite", "check_sample_rate", "check_fps", "check_positive_int", "check_waveform", "check_video",
           "check_av_alignment"]


def check_finite(name: str, tensor: Tensor) -> None:
    """Raise ``ValueError`` naming ``name`` when ``tensor`` holds NaN or infinite values."""
    if not torch.isfinite(tensor).all():
        bad = (~torch.isfinite(tensor)).sum().item()
        raise ValueError(f"{name} contains {bad} NaN or infinite values; clean the input before explaining it")


def check_sample_rate(value: Any, name: str = "sample_rate") -> int:
    """A sample rate in Hz: a positive ``int`` (returned), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer in Hz, got {value!r}")
    return value


def check_fps(value: Any, name: str = "fps") -> float:
    """A frame rate: a positive finite number of frames per second (returned as ``float``), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of frames per second, got {value!r}")
    return float(value)


def check_positive_int(value: Any, name: str, what: str = "") -> int:
    """A positive ``int`` (returned), else ``ValueError``; ``what`` says what it counts, e.g. "inputs per pass"."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int{f' ({what})' if what else ''}, got {value!r}")
    return value


def check_waveform(waveform: Any, sample_rate: int | None = None, *, name: str = "waveform", min_samples: int = 1,
                   min_rms: float | None = 1e-5, batched: bool = True) -> Tensor:
    """Validate a float waveform and return it.

    ``batched=True`` (default) needs ``(batch, channels, time)``; ``batched=False`` takes any ``(..., time)``.
    ``sample_rate`` (Hz), when given, must be a positive int. ``min_samples``: the shortest length accepted
    (e.g. one STFT frame). ``min_rms``: inputs whose RMS is below it are silent and raise; ``None`` skips the
    test (a reference or a part of a mixture may be silent).

    Shape: ``(batch, channels, time)``, or ``(..., time)`` with ``batched=False``.
    """
    layout = "(batch, channels, time)" if batched else "(..., time)"
    if not isinstance(waveform, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {layout}, got {type(waveform).__name__}")
    if batched and waveform.dim() != 3:
        raise ValueError(
            f"{name} must be (batch, channels, time), got shape {tuple(waveform.shape)}; "
            "for one mono signal use waveform.view(1, 1, -1)"
        )
    if waveform.dim() < 1:
        raise ValueError(f"{name} must be a waveform {layout}, got a 0-d tensor")
    if not waveform.is_floating_point():
        raise TypeError(f"{name} must be floating point in [-1, 1], got {waveform.dtype}")
    if sample_rate is not None:
        check_sample_rate(sample_rate)
    check_finite(name, waveform)
    if waveform.shape[-1] < min_samples:
        at = f" ({waveform.shape[-1] / sample_rate:.4f} s at {sample_rate} Hz)" if sample_rate else ""
        raise ValueError(
            f"{name} is too short: {waveform.shape[-1]} samples{at}; at least {min_samples} samples are needed "
            "(one STFT frame)"
        )
    if min_rms is not None:
        rms = waveform.pow(2).reshape(-1, waveform.shape[-1]).mean(dim=1).sqrt() if not batched else \
            waveform.pow(2).mean(dim=(1, 2)).sqrt()
        silent = (rms < min_rms).nonzero().flatten().tolist()
        if silent:
            raise ValueError(
                f"{name} input(s) {silent} are silent (RMS {rms[silent[0]].item():.2e} < {min_rms:g}): there is "
                "nothing to explain; check the file, its gain, or the segment you cut"
            )
    return waveform


def check_video(video: Any, name: str = "video") -> Tensor:
    """Validate a ``(batch, frames, 3, height, width)`` float video in [0, 1] and return it."""
    if not isinstance(video, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (batch, frames, 3, height, width), got {type(video).__name__}")
    if video.dim() != 5 or video.shape[2] != 3:
        hint = " (one clip: add a batch axis with video[None])" if video.dim() == 4 and video.shape[1] == 3 else ""
        raise ValueError(f"{name} must be (batch, frames, 3, height, width), got shape {tuple(video.shape)}{hint}")
    if not video.is_floating_point():
        raise TypeError(f"{name} must be float in [0, 1], got {video.dtype}; convert uint8 frames with x.float() / 255")
    check_finite(name, video)
    lo, hi = float(video.min()), float(video.max())
    if lo < -1e-3 or hi > 1.0 + 1e-3:
        raise ValueError(f"{name} must hold values in [0, 1], got [{lo:.3g}, {hi:.3g}]; uint8 frames divided by 255 "
                         "are in range, normalised (mean/std) frames are not")
    if video.shape[1] < 1:
        raise ValueError(f"{name} has no frames")
    return video


def check_av_alignment(n_frames: int, fps: float, n_samples: int, sample_rate: int) -> None:
    """Raise ``ValueError`` when audio and video durations differ by more than one video frame.

    Durations are ``n_frames / fps`` and ``n_samples / sample_rate`` seconds.
    """
    check_fps(fps)
    check_sample_rate(int(sample_rate))
    video_s = n_frames / float(fps)
    audio_s = n_samples / float(sample_rate)
    if abs(video_s - audio_s) > 1.0 / float(fps) + 1e-9:
        raise ValueError(
            f"audio and video are not aligned: video lasts {video_s:.3f} s ({n_frames} frames at {fps:g} fps) "
            f"but audio lasts {audio_s:.3f} s ({n_samples} samples at {sample_rate} Hz), a difference of "
            f"{abs(video_s - audio_s):.3f} s (more than one frame, {1.0 / fps:.3f} s); trim or pad the audio "
            "to the video length, or check that both come from the same recording."
        )

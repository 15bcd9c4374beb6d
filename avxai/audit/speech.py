"""Where speech is: energy-based voice activity, and how much of a mask lies in chosen frames."""

from __future__ import annotations

import torch
from torch import Tensor

from avxai.data.mixtures import energy_vad, mask_to_segments
from avxai.metrics.localisation import mass_in_segments

__all__ = ["voice_activity", "mask_mass"]


def voice_activity(waveform: Tensor, sample_rate: int, frame_s: float = 0.02, threshold_db: float = -30.0,
                   floor_margin_db: float = 6.0) -> Tensor:
    """Energy-based voice activity per non-overlapping frame of ``frame_s`` seconds.

    A frame is active when :func:`avxai.data.energy_vad` marks it (energy within ``threshold_db`` of the
    loudest frame) *and* its energy is at least ``floor_margin_db`` above the noise floor, the 5th
    percentile of the frame energies; the second rule keeps stationary noise in pauses from counting as
    speech at moderate SNRs (``floor_margin_db=0`` leaves :func:`~avxai.data.energy_vad` alone).
    Frame ``i`` covers ``[i * frame_s, (i + 1) * frame_s)``.

    Shape: ``(time,)`` or ``(1, 1, time)`` -> ``(time // frame_len,)`` bool.
    """
    x = waveform.reshape(-1)
    loud = energy_vad(x, sample_rate, frame_s, threshold_db)
    if floor_margin_db <= 0:
        return loud
    flen = max(int(round(frame_s * sample_rate)), 1)
    n = loud.shape[0]
    energy = 10.0 * torch.log10(x[: n * flen].double().reshape(n, flen).pow(2).mean(dim=1) + 1e-20)
    floor = torch.quantile(energy, 0.05)
    return loud & (energy > floor + floor_margin_db)


def mask_mass(masks: Tensor, inside: Tensor) -> list[float]:
    """Fraction of each mask's mass in the frames ``inside``; 0 when no frame is inside or a mask is empty.

    Shape: masks ``(K, freq, frames)``, inside ``(frames,)`` bool -> ``K`` floats.
    """
    out = torch.zeros(masks.shape[0], dtype=torch.float64)
    ok = masks.sum(dim=(1, 2)) > 0
    if bool(inside.any()) and bool(ok.any()):
        runs = mask_to_segments(inside, 1.0, label="in")  # runs of frame indices
        frames = torch.arange(inside.shape[0], dtype=torch.float64)
        out[ok] = mass_in_segments(masks[ok], frames, runs, grid_dims=2)
    return [float(v) for v in out]

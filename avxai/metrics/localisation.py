"""Localisation in time: how much of a mask's mass falls inside labelled time segments (a speaker's turns,
speech-active frames)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor


def _interval(seg: Any) -> tuple[float, float, str]:
    """``(start_s, end_s, label)`` of a Segment-like object or a dict with those keys."""
    if isinstance(seg, dict):
        try:
            return float(seg["start_s"]), float(seg["end_s"]), str(seg.get("label", ""))
        except KeyError as err:
            raise ValueError(f"a segment dict needs start_s and end_s (seconds), got keys {sorted(seg)}") from err
    if all(hasattr(seg, name) for name in ("start_s", "end_s")):
        return float(seg.start_s), float(seg.end_s), str(getattr(seg, "label", ""))
    raise TypeError(f"a segment must have start_s and end_s (a Segment or a dict), got {type(seg).__name__}")


def frames_in_segments(times_s: "Tensor | np.ndarray | Sequence[float]", segments: Sequence[Any],
                       label: str | None = None) -> Tensor:
    """Which frames (centre times in seconds) lie inside a segment ``[start_s, end_s)`` (of ``label``, or any).

    Shape: times ``(time,)`` -> bool ``(time,)``.
    """
    times = torch.as_tensor(np.asarray(times_s, dtype=np.float64))
    if times.dim() != 1:
        raise ValueError(f"times_s must be 1-D (one time per frame, seconds), got shape {tuple(times.shape)}")
    inside = torch.zeros(times.shape, dtype=torch.bool)
    for seg in segments:
        start, end, seg_label = _interval(seg)
        if label is None or seg_label == label:
            inside |= (times >= start) & (times < end)
    return inside


def mass_in_segments(mask: Tensor, times_s: "Tensor | np.ndarray | Sequence[float]", segments: Sequence[Any],
                     label: str | None = None, grid_dims: int | None = None) -> Tensor:
    """Fraction of a mask's mass that lies in frames inside ``segments`` (of ``label``, or of any label).

    ``sum(mask over frames inside) / sum(mask)``, summed over the ``grid_dims`` trailing axes (the last is
    time; ``(freq, time)`` masks have 2). Leading axes (batch, areas) are kept. ``grid_dims`` defaults to
    the mask's number of axes when it has 1 or 2 (one ``(time,)`` or ``(freq, time)`` mask); for more axes
    say how many are grid axes, e.g. ``grid_dims=2`` for ``explanation.masks`` ``(batch, areas, freq, time)``.
    A uniform mask scores the fraction of frames inside the segments.

    Shape: mask ``(..., time)`` or ``(..., freq, time)``, times ``(time,)`` -> ``(...)``.
    """
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a tensor (..., time) or (..., freq, time), got {type(mask).__name__}")
    if grid_dims is None:
        if mask.dim() > 2:
            raise ValueError(f"mask has shape {tuple(mask.shape)}: say how many trailing axes are grid axes, e.g. "
                             "grid_dims=2 for (batch, areas, freq, time) or grid_dims=1 for (batch, time)")
        grid_dims = mask.dim()
    if not 1 <= grid_dims <= mask.dim():
        raise ValueError(f"grid_dims must be between 1 and {mask.dim()} for a mask of shape {tuple(mask.shape)}, "
                         f"got {grid_dims}")
    inside = frames_in_segments(times_s, segments, label)
    if inside.shape[0] != mask.shape[-1]:
        raise ValueError(f"{inside.shape[0]} frame times for a mask with {mask.shape[-1]} frames; pass the "
                         "explanation's time coordinates (explanation.coordinates['time'])")
    if not inside.any():
        raise ValueError(f"no frame lies inside the segments{'' if label is None else f' labelled {label!r}'}; "
                         "check the segment times (seconds) and the label")
    m = mask.detach().to(torch.float64).cpu()
    if (m < 0).any() or not torch.isfinite(m).all():
        raise ValueError("mask values must be finite and >= 0 (masks are in [0, 1])")
    dims = tuple(range(m.dim() - grid_dims, m.dim()))
    total = m.sum(dim=dims)
    if (total <= 0).any():
        raise ValueError("a mask is all zeros: it has no mass to localise")
    return (m * inside.to(m.dtype)).sum(dim=dims) / total


def segment_mass(explanation, segments: Sequence[Any] | None = None) -> dict[str, dict[str, list[float]]]:
    """Per segment label, the share of an explanation's evidence inside that label's segments.

    For each label: ``"positive"``, the share of the positive attribution (evidence *for* the result) per
    input, and, when the explanation has masks (extremal perturbation), ``"masks"``, the share of each mask's
    mass per input and area. ``segments``: default ``explanation.metadata["segments"]``. Needs a grid with an
    axis named ``time`` (anywhere) with coordinates in seconds; returns ``{}`` when there is nothing to measure.

    Shape: attribution ``(batch, *grid)``, masks ``(batch, areas, *grid)`` with a ``time`` grid axis -> lists of
    ``(batch,)`` / ``(batch, areas)`` fractions in [0, 1].
    """
    segments = explanation.metadata.get("segments") if segments is None else segments
    axes = tuple(explanation.axes)
    if not segments or "time" not in axes or "time" not in explanation.coordinates:
        return {}
    times = explanation.coordinates["time"]
    grid_dims = len(axes)
    t = axes.index("time")  # moved last: mass_in_segments reads time on the last axis
    out: dict[str, dict[str, list[float]]] = {}
    for label in sorted({_interval(seg)[2] for seg in segments}):
        if not frames_in_segments(times, segments, label).any():
            continue
        entry: dict[str, list[float]] = {}
        positive = explanation.attribution.detach().clamp_min(0).movedim(1 + t, -1)
        if bool((positive.flatten(1).sum(1) > 0).all()):
            entry["positive"] = mass_in_segments(positive, times, segments, label, grid_dims=grid_dims).tolist()
        if explanation.masks is not None:
            masks = explanation.masks.movedim(2 + t, -1)
            entry["masks"] = mass_in_segments(masks, times, segments, label, grid_dims=grid_dims).tolist()
        out[label] = entry
    return out


__all__ = ["frames_in_segments", "mass_in_segments", "segment_mass"]

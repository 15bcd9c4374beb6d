"""Stitching the explanations of consecutive time segments into one explanation of the whole input.

A long input is cut into spans (:func:`segment_spans`): each span is the part of the input one segment stands
for (``start_s`` to ``end_s``), explained with a little context on each side (``context_start_s`` to
``context_end_s``). :func:`stitch` keeps of each segment's explanation the cells whose time lies in its span
(the context is cut away: consecutive segments meet at the centre of their overlap) and joins them along the
time axis: the attribution, the grid, the masks, the time coordinates and the media. It works on one grid with a
``"time"`` axis (a spectrogram ``(freq, time)``, a face video ``(time, height, width)``) and on a composite
grid (audio-visual: each part joined along its own time axis, then flattened again).

A segment that failed has no explanation: its cells are zero in the stitched maps and media, and the metadata
says so (``segment_wise.failed``).

A map normalised per part (Grad-CAM on an audio-visual input: each stream's map divided by its largest absolute
value, ``metadata["part_max"]``) is joined in its raw units (each segment's part multiplied back by its own
maximum) and normalised once over the whole input, so the scale does not change from one segment to the next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from avxai.explanation import Explanation, to_jsonable

__all__ = ["Span", "core_of", "segment_spans", "stitch"]


@dataclass(frozen=True)
class Span:
    """One segment: it stands for ``start_s`` to ``end_s`` of the input and is explained on ``context_start_s``
    to ``context_end_s`` (the span with context on each side, within the input). Seconds from the input's start."""

    index: int
    start_s: float
    end_s: float
    context_start_s: float
    context_end_s: float
    last: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "start_s": round(self.start_s, 6), "end_s": round(self.end_s, 6),
                "context_start_s": round(self.context_start_s, 6), "context_end_s": round(self.context_end_s, 6)}


def segment_spans(duration_s: float, seconds: float, context_s: float = 0.0, quantum_s: float = 0.0) -> list[Span]:
    """Consecutive spans of ``seconds`` covering ``duration_s``, each with ``context_s`` more on each side (cut
    at the input's ends); boundaries on multiples of ``quantum_s`` (a sample or a video frame; 0: none). A last
    span shorter than half of ``seconds`` joins the one before it (a very short segment explains little).

    Shape: -> ``ceil(duration_s / seconds)`` spans or one fewer.
    """
    if not seconds > 0 or not math.isfinite(seconds):
        raise ValueError(f"segment seconds must be a positive number, got {seconds!r}")
    if context_s < 0:
        raise ValueError(f"segment context must be >= 0 seconds, got {context_s!r}")

    def down(t: float) -> float:  # on the quantum grid, at or before t (context never shorter than asked)
        return round(math.floor(t / quantum_s + 1e-6) * quantum_s, 9) if quantum_s > 0 else t

    def up(t: float) -> float:
        return round(math.ceil(t / quantum_s - 1e-6) * quantum_s, 9) if quantum_s > 0 else t

    step = max(down(seconds), quantum_s)
    count = max(1, math.ceil(duration_s / step - 1e-9))
    bounds = [round(k * step, 9) for k in range(count)] + [duration_s]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < seconds / 2:
        del bounds[-2]
    n = len(bounds) - 1
    return [Span(i, bounds[i], bounds[i + 1], max(0.0, down(bounds[i] - context_s)),
                 min(duration_s, up(bounds[i + 1] + context_s)) if i < n - 1 else duration_s, last=i == n - 1)
            for i in range(n)]


def _parts(explanation: Explanation) -> list[tuple[str, dict]]:
    """``(coordinate prefix, part metadata)`` per grid part: one for a plain grid, one per stream of a composite."""
    meta = explanation.metadata.get("modality") or {}
    if "part_names" in meta:
        return [(f"{name}/", meta["parts"][name]) for name in meta["part_names"]]
    return [("", {**meta, "axes": list(explanation.axes), "grid_shape": list(explanation.attribution.shape[1:])})]


def _split(t: Tensor | None, lead: int, parts: list[tuple[str, dict]]) -> list[Tensor | None]:
    """A ``(lead..., cells)`` tensor of a composite (or ``(lead..., *grid)`` of a plain grid) -> one
    ``(lead..., *part_grid)`` tensor per part."""
    if t is None:
        return [None] * len(parts)
    if len(parts) == 1:
        return [t]
    out, start = [], 0
    for _, meta in parts:
        size = int(np.prod(meta["grid_shape"]))
        out.append(t[..., start:start + size].reshape(*t.shape[:lead], *meta["grid_shape"]))
        start += size
    return out


def _time_axis(meta: dict, prefix: str) -> int:
    axes = list(meta["axes"])
    if "time" not in axes:
        raise ValueError(f"a segment-wise explanation joins segments along time, but the grid{' ' + prefix[:-1] if prefix else ''} "
                         f"has axes {axes}; explain the whole input (--segment-seconds 0)")
    return axes.index("time")


def _narrow(t: Tensor | None, dim: int, start: int, stop: int) -> Tensor | None:
    """A copy of ``t[..., start:stop, ...]`` along ``dim`` (``None`` stays ``None``)."""
    return None if t is None else t.narrow(dim, start, stop - start).clone()


def core_of(explanation: Explanation, span: Span) -> dict[str, Any]:
    """The cells of a segment's explanation whose time lies in ``span`` (the context cut away), per part:
    ``{"parts": [{"attribution", "grid", "masks", "time"}], "media": {...}}``; tensors are copies, so the
    segment's own explanation can be freed.

    Shape: per part, attribution / grid ``(batch, *part_grid)`` and masks ``(batch, k, *part_grid)`` with the
    time axis cut to the span's cells.
    """
    parts = _parts(explanation)
    atts, grids = _split(explanation.attribution, 1, parts), _split(explanation.grid, 1, parts)
    masks = _split(explanation.masks, 2, parts)
    peaks = _part_peaks(explanation, parts)
    out = []
    for (prefix, meta), att, grid, mask in zip(parts, atts, grids, masks):
        axis = _time_axis(meta, prefix)
        if peaks is not None:  # back to raw units: normalised once over the whole input by stitch()
            att = att * torch.as_tensor(peaks[prefix[:-1]], dtype=att.dtype).view(-1, *[1] * (att.dim() - 1))
        times = np.asarray(explanation.coordinates[prefix + "time"], dtype=np.float64) + span.context_start_s
        eps = 1e-6
        keep = (times >= span.start_s - eps) & ((times <= span.end_s + eps) if span.last else (times < span.end_s - eps))
        idx = np.flatnonzero(keep)
        a, b = (int(idx[0]), int(idx[-1]) + 1) if idx.size else (0, 0)

        out.append({"attribution": _narrow(att, axis + 1, a, b), "grid": _narrow(grid, axis + 1, a, b),
                    "masks": _narrow(mask, axis + 2, a, b), "time": times[a:b]})
    media = {}
    for name, (kind, data, rate) in explanation.media.items():
        lo = round((span.start_s - span.context_start_s) * rate)
        hi = data.shape[-1 if kind == "audio" else 1] if span.last else round((span.end_s - span.context_start_s) * rate)
        media[name] = (kind, (data[..., lo:hi] if kind == "audio" else data[:, lo:hi]).clone(), rate)
    return {"parts": out, "media": media}


def _part_peaks(explanation: Explanation, parts: list[tuple[str, dict]]) -> dict[str, list[float]] | None:
    """Each part's normaliser per input (``metadata["part_max"]``) of a map normalised per part, else ``None``."""
    peaks = explanation.metadata.get("part_max")
    if len(parts) < 2 or not isinstance(peaks, dict) or not explanation.metadata.get("normalised"):
        return None
    if not all(isinstance(peaks.get(prefix[:-1]), list) for prefix, _ in parts):
        return None
    return peaks


def _normalise_parts(joined: list[dict], parts: list[tuple[str, dict]], metadata: dict) -> None:
    """Divide each part's joined raw map by its largest absolute value per input (in place); the values in
    ``metadata["part_max"]``, the rule in ``metadata["normalised"]``."""
    peaks = {}
    for (prefix, _), j in zip(parts, joined):
        att = j["attribution"]
        peak = att.flatten(1).abs().amax(dim=1)
        j["attribution"] = att / peak.clamp_min(1e-30).view(-1, *[1] * (att.dim() - 1))
        peaks[prefix[:-1]] = peak.tolist()
    metadata["part_max"] = peaks
    metadata["normalised"] = ("each part's map divided by its largest absolute value per input over the whole input "
                              "(the segments' raw maps joined first)")


def _gap(like: dict, span: Span, dt: float, batch: int, k: int | None, axis: int) -> dict:
    """Zeros standing for a failed segment in one part, with time coordinates every ``dt`` seconds."""
    n = max(0, round((span.end_s - span.start_s) / dt) + (1 if span.last else 0))

    def zeros(t: Tensor | None, lead: int) -> Tensor | None:
        if t is None:
            return None
        shape = list(t.shape)
        shape[0] = batch
        shape[axis + lead] = n
        return t.new_zeros(shape)

    return {"attribution": zeros(like["attribution"], 1), "grid": zeros(like["grid"], 1),
            "masks": zeros(like["masks"], 2), "time": span.start_s + dt * np.arange(n)}


def stitch(first: Explanation, cores: dict[int, dict], spans: list[Span], info: dict[str, Any]) -> Explanation:
    """One explanation of the whole input from the segments' cores (:func:`core_of`, keyed by span index; a
    span without one failed). ``first``: a segment's explanation, for the method, axes, areas and metadata.
    ``info``: what is stored as ``metadata["segment_wise"]``.

    Shape: per part, the cores' time axes concatenated; a composite flattened again to ``(batch, cells)``.
    """
    parts = _parts(first)
    some = next(iter(cores.values()))
    steps = []
    for (prefix, meta), core in zip(parts, some["parts"]):
        t = core["time"]
        fps = meta.get("fps")
        steps.append(1.0 / fps if fps else float(np.median(np.diff(t))) if len(t) > 1 else 1.0)
    batch = some["parts"][0]["attribution"].shape[0]
    joined = []
    for p, ((prefix, meta), dt) in enumerate(zip(parts, steps)):
        axis = _time_axis(meta, prefix)
        pieces = [cores[s.index]["parts"][p] if s.index in cores else
                  _gap(some["parts"][p], s, dt, batch, None, axis) for s in spans]
        joined.append({key: None if pieces[0][key] is None else torch.cat([piece[key] for piece in pieces],
                                                                           dim=axis + lead)
                       for key, lead in (("attribution", 1), ("grid", 1), ("masks", 2))})
        joined[-1]["time"] = np.concatenate([piece["time"] for piece in pieces])

    metadata = {k: v for k, v in first.metadata.items() if k not in ("segment", "warnings")}
    if _part_peaks(first, parts) is not None:
        _normalise_parts(joined, parts, metadata)

    def flat(key: str, lead: int) -> Tensor | None:
        if joined[0][key] is None:
            return None
        if len(parts) == 1:
            return joined[0][key]
        return torch.cat([j[key].reshape(*j[key].shape[:lead], -1) for j in joined], dim=-1)

    coordinates = dict(first.coordinates)
    modality = dict(metadata.get("modality") or {})
    duration = spans[-1].end_s
    for (prefix, meta), j in zip(parts, joined):
        coordinates[prefix + "time"] = j["time"]
        shape = list(j["attribution"].shape[1:])
        if prefix:
            part = {**modality["parts"][prefix[:-1]], "grid_shape": shape, "duration_s": duration}
            if "num_frames" in part:
                part["num_frames"] = shape[_time_axis(meta, prefix)]
            part.pop("crop_boxes", None)  # the whole clip's boxes are the task's metadata (crop_boxes)
            modality["parts"] = {**modality["parts"], prefix[:-1]: part}
        else:
            modality.update(grid_shape=shape, duration_s=duration)
    if len(parts) > 1:
        sizes = [int(np.prod(j["attribution"].shape[1:])) for j in joined]
        modality.update(part_sizes=sizes, grid_shape=[sum(sizes)])
        coordinates["joint"] = np.arange(sum(sizes), dtype=np.float64)
    metadata["modality"] = modality
    metadata["segment_wise"] = to_jsonable(info)
    media = {}
    if not info.get("failed"):
        for name in first.media:
            if all(name in c["media"] for c in cores.values()):
                kind, _, rate = cores[spans[0].index]["media"][name]
                dim = -1 if kind == "audio" else 1
                media[name] = (kind, torch.cat([cores[s.index]["media"][name][1] for s in spans], dim=dim), rate)
    left = [name for name in first.media if name not in media]  # a failed segment, or videos not re-read on a rerun
    metadata["segment_wise"]["not_stitched"] = metadata["segment_wise"].get("not_stitched", []) + [
        f"media/{name}: in each segment's folder" for name in left]
    return Explanation(method=first.method, attribution=flat("attribution", 1), grid=flat("grid", 1),
                       axes=first.axes, coordinates=coordinates, units=dict(first.units), masks=flat("masks", 2),
                       areas=first.areas, media=media, metadata=metadata)

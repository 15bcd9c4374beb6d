"""Maximally activating face-crop patches: the regions of a set of face clips that drive one visual unit.

The face-video counterpart of :mod:`avxai.inspect.top_segments`. Each clip ``(1, frames, 3, S, S)`` (the
:class:`~avxai.modalities.FaceVideo` crops a model takes) runs once; every position of the unit's activation map
(per frame: ``(frames, h, w)`` for a visual trunk that runs frame by frame) is a candidate, local maxima along the
last axis ranked over all clips. The **receptive field is measured empirically**: the gradient of that one
activation with respect to the clip's pixels, summed over colour, gives a ``(frames, S, S)`` sensitivity; the
field spans the frames around the peak of its frame marginal where that marginal stays >= ``rf_level`` x its
peak, and, over those frames, the rows and then the columns around their marginals' peaks where they do.
Non-maximum suppression as for segments: a candidate overlapping a kept box of its clip by more than ``nms_iou``
(frames x rows x columns) is dropped, and at most ``per_recording`` come from one clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from avxai.hygiene import evaluation_mode, model_device
from avxai.inspect.probe import capture, default_channel_dim, unit_map
from avxai.inspect.top_segments import TopSegmentsConfig, _candidates, _span

__all__ = ["TopPatches", "top_patches"]

RECEPTIVE_FIELD = ("empirical: gradient of the unit's activation at the position wrt the clip's pixels (summed over "
                   "colour); the box spans the frames, then rows, then columns around the marginals' peaks where "
                   "they stay >= rf_level x peak")


@dataclass
class TopPatches:
    """The kept patches, best first: dicts with ``recording``, ``name``, ``activation``, ``position``, ``frames``
    ``(first, last)``, ``rows`` and ``cols`` ``(first, last)`` pixel ranges of the field, ``peak_frame``;
    ``images`` ``(S, S, 3)`` (the peak frame) and ``fields`` ``(S, S)`` (its normalised sensitivity) beside."""

    patches: list[dict[str, Any]]
    images: list[np.ndarray]
    fields: list[np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)


def _box_iou(a: dict, b: dict) -> float:
    inter, vol_a, vol_b = 1.0, 1.0, 1.0
    for key in ("frames", "rows", "cols"):
        (a0, a1), (b0, b1) = a[key], b[key]
        inter *= max(0, min(a1, b1) - max(a0, b0) + 1)
        vol_a *= a1 - a0 + 1
        vol_b *= b1 - b0 + 1
    return inter / (vol_a + vol_b - inter)


def top_patches(model: nn.Module, layer: str, videos: Sequence[Tensor], config: TopSegmentsConfig = TopSegmentsConfig(),
                names: Sequence[str] | None = None, call: Callable[[nn.Module, Tensor], Any] | None = None
                ) -> TopPatches:
    """The face-crop patches of ``videos`` (each ``(1, frames, 3, S, S)`` in [0, 1]) that drive ``config.unit`` of
    ``layer``. ``call(net, video)`` runs the model (default ``net(video)``; an audio-visual model needs its sound).

    Shape: each image ``(S, S, 3)``, each field ``(S, S)``.
    """
    if not videos:
        raise ValueError("top_patches needs at least one face clip")
    for v in videos:
        if not isinstance(v, Tensor) or v.dim() != 5 or v.shape[0] != 1 or v.shape[2] != 3:
            shape = tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__
            raise ValueError(f"a face clip must be (1, frames, 3, S, S), got {shape}")
    names = list(names) if names is not None else [f"clip {i}" for i in range(len(videos))]
    cdim = default_channel_dim(model, layer) if config.channel_dim is None else config.channel_dim
    run = call if call is not None else (lambda net, x: net(x))
    device = model_device(model)
    kept: list[dict] = []
    result = TopPatches([], [], [])
    with evaluation_mode(model), capture(model, layer) as cap:
        maps = []
        with torch.no_grad():
            for v in videos:
                cap.outputs.clear()
                run(model, v.to(device))
                maps.append(unit_map(cap.output, config.unit, cdim).cpu())
        relu = min(float(m.min()) for m in maps) >= 0
        for value, rec, idx in _candidates(maps, config.max_candidates):
            if len(kept) >= config.top or (relu and value <= 0):
                break
            if sum(p["recording"] == rec for p in kept) >= config.per_recording:
                continue
            pixels = videos[rec].to(device).detach().clone().requires_grad_(True)
            cap.outputs.clear()
            run(model, pixels)
            unit_map(cap.output, config.unit, cdim)[idx].backward()
            sens = pixels.grad.abs().sum(dim=2)[0].cpu().numpy()  # (frames, S, S)
            if not np.isfinite(sens).all() or sens.max() <= 0:
                continue
            f0, f1 = _span(sens.sum(axis=(1, 2)), config.rf_level)
            inside = sens[f0:f1 + 1].sum(axis=0)
            r0, r1 = _span(inside.sum(axis=1), config.rf_level)
            c0, c1 = _span(inside[r0:r1 + 1].sum(axis=0), config.rf_level)
            peak = int(sens.sum(axis=(1, 2)).argmax())
            patch = {"recording": rec, "name": names[rec], "activation": value, "position": list(idx),
                     "frames": (f0, f1), "rows": (r0, r1), "cols": (c0, c1), "peak_frame": peak}
            if any(p["recording"] == rec and _box_iou(p, patch) > config.nms_iou for p in kept):
                continue
            kept.append(patch)
            result.images.append(np.moveaxis(videos[rec][0, peak].detach().cpu().float().numpy(), 0, -1))
            result.fields.append(sens[peak] / max(float(sens[peak].max()), 1e-30))
    result.patches = kept
    result.metadata = {"layer": layer, "unit": config.unit, "channel_dim": cdim, "recordings": names,
                       "receptive_field": RECEPTIVE_FIELD, "rf_level": config.rf_level, "nms_iou": config.nms_iou,
                       "per_recording": config.per_recording, "patches": kept}
    return result

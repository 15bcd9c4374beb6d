"""Frame-level scores: the mean or max of a per-frame probability or logit over chosen frames.

For models that return one value (or one row of class values) per frame: voice-activity detectors, speaker-
activity and diarisation models, frame classifiers. Which frames count:

* all of them (``region=None, detect=False``);
* a time region ``(start_s, end_s)`` in seconds: the frames whose centre lies in it (frame ``i`` spans
  ``[i * hop, (i + 1) * hop)``; a region narrower than a frame takes the frame holding its midpoint);
* the frames the model *detects* on the unmasked input (``detect=True``): per-frame probability at or above
  ``threshold``, fixed once in :meth:`FrameScore.prepare`, so every masked input is scored on the same frames.

The hop (seconds between frames) is the model's ``frame_hop_s`` when given, else derived in
:meth:`~FrameScore.prepare` from the input duration and the output length (``hop = duration_s / frames``);
:meth:`~FrameScore.describe` says which.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from avxai.scorers.base import Scorer, as_tensor_output, rows_for

__all__ = ["FrameScore", "FRAME_OUTPUTS", "FRAME_REDUCTIONS"]

#: what a frame's value is: ``probability`` (the model's own probability for one column; the softmax over the
#: classes for several), ``logit`` (the raw value), ``sigmoid`` (the sigmoid of the raw value)
FRAME_OUTPUTS = ("probability", "logit", "sigmoid")
#: how the chosen frames' values become one score
FRAME_REDUCTIONS = ("mean", "max")


class FrameScore(Scorer):
    """The mean (or max) of a per-frame value over all frames, a time region, or the detected frames.

    Parameters
    ----------
    output : ``"probability"`` (default), ``"logit"`` or ``"sigmoid"`` (see :data:`FRAME_OUTPUTS`). A one-column
        output under ``"probability"`` must already be a probability in [0, 1] (a VAD's): a softmax over one
        column would be constant, so a logit must be explained as ``"logit"`` or ``"sigmoid"``.
    reduce : ``"mean"`` or ``"max"`` over the chosen frames.
    target : the column of a ``(n, frames, classes)`` output (a speaker, a class); ``None``: the only column,
        or the column with the highest mean value over the chosen frames on the unmasked input.
    region : ``(start_s, end_s)`` seconds; ``None``: all frames (or the detected ones).
    detect : score the frames whose probability on the unmasked input is ``>= threshold``.
    threshold : the detection threshold on the per-frame probability (``"logit"``/``"sigmoid"``: the sigmoid
        of a one-column value; several columns: the softmax, or the sigmoid under ``"sigmoid"``).
    frame_hop_s : seconds between frames (the model's ``frame_hop_s``); ``None``: ``duration_s / frames``.
    duration_s : the input's duration in seconds (needed for a region when ``frame_hop_s`` is ``None``).

    Shape: model output ``(n, frames)`` or ``(n, frames, classes)`` -> ``(n,)``.
    """

    def __init__(self, output: str = "probability", reduce: str = "mean", *, target: int | None = None,
                 region: "tuple[float, float] | None" = None, detect: bool = False, threshold: float = 0.5,
                 frame_hop_s: float | None = None, duration_s: float | None = None):
        if output not in FRAME_OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(FRAME_OUTPUTS)}, got {output!r}")
        if reduce not in FRAME_REDUCTIONS:
            raise ValueError(f"reduce must be one of {', '.join(FRAME_REDUCTIONS)}, got {reduce!r}")
        if target is not None and (isinstance(target, bool) or not isinstance(target, int) or target < 0):
            raise ValueError(f"target must be a column index >= 0 or None, got {target!r}")
        if region is not None:
            if detect:
                raise ValueError("give a region or detect=True, not both: the region names the frames to score")
            region = _check_region(region)
        if not (isinstance(threshold, (int, float)) and 0.0 < float(threshold) < 1.0):
            raise ValueError(f"threshold must be a probability strictly between 0 and 1, got {threshold!r}")
        for name, value in (("frame_hop_s", frame_hop_s), ("duration_s", duration_s)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value) or value <= 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        self.output, self.reduce, self.target, self.region = output, reduce, target, region
        self.detect, self.threshold = bool(detect), float(threshold)
        self.frame_hop_s = None if frame_hop_s is None else float(frame_hop_s)
        self.duration_s = None if duration_s is None else float(duration_s)
        self.units = output
        #: which frames count, per input ``(batch, frames)`` bool; fixed by :meth:`prepare`
        self.frames: Tensor | None = None
        self.hop_source = "model" if frame_hop_s is not None else None

    # -- reading the output ----------------------------------------------------------------------------
    def _values(self, output: Any) -> Tensor:
        """The output as ``(n, frames, classes)``."""
        out = as_tensor_output(output, "FrameScore")
        if out.dim() == 2:
            out = out.unsqueeze(-1)
        if out.dim() != 3:
            raise ValueError(f"FrameScore expects per-frame outputs (n, frames) or (n, frames, classes), got shape "
                             f"{tuple(out.shape)}; a clip-level output (n, classes) is scored with ClassLogit")
        return out

    def _column(self, values: Tensor) -> Tensor:
        """Per-frame value of the target column: ``(n, frames, classes)`` -> ``(n, frames)``."""
        classes = values.shape[-1]
        target = 0 if classes == 1 else self.target
        if target is None:
            raise ValueError("FrameScore(target=None) must be prepared on the unmasked output first")
        if target >= classes:
            raise ValueError(f"target column {target} is out of range for an output of {classes} column(s)")
        if self.output == "probability" and classes > 1:
            return values.softmax(dim=-1)[..., target]
        column = values[..., target]
        return column.sigmoid() if self.output == "sigmoid" else column

    def _probability(self, values: Tensor, target: int) -> Tensor:
        """Per-frame probability used for detection ``(n, frames)``."""
        if values.shape[-1] > 1 and self.output != "sigmoid":
            return values.softmax(dim=-1)[..., target]
        column = values[..., target]
        return column if self.output == "probability" else column.sigmoid()

    # -- preparing on the unmasked output -------------------------------------------------------------
    def prepare(self, unmasked_output: Any) -> "FrameScore":
        values = self._values(unmasked_output).detach()
        n, frames, classes = values.shape
        if self.output == "probability" and classes == 1 and ((values < 0).any() or (values > 1).any()):
            raise ValueError("the model's per-frame output is not a probability in [0, 1] (it ranges "
                             f"{values.min().item():.3g} to {values.max().item():.3g}); a one-column softmax would "
                             "be constant, so explain it as score 'logit' or 'sigmoid'")
        hop, source = self.frame_hop_s, "model"
        if hop is None:
            if self.duration_s is None:
                if self.region is not None:
                    raise ValueError("a time region needs the frame hop: give frame_hop_s (the model's seconds per "
                                     "frame) or duration_s (the input's length) to derive it")
            else:
                hop, source = self.duration_s / frames, "input duration / output frames"
        chosen = torch.ones(n, frames, dtype=torch.bool, device=values.device)
        if self.region is not None:
            chosen = _region_frames(self.region, hop, frames, values.device).expand(n, frames).clone()
        target = self.target
        if target is None:
            if classes == 1:
                target = 0
            else:  # the column with the highest mean value over the chosen frames
                scored = (values.softmax(dim=-1) if self.output == "probability" else values if self.output ==
                          "logit" else values.sigmoid())
                mean = (scored * chosen.unsqueeze(-1)).sum(dim=1) / chosen.sum(dim=1, keepdim=True).clamp(min=1)
                target = int(mean.mean(dim=0).argmax())
        if self.detect:
            prob = self._probability(values, target)
            chosen = prob >= self.threshold
            empty = (~chosen.any(dim=1)).nonzero().flatten().tolist()
            if empty:
                raise ValueError(
                    f"no frame of input {empty[0]} is detected (its highest per-frame probability is "
                    f"{prob[empty[0]].max().item():.3f} < threshold {self.threshold:g}); lower the threshold or "
                    "give a region in seconds")
        prepared = FrameScore(self.output, self.reduce, target=target, region=self.region, detect=self.detect,
                              threshold=self.threshold, frame_hop_s=self.frame_hop_s, duration_s=self.duration_s)
        with torch.inference_mode(False):  # a normal tensor (the unmasked output may be an inference tensor)
            prepared.frames = chosen.clone()
        prepared.hop_used = hop
        prepared.hop_source = source if hop is not None else None
        return prepared

    # -- scoring ----------------------------------------------------------------------------------------
    def per_frame(self, output: Any) -> Tensor:
        """The value of every frame (the target column, in this scorer's units) before the reduction.

        Shape: model output ``(n, frames)`` or ``(n, frames, classes)`` -> ``(n, frames)``.
        """
        if self.frames is None:
            raise ValueError("FrameScore must be prepared on the unmasked output first (scorer.prepare(output))")
        return self._column(self._values(output))

    def __call__(self, output: Any) -> Tensor:
        column = self.per_frame(output)
        if column.shape[1] != self.frames.shape[1]:
            raise ValueError(f"the model returned {column.shape[1]} frames for a masked input but "
                             f"{self.frames.shape[1]} for the unmasked one; the frame count must not depend on the "
                             "input's content")
        chosen = rows_for(self.frames.to(column.device), column.shape[0])
        if self.reduce == "max":
            return column.masked_fill(~chosen, float("-inf")).amax(dim=1)
        weights = chosen.to(column.dtype)
        return (column * weights).sum(dim=1) / weights.sum(dim=1)

    def describe(self) -> dict[str, Any]:
        info = {**super().describe(), "output": self.output, "reduce": self.reduce, "target": self.target,
                "region_s": None if self.region is None else list(self.region), "detect": self.detect}
        if self.detect:
            info["threshold"] = self.threshold
        hop = getattr(self, "hop_used", self.frame_hop_s)
        info["frame_hop_s"] = hop
        info["frame_hop_from"] = self.hop_source
        if self.frames is not None:
            info["frames_scored"] = self.frames.sum(dim=1).tolist()
            info["frames"] = int(self.frames.shape[1])
        return info


def _check_region(region: Any) -> tuple[float, float]:
    try:
        start, end = (float(v) for v in region)
    except (TypeError, ValueError):
        raise ValueError(f"region must be (start_s, end_s) in seconds, got {region!r}") from None
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
        raise ValueError(f"region must be (start_s, end_s) seconds with 0 <= start < end, got {region!r}")
    return start, end


def _region_frames(region: tuple[float, float], hop: float, frames: int, device) -> Tensor:
    """``(1, frames)`` bool: the frames whose centre lies in ``region`` (or the one holding its midpoint)."""
    start, end = region
    if start >= frames * hop:
        raise ValueError(f"region {start:g}-{end:g} s starts after the model's last frame (the output spans "
                         f"{frames * hop:.3f} s: {frames} frames of {hop:.4g} s)")
    centres = (torch.arange(frames, device=device, dtype=torch.float64) + 0.5) * hop
    chosen = (centres >= start) & (centres < end)
    if not chosen.any():
        chosen[min(int((start + end) / 2 / hop), frames - 1)] = True
    return chosen.unsqueeze(0)

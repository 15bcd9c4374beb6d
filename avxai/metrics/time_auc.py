"""Time-localisation AUCs that others publish: does a map's time profile rank the annotated time first?

* :func:`speaker_localisation_auc`: the multi-speaker protocol of Li et al. (2022), "Reliable Visualization for
  Deep Speaker Recognition" (Interspeech): a target utterance is concatenated with one or two interfering
  talkers and the saliency map should single out the target's part. Their paper reports an AUC of the map as a
  detector of the target speaker; the exact frame rule is not spelled out in the text available here, so this
  is what avxai implements: each frame's score is the map summed over the other grid axes (the frame's
  evidence), frames inside the target's turns are positives, frames inside the interfering talkers' turns are
  negatives, frames in no labelled turn are left out, and the ROC AUC is computed per input.
* :func:`time_annotation_auc`: the benchmark of Bolaños et al. (2025), "Benchmarking Time-localized Explanations
  for Audio Classification Models" (Interspeech; their ``evaluation/auc_relaxed.py``): the input is cut into
  100 ms segments starting at 0, a segment's importance is (here) the mean of the frame scores whose centre lies
  in it, a segment is positive when it overlaps an annotated interval by more than ``min_overlap_s`` (0.09 s in
  their code), negative when it overlaps none, and left out when it overlaps by less (their "relaxed" AUC);
  the ROC AUC is computed per input. Their code ranks the importances before the ROC curve, breaking ties by
  position; ``sklearn.metrics.roc_auc_score`` used here gives ties half credit (the same AUC without ties).

An AUC of 1 means every positive frame (segment) outranks every negative one; 0.5 is chance (and a constant map);
an input without both classes gets NaN.

Shape: attribution ``(batch, *grid)`` with a ``time`` axis, or a profile ``(batch, frames)`` -> AUC ``(batch,)``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from avxai.metrics.localisation import _interval, frames_in_segments

__all__ = ["time_profile", "speaker_localisation_auc", "time_annotation_auc", "segment_labels", "roc_auc"]


def roc_auc(labels: "np.ndarray | Sequence[int]", scores: "np.ndarray | Sequence[float]") -> float:
    """ROC AUC of ``scores`` against 0/1 ``labels`` (``sklearn.metrics.roc_auc_score``); NaN without both classes."""
    from sklearn.metrics import roc_auc_score  # optional dependency (scikit-learn)

    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"labels and scores must be 1-D of the same length, got {y.shape} and {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores hold NaN or infinite values; an attribution with them cannot rank frames")
    if y.min(initial=1) == y.max(initial=0) or y.size == 0:
        return float("nan")
    return float(roc_auc_score(y, s))


def time_profile(attribution: Tensor, axes: Sequence[str] | None = None) -> Tensor:
    """Per input, the map summed over every grid axis but ``time`` (signed: evidence for minus against).

    ``axes`` names the grid axes of ``attribution (batch, *grid)`` (``explanation.axes``); ``None`` takes the last
    axis as time. A ``(batch, frames)`` profile is returned as it is.

    Shape: ``(batch, *grid)`` -> ``(batch, frames)`` float64.
    """
    if not isinstance(attribution, Tensor):
        raise TypeError(f"attribution must be a tensor (batch, *grid), got {type(attribution).__name__}")
    a = attribution.detach().to(torch.float64).cpu()
    if a.dim() < 2:
        raise ValueError(f"attribution must be (batch, *grid) or (batch, frames), got shape {tuple(a.shape)}")
    t = a.dim() - 1
    if axes is not None:
        axes = tuple(axes)
        if len(axes) != a.dim() - 1 or "time" not in axes:
            raise ValueError(f"axes {axes} must name the {a.dim() - 1} grid axes of shape {tuple(a.shape)}, one of "
                             "them 'time'")
        t = 1 + axes.index("time")
    a = a.movedim(t, -1)
    return a.reshape(a.shape[0], -1, a.shape[-1]).sum(dim=1)


def _times(times_s: Any, frames: int) -> np.ndarray:
    times = np.asarray(times_s, dtype=np.float64).reshape(-1)
    if times.shape[0] != frames:
        raise ValueError(f"{times.shape[0]} frame times for {frames} frames; pass the explanation's time "
                         "coordinates (explanation.coordinates['time'], seconds)")
    return times


def speaker_localisation_auc(attribution: Tensor, times_s: Any, segments: Sequence[Any], target: str,
                             axes: Sequence[str] | None = None) -> Tensor:
    """Li et al. (2022)'s multi-speaker check as a frame-level ROC AUC: target turns positive, other talkers'
    turns negative, frames in no turn left out (see the module docstring).

    Shape: attribution ``(batch, *grid)`` or profile ``(batch, frames)``, times ``(frames,)`` -> ``(batch,)``.
    """
    profile = time_profile(attribution, axes)
    times = _times(times_s, profile.shape[-1])
    labels = {_interval(seg)[2] for seg in segments}
    if target not in labels:
        raise ValueError(f"no segment is labelled {target!r} (labels: {sorted(labels)}); name the target talker")
    if len(labels) < 2:
        raise ValueError("the segments name one talker only; the protocol needs interfering talkers' turns too")
    positive = frames_in_segments(times, segments, target).numpy()
    keep = frames_in_segments(times, segments).numpy()  # frames in no labelled turn are left out
    return torch.tensor([roc_auc(positive[keep].astype(int), row[keep]) for row in profile.numpy()],
                        dtype=torch.float64)


def segment_labels(segments: Sequence[Any], duration_s: float, label: str | None = None, segment_s: float = 0.1,
                   min_overlap_s: float = 0.09) -> np.ndarray:
    """Bolaños et al.'s label of each ``segment_s`` segment ``[k * segment_s, (k + 1) * segment_s)``: 1 when it
    overlaps an annotated interval (of ``label``, or any) by more than ``min_overlap_s``, -1 (left out) when by
    less, 0 when by nothing.

    Shape: -> ``(ceil(duration_s / segment_s),)`` int.
    """
    if not (isinstance(segment_s, (int, float)) and segment_s > 0):
        raise ValueError(f"segment_s must be > 0 seconds, got {segment_s!r}")
    if not (isinstance(min_overlap_s, (int, float)) and 0 <= min_overlap_s < segment_s):
        raise ValueError(f"min_overlap_s must be in [0, segment_s={segment_s}), got {min_overlap_s!r}")
    if not (isinstance(duration_s, (int, float)) and duration_s > 0 and math.isfinite(duration_s)):
        raise ValueError(f"duration_s must be a positive number of seconds, got {duration_s!r}")
    count = int(math.ceil(duration_s / segment_s - 1e-9))
    out = np.zeros(count, dtype=int)
    intervals = [(s, e) for s, e, lab in map(_interval, segments) if label is None or lab == label]
    for k in range(count):
        lo, hi = k * segment_s, (k + 1) * segment_s
        for start, end in intervals:  # their rule: the first overlapping interval decides
            overlap = min(hi, end) - max(lo, start)
            if overlap > 0:
                out[k] = 1 if overlap > min_overlap_s else -1
                break
    return out


def time_annotation_auc(attribution: Tensor, times_s: Any, segments: Sequence[Any], label: str | None = None,
                        axes: Sequence[str] | None = None, *, duration_s: float | None = None,
                        segment_s: float = 0.1, min_overlap_s: float = 0.09) -> Tensor:
    """Bolaños et al. (2025)'s relaxed AUC of a map's 100 ms segments against time annotations (see the module
    docstring). ``duration_s``: the input's length (default: the last frame time plus half a frame step).

    Shape: attribution ``(batch, *grid)`` or profile ``(batch, frames)``, times ``(frames,)`` -> ``(batch,)``.
    """
    profile = time_profile(attribution, axes).numpy()
    times = _times(times_s, profile.shape[-1])
    if duration_s is None:
        step = float(np.median(np.diff(times))) if times.size > 1 else 0.0
        duration_s = float(times[-1] + step / 2)
    labels = segment_labels(segments, duration_s, label, segment_s, min_overlap_s)
    index = np.floor(times / segment_s + 1e-9).astype(int)
    inside = (index >= 0) & (index < labels.size)
    used = [k for k in range(labels.size) if labels[k] != -1 and np.any(inside & (index == k))]
    if not used:
        raise ValueError("no 100 ms segment holds a frame; check the frame times (seconds) and duration_s")
    y = labels[used]
    aucs = []
    for row in profile:
        seg_scores = np.array([row[inside & (index == k)].mean() for k in used])
        aucs.append(roc_auc(y, seg_scores))
    return torch.tensor(aucs, dtype=torch.float64)

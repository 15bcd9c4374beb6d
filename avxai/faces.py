"""Faces in a clip: MTCNN detection (downscaled, every k-th frame), the followed face's track, crops.

MTCNN (facenet-pytorch, weights inside the wheel, no download) runs in batches on frames scaled so that
their longer side is at most ``detect_side`` pixels, on every ``detect_every``-th frame of each shot (and on
the first and last frame of every shot); :mod:`avxai.tracking` finds the shot cuts, links the boxes into one
track per face, chooses the face to follow (``face``: the largest by default), fills and smooths the boxes per
shot. Crops are square, cut with sub-pixel accuracy (``roi_align``, which also averages when shrinking) and
resized to ``crop_size``. Frames can come as one tensor or as a stream of chunks (a long clip is never held
whole): :meth:`FaceTracker.detect_stream` then :meth:`FaceTracker.crop_stream`.

Why the crop follows the eyes and nose, with one size per shot (the defaults): when the mouth opens MTCNN's
box grows downwards, so a crop sized and centred by the box would zoom with the speech (a model could read the
speech off the framing instead of the lips). Eyes and nose move only with the head.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avxai.tracking import (Detections, choose_faces, cut_scores, fill_and_smooth, frame_signature, is_cut,
                            link_tracks, runs)

__all__ = ["FaceTrack", "FaceTracker", "MIN_DETECTION_RATE", "crop_boxes", "paste_back"]


#: below this share of detected frames, :meth:`FaceTracker.track` warns that the crops may miss the face
MIN_DETECTION_RATE = 0.5


@dataclass(frozen=True)
class FaceTrack:
    """The followed face through a clip.

    Attributes
    ----------
    boxes : float32 crop boxes ``x0, y0, x1, y1`` in frame pixels (square, margin included, smoothed; may
        reach outside the frame, where crops are zero).
    detected : bool, True where MTCNN ran on the frame and found the followed face.
    crops : float32 face crops in [0, 1], RGB.
    frame_size : ``(height, width)`` of the source frames in pixels.
    raw_boxes : float32 tight MTCNN boxes of the followed face, NaN where not detected.
    landmarks : float32 MTCNN landmarks (left eye, right eye, nose, mouth left, mouth right) as x, y pixels,
        NaN where not detected.
    probs : float32 MTCNN confidence of the followed face, NaN where not detected.
    source : name of the clip, for messages.
    report : what the tracker found and chose (:meth:`FaceTracker.report`): ``face``, ``face_tracks``,
        ``shots``, ``switches``, ``undetected`` frame ranges, ``detection_rate``, ``settings``.

    Shape: boxes ``(frames, 4)``; detected ``(frames,)``; crops ``(frames, 3, crop_size, crop_size)``;
    raw_boxes ``(frames, 4)``; landmarks ``(frames, 5, 2)``; probs ``(frames,)``.
    """

    boxes: Tensor
    detected: Tensor
    crops: Tensor
    frame_size: tuple[int, int]
    raw_boxes: Tensor
    landmarks: Tensor
    probs: Tensor
    source: str = "<frames>"
    report: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.boxes.shape[0])

    def __repr__(self) -> str:
        return f"FaceTrack(source={self.source!r}, frames={self.num_frames}, crops={tuple(self.crops.shape)})"

    @property
    def detection_rate(self) -> float:
        """Fraction of the frames MTCNN ran on where it found the followed face."""
        return float(self.report.get("detection_rate", float(self.detected.float().mean())))

    def to_video_tensor(self) -> Tensor:
        """Crops in the model layout. Shape: ``(1, frames, 3, crop_size, crop_size)``."""
        return self.crops.unsqueeze(0)


def _as_frames(frames, source: str) -> Tensor:
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, Tensor) or frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        got = f"{type(frames).__name__} {getattr(frames, 'dtype', '')} {tuple(getattr(frames, 'shape', ()))}"
        raise ValueError(
            f"face tracking on {source} needs uint8 RGB frames (frames, height, width, 3), got {got}; "
            "use VideoClip.frames from read_video, or (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1) "
            "for float (frames, 3, height, width) video."
        )
    if frames.shape[0] == 0:
        raise ValueError(f"face tracking on {source}: the clip has 0 frames.")
    return frames


@dataclass(frozen=True)
class FaceTracker:
    """Detect faces, follow one with a smooth square box per shot, crop it.

    Parameters
    ----------
    crop_size : side of the output crops in pixels.
    margin : context added on each side of the MTCNN box, as a fraction of the face size
        (box side = face side * (1 + 2 * margin)).
    smoothing_frames : window of the centred moving average over position and size (odd; 1 = off).
    detect_every : run MTCNN on every n-th frame of a shot (and its first and last); others are interpolated.
    device : torch device for MTCNN.
    batch_size : frames per MTCNN call.
    min_confidence : MTCNN probability below which a detection is ignored.
    min_face_size : smallest face looked for, in pixels of the full frame (at least 12 / the detection scale).
    anchor : ``'landmarks'``: the crop moves with the mean of the eyes and nose landmarks (offset by the
        segment's median offset to the box centre); ``'box'``: the crop follows the box centre.
    fixed_size : one box size per shot and face (median of detections); False: smoothed per frame.
    face : ``"largest"`` (in each shot the largest face among those present on a quarter of it) or a face
        track number (0 = the most prominent over the clip; see :mod:`avxai.tracking`).
    detect_side : MTCNN sees frames scaled down so their longer side is at most this many pixels (0 = full size).
    cut_threshold : change score (0-1) above which a frame starts a new shot (:func:`avxai.tracking.shot_cuts`).
    """

    crop_size: int = 112
    margin: float = 0.25
    smoothing_frames: int = 5
    detect_every: int = 1
    device: str = "cpu"
    batch_size: int = 16
    min_confidence: float = 0.9
    min_face_size: int = 20
    anchor: str = "landmarks"
    fixed_size: bool = True
    face: "str | int" = "largest"
    detect_side: int = 0
    cut_threshold: float = 0.3
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.crop_size, int) and self.crop_size >= 8 and self.crop_size % 2 == 0):
            raise ValueError(f"crop_size must be an even integer >= 8 pixels (crops are saved as h264 video, which "
                             f"needs even sizes), got {self.crop_size!r}.")
        if not (math.isfinite(self.margin) and 0.0 <= self.margin <= 2.0):
            raise ValueError(f"margin must be in [0, 2] (fraction of the face size added per side), got {self.margin!r}.")
        if not (isinstance(self.smoothing_frames, int) and self.smoothing_frames >= 1 and self.smoothing_frames % 2 == 1):
            raise ValueError(f"smoothing_frames must be an odd integer >= 1 (a centred window; 1 turns smoothing "
                             f"off), got {self.smoothing_frames!r}.")
        if not (isinstance(self.detect_every, int) and self.detect_every >= 1):
            raise ValueError(f"detect_every must be an integer >= 1 (1 = detect on every frame), got {self.detect_every!r}.")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}.")
        if not (0.0 < self.min_confidence <= 1.0):
            raise ValueError(f"min_confidence (--face-confidence) must be in (0, 1], got {self.min_confidence!r}.")
        if self.anchor not in ("landmarks", "box"):
            raise ValueError(f"anchor must be 'landmarks' (eyes and nose) or 'box' (MTCNN box centre), got {self.anchor!r}.")
        if not (isinstance(self.min_face_size, int) and self.min_face_size >= 12):
            raise ValueError(f"min_face_size (--min-face-size) must be an integer >= 12 pixels (MTCNN's smallest "
                             f"scale), got {self.min_face_size!r}.")
        if self.face != "largest" and (isinstance(self.face, bool) or not isinstance(self.face, int) or self.face < 0):
            raise ValueError(f"face (--face) must be 'largest' or a face track number >= 0, got {self.face!r}.")
        if not (isinstance(self.detect_side, int) and (self.detect_side == 0 or self.detect_side >= 64)):
            raise ValueError(f"detect_side must be 0 (full frames) or >= 64 pixels, got {self.detect_side!r}.")

    def settings(self) -> dict[str, Any]:
        """The settings that change the detections (the key of a cached track, with the clip's hash)."""
        keys = ("detect_every", "min_confidence", "min_face_size", "detect_side", "cut_threshold")
        return {k: v for k, v in asdict(self).items() if k in keys}

    @property
    def mtcnn(self):
        """The MTCNN detector, built on first use and kept for the tracker's lifetime."""
        if "mtcnn" not in self._cache:
            from facenet_pytorch import MTCNN  # optional dependency (heavy import, needed only here)

            self._cache["mtcnn"] = MTCNN(min_face_size=12, select_largest=True, keep_all=True, device=self.device)
        return self._cache["mtcnn"]

    def detect_batch(self, frames: Tensor, frame_size: tuple[int, int] | None = None) -> list[tuple]:
        """Confident MTCNN faces of each frame, largest first: ``(boxes (k, 4), probs (k,), points (k, 5, 2))``
        in pixels of the full frames of ``frame_size`` (default: the frames' own; smaller frames are scaled
        copies, e.g. decoded small); MTCNN runs on frames scaled to at most ``detect_side``.

        Shape: frames ``(n, h, w, 3)`` uint8 -> n tuples.
        """
        height, width = int(frames.shape[1]), int(frames.shape[2])
        full_h, full_w = frame_size or (height, width)
        target = 1.0 if not self.detect_side else min(1.0, self.detect_side / max(full_h, full_w))
        arr = frames
        if target * full_w < width - 1:  # still larger than detect_side: scale down here
            size = (max(1, round(full_h * target)), max(1, round(full_w * target)))
            arr = F.interpolate(frames.permute(0, 3, 1, 2).float(), size=size, mode="bilinear", antialias=True,
                                align_corners=False).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        scale_xy = np.array([full_w / arr.shape[2], full_h / arr.shape[1]], dtype=np.float32)
        self.mtcnn.min_face_size = max(12, int(round(self.min_face_size / float(scale_xy.max()))))
        batch_boxes, batch_probs, batch_points = self.mtcnn.detect(arr.numpy(), landmarks=True)
        out = []
        for bx, pr, pt in zip(batch_boxes, batch_probs, batch_points):
            if bx is None:
                out.append((np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32)))
                continue
            bx = np.asarray(bx, dtype=np.float32).reshape(-1, 4) * np.tile(scale_xy, 2)
            pr = np.asarray(pr, dtype=np.float32).reshape(-1)
            pt = np.asarray(pt, dtype=np.float32).reshape(-1, 5, 2) * scale_xy
            side = np.maximum(bx[:, 2] - bx[:, 0], bx[:, 3] - bx[:, 1])
            keep = np.flatnonzero((pr >= self.min_confidence) & (side >= self.min_face_size * 0.8))
            out.append((bx[keep], pr[keep], pt[keep]))
        return out

    def detect_stream(self, chunks: Iterable[Tensor], source: str = "<frames>",
                      frame_size: tuple[int, int] | None = None) -> Detections:
        """Shot cuts and every confident face on the detection frames of a stream of frame chunks (scaled copies
        of frames of ``frame_size`` when given: boxes in full-frame pixels).

        Shape: chunks of ``(t, h, w, 3)`` uint8 (any ``t``) -> :class:`~avxai.tracking.Detections`.
        """
        todo, found, detect_frames, cuts, scores = [], {}, [], [], [0.0]
        n, shot_start, prev, size, last_sig = 0, 0, None, None, None

        def run(final: bool = False):
            while todo and (final or len(todo) >= self.batch_size):
                batch, todo[:] = todo[: self.batch_size], todo[self.batch_size:]
                for (f, _), res in zip(batch, self.detect_batch(torch.stack([img for _, img in batch]), frame_size)):
                    found[f] = res
                    detect_frames.append(f)

        for chunk in chunks:
            chunk = _as_frames(chunk, source)
            size = size or (int(chunk.shape[1]), int(chunk.shape[2]))
            if (int(chunk.shape[1]), int(chunk.shape[2])) != size:
                raise ValueError(f"{source}: the frame size changes from {size} to {tuple(chunk.shape[1:3])} "
                                 "within the clip; re-encode it at one size.")
            sig = frame_signature(chunk.numpy())
            scores.extend(cut_scores(sig if last_sig is None else np.concatenate([last_sig, sig]))[1:].tolist())
            last_sig = sig[-1:]
            for i in range(chunk.shape[0]):
                f = n + i
                if is_cut(scores, f, self.cut_threshold):
                    cuts.append(f)
                    if prev is not None and prev[0] not in found and (not todo or todo[-1][0] != prev[0]):
                        todo.append(prev)  # the last frame of the shot before
                    shot_start = f
                if (f - shot_start) % self.detect_every == 0:
                    todo.append((f, chunk[i]))
                prev = (f, chunk[i])
            n += chunk.shape[0]
            run()
        if prev is None:
            raise ValueError(f"face tracking on {source}: the clip has 0 frames.")
        if prev[0] not in found and (not todo or todo[-1][0] != prev[0]):
            todo.append(prev)
        run(final=True)
        detect_frames.sort()
        rows = [(f, *found[f]) for f in detect_frames]
        frames = np.concatenate([np.full(len(r[2]), r[0], np.int64) for r in rows]) if rows else np.zeros(0, np.int64)
        return Detections(frames=frames, boxes=np.concatenate([r[1] for r in rows]).astype(np.float32),
                          probs=np.concatenate([r[2] for r in rows]).astype(np.float32),
                          points=np.concatenate([r[3] for r in rows]).astype(np.float32),
                          detect_frames=np.asarray(detect_frames, np.int64), cuts=cuts, num_frames=n,
                          frame_size=tuple(frame_size or size))

    def follow(self, det: Detections, source: str = "<frames>", fps: float = 25.0):
        """Choose the face and make the crop boxes: ``(boxes (T, 4), detected, raw, points, probs, report)``."""
        n = det.num_frames
        if det.frames.size == 0:
            raise ValueError(
                f"no face found in {source}: MTCNN detected no face in any of {n} frames (ran on "
                f"{det.detect_frames.size}, min_confidence={self.min_confidence}, min_face_size={self.min_face_size}"
                " px); use a clip with a visible frontal face, or lower --face-confidence / --min-face-size.")
        ids = link_tracks(det, max_gap_frames=max(1, int(round(2 * fps))))
        choice = choose_faces(det, ids, self.face, fps)
        boxes = fill_and_smooth(det, choice, margin=self.margin, smoothing_frames=self.smoothing_frames,
                                anchor=self.anchor, fixed_size=self.fixed_size)
        hit = choice.row >= 0
        raw = np.full((n, 4), np.nan, np.float32)
        points = np.full((n, 5, 2), np.nan, np.float32)
        probs = np.full(n, np.nan, np.float32)
        raw[hit], points[hit], probs[hit] = det.boxes[choice.row[hit]], det.points[choice.row[hit]], det.probs[choice.row[hit]]
        rate = float(hit[det.detect_frames].mean())
        undetected = [{"start": a, "end": b, "start_s": round(a / fps, 3), "end_s": round(b / fps, 3)}
                      for a, b in runs(~choice.found)]
        sides = np.maximum(det.boxes[:, 2] - det.boxes[:, 0], det.boxes[:, 3] - det.boxes[:, 1])
        tracks = [{"id": t, "first_frame": int(det.frames[ids == t].min()), "last_frame": int(det.frames[ids == t].max()),
                   "detections": int((ids == t).sum()), "median_side_px": round(float(np.median(sides[ids == t])), 1)}
                  for t in range(choice.num_tracks)]
        report = {"face": self.face, "face_tracks": tracks, "shots": [0] + list(det.cuts), "switches": choice.switches,
                  "undetected": undetected, "detection_rate": rate, "frames_detected_on": int(det.detect_frames.size),
                  "settings": self.settings()}
        return boxes, hit, raw, points, probs, report

    def warn(self, report: dict, source: str, fps: float) -> None:
        """Say where the followed face was not found (its nearest box held there), and when that is most frames."""
        lost = report["undetected"]
        if not lost:
            return
        frames = sum(u["end"] - u["start"] for u in lost)
        where = ", ".join(f"{u['start_s']:.2f}-{u['end_s']:.2f} s" for u in lost[:4]) + (", ..." if len(lost) > 4 else "")
        rate = report["detection_rate"]
        few = (f"a face was found in only {100 * rate:.0f}% of the {report['frames_detected_on']} frames MTCNN ran on "
               "(lower --face-confidence / --min-face-size?); " if rate < MIN_DETECTION_RATE else "")
        warnings.warn(f"{source}: {few}the followed face (--face {self.face}) is not found in {frames} frame(s) "
                      f"({where}); the crops hold its nearest box there (metadata face_track.undetected).", stacklevel=3)

    def crop_stream(self, chunks: Iterable[Tensor], boxes: Tensor) -> Tensor:
        """Crops of ``boxes`` from a stream of frame chunks. Shape: -> ``(T, 3, crop_size, crop_size)``."""
        out, start = [], 0
        for chunk in chunks:
            out.append(crop_boxes(chunk, boxes[start:start + chunk.shape[0]], self.crop_size, self.batch_size))
            start += chunk.shape[0]
        if start != boxes.shape[0]:
            raise ValueError(f"the clip has {start} frames but its track {boxes.shape[0]}; delete the cached track")
        return torch.cat(out)

    def make_track(self, det: Detections, crops: Tensor | None, chunks: Iterable[Tensor] | None = None,
                   source: str = "<frames>", fps: float = 25.0) -> FaceTrack:
        """The :class:`FaceTrack` of ``det``: crops given, or cut from ``chunks`` (a second pass over the frames)."""
        boxes, hit, raw, points, probs, report = self.follow(det, source, fps)
        self.warn(report, source, fps)
        boxes = torch.from_numpy(boxes)
        if crops is None:
            crops = self.crop_stream(chunks, boxes)
        return FaceTrack(boxes=boxes, detected=torch.from_numpy(hit), crops=crops, frame_size=det.frame_size,
                         raw_boxes=torch.from_numpy(raw), landmarks=torch.from_numpy(points),
                         probs=torch.from_numpy(probs), source=source, report=report)

    def detect(self, frames, source: str = "<frames>") -> tuple[Tensor, Tensor, Tensor]:
        """The followed face's MTCNN box on each frame (no filling or smoothing): ``(boxes (frames, 4),
        landmarks (frames, 5, 2), probs (frames,))`` float32 pixels, NaN where it was not found."""
        frames = _as_frames(frames, source)
        _, _, raw, points, probs, _ = self.follow(self.detect_stream([frames], source), source)
        return torch.from_numpy(raw), torch.from_numpy(points), torch.from_numpy(probs)

    def track(self, frames, source: str = "<frames>", fps: float = 25.0) -> FaceTrack:
        """Detect, choose, fill, smooth and crop the face in every frame.

        Shape: frames ``(frames, height, width, 3)`` uint8 RGB -> FaceTrack with crops
        ``(frames, 3, crop_size, crop_size)``.
        """
        frames = _as_frames(frames, source)
        det = self.detect_stream([frames], source)
        return self.make_track(det, None, [frames], source, fps)


def crop_boxes(frames: Tensor, boxes: Tensor, size: int, batch_size: int = 16) -> Tensor:
    """Cut ``boxes`` out of ``frames`` and resize them to ``size x size`` (bilinear, averaging when shrinking).

    Parts of a box outside the frame are zero.

    Shape: frames ``(T, H, W, 3)`` uint8, boxes ``(T, 4)`` x0, y0, x1, y1 -> ``(T, 3, size, size)`` float in [0, 1].
    """
    from torchvision.ops import roi_align  # noqa: PLC0415

    out = []
    for start in range(0, frames.shape[0], batch_size):
        chunk = frames[start : start + batch_size].permute(0, 3, 1, 2).float().div_(255.0)
        b = boxes[start : start + batch_size].float()
        rois = torch.cat([torch.arange(b.shape[0], dtype=torch.float32)[:, None], b], dim=1)
        out.append(roi_align(chunk, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True))
    return torch.cat(out).clamp_(0.0, 1.0)


def paste_back(heatmap: Tensor, track: FaceTrack, frames: Tensor | None = None) -> Tensor:
    """Map a crop-space map back into full-frame coordinates (zeros outside the face box), for figures.

    Parameters
    ----------
    heatmap : map over the face crop of every frame (any crop resolution; resampled bilinearly).
    track : the FaceTrack that produced the crops.
    frames : optional source frames ``(T, H, W, 3)``, only checked against ``track.frame_size``.

    Shape: heatmap ``(T, h, w)`` -> ``(T, H, W)`` float32.
    """
    if not isinstance(heatmap, Tensor) or heatmap.ndim != 3 or heatmap.shape[0] != track.num_frames:
        raise ValueError(
            f"paste_back needs a heatmap (frames, h, w) with {track.num_frames} frames (one map per crop of "
            f"{track.source}), got {tuple(getattr(heatmap, 'shape', ()))}; squeeze a channel axis with heatmap[:, 0]."
        )
    height, width = track.frame_size
    if frames is not None and tuple(frames.shape[1:3]) != (height, width):
        raise ValueError(
            f"paste_back: frames are {tuple(frames.shape[1:3])} but the track of {track.source} was made on "
            f"{(height, width)} frames; pass the frames the track came from."
        )
    xs = torch.arange(width, dtype=torch.float64) + 0.5  # pixel centres
    ys = torch.arange(height, dtype=torch.float64) + 0.5
    out = []
    for start in range(0, track.num_frames, 16):  # chunks keep the sampling grid small for large frames
        boxes = track.boxes[start : start + 16].double()
        x0, y0, x1, y1 = (boxes[:, i, None] for i in range(4))
        gx = 2.0 * (xs[None] - x0) / (x1 - x0) - 1.0  # (t, W), -1..1 inside the box
        gy = 2.0 * (ys[None] - y0) / (y1 - y0) - 1.0  # (t, H)
        grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1).float()
        hm = heatmap[start : start + 16].detach().float()[:, None]
        pasted = F.grid_sample(hm, grid, mode="bilinear", padding_mode="border", align_corners=False)[:, 0]
        inside = (gx.abs() <= 1.0)[:, None, :] & (gy.abs() <= 1.0)[:, :, None]
        out.append(pasted * inside)
    return torch.cat(out)

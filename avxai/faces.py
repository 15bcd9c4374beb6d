"""Face detection and tracking over a clip: MTCNN boxes, gap filling, temporal smoothing, crops.

MTCNN (facenet-pytorch, weights inside the wheel, no download) runs on frames in batches. Frames
with no detection are filled by linear interpolation between detected frames (held constant before
the first and after the last), then position and size are smoothed with a centred moving average
so crops do not jitter. Crops are square, cut with sub-pixel accuracy (``roi_align``, which also
averages when shrinking) and resized to ``crop_size``.

Why the crop follows the eyes and nose, with one size per clip (the defaults): when the mouth
opens the jaw drops and MTCNN's box grows downwards, so a crop centred on the box, sized by the
box, would shift and zoom in step with the speech, and a model could read the speech off the
framing instead of the lips. Eyes and nose move only with the head.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["FaceTrack", "FaceTracker", "MIN_DETECTION_RATE", "crop_boxes", "paste_back", "pick_face"]


#: below this share of frames with a face, :meth:`FaceTracker.track` warns that the crops may miss the face
MIN_DETECTION_RATE = 0.5


def pick_face(boxes: np.ndarray, previous: "np.ndarray | None") -> int:
    """Which of a frame's face boxes ``(k, 4)`` (x0, y0, x1, y1, largest first) continues the track.

    Without a previous box: the largest (index 0). Otherwise the box whose centre is nearest the previous box's
    centre, in units of the previous box's size, so a second person in the frame does not take over the track
    because their face is larger.
    """
    if previous is None or len(boxes) == 1:
        return 0
    size = max(float(previous[2] - previous[0]), float(previous[3] - previous[1]), 1.0)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    prev_centre = (previous[:2] + previous[2:]) / 2.0
    return int(np.argmin(np.linalg.norm(centres - prev_centre, axis=1) / size))


@dataclass(frozen=True)
class FaceTrack:
    """One face followed through a clip.

    Attributes
    ----------
    boxes : float32 crop boxes ``x0, y0, x1, y1`` in frame pixels (square, margin included,
        smoothed; may reach outside the frame, where crops are zero).
    detected : bool, True where MTCNN ran on the frame and found the face; False where the box was
        filled from neighbouring frames (no detection, or skipped by ``detect_every``).
    crops : float32 face crops in [0, 1], RGB.
    frame_size : ``(height, width)`` of the source frames in pixels.
    raw_boxes : float32 tight MTCNN boxes before filling and smoothing, NaN where not detected.
    landmarks : float32 MTCNN landmarks (left eye, right eye, nose, mouth left, mouth right) as x, y
        pixels, NaN where not detected.
    probs : float32 MTCNN confidence of the chosen box, NaN where not detected.
    source : name of the clip, for messages.

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

    @property
    def num_frames(self) -> int:
        return int(self.boxes.shape[0])

    def __repr__(self) -> str:
        return (
            f"FaceTrack(source={self.source!r}, frames={self.num_frames}, frame_size={self.frame_size}, "
            f"crops={tuple(self.crops.shape)}, detection_rate={self.detection_rate:.2f})"
        )

    @property
    def detection_rate(self) -> float:
        """Fraction of frames where MTCNN found the face."""
        return float(self.detected.float().mean())

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


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average along axis 0, edges padded with the end values. Shape: ``(T, ...)``."""
    if window <= 1 or x.shape[0] == 1:
        return x.copy()
    half = window // 2
    padded = np.pad(x, [(half, half)] + [(0, 0)] * (x.ndim - 1), mode="edge")
    csum = np.cumsum(np.concatenate([np.zeros_like(padded[:1]), padded]), axis=0)
    return (csum[window:] - csum[:-window]) / window


@dataclass(frozen=True)
class FaceTracker:
    """Detect the largest face in every frame and follow it with a smooth square box.

    Parameters
    ----------
    crop_size : side of the output crops in pixels.
    margin : context added on each side of the MTCNN box, as a fraction of the face size
        (box side = face side * (1 + 2 * margin)).
    smoothing_frames : window of the centred moving average over position and size (odd; 1 = off).
    detect_every : run MTCNN on every n-th frame (and the last); others are interpolated.
    device : torch device for MTCNN.
    batch_size : frames per MTCNN call.
    min_confidence : MTCNN probability below which a detection is ignored.
    min_face_size : smallest face MTCNN looks for, in pixels.
    anchor : ``'landmarks'``: the crop moves with the mean of the eyes and nose landmarks (offset
        by the clip's median offset to the box centre); ``'box'``: the crop follows the box centre.
    fixed_size : one box size for the whole clip (median of detections); False: smoothed per frame.
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
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.crop_size, int) and self.crop_size >= 8 and self.crop_size % 2 == 0):
            raise ValueError(f"crop_size must be an even integer >= 8 pixels (crops are saved as h264 video, which "
                             f"needs even sizes), got {self.crop_size!r}.")
        if not (math.isfinite(self.margin) and 0.0 <= self.margin <= 2.0):
            raise ValueError(f"margin must be in [0, 2] (fraction of the face size added per side), got {self.margin!r}.")
        if not (isinstance(self.smoothing_frames, int) and self.smoothing_frames >= 1 and self.smoothing_frames % 2 == 1):
            raise ValueError(
                f"smoothing_frames must be an odd integer >= 1 (a centred window; 1 turns smoothing off), "
                f"got {self.smoothing_frames!r}."
            )
        if not (isinstance(self.detect_every, int) and self.detect_every >= 1):
            raise ValueError(f"detect_every must be an integer >= 1 (1 = detect on every frame), got {self.detect_every!r}.")
        if not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}.")
        if not (0.0 < self.min_confidence <= 1.0):
            raise ValueError(f"min_confidence must be in (0, 1], got {self.min_confidence!r}.")
        if self.anchor not in ("landmarks", "box"):
            raise ValueError(f"anchor must be 'landmarks' (eyes and nose) or 'box' (MTCNN box centre), got {self.anchor!r}.")
        if not (isinstance(self.min_face_size, int) and self.min_face_size >= 12):
            raise ValueError(f"min_face_size must be an integer >= 12 pixels (MTCNN's smallest scale), got {self.min_face_size!r}.")

    @property
    def mtcnn(self):
        """The MTCNN detector, built on first use and kept for the tracker's lifetime."""
        if "mtcnn" not in self._cache:
            from facenet_pytorch import MTCNN  # noqa: PLC0415  (heavy import, needed only here)

            self._cache["mtcnn"] = MTCNN(
                min_face_size=self.min_face_size, select_largest=True, keep_all=True, device=self.device
            )
        return self._cache["mtcnn"]

    def detect(self, frames, source: str = "<frames>") -> tuple[Tensor, Tensor, Tensor]:
        """One confident MTCNN box per frame, following one person: the largest face of the first frame with a
        face, then in each frame the face nearest the previous choice (:func:`pick_face`); no filling or smoothing.

        Returns ``(boxes, landmarks, probs)``: boxes ``(frames, 4)`` x0, y0, x1, y1 in pixels,
        landmarks ``(frames, 5, 2)`` x, y in pixels and probs ``(frames,)``, float32, NaN where no face was found.
        """
        frames = _as_frames(frames, source)
        arr = frames.numpy()
        boxes = np.full((arr.shape[0], 4), np.nan, dtype=np.float32)
        points = np.full((arr.shape[0], 5, 2), np.nan, dtype=np.float32)
        probs = np.full((arr.shape[0],), np.nan, dtype=np.float32)
        previous = None  # the box chosen in the last frame with a face
        for start in range(0, arr.shape[0], self.batch_size):
            chunk = arr[start : start + self.batch_size]
            batch_boxes, batch_probs, batch_points = self.mtcnn.detect(chunk, landmarks=True)
            for i, (bx, pr, pt) in enumerate(zip(batch_boxes, batch_probs, batch_points)):
                if bx is None:
                    continue
                bx = np.asarray(bx, dtype=np.float32).reshape(-1, 4)
                pr = np.asarray(pr, dtype=np.float32).reshape(-1)
                keep = np.flatnonzero(pr >= self.min_confidence)  # sorted largest area first
                if keep.size:
                    j = keep[pick_face(bx[keep], previous)]
                    previous = bx[j]
                    boxes[start + i] = bx[j]
                    points[start + i] = np.asarray(pt, dtype=np.float32).reshape(-1, 5, 2)[j]
                    probs[start + i] = pr[j]
        return torch.from_numpy(boxes), torch.from_numpy(points), torch.from_numpy(probs)

    def track(self, frames, source: str = "<frames>") -> FaceTrack:
        """Detect, fill gaps, smooth and crop the face in every frame.

        Parameters
        ----------
        frames : uint8 RGB frames, Tensor or numpy array.
        source : name of the clip (file name), used in error messages.

        Shape: frames ``(frames, height, width, 3)`` -> FaceTrack with crops
        ``(frames, 3, crop_size, crop_size)``.
        """
        frames = _as_frames(frames, source)
        n, height, width = int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2])
        idx = list(range(0, n, self.detect_every))
        if idx[-1] != n - 1:
            idx.append(n - 1)
        found_boxes, found_points, found_probs = self.detect(frames[idx], source)
        raw = torch.full((n, 4), float("nan"))
        points = torch.full((n, 5, 2), float("nan"))
        probs = torch.full((n,), float("nan"))
        raw[idx], points[idx], probs[idx] = found_boxes, found_points, found_probs
        detected = ~torch.isnan(probs)
        if not bool(detected.any()):
            raise ValueError(
                f"no face found in {source}: MTCNN detected no face in any of {n} frames "
                f"(ran on {len(idx)}, min_confidence={self.min_confidence}, min_face_size={self.min_face_size} px); "
                "use a clip with a visible frontal face, or lower min_confidence / min_face_size."
            )
        rate = float(detected[idx].float().mean())  # over the frames MTCNN ran on
        if rate < MIN_DETECTION_RATE:
            warnings.warn(f"{source}: a face was found in only {100 * rate:.0f}% of the {len(idx)} frames MTCNN ran on; "
                          "the track holds those boxes over the rest of the clip, so the crops may miss the face. "
                          "Check the clip, or lower min_confidence / min_face_size.", stacklevel=2)
        boxes = self._fill_and_smooth(raw.numpy().astype(np.float64), points.numpy().astype(np.float64), detected.numpy())
        crops = crop_boxes(frames, boxes, self.crop_size, self.batch_size)
        return FaceTrack(
            boxes=boxes,
            detected=detected,
            crops=crops,
            frame_size=(height, width),
            raw_boxes=raw,
            landmarks=points,
            probs=probs,
            source=source,
        )

    def _fill_and_smooth(self, raw: np.ndarray, points: np.ndarray, detected: np.ndarray) -> Tensor:
        t = np.arange(raw.shape[0], dtype=np.float64)
        d = np.flatnonzero(detected)
        centre = (raw[:, :2] + raw[:, 2:]) / 2
        ref = points[:, :3].mean(axis=1) if self.anchor == "landmarks" else centre  # eyes and nose, or box centre
        offset = np.median(centre[d] - ref[d], axis=0)  # one offset per clip: framed like the MTCNN box
        side = np.maximum(raw[:, 2] - raw[:, 0], raw[:, 3] - raw[:, 1])
        # np.interp interpolates between detected frames and holds the end values outside them.
        series = np.stack([np.interp(t, d, v[d]) for v in (ref[:, 0], ref[:, 1], side)], axis=1)
        series = _moving_average(series, self.smoothing_frames)
        if self.fixed_size:
            series[:, 2] = np.median(side[d])
        cx, cy = series[:, 0] + offset[0], series[:, 1] + offset[1]
        half = series[:, 2] * (1.0 + 2.0 * self.margin) / 2.0
        out = np.stack([cx - half, cy - half, cx + half, cy + half], axis=1)
        return torch.from_numpy(out.astype(np.float32))


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

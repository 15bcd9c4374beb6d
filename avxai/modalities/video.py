"""Face-video modality: a clip of face crops explained on a (time, height, width) grid of crop pixels.

The model sees face crops ``(batch, frames, 3, S, S)`` in [0, 1] (the house video layout); the
modality keeps them channels-second, ``(batch, 3, frames, S, S)``, as the core expects, and masks
every crop pixel of every frame. What a masked cell becomes is the perturbation:

* ``"spatial-blur[:SIGMA]"`` (default): a Gaussian blur of the frame (sigma in crop pixels),
* ``"mean-time"``: the mean face (each pixel's mean over the clip: the face without its motion),
* ``"freeze"``: the previous frame (a temporal freeze),
* ``"zero"`` (black), ``"mean"``, ``"noise:SNR"``, ``"pyramid-spatial[:SIGMA]"`` (mask-dependent blur), ...

Crops come from :class:`avxai.faces.FaceTracker`; with the track (and the full frames) kept,
:meth:`FaceVideo.paste_back` maps a crop-space map back onto the full frames for figures, and
:func:`boxes_to_crop` maps boxes given in frame pixels (a generator's mouth boxes) into crop pixels.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import Tensor

from avxai.checks import check_fps, check_video
from avxai.faces import FaceTracker, paste_back as paste_on_frames
from avxai.io.video import read_video
from avxai.modalities.base import Modality, occlusion_time_cells, occlusion_time_note
from avxai.perturbations import Perturbation

__all__ = ["FaceVideo", "boxes_to_crop", "box_masks"]


def boxes_to_crop(boxes: Tensor, crop_boxes: Tensor, crop_size: int) -> Tensor:
    """Boxes in frame pixels -> the same boxes in crop pixels, per frame.

    ``crop_boxes`` are the tracker's crop boxes (x0, y0, x1, y1 in frame pixels) that were resized to
    ``crop_size x crop_size``. The result may reach outside ``[0, crop_size]`` (not clipped).

    Shape: boxes ``(T, 4)``, crop_boxes ``(T, 4)`` -> ``(T, 4)`` float32, x0, y0, x1, y1 in crop pixels.
    """
    if boxes.shape != crop_boxes.shape or boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes {tuple(boxes.shape)} and crop_boxes {tuple(crop_boxes.shape)} must both be (frames, 4), "
                         "one box per frame of the same clip")
    b, c = boxes.double(), crop_boxes.double()
    scale_x = crop_size / (c[:, 2] - c[:, 0])
    scale_y = crop_size / (c[:, 3] - c[:, 1])
    out = torch.stack([(b[:, 0] - c[:, 0]) * scale_x, (b[:, 1] - c[:, 1]) * scale_y,
                       (b[:, 2] - c[:, 0]) * scale_x, (b[:, 3] - c[:, 1]) * scale_y], dim=1)
    return out.float()


def box_masks(boxes: Tensor, size: tuple[int, int], grow: float = 0.0) -> Tensor:
    """Soft masks of pixel coverage by per-frame boxes (anti-aliased: a pixel half inside counts 0.5).

    ``grow`` enlarges each box about its centre by that fraction of its width / height on each side
    (0.5 doubles width and height). Shape: boxes ``(T, 4)`` x0, y0, x1, y1 -> ``(T, height, width)`` float32.
    """
    height, width = size
    b = boxes.double()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    x0, x1 = b[:, 0] - grow * w, b[:, 2] + grow * w
    y0, y1 = b[:, 1] - grow * h, b[:, 3] + grow * h
    xs = torch.arange(width, dtype=torch.float64)
    ys = torch.arange(height, dtype=torch.float64)
    cover_x = (torch.minimum(xs[None] + 1, x1[:, None]) - torch.maximum(xs[None], x0[:, None])).clamp(0, 1)
    cover_y = (torch.minimum(ys[None] + 1, y1[:, None]) - torch.maximum(ys[None], y0[:, None])).clamp(0, 1)
    return (cover_y[:, :, None] * cover_x[:, None, :]).float()


class FaceVideo(Modality):
    """Face crops ``(batch, frames, 3, S, S)`` in [0, 1]; masks over ``(time, height, width)`` crop pixels.

    Parameters
    ----------
    crops : float video in [0, 1], the model's input layout.
    fps : frames per second.
    perturbation : what masked cells become (see the module docstring); default ``"spatial-blur"``
        (sigma 6 crop pixels).
    track : the :class:`avxai.faces.FaceTrack` the crops came from (batch of one), for :meth:`paste_back`.
    frames : the full frames ``(frames, H, W, 3)`` uint8 the track was made on, for figures.
    source : name of the clip (file path), kept in the metadata.

    Shape: representation ``(batch, 3, frames, S, S)``; grid ``(time, height, width)`` =
    ``(frames, S, S)``; model input ``(n, frames, 3, S, S)``; media ``{"video": (crops, fps)}``.
    """

    kind = "face-video"
    axes = ("time", "height", "width")

    def __init__(self, crops: Tensor, fps: float, *, perturbation: "str | Perturbation" = "spatial-blur",
                 track: Any = None, frames: Tensor | None = None, source: str | None = None):
        check_video(crops, "crops")
        check_fps(fps)
        if track is not None:
            if crops.shape[0] != 1:
                raise ValueError(f"a face track describes one clip; got a batch of {crops.shape[0]} crops with it "
                                 "(build one FaceVideo per clip, or drop track=)")
            if track.num_frames != crops.shape[1]:
                raise ValueError(f"the track has {track.num_frames} frames but the crops have {crops.shape[1]}")
        if frames is not None:
            if track is None:
                raise ValueError("frames= is only used with track= (to paste maps back onto them); pass the track too")
            if tuple(frames.shape[1:3]) != tuple(track.frame_size) or frames.shape[0] != track.num_frames:
                raise ValueError(f"frames {tuple(frames.shape)} do not match the track ({track.num_frames} frames of "
                                 f"{track.frame_size})")
        self.crops = crops
        self.fps = float(fps)
        self.track = track
        self.frames = frames
        self.source = source
        super().__init__(crops.transpose(1, 2), perturbation, nonnegative=True)

    # -- construction -----------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: "str | os.PathLike", tracker: Any = None, *,
                  perturbation: "str | Perturbation" = "spatial-blur", need_audio: bool = False) -> "FaceVideo":
        """Read a video file, track its face and crop it (``tracker``: a :class:`~avxai.faces.FaceTracker`,
        default ``FaceTracker()``). Raises ``ValueError`` for a missing, corrupt or faceless clip.

        The decoded :class:`~avxai.io.video.VideoClip` is kept as ``.clip`` (its audio, if any, included).
        """
        clip = read_video(path, need_audio=need_audio)
        tracker = tracker if tracker is not None else FaceTracker()
        track = tracker.track(clip.frames, source=os.fspath(path))
        video = cls(track.crops.unsqueeze(0), clip.fps, perturbation=perturbation, track=track, frames=clip.frames,
                    source=os.fspath(path))
        video.clip = clip
        return video

    # -- grid ---------------------------------------------------------------------------------------
    @property
    def num_frames(self) -> int:
        return int(self.crops.shape[1])

    @property
    def crop_size(self) -> tuple[int, int]:
        return int(self.crops.shape[-2]), int(self.crops.shape[-1])

    def occlusion_window(self, seconds: float = 0.2, fraction: float = 0.25) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Suggested occlusion (window, stride) in cells: ``seconds`` of frames by ``fraction`` of the crop side,
        sliding by the whole window (Looking to Listen occludes face patches): 16 patches per 0.2 s, so a clip
        of a few seconds takes a few hundred windows. Used by :class:`~avxai.methods.occlusion.Occlusion` when
        no window is given. On a clip longer than ``MAX_OCCLUSION_STEPS`` windows (6.4 s at 0.2 s) the windows take
        ``1 / MAX_OCCLUSION_STEPS`` of it (:func:`~avxai.modalities.base.occlusion_time_cells`)."""
        t, h, w = self.grid_shape
        frames = occlusion_time_cells(seconds, self.fps, t)
        side_h, side_w = max(1, int(round(fraction * h))), max(1, int(round(fraction * w)))
        return (frames, side_h, side_w), (frames, side_h, side_w)

    def occlusion_note(self, seconds: float = 0.2) -> str | None:
        """What the plan says when the suggested time windows grew past ``seconds`` (a long clip), else ``None``."""
        return occlusion_time_note(self.occlusion_window(seconds)[0][0], self.fps, seconds)

    def to_model_input(self, representation: Tensor) -> Tensor:
        """``(n, 3, frames, S, S)`` -> ``(n, frames, 3, S, S)`` (the model's video layout)."""
        return representation.transpose(1, 2)

    # -- mapping to frames ------------------------------------------------------------------------
    def paste_back(self, heatmap: Tensor) -> Tensor:
        """A crop-space map ``(frames, h, w)`` (any resolution) onto the full frames ``(frames, H, W)``
        (zeros outside the face box); needs ``track=``."""
        if self.track is None:
            raise ValueError("paste_back needs the face track: build the FaceVideo with track= (from_file does)")
        return paste_on_frames(heatmap, self.track, self.frames)

    def region_in_crop(self, boxes: Tensor, grow: float = 0.0) -> Tensor:
        """Masks ``(frames, S, S)`` of per-frame boxes ``(frames, 4)`` given in frame pixels (e.g. a generator's
        mouth boxes), mapped into crop pixels with the track's crop boxes; ``grow`` as in :func:`box_masks`."""
        if self.track is None:
            raise ValueError("region_in_crop needs the face track (track=) to map frame pixels into the crops")
        return box_masks(boxes_to_crop(boxes, self.track.boxes, self.crop_size[1]), self.crop_size, grow)

    # -- description --------------------------------------------------------------------------------
    def coordinates(self) -> dict[str, np.ndarray]:
        """Frame start times in seconds; crop pixel indices."""
        t, h, w = self.grid_shape
        return {"time": np.arange(t) / self.fps, "height": np.arange(h, dtype=float), "width": np.arange(w, dtype=float)}

    def units(self) -> dict[str, str]:
        return {"time": "s", "height": "px", "width": "px"}

    def media(self, representation: Tensor) -> dict[str, Any]:
        return {"video": (self.to_model_input(representation).clamp(0, 1), self.fps)}

    def metadata(self) -> dict[str, Any]:
        meta = super().metadata()
        meta.update(fps=self.fps, crop_size=list(self.crop_size), num_frames=self.num_frames,
                    duration_s=self.num_frames / self.fps, source=self.source)
        if self.track is not None:
            meta.update(crop_boxes=self.track.boxes.tolist(), frame_size=list(self.track.frame_size),
                        detection_rate=self.track.detection_rate)
        return meta

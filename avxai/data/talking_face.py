"""A talking face made from a still photograph: the mouth opens with the loudness of a speech signal.

The face is a real photograph bundled with scikit-image (``astronaut`` or ``camera``; no download).
MTCNN finds the face and the mouth corners once per photograph (cached). Each frame then

1. opens the mouth by the speech's amplitude envelope at that frame (RMS over the frame's
   ``1 / fps`` seconds, normalised by its 95th percentile): the jaw below the mouth is warped down,
   and lips, a dark mouth cavity and upper teeth are drawn as anti-aliased ellipses whose height
   follows the envelope and whose width stretches slightly with it;
2. moves the whole head by a smooth sub-pixel translation of a few pixels (seeded sinusoids).

The mouth box and the pixels the animation changes (``mouth_masks``; the jaw warp has compact
support) are known in every frame; outside the mask a frame is exactly the still, moved with the
head. A method that explains an audio-visual model can be checked against them.

Examples
--------
>>> clip = TalkingFace(face="camera", size=(128, 128), seed=0).render(speech, 16000)  # speech: (1, time)
>>> write_talking_face("talking.mp4", clip)
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avxai.io.video import VideoClip, write_video

__all__ = ["TalkingFace", "TalkingFaceClip", "speech_envelope", "write_talking_face", "FACES"]

FACES = ("astronaut", "camera")

# closed mouth of each still, in mouth widths: (centre below the corner line, half-height with lips)
_CLOSED_MOUTH = {"astronaut": (0.16, 0.2), "camera": (0.05, 0.22)}


@dataclass(frozen=True)
class TalkingFaceClip:
    """Frames of a generated talking face with its speech and the ground-truth mouth location.

    Attributes
    ----------
    frames : uint8 RGB frames.
    fps : frames per second.
    mouth_boxes : float32 box around the drawn lips, x0, y0, x1, y1 in frame pixels.
    mouth_masks : bool, pixels the animation may change in that frame: drawn lips, or moved by the
        jaw (the lips plus the chin below them); every other pixel is the still, moved with the head.
    face_boxes : float32 MTCNN face box of the still, moved with the head, in frame pixels.
    openness : float32 mouth opening in [0, 1] that drove each frame (0 closed, 1 widest).
    audio : float32 speech waveform (the input, unchanged).
    sample_rate : audio sample rate in Hz.

    Shape: frames ``(T, H, W, 3)``; mouth_boxes, face_boxes ``(T, 4)``; mouth_masks ``(T, H, W)``; openness ``(T,)``;
    audio ``(channels, samples)``.
    """

    frames: Tensor
    fps: float
    mouth_boxes: Tensor
    mouth_masks: Tensor
    face_boxes: Tensor
    openness: Tensor
    audio: Tensor
    sample_rate: int

    def __repr__(self) -> str:
        return (
            f"TalkingFaceClip(frames={tuple(self.frames.shape)}, fps={self.fps:g}, "
            f"audio={tuple(self.audio.shape)} at {self.sample_rate} Hz)"
        )

    def to_video_clip(self) -> VideoClip:
        """The frames and speech as a :class:`~avxai.io.video.VideoClip` (for ``write_video``)."""
        return VideoClip(frames=self.frames, fps=self.fps, audio=self.audio, sample_rate=self.sample_rate)

    def to_video_tensor(self) -> Tensor:
        """Frames in the model layout. Shape: ``(1, T, 3, H, W)`` float in [0, 1]."""
        return (self.frames.permute(0, 3, 1, 2).float() / 255.0).unsqueeze(0)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def speech_envelope(speech: Tensor, sample_rate: int, fps: float, num_frames: int | None = None) -> Tensor:
    """RMS amplitude of the speech over each video frame's interval ``[t / fps, (t + 1) / fps)``.

    Channels are averaged first. ``num_frames`` defaults to ``round(samples * fps / sample_rate)``;
    frames past the end of the audio get 0.

    Shape: speech ``(channels, time)`` or ``(time,)`` -> ``(num_frames,)`` float32.
    """
    wav = speech.detach().float().reshape(-1, speech.shape[-1]).mean(0)
    n = wav.shape[0]
    if num_frames is None:
        num_frames = max(1, int(round(n * fps / sample_rate)))
    edges = np.floor(np.arange(num_frames + 1) * sample_rate / fps).astype(np.int64).clip(0, n)
    csum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(wav.double() ** 2, 0)])
    lo, hi = torch.from_numpy(edges[:-1]), torch.from_numpy(edges[1:])
    count = (hi - lo).clamp(min=1).double()
    return ((csum[hi] - csum[lo]) / count).sqrt().float()


@functools.lru_cache(maxsize=None)
def _locate(face: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The still (H, W, 3) uint8, its MTCNN face box (4,) and landmarks (5, 2), computed once per face."""
    from facenet_pytorch import MTCNN  # noqa: PLC0415  (heavy import, needed only here)
    from skimage import data  # noqa: PLC0415

    img = getattr(data, face)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = np.ascontiguousarray(img[:, :, :3].astype(np.uint8))
    boxes, probs, points = MTCNN(device="cpu").detect(img, landmarks=True)
    if boxes is None:
        raise ValueError(f"no face found in skimage.data.{face}(): MTCNN detected none; use one of {FACES}.")
    best = int(np.argmax(probs))
    img.setflags(write=False)
    return img, np.asarray(boxes[best], np.float64), np.asarray(points[best], np.float64)


def _ellipse_alpha(u: Tensor, v: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Anti-aliased coverage of the ellipse ``(u / a)^2 + (v / b)^2 <= 1`` (one-pixel soft edge)."""
    a, b = a.clamp(min=1e-3), b.clamp(min=1e-3)
    f = (u / a) ** 2 + (v / b) ** 2 - 1.0
    grad = 2.0 * torch.sqrt((u / a**2) ** 2 + (v / b**2) ** 2).clamp(min=1e-6)
    return (0.5 - f / grad).clamp(0.0, 1.0)


def _smoothstep(x: Tensor) -> Tensor:
    x = x.clamp(0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class TalkingFace:
    """Generator of talking-face clips from a bundled still photograph.

    Parameters
    ----------
    face : ``'astronaut'`` (colour) or ``'camera'`` (grey, made RGB).
    size : ``(height, width)`` of the frames in pixels (even, for h264).
    seed : seed of the head motion.
    context : side of the region cut around the face, in face sizes (larger shows more background).
    head_motion_px : largest head translation in pixels (0 = still head).
    max_open : mouth opening at full loudness, as a fraction of the mouth width.
    stretch : relative widening of the mouth at full loudness.

    The closed mouth of each still (how far its centre lies below the line between the MTCNN
    mouth corners, and its half-height with the lips) was measured by eye once and is kept in
    ``_CLOSED_MOUTH``; drawn lips cover the photograph's own mouth, so its teeth never show.
    """

    face: str = "astronaut"
    size: tuple[int, int] = (224, 224)
    seed: int = 0
    context: float = 2.2
    head_motion_px: float = 2.0
    max_open: float = 0.6
    stretch: float = 0.15

    def __post_init__(self) -> None:
        if self.face not in FACES:
            raise ValueError(f"face must be one of {FACES} (stills bundled with scikit-image), got {self.face!r}.")
        size = tuple(self.size)
        if len(size) != 2 or any((not isinstance(s, int)) or s < 32 or s % 2 for s in size):
            raise ValueError(f"size must be (height, width), even integers >= 32 (h264 needs even sizes), got {self.size!r}.")
        object.__setattr__(self, "size", size)
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}.")
        if not (1.2 <= self.context <= 6.0):
            raise ValueError(f"context must be in [1.2, 6] face sizes (the face must fit in the frame), got {self.context!r}.")
        if not (0.0 <= self.head_motion_px <= 16.0):
            raise ValueError(f"head_motion_px must be in [0, 16] pixels, got {self.head_motion_px!r}.")
        if not (0.0 <= self.max_open <= 1.5):
            raise ValueError(f"max_open must be in [0, 1.5] mouth widths, got {self.max_open!r}.")
        if not (0.0 <= self.stretch <= 0.5):
            raise ValueError(f"stretch must be in [0, 0.5], got {self.stretch!r}.")

    # ------------------------------------------------------------------ geometry of the still
    def _layout(self):
        """Base image (3, Hb, Wb) with a border of ``pad`` pixels, face box and landmarks in base pixels."""
        img, box, points = _locate(self.face)
        height, width = self.size
        pad = int(math.ceil(self.head_motion_px)) + 2
        face_side = max(box[2] - box[0], box[3] - box[1])
        scale = self.context * face_side / min(height, width)  # still pixels per output pixel
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half_w, half_h = (width / 2 + pad) * scale, (height / 2 + pad) * scale
        hs, ws = img.shape[:2]
        # keep the cut inside the photograph where it fits (avoids zero borders), else centre it on the face
        cx = min(max(cx, half_w), ws - half_w) if 2 * half_w <= ws else ws / 2
        cy = min(max(cy, half_h), hs - half_h) if 2 * half_h <= hs else hs / 2
        ox, oy = cx - half_w, cy - half_h
        from torchvision.ops import roi_align  # noqa: PLC0415

        still = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255.0
        roi = torch.tensor([[0.0, ox, oy, ox + 2 * half_w, oy + 2 * half_h]], dtype=torch.float32)
        base = roi_align(still, roi, output_size=(height + 2 * pad, width + 2 * pad), sampling_ratio=-1, aligned=True)[0]
        to_base = lambda xy: (np.asarray(xy) - [ox, oy]) / scale  # noqa: E731
        face_box = np.concatenate([to_base(box[:2]), to_base(box[2:])])
        return base.clamp(0.0, 1.0), pad, face_box, to_base(points), bool(np.ptp(img, axis=2).max() > 0)

    def head_motion(self, num_frames: int, fps: float) -> Tensor:
        """Smooth head translation in pixels, two seeded sinusoids per axis (0.3-0.9 Hz).

        Shape: ``(num_frames, 2)`` (dx, dy), each within ``±head_motion_px``.
        """
        rng = np.random.default_rng(self.seed)
        freqs = rng.uniform(0.3, 0.9, size=(2, 2))
        phases = rng.uniform(0.0, 2 * np.pi, size=(2, 2))
        t = np.arange(num_frames)[:, None, None] / fps
        wave = np.sin(2 * np.pi * freqs[None] * t + phases[None])  # (T, axis, component)
        motion = self.head_motion_px * (0.6 * wave[..., 0] + 0.4 * wave[..., 1])
        return torch.from_numpy(motion.astype(np.float32))

    # ------------------------------------------------------------------ rendering
    def render(self, speech: Tensor, sample_rate: int, fps: float = 25.0, *, chunk: int = 32) -> TalkingFaceClip:
        """Animate the face with ``speech``.

        Parameters
        ----------
        speech : waveform; the number of frames is ``round(samples * fps / sample_rate)``.
        sample_rate : Hz.
        fps : frame rate of the clip.
        chunk : frames rendered at once (memory only).

        Shape: speech ``(channels, time)`` or ``(time,)`` -> frames ``(T, H, W, 3)`` uint8.
        """
        if isinstance(speech, np.ndarray):
            speech = torch.from_numpy(speech)
        if not isinstance(speech, Tensor) or speech.ndim not in (1, 2) or speech.shape[-1] == 0:
            raise ValueError(
                "speech must be a non-empty waveform tensor (channels, time) or (time,), got "
                f"{type(speech).__name__} {tuple(getattr(speech, 'shape', ()))}; for a batch, render one item at a time."
            )
        if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
            raise ValueError(f"sample_rate must be a positive integer in Hz, got {sample_rate!r}.")
        sample_rate = int(sample_rate)
        if not (isinstance(fps, (int, float)) and 1.0 <= fps <= 120.0):
            raise ValueError(f"fps must be in [1, 120], got {fps!r}.")
        audio = speech.detach().float().reshape(-1, speech.shape[-1]).contiguous()
        env = speech_envelope(audio, sample_rate, fps)
        num_frames = int(env.shape[0])
        ref = float(torch.quantile(env, 0.95))
        openness = (env / ref).clamp(0.0, 1.0) if ref > 1e-4 else torch.zeros_like(env)
        motion = self.head_motion(num_frames, fps)

        base, pad, face_box, points, colour = self._layout()
        height, width = self.size
        left, right = torch.tensor(points[3], dtype=torch.float32), torch.tensor(points[4], dtype=torch.float32)
        centre0 = (left + right) / 2 - pad  # mouth centre in frame pixels before head motion
        mouth_w = float(torch.linalg.norm(right - left))
        theta = math.atan2(float(right[1] - left[1]), float(right[0] - left[0]))
        eu = torch.tensor([math.cos(theta), math.sin(theta)])  # along the mouth
        ev = torch.tensor([-math.sin(theta), math.cos(theta)])  # down the face

        offset, rest_h = (f * mouth_w for f in _CLOSED_MOUTH[self.face])
        # colours: lips from the skin under the nose, dark cavity, light teeth
        nx, ny = (int(round(c)) for c in points[2])
        r = max(1, int(round(0.08 * mouth_w)))
        skin = base[:, max(0, ny + r) : ny + 3 * r + 1, max(0, nx - r) : nx + r + 1].reshape(3, -1).median(1).values
        lip = skin * (torch.tensor([0.82, 0.52, 0.52]) if colour else 0.6)
        cavity = torch.tensor([0.16, 0.04, 0.05]) if colour else torch.full((3,), 0.08)
        teeth = torch.tensor([0.88, 0.86, 0.8]) if colour else torch.full((3,), 0.85)

        ys = torch.arange(height, dtype=torch.float32) + 0.5
        xs = torch.arange(width, dtype=torch.float32) + 0.5
        qy, qx = torch.meshgrid(ys, xs, indexing="ij")
        q = torch.stack([qx, qy], dim=-1)  # (H, W, 2) pixel centres
        hb, wb = base.shape[1:]
        out_frames, mouth_boxes, masks = [], [], []
        for start in range(0, num_frames, chunk):
            o = openness[start : start + chunk][:, None, None]  # (t, 1, 1)
            d = motion[start : start + chunk]  # (t, 2)
            centre = centre0[None] + d  # (t, 2) corner midpoint
            rel = q[None] - centre[:, None, None, :]  # (t, H, W, 2)
            u, v = rel @ eu, rel @ ev  # along the mouth, down the face (pixels)
            open_h = self.max_open * mouth_w * o  # cavity height
            cav_h = 0.5 * open_h + 0.5  # cavity half-height; a one-pixel seam between closed lips
            lips_h = torch.clamp(cav_h + 0.12 * mouth_w, min=rest_h)  # lips grow once the cavity fills them
            mid = offset + 0.8 * (lips_h - rest_h)  # the mouth opens mostly downwards
            jaw = 1.8 * (lips_h - rest_h)  # so the lower lip and chin drop by this much
            # jaw warp: below the mouth the face moves down by `jaw`; the weights have compact support
            # (zero beyond 1.3 mouth widths sideways and 1.9 below the mouth), so nothing else moves
            wu = (1.0 - (u / (1.3 * mouth_w)) ** 2).clamp(min=0.0) ** 2
            ramp = max(rest_h, 0.3 * mouth_w)
            wv = _smoothstep((v - offset) / ramp) * (1.0 - _smoothstep((v - offset - 0.9 * mouth_w) / mouth_w))
            drop = jaw * wu * wv
            src = q[None] + pad - d[:, None, None, :] - drop[..., None] * ev
            grid = torch.stack([2 * src[..., 0] / wb - 1, 2 * src[..., 1] / hb - 1], dim=-1)
            img = F.grid_sample(base.expand(len(d), -1, -1, -1), grid, mode="bilinear", padding_mode="border", align_corners=False)

            half_w = 0.5 * mouth_w * (1.0 + self.stretch * o)
            vm = v - mid
            a_lip = _ellipse_alpha(u, vm, 1.08 * half_w, lips_h)
            a_cav = torch.minimum(_ellipse_alpha(u, vm, 0.92 * half_w, cav_h), a_lip)  # stays inside the lips
            teeth_h = torch.minimum(0.3 * open_h, torch.tensor(0.12 * mouth_w))
            a_teeth = a_cav * (0.5 - (vm + cav_h - teeth_h)).clamp(0.0, 1.0)
            shade = 0.9 + 0.2 * _smoothstep(0.5 + vm / (2 * lips_h))  # lower lip catches more light
            img = img * (1 - a_lip[:, None]) + (lip[None, :, None, None] * shade[:, None]) * a_lip[:, None]
            for alpha, colour_ in ((a_cav, cavity), (a_teeth, teeth)):
                img = img * (1 - alpha[:, None]) + colour_[None, :, None, None] * alpha[:, None]
            out_frames.append((img.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1))
            masks.append((a_lip > 0) | (drop > 0))

            # bounding box of the outer lip ellipse (rotated by theta)
            a_o, b_o = 1.08 * half_w[:, 0, 0], lips_h[:, 0, 0]
            ex = torch.sqrt((a_o * eu[0]) ** 2 + (b_o * ev[0]) ** 2)
            ey = torch.sqrt((a_o * eu[1]) ** 2 + (b_o * ev[1]) ** 2)
            mc = centre + mid[:, 0] * ev
            mouth_boxes.append(torch.stack([mc[:, 0] - ex, mc[:, 1] - ey, mc[:, 0] + ex, mc[:, 1] + ey], dim=1))

        limits = torch.tensor([width, height, width, height], dtype=torch.float32)
        mouth = torch.cat(mouth_boxes).clamp(min=torch.zeros(4), max=limits)
        faces = (torch.from_numpy(face_box).float() - pad)[None] + motion.repeat(1, 2)
        return TalkingFaceClip(
            frames=torch.cat(out_frames),
            fps=float(fps),
            mouth_boxes=mouth.float(),
            mouth_masks=torch.cat(masks),
            face_boxes=faces.float(),
            openness=openness.float(),
            audio=audio,
            sample_rate=sample_rate,
        )


def write_talking_face(path: str | os.PathLike, clip: TalkingFaceClip) -> None:
    """Write the clip as an mp4 (h264 video, the speech as its aac audio track)."""
    write_video(path, clip.to_video_clip())

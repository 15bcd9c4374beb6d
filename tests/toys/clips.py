"""Generated video clips for the face tracker and the video reader: real face photographs (scikit-image's
``astronaut`` and ``camera``, public domain, no download) pasted into frames, moved, cut between, written with
PyAV (rotation metadata, a damaged packet) and given sound from the bundled assets.

Every clip's truth is known: where each face is in each frame (its pasted square) and where the cuts are.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from avxai.data.talking_face import _locate
from avxai.io.video import VideoClip, write_video

__all__ = ["face_patch", "background", "render", "write_clip", "corrupt_packet", "tone"]


@functools.lru_cache(maxsize=None)
def face_patch(name: str, side: int) -> np.ndarray:
    """A square of side ``side`` pixels around the photograph's face (MTCNN's box with 30 % margin).

    Shape: ``(side, side, 3)`` uint8.
    """
    img, box, _ = _locate(name)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = 0.65 * max(box[2] - box[0], box[3] - box[1])
    rois = torch.tensor([[0.0, cx - half, cy - half, cx + half, cy + half]], dtype=torch.float32)
    from torchvision.ops import roi_align  # noqa: PLC0415  (torchvision, as avxai.faces)

    crop = roi_align(torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float(), rois, (side, side), aligned=True)[0]
    return crop.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def background(height: int, width: int, shade: int = 0) -> np.ndarray:
    """A smooth coloured gradient, one colour scheme per ``shade`` (shots differ). Shape: ``(H, W, 3)`` uint8."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = [(60, 120, 170), (170, 90, 60), (70, 160, 80), (150, 150, 40)][shade % 4]
    img = np.stack([base[c] + 40 * np.sin(x / width * math.pi * (c + 1)) + 30 * y / height for c in range(3)], -1)
    return img.clip(0, 255).astype(np.uint8)


def render(num_frames: int, size: tuple[int, int], faces: list[tuple[str, np.ndarray]],
           shades: np.ndarray | None = None) -> torch.Tensor:
    """Frames with faces pasted at ``(x0, y0, side)`` per frame (rows of NaN: the face is absent; parts
    outside the frame are cut). ``shades``: background scheme per frame (a change is a shot cut).

    Shape: faces' positions ``(num_frames, 3)``; -> ``(num_frames, H, W, 3)`` uint8.
    """
    height, width = size
    shades = np.zeros(num_frames, int) if shades is None else shades
    out = np.empty((num_frames, height, width, 3), np.uint8)
    for t in range(num_frames):
        frame = background(height, width, int(shades[t])).copy()
        for name, pos in faces:
            if np.isnan(pos[t]).any():
                continue
            x0, y0, side = (int(round(v)) for v in pos[t])
            patch = face_patch(name, side)
            fx0, fy0, fx1, fy1 = max(x0, 0), max(y0, 0), min(x0 + side, width), min(y0 + side, height)
            if fx1 > fx0 and fy1 > fy0:
                frame[fy0:fy1, fx0:fx1] = patch[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
        out[t] = frame
    return torch.from_numpy(out)


def tone(seconds: float, sample_rate: int = 8000, channels: int = 1) -> torch.Tensor:
    """A syllable-like modulated tone. Shape: ``(channels, samples)`` float32."""
    t = torch.arange(int(round(seconds * sample_rate))) / sample_rate
    wav = 0.3 * torch.sin(2 * math.pi * 220 * t) * torch.sin(math.pi * 3 * t) ** 2
    return wav.repeat(channels, 1).float()


def write_clip(path, frames: torch.Tensor, fps: float = 25.0, *, sample_rate: int | None = 8000, channels: int = 1,
               rotation: int = 0, audio: torch.Tensor | None = None):
    """Write ``frames`` as an mp4 with a tone (or ``audio``) as long as the video; ``sample_rate=None``: silent."""
    sound = None
    if sample_rate is not None:
        sound = audio if audio is not None else tone(frames.shape[0] / fps, sample_rate, channels)
    write_video(path, VideoClip(frames, fps, sound, sample_rate if sound is not None else None), rotation=rotation)
    return path


def corrupt_packet(src, dst, kind: str = "video", nth: int = 10):
    """Copy ``src`` to ``dst`` with the ``nth`` packet (1-based, in file order) of stream ``kind`` replaced by
    bytes no decoder accepts (a damaged packet, as a bad sector or a broken download leaves one)."""
    import av  # noqa: PLC0415  (PyAV, as avxai.io)

    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        streams = {s.index: o.add_stream_from_template(s) for s in i.streams}
        count = 0
        for p in i.demux():
            if p.dts is None:
                continue
            if p.stream.type == kind:
                count += 1
            if p.stream.type == kind and count == nth:
                q = av.Packet(bytes([0xFF, 0xFF, 0x00, 0x10]) + b"\xde\xad" * max(4, p.size // 2))
                q.pts, q.dts, q.duration, q.time_base, q.is_keyframe = p.pts, p.dts, p.duration, p.time_base, p.is_keyframe
                q.stream = streams[p.stream.index]
                o.mux(q)
            else:
                p.stream = streams[p.stream.index]
                o.mux(p)
    return dst


def drifting_face_clip(path, num_frames: int = 50, size: tuple[int, int] = (160, 240)):
    """A clip of the astronaut's face (90 px) drifting one pixel a frame to the right, with a tone: what the
    segment-wise AV tests cut into segments. Returns the written path. Shape: ``num_frames`` frames of ``size``."""
    pos = np.tile([[70.0, 30.0, 90.0]], (num_frames, 1))
    pos[:, 0] += np.arange(num_frames)
    return write_clip(path, render(num_frames, size, [("astronaut", pos)]))

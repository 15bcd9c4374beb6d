"""Video files as a stream: probe the headers, decode frames chunk by chunk, read the audio track alone.

The one place (with :mod:`avxai.io.video`) that talks to FFmpeg through PyAV.

* :func:`probe_video`: frame rate, frame count, size, rotation and the audio track's rate, channels and
  duration, from the headers and the first frame only (milliseconds), so a task can check every input
  requirement before the slow part.
* :func:`iter_frames`: uint8 RGB frames ``(chunk, height, width, 3)``, in display orientation (the
  container's rotation metadata applied, as players do), optionally converted to another frame rate
  (each output frame is the source frame nearest its time, as FFmpeg's ``fps`` filter does). A packet the
  decoder refuses (an isolated damaged packet) is skipped, as FFmpeg and players skip it: the frame before
  is repeated so the frames keep their times, and a :class:`DecodeReport` counts the packets and says where.
* :func:`read_audio_track`: the first audio track ``(channels, samples)`` float32 at its own rate; a damaged
  packet becomes silence of its duration, so the sound stays in sync.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from avxai.safety import open_regular

__all__ = ["VideoInfo", "DecodeReport", "FrameSource", "LazyFrames", "probe_video", "iter_frames", "read_audio_track", "open_container"]

#: more than this share of a stream's packets undecodable: the file is refused as corrupt, not patched over
MAX_BAD_PACKET_SHARE = 0.1
#: frames per decoded chunk when a :class:`FrameSource` fetches the frames a figure shows
SOURCE_CHUNK_FRAMES = 4


def _av():
    try:
        import av  # noqa: PLC0415  (optional dependency: PyAV)
    except ImportError as e:  # pragma: no cover - av is a hard dependency
        raise ImportError("reading and writing video needs PyAV: pip install av") from e
    return av


def open_container(path: "str | os.PathLike", max_bytes: int | None = None):
    """Open a video file for reading after the safety checks (a regular file within the size cap)."""
    av = _av()
    path = os.fspath(path)
    if not os.path.lexists(path):
        raise ValueError(f"video file not found: {path!r}; check the path (relative paths are from {os.getcwd()!r}).")
    open_regular(path, what="video file", kind="video", max_bytes=max_bytes).close()  # type and size, unread
    try:
        return av.open(path)
    except av.FFmpegError as e:
        raise ValueError(f"cannot read video file {path!r}: it is corrupt or not a video FFmpeg understands ({e}).") from e


@dataclass(frozen=True)
class VideoInfo:
    """What a video file's headers (and its first frame) say.

    width, height : display size in pixels (after rotation); rotation : degrees counter-clockwise the
    container asks players to rotate the decoded frames by (0, 90, 180, 270); num_frames : declared frame
    count (0 when the container does not say; then estimated from the duration); audio_* : ``None`` without
    an audio track.
    """

    path: str
    fps: float | None
    num_frames: int
    width: int
    height: int
    rotation: int
    duration_s: float
    audio_rate: int | None = None
    audio_channels: int | None = None
    audio_duration_s: float | None = None
    audio_offset_s: float = 0.0

    @property
    def has_audio(self) -> bool:
        return self.audio_rate is not None


def _quarter_turns(rotation: float) -> int:
    """Counter-clockwise display rotation in degrees -> quarter turns for :func:`numpy.rot90` (0..3)."""
    return int(round(float(rotation or 0) / 90.0)) % 4


def probe_video(path: "str | os.PathLike", max_bytes: int | None = None) -> VideoInfo:
    """The file's stream properties without decoding it (only its first video frame, for the rotation).

    Raises ``ValueError`` for a missing, unreadable or video-less file.
    """
    av = _av()
    path = os.fspath(path)
    container = open_container(path, max_bytes)
    with container:
        if not container.streams.video:
            raise ValueError(f"{path!r} has no video stream (streams: {[s.type for s in container.streams] or 'none'}); "
                             "pass a video file.")
        vs = container.streams.video[0]
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        fps = float(rate) if rate else None
        rotation, width, height = 0, int(vs.codec_context.width or 0), int(vs.codec_context.height or 0)
        try:
            for frame in container.decode(vs):
                rotation = int(round(frame.rotation or 0))
                width, height = frame.width, frame.height
                break
        except av.FFmpegError:
            pass  # the full decode says what is wrong, with the packets' times
        if _quarter_turns(rotation) % 2:
            width, height = height, width
        duration = None
        if vs.duration is not None and vs.time_base is not None:
            duration = float(vs.duration * vs.time_base)
        elif container.duration is not None:
            duration = container.duration / 1e6
        frames = int(vs.frames or 0) or (int(round(duration * fps)) if duration and fps else 0)
        duration = duration if duration is not None else (frames / fps if fps else 0.0)
        info = dict(path=path, fps=fps, num_frames=frames, width=width, height=height,
                    rotation=_quarter_turns(rotation) * 90, duration_s=float(duration))
        if container.streams.audio:
            a = container.streams.audio[0]
            a_duration = float(a.duration * a.time_base) if a.duration is not None and a.time_base else None
            offset = 0.0
            if a.start_time is not None and vs.start_time is not None:
                offset = float(a.start_time * a.time_base) - float(vs.start_time * vs.time_base)
            info.update(audio_rate=int(a.rate), audio_channels=int(a.channels), audio_duration_s=a_duration,
                        audio_offset_s=offset)
    return VideoInfo(**info)


@dataclass
class DecodeReport:
    """Packets a decoder refused and skipped: their stream and time in seconds."""

    path: str
    skipped: list[tuple[str, float]] = field(default_factory=list)
    packets: dict[str, int] = field(default_factory=dict)
    repeated_frames: int = 0

    def add(self, kind: str, seconds: float) -> None:
        self.skipped.append((kind, seconds))

    def check(self, kind: str) -> None:
        """``ValueError`` when more than :data:`MAX_BAD_PACKET_SHARE` of ``kind``'s packets were undecodable."""
        bad = sum(1 for k, _ in self.skipped if k == kind)
        total = max(1, self.packets.get(kind, 0))
        if bad and bad > MAX_BAD_PACKET_SHARE * total:
            raise ValueError(f"cannot decode video file {self.path!r}: {bad} of {total} {kind} packets are undecodable "
                             "(more than isolated damage): the file is corrupt or truncated; use an intact copy.")

    def warn(self) -> None:
        """One warning that counts the skipped packets per stream and says where they were."""
        for kind in ("video", "audio"):
            times = [t for k, t in self.skipped if k == kind]
            if not times:
                continue
            where = ", ".join(f"{t:.2f} s" for t in times[:5]) + (", ..." if len(times) > 5 else "")
            fill = (f"the frame before is shown in its place ({self.repeated_frames} frame(s))" if kind == "video"
                    else "silence fills their duration")
            warnings.warn(f"{self.path}: skipped {len(times)} undecodable {kind} packet(s) of "
                          f"{self.packets.get(kind, 0)} at {where}, as FFmpeg and players do; {fill}.", stacklevel=3)


def _seconds(pts, time_base) -> float | None:
    return None if pts is None or time_base is None else float(pts * time_base)


def iter_frames(path: "str | os.PathLike", *, fps: float | None = None, chunk: int = 32,
                max_bytes: int | None = None, report: DecodeReport | None = None,
                max_side: int | None = None) -> Iterator[Tensor]:
    """Decode the video stream as a stream of chunks of uint8 RGB frames in display orientation.

    Parameters
    ----------
    fps : convert to this frame rate (each output frame is the source frame nearest its start time);
        ``None``: the file's own frames.
    chunk : frames per yielded chunk.
    report : a :class:`DecodeReport` to fill (skipped packets); it warns and checks at the end either way.
    max_side : scale the frames down (FFmpeg's scaler, while decoding) so their longer side is at most this.

    Shape: yields ``(<= chunk, height, width, 3)`` uint8.
    """
    av = _av()
    path = os.fspath(path)
    own = report is None  # a report of its own: warn about it here
    report = DecodeReport(path) if own else report
    container = open_container(path, max_bytes)
    pending: list[np.ndarray] = []
    with container:
        if not container.streams.video:
            raise ValueError(f"{path!r} has no video stream; pass a video file.")
        vs = container.streams.video[0]
        vs.thread_type = "AUTO"
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        if rate is None:
            raise ValueError(f"{path!r} declares no frame rate; it needs a constant frame rate (re-encode it).")
        src_fps = float(rate)
        ratio = src_fps / float(fps) if fps else 1.0  # source frames per output frame
        start = _seconds(vs.start_time, vs.time_base) or 0.0
        index, out_index, last = -1, 0, None  # last source frame index placed, next output frame, its pixels

        def place(img: np.ndarray, i: int):
            nonlocal out_index
            while math.floor(out_index * ratio + 0.5) <= i:  # output frames whose nearest source frame is i
                pending.append(img)
                out_index += 1

        try:
            for packet in container.demux(vs):
                if packet.size:  # the last, empty packet flushes the decoder
                    report.packets["video"] = report.packets.get("video", 0) + 1
                try:
                    frames = packet.decode()
                except av.InvalidDataError:
                    report.add("video", (_seconds(packet.pts, vs.time_base) or 0.0) - start)
                    continue
                for frame in frames:
                    t = _seconds(frame.pts, vs.time_base)
                    i = index + 1 if t is None else max(index + 1, int(round((t - start) * src_fps)))
                    if max_side and max(frame.width, frame.height) > max_side:
                        k = max_side / max(frame.width, frame.height)
                        img = frame.to_ndarray(format="rgb24", width=max(1, round(frame.width * k)),
                                               height=max(1, round(frame.height * k)), interpolation="AREA")
                    else:
                        img = frame.to_ndarray(format="rgb24")
                    turns = _quarter_turns(frame.rotation)
                    if turns:
                        img = np.ascontiguousarray(np.rot90(img, turns))
                    if last is not None:
                        for gap in range(index + 1, i):  # frames lost with a skipped packet: repeat the last one
                            report.repeated_frames += 1
                            place(last, gap)
                    place(img, i)
                    index, last = i, img
                    while len(pending) >= chunk:
                        yield torch.from_numpy(np.stack(pending[:chunk]))
                        del pending[:chunk]
        except av.FFmpegError as e:
            raise ValueError(f"cannot decode video file {path!r}: the file is corrupt or truncated ({e}).") from e
    report.check("video")
    if own:
        report.warn()
    if pending:
        yield torch.from_numpy(np.stack(pending))
    if index < 0:
        raise ValueError(f"{path!r} has a video stream but no frame could be decoded; the file is empty or truncated.")


def read_audio_track(path: "str | os.PathLike", *, max_bytes: int | None = None,
                     report: DecodeReport | None = None) -> tuple[Tensor, int] | None:
    """The first audio track as float32 ``(channels, samples)`` at its own rate, or ``None`` without one.

    Trimmed to where the container's last audio packet ends (the codec's end padding removed; FFmpeg
    removes the start padding). A damaged packet is skipped and silence of its duration takes its place.
    """
    av = _av()
    path = os.fspath(path)
    own = report is None
    report = DecodeReport(path) if own else report
    container = open_container(path, max_bytes)
    with container:
        if not container.streams.audio:
            return None
        a = container.streams.audio[0]
        rate, channels = int(a.rate), int(a.channels)
        resampler = av.AudioResampler(format="fltp", layout=a.layout.name, rate=rate)
        chunks: list[np.ndarray] = []
        written = 0  # samples so far
        audio_end = None
        origin = a.start_time or 0
        try:
            for packet in container.demux(a):
                if packet.size:  # the last, empty packet flushes the decoder
                    report.packets["audio"] = report.packets.get("audio", 0) + 1
                if packet.pts is not None and packet.duration:
                    end = packet.pts + packet.duration
                    audio_end = end if audio_end is None else max(audio_end, end)
                try:
                    frames = packet.decode()
                except av.InvalidDataError:
                    at = _seconds(packet.pts - origin, a.time_base) if packet.pts is not None else written / rate
                    report.add("audio", at)
                    if packet.pts is not None and a.time_base is not None:
                        gap = int(round(float((packet.pts - origin + (packet.duration or 0)) * a.time_base) * rate))
                        if gap > written:
                            chunks.append(np.zeros((channels, gap - written), np.float32))
                            written = gap
                    continue
                for frame in frames:
                    for rf in resampler.resample(frame):
                        arr = rf.to_ndarray()
                        chunks.append(arr)
                        written += arr.shape[1]
            for rf in resampler.resample(None):
                arr = rf.to_ndarray()
                chunks.append(arr)
                written += arr.shape[1]
        except av.FFmpegError as e:
            raise ValueError(f"cannot decode the audio of {path!r}: the file is corrupt or truncated ({e}).") from e
        audio = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
        end = audio_end - origin if audio_end is not None else a.duration
        if end is not None and a.time_base is not None:
            declared = int(round(float(end * a.time_base) * rate))
            if 0 < declared < audio.shape[1]:
                audio = audio[:, :declared]
    report.check("audio")
    if own:
        report.warn()
    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), rate


def rate_fraction(fps: float) -> Fraction:
    """A frame rate as the fraction FFmpeg stores (29.97 -> 30000/1001)."""
    return Fraction(fps).limit_denominator(1001)


class LazyFrames:
    """What figure and crop code read of a ``(frames, height, width, 3)`` uint8 tensor, for frames decoded only when
    indexed (``shape``, ``dtype``, ``len``, ``dim()``; ``detach()`` / ``cpu()`` are the object itself)."""

    shape: tuple
    dtype = torch.uint8
    ndim = 4

    def __len__(self) -> int:
        return self.shape[0]

    def dim(self) -> int:
        return 4

    def detach(self) -> "LazyFrames":
        return self

    def cpu(self) -> "LazyFrames":
        return self


class FrameSource(LazyFrames):
    """The frames of a video file, decoded when indexed: a long clip's frames are never held whole. Indexing
    with an int, a slice or a list decodes the file once for all the frames asked for (figures show a few).

    Shape: ``shape`` ``(frames, height, width, 3)``; ``source[i]`` ``(height, width, 3)`` uint8,
    ``source[[i, j]]`` ``(2, height, width, 3)``.
    """

    def __init__(self, path: "str | os.PathLike", fps: float | None, num_frames: int, frame_size: tuple[int, int]):
        self.path, self.fps = os.fspath(path), fps
        self.shape = torch.Size((int(num_frames), int(frame_size[0]), int(frame_size[1]), 3))
        self._kept: dict[int, Tensor] = {}
        #: decoded along with the first frame asked for: the 8 frames a figure strip shows (one pass for all)
        self.prefetch = sorted({int(i) for i in np.linspace(0, max(self.shape[0] - 1, 0), 8).round()})

    def frames(self, indices) -> Tensor:
        """The frames at ``indices``, decoding the file once for those not kept. Shape: ``(k, H, W, 3)``."""
        wanted = [int(i) % self.shape[0] for i in indices]
        missing = sorted(set(wanted) - set(self._kept))
        if missing and len(self._kept) == 0:
            missing = sorted(set(missing) | set(self.prefetch))
        if missing:
            todo, start = set(missing), 0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the track's decoding pass already warned about damaged packets
                # a few frames per chunk: the pass decodes the whole clip up to the last wanted frame, and 64 frames
                # of 720p held twice (the decoded list and its stack) were 0.35 GB for a strip of eight
                for chunk in iter_frames(self.path, fps=self.fps, chunk=SOURCE_CHUNK_FRAMES):
                    for i in range(chunk.shape[0]):
                        if start + i in todo:
                            self._kept[start + i] = chunk[i].clone()
                    start += chunk.shape[0]
                    if start > missing[-1]:
                        break
        return torch.stack([self._kept[i] for i in wanted])

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self.frames([index])[0]
        if isinstance(index, slice):
            return self.frames(range(*index.indices(self.shape[0])))
        return self.frames(np.asarray(index).reshape(-1).tolist())

    def __repr__(self) -> str:
        return f"FrameSource({self.path!r}, shape={tuple(self.shape)})"

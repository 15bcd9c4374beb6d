"""Video files: read and write mp4 (h264 + aac) with PyAV.

torchvision 0.26 has no video reader, so this module is the one place that talks to FFmpeg.
Frames are kept as uint8 ``(frames, height, width, 3)`` RGB, as decoded; use
:meth:`VideoClip.to_video_tensor` for the model layout ``(batch, frames, channels, height, width)``
float in [0, 1].
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from torch import Tensor

from avxai.checks import check_av_alignment, check_fps, check_sample_rate
from avxai.io.video_stream import DecodeReport, iter_frames, probe_video, rate_fraction, read_audio_track

__all__ = ["VideoClip", "read_video", "write_video", "check_av_alignment", "probe_video", "iter_frames",
           "read_audio_track"]


@dataclass(frozen=True)
class VideoClip:
    """Decoded video frames with an optional audio track.

    Attributes
    ----------
    frames : Tensor
        uint8 RGB frames.
    fps : float
        Frames per second (constant frame rate assumed).
    audio : Tensor or None
        float32 waveform in [-1, 1], ``None`` when the clip has no sound.
    sample_rate : int or None
        Audio sample rate in Hz; set exactly when ``audio`` is set.

    Shape: frames ``(frames, height, width, 3)``; audio ``(channels, samples)``.
    """

    frames: Tensor
    fps: float
    audio: Tensor | None = None
    sample_rate: int | None = None

    def __post_init__(self) -> None:
        f = self.frames
        if not isinstance(f, Tensor) or f.dtype != torch.uint8 or f.ndim != 4 or f.shape[-1] != 3:
            got = f"{type(f).__name__} {getattr(f, 'dtype', '')} {tuple(getattr(f, 'shape', ()))}"
            raise ValueError(
                f"VideoClip.frames must be a uint8 tensor (frames, height, width, 3) in RGB, got {got}; "
                "convert with (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)."
            )
        if f.shape[0] == 0:
            raise ValueError("VideoClip.frames is empty (0 frames); a clip needs at least one frame.")
        check_fps(self.fps, "VideoClip.fps")
        if (self.audio is None) != (self.sample_rate is None):
            raise ValueError(
                "VideoClip.audio and VideoClip.sample_rate go together: set both (waveform and its rate in Hz) "
                f"or neither; got audio={'set' if self.audio is not None else None}, sample_rate={self.sample_rate!r}."
            )
        if self.audio is not None:
            a = self.audio
            if not isinstance(a, Tensor) or a.dtype != torch.float32 or a.ndim != 2:
                raise ValueError(
                    "VideoClip.audio must be a float32 tensor (channels, samples), got "
                    f"{type(a).__name__} {getattr(a, 'dtype', '')} {tuple(getattr(a, 'shape', ()))}; "
                    "a mono waveform of shape (samples,) becomes (1, samples) with wav[None]."
                )
            check_sample_rate(int(self.sample_rate), "VideoClip.sample_rate")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def __repr__(self) -> str:
        audio = "None" if self.audio is None else f"{tuple(self.audio.shape)} at {self.sample_rate} Hz"
        return f"VideoClip(frames={tuple(self.frames.shape)}, fps={self.fps:g}, audio={audio})"

    @property
    def frame_size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def duration_s(self) -> float:
        """Video duration in seconds, ``frames / fps``."""
        return self.num_frames / float(self.fps)

    def frame_times(self) -> Tensor:
        """Start time of each frame in seconds, ``arange(frames) / fps``.

        Shape: ``(frames,)`` float64.
        """
        return torch.arange(self.num_frames, dtype=torch.float64) / float(self.fps)

    def to_video_tensor(self) -> Tensor:
        """Frames in the model layout, float in [0, 1].

        Shape: ``(1, frames, 3, height, width)``.
        """
        return (self.frames.permute(0, 3, 1, 2).float() / 255.0).unsqueeze(0)


def _av():
    try:
        import av  # noqa: PLC0415  (optional heavy import kept local)
    except ImportError as e:  # pragma: no cover - av is a hard dependency
        raise ImportError("reading and writing video needs PyAV: pip install av") from e
    return av


def read_video(path: str | os.PathLike, *, need_audio: bool = False, max_bytes: int | None = None,
               fps: float | None = None) -> VideoClip:
    """Decode every frame (and the first audio track, if any) of a video file.

    Parameters
    ----------
    path : path of the file (any container FFmpeg reads: mp4, mkv, avi, webm, ...).
    need_audio : raise ``ValueError`` when the file has no audio track.
    max_bytes : size cap (default :func:`avxai.safety.max_bytes_for` ``"video"``: 2 GiB, or
        ``AVXAI_MAX_VIDEO_MB``); only a regular file within it is read (a FIFO or a device is refused unread).
    fps : convert the frames to this frame rate (nearest frame in time, FFmpeg's ``fps`` filter); ``None``:
        the file's own rate.

    Returns
    -------
    VideoClip with uint8 RGB frames ``(frames, height, width, 3)`` in display orientation (the container's
    rotation metadata applied); audio ``(channels, samples)`` float32 at the file's own sample rate (no
    resampling), trimmed to where the container's last audio packet ends. Isolated undecodable packets are
    skipped with one warning that counts them and says where (:class:`~avxai.io.video_stream.DecodeReport`).
    """
    path = os.fspath(path)
    info = probe_video(path, max_bytes)
    if need_audio and not info.has_audio:
        raise ValueError(f"{path!r} has no audio track, but the sound is needed here (an audio-visual model hears the "
                         "clip's own audio); use a clip with an audio track.")
    if info.fps is None:
        raise ValueError(f"{path!r} declares no frame rate; it needs a constant frame rate (re-encode it).")
    if abs(info.audio_offset_s) > 1.0 / info.fps:
        raise ValueError(f"the audio of {path!r} starts {info.audio_offset_s * 1000:+.0f} ms from its first video "
                         "frame (more than one frame): avxai reads both from t = 0 and would pair sound and faces out "
                         "of sync; re-mux the clip with its streams aligned.")
    report = DecodeReport(path)
    frames = torch.cat(list(iter_frames(path, fps=fps, chunk=64, max_bytes=max_bytes, report=report)))
    track = read_audio_track(path, max_bytes=max_bytes, report=report) if info.has_audio else None
    report.warn()
    decoded = round(frames.shape[0] * info.fps / fps) if fps else frames.shape[0]  # in source frames
    if info.num_frames and decoded + 1 < info.num_frames:
        raise ValueError(f"{path!r} declares {info.num_frames} frames but only {decoded} could be decoded; the file "
                         "is truncated (an interrupted copy or download?): use the complete file.")
    audio, sample_rate = track if track is not None else (None, None)
    if need_audio and (audio is None or audio.shape[1] == 0):
        raise ValueError(f"{path!r} has an audio track with no decodable samples (truncated?), but the sound is "
                         "needed here; use the complete file.")
    return VideoClip(frames=frames, fps=float(fps or info.fps), audio=audio, sample_rate=sample_rate)


def write_video(path: str | os.PathLike, clip: VideoClip, *, crf: int = 17, rotation: int = 0) -> None:
    """Write ``clip`` as an mp4: h264 video (yuv420p), plus an aac track when ``clip.audio`` is set.

    Height and width must be even (a yuv420p requirement). ``crf`` is x264's quality
    (0 = lossless, 17 = visually lossless, 23 = x264 default). Audio must have 1 or 2 channels.
    ``rotation``: display rotation metadata in degrees counter-clockwise (a multiple of 90), as phones write
    it; the frames are stored as given and a reader (:func:`read_video`, players) rotates them for display.
    """
    av = _av()
    path = os.fspath(path)
    if not isinstance(clip, VideoClip):
        raise TypeError(f"write_video expects a VideoClip, got {type(clip).__name__}; wrap frames with VideoClip(frames, fps).")
    height, width = clip.frame_size
    if height % 2 or width % 2:
        raise ValueError(
            f"cannot write {path!r}: h264/yuv420p needs even frame sizes, got {height}x{width} (height x width); "
            "crop or pad the frames by one pixel."
        )
    if clip.audio is not None and clip.audio.shape[0] not in (1, 2):
        raise ValueError(
            f"cannot write {path!r}: the aac track takes 1 or 2 audio channels, got {clip.audio.shape[0]}; "
            "mix down to mono or stereo first."
        )
    if clip.audio is not None and clip.audio.shape[1] == 0:
        raise ValueError(f"cannot write {path!r}: the audio track is empty (0 samples); set audio=None for a silent clip.")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"cannot write {path!r}: folder {parent!r} does not exist; create it first.")
    if rotation % 90:
        raise ValueError(f"rotation must be a multiple of 90 degrees, got {rotation!r}")
    rate = rate_fraction(clip.fps)
    try:
        with av.open(path, mode="w") as container:
            vstream = container.add_stream("libx264", rate=rate)
            vstream.width, vstream.height = width, height
            vstream.pix_fmt = "yuv420p"
            vstream.options = {"crf": str(int(crf))}
            if rotation % 360:
                vstream.set_display_rotation(int(rotation))
            astream = None
            if clip.audio is not None:
                astream = container.add_stream("aac", rate=int(clip.sample_rate))
                astream.layout = "mono" if clip.audio.shape[0] == 1 else "stereo"
            frames = clip.frames.numpy()
            for t in range(frames.shape[0]):
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frames[t]), format="rgb24")
                vf.pts = t
                vf.time_base = 1 / rate
                for packet in vstream.encode(vf):
                    container.mux(packet)
            for packet in vstream.encode():
                container.mux(packet)
            if astream is not None:
                wav = np.ascontiguousarray(clip.audio.detach().cpu().numpy().astype(np.float32).clip(-1.0, 1.0))
                af = av.AudioFrame.from_ndarray(wav, format="fltp", layout=astream.layout.name)
                af.sample_rate = int(clip.sample_rate)
                af.pts = 0  # a timestamp lets the muxer write the edit list that hides the aac priming
                af.time_base = Fraction(1, int(clip.sample_rate))
                for packet in astream.encode(af):
                    container.mux(packet)
                for packet in astream.encode():
                    container.mux(packet)
    except av.FFmpegError as e:
        raise ValueError(f"cannot write video file {path!r}: FFmpeg failed ({e}).") from e

"""Audio-visual speech enhancement: which face regions, moments and T-F regions carry the SDR of the output.

    problem = avxai.tasks.av_enhancement.build(av_model, AVEnhancementOptions(input="clip.mp4", stream="video"))

The input is a video with sound (the mixture): a file, or a decoded :class:`~avxai.io.video.VideoClip`
(frames, fps, audio, sample rate). MTCNN tracks the face (or ``track`` gives the track) and the model sees
the face crops. ``stream="av"`` (default) explains the spectrogram and the face video on one joint grid,
``"video"`` the face video with the sound kept (:class:`~avxai.modalities.audio_visual.FixedAudio`),
``"audio"`` the spectrogram with the face kept (:class:`~avxai.modalities.audio_visual.FixedVideo`).
The spectrogram is on the model's own STFT unless ``n_fft`` / ``hop_length`` are given.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from avxai.faces import FaceTrack, FaceTracker
from avxai.io.video import VideoClip
from avxai.io.video_stream import FrameSource, LazyFrames, VideoInfo, probe_video, read_audio_track
from avxai.metrics.shares import modality_shares
from avxai.modalities.audio_visual import AudioVisual, AVSpectrogram, FixedAudio, FixedVideo
from avxai.io.audio import resample as resample_audio
from avxai.modalities.video import FaceVideo
from avxai.models.contract import crop_size_of, fps_of, sample_rate_of
from avxai.tasks.audio import describe_input, read_waveform, stft_for
from avxai.tasks.av_tracking import cache_file, track_file
from avxai.tasks.base import Problem, Task
from avxai.scorers.level import LevelSDR, LevelSISDR
from avxai.scorers.sdr import SISDR
from avxai.tasks.enhancement import reference_scorer
from avxai.viz.video import plot_frames_strip

__all__ = ["AVEnhancementOptions", "AVEnhancementTask", "DEFAULT_PERTURBATIONS", "STREAMS", "build", "cache_file",
           "split_perturbation", "track_file"]

#: what ``stream`` explains: both streams on one joint grid, the face video alone, the spectrogram alone
STREAMS = ("av", "video", "audio")
#: the tracker's settings for a file: MTCNN on frames scaled to at most 640 px (bench/face_tracking.py)
TRACKER_DEFAULTS = {"min_confidence": 0.9, "min_face_size": 20, "detect_side": 640}
#: frames of more pixels than this are detected on every 3rd frame of a shot (and each shot's first and last),
#: the boxes between interpolated; smaller frames, cheap to detect, on every frame (the crops follow the head
#: exactly, as the bundled model's training crops do)
SPARSE_DETECTION_PIXELS = 640 * 360
#: a clip whose frames take at most this many bytes is decoded whole for the figures; a longer one stays a
#: :class:`~avxai.io.video_stream.FrameSource` (frames decoded when a figure shows them)
SMALL_CLIP_BYTES = 256 << 20
#: clips longer than this are scored one masked copy at a time for the audio/video shares
LONG_CLIP_SECONDS = 10.0
#: baselines of masked cells: silence for the spectrogram, the clip's mean face (no motion) for the video
DEFAULT_PERTURBATIONS = ("zero", "mean-time")


@dataclass(frozen=True)
class AVEnhancementOptions:
    """Options of the audio-visual enhancement task.

    input : a video file with sound, or a :class:`~avxai.io.video.VideoClip` with audio.
    track : the clip's :class:`~avxai.faces.FaceTrack` (crops at the model's crop size); ``None``: MTCNN tracks it.
    reference : the clean target (a file, or a tensor ``(1, time)`` / ``(1, 1, time)`` at the model's rate) as
        long as the clip's audio; ``None``: score against the model's own output on the unmasked clip.
    stream : ``"av"``, ``"video"`` or ``"audio"`` (see the module docstring).
    score : ``"sdr"`` (default) or ``"si-sdr"``.
    perturbation : ``None`` (:data:`DEFAULT_PERTURBATIONS`), ``"NAME"`` for both streams, or ``"AUDIO,VIDEO"``.
    n_fft, hop_length : STFT of the explained spectrogram (default: the model's own).
    resample, mono : resample the clip's audio to the model's rate / average its channels.
    shares : also measure the audio-vs-video shares of the evidence (four model passes; metadata ``av_shares``).
    fps_convert : convert the clip's frames to the model's frame rate while decoding (nearest frame in time).
    face : the face the crops follow: ``"largest"`` (per shot) or a face track number (``face_track.face_tracks``).
    face_confidence, min_face_size, detect_every : tracker settings (default :data:`TRACKER_DEFAULTS`).
    level_aware : subtract the output's level drop from the score (:class:`LevelSDR`): closes the volume loophole
        of scale-invariant scores.
    track_cache : folder of cached face detections (default ``$AVXAI_CACHE_DIR/tracks`` or
        ``~/.cache/avxai/tracks``; ``"off"``: no cache), keyed by the file's hash and the tracker settings.
    start_s, end_s : explain only this time range of the clip (seconds, on video frames; ``None``: its start / end).
        The face is tracked on the whole clip (cached) and the crops, the sound and the reference are sliced.
    """

    input: "str | Path | VideoClip"
    track: Any = None
    reference: "str | Path | Tensor | None" = None
    stream: str = "av"
    score: str | None = None
    perturbation: str | None = None
    n_fft: int | None = None
    hop_length: int | None = None
    resample: bool = False
    mono: bool = False
    shares: bool = True
    fps_convert: bool = False
    face: "str | int" = "largest"
    face_confidence: float | None = None
    min_face_size: int | None = None
    detect_every: int | None = None
    track_cache: "str | Path | None" = None
    level_aware: bool = True
    start_s: float | None = None
    end_s: float | None = None


def av_scorer(score: str | None, reference: Tensor | None, level_aware: bool = True):
    """The task's scorer: SDR (default) or SI-SDR, level-aware unless ``level_aware=False``."""
    scorer = reference_scorer(score, reference)
    if not level_aware:
        return scorer
    return (LevelSISDR if isinstance(scorer, SISDR) else LevelSDR)(reference)


def split_perturbation(spec: str | None) -> tuple[str, str]:
    """The task's ``perturbation`` -> (audio, video) perturbation names.

    ``None``: :data:`DEFAULT_PERTURBATIONS`; ``"NAME"``: the same name for both streams (``zero``, ``mean``,
    ``mean-time``, ``noise:SNR``); ``"AUDIO,VIDEO"``: one per stream, e.g. ``zero,spatial-blur:8``.
    """
    if spec is None:
        return DEFAULT_PERTURBATIONS
    parts = [p.strip() for p in str(spec).split(",")]
    if len(parts) == 1 and parts[0]:
        return parts[0], parts[0]
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    raise ValueError(f"--perturbation for --task av-enhancement is NAME (both streams) or AUDIO,VIDEO (e.g. "
                     f"zero,mean-time), got {spec!r}")


def tracker_for(model: nn.Module, options: AVEnhancementOptions, frame_pixels: int = 0) -> FaceTracker:
    """The face tracker of ``options`` at the model's crop size, for frames of ``frame_pixels`` pixels."""
    given = {"min_confidence": options.face_confidence, "min_face_size": options.min_face_size,
             "detect_every": options.detect_every}
    every = 3 if frame_pixels > SPARSE_DETECTION_PIXELS else 1
    settings = {**TRACKER_DEFAULTS, "detect_every": every, **{k: v for k, v in given.items() if v is not None}}
    face = options.face
    if isinstance(face, str) and face.strip().isdigit():
        face = int(face)
    return FaceTracker(crop_size=crop_size_of(model, required=True), face=face, **settings)


def check_inputs(info: VideoInfo, name: str, fps: float, rate: int, options: AVEnhancementOptions) -> None:
    """Every way the clip does not fit the model, in one ``ValueError`` with the fix for each (before any
    decoding or face detection)."""
    problems = []
    if not info.has_audio:
        problems.append("it has no audio track: the enhancer hears the clip's own sound (the mixture); use a clip "
                        "with sound")
    if info.fps is None or (abs(info.fps - fps) > 1e-3 and not options.fps_convert):
        problems.append(f"{info.fps or 0:g} frames per second where the model takes {fps:g}: pass --fps-convert "
                        f"(fps_convert=True) to convert the frames to {fps:g} fps while decoding")
    if info.has_audio and info.audio_channels != 1 and not options.mono:
        problems.append(f"{info.audio_channels} audio channels where the model takes mono: pass --mono (mono=True) "
                        "to average them")
    if info.has_audio and info.audio_rate != rate and not options.resample:
        problems.append(f"audio at {info.audio_rate} Hz where the model takes {rate} Hz: pass --resample "
                        "(resample=True) to resample it")
    if info.fps and info.duration_s < 2.0 / info.fps:
        problems.append(f"it lasts {info.duration_s:.3f} s, less than two frames: use a longer clip")
    if info.has_audio and info.audio_duration_s and info.fps and \
            abs(info.audio_duration_s - info.duration_s) > 1.0 / info.fps + 0.05:
        problems.append(f"its sound lasts {info.audio_duration_s:.2f} s and its video {info.duration_s:.2f} s: "
                        "trim both to the same span")
    if info.has_audio and info.fps and abs(info.audio_offset_s) > 1.0 / info.fps:
        problems.append(f"its sound starts {info.audio_offset_s * 1000:+.0f} ms from its first frame (more than a "
                        "frame; avxai reads both from t = 0): re-mux the clip with its streams aligned")
    if problems:
        raise ValueError(f"{name} does not fit the model ({fps:g} fps video, {rate} Hz mono audio): "
                         + "; ".join(f"({i + 1}) {p}" for i, p in enumerate(problems)))


class FrameRange(LazyFrames):
    """Frames ``start`` to ``stop`` of a clip's frames (a tensor or a :class:`FrameSource`), indexed from 0.

    Shape: ``shape`` ``(stop - start, height, width, 3)``; ``frames[i]`` ``(height, width, 3)`` uint8.
    """

    def __init__(self, frames: Any, start: int, stop: int):
        self.source, self.start = frames, int(start)
        self.shape = (int(stop) - int(start), *tuple(frames.shape[1:]))
        self.dtype = frames.dtype

    def __getitem__(self, index):
        if isinstance(index, slice):
            index = list(range(*index.indices(self.shape[0])))
        if isinstance(index, (list, tuple)):
            return self.source[[self.start + int(i) % self.shape[0] for i in index]]
        return self.source[self.start + int(index) % self.shape[0]]


def frame_range(options: AVEnhancementOptions, num_frames: int, fps: float) -> tuple[int, int]:
    """``(first, stop)`` video frames of ``options.start_s`` / ``end_s`` (the whole clip when not given)."""
    first = 0 if options.start_s is None else int(round(options.start_s * fps))
    stop = num_frames if options.end_s is None else min(num_frames, int(round(options.end_s * fps)))
    if first < 0 or stop - first < 2:
        raise ValueError(f"the time range {options.start_s}-{options.end_s} s holds {max(0, stop - first)} of the "
                         f"clip's {num_frames} frames ({num_frames / fps:.2f} s at {fps:g} fps); give a range of at "
                         "least two frames inside the clip")
    return first, stop


def _slice_clip(track: FaceTrack, frames: Any, audio, span: tuple[int, int], fps: float):
    """The track, frames and audio ``((channels, time), rate)`` of video frames ``span`` of the clip."""
    first, stop = span
    cut = {k: getattr(track, k)[first:stop] for k in ("boxes", "detected", "crops", "raw_boxes", "landmarks", "probs")}
    track = replace(track, **cut)
    frames = frames[first:stop] if isinstance(frames, Tensor) else FrameRange(frames, first, stop)
    if audio is not None and audio[0] is not None:
        wav, rate = audio
        audio = (wav[:, int(round(first * rate / fps)):int(round(stop * rate / fps))], rate)
    return track, frames, audio


def _face_video(model: nn.Module, options: AVEnhancementOptions, perturbation: str, fps: float, info: VideoInfo):
    """The tracked face video of the clip, its audio ``(channels, time)`` with its rate, and how it was tracked."""
    tracker = tracker_for(model, options, info.width * info.height)
    if isinstance(options.input, VideoClip):
        clip = options.input
        track = options.track or tracker.track(clip.frames, source="the clip", fps=clip.fps)
        frames, info, how = clip.frames, None, {}
        audio = (clip.audio, clip.sample_rate)
    else:
        name = describe_input(options.input)
        if options.track is not None:
            track, how = options.track, {}
        else:
            track, how = track_file(options.input, tracker, fps=fps, convert=options.fps_convert,
                                    cache=options.track_cache, name=name)
        frames = FrameSource(options.input, fps if options.fps_convert else None, track.num_frames, track.frame_size)
        audio = read_audio_track(options.input)
    span = frame_range(options, track.num_frames, fps)
    if span != (0, track.num_frames):  # a time range: its frames decoded only when a figure shows them
        track, frames, audio = _slice_clip(track, frames, audio, span, fps)
    elif isinstance(frames, FrameSource) and track.num_frames * track.frame_size[0] * track.frame_size[1] * 3 <= \
            SMALL_CLIP_BYTES:
        frames = frames[:]  # a short clip's frames fit: decoded once, a tensor for the figures
    video = FaceVideo(track.crops.unsqueeze(0), fps if options.fps_convert or not isinstance(options.input, VideoClip)
                      else options.input.fps, perturbation=perturbation, track=track, frames=frames,
                      source=None if isinstance(options.input, VideoClip) else str(options.input))
    return video, audio, how


def build(model: nn.Module, options: AVEnhancementOptions) -> Problem:
    """The AV problem for ``options.stream``: its model (the AV model, or one stream held fixed), modality and
    scorer. The metadata holds the audio-vs-video shares (``shares=True``) and the track's detection rate;
    ``extras`` holds the full frames and the face track (for heat maps pasted back onto the frames).

    Shape: clip frames ``(frames, H, W, 3)`` and audio ``(channels, time)`` -> grid ``(freq, frames)``,
    ``(time, S, S)`` or both joined (``stream="av"``).
    """
    if not isinstance(options, AVEnhancementOptions):
        raise TypeError(f"build takes AVEnhancementOptions, got {type(options).__name__}")
    if options.stream not in STREAMS:
        raise ValueError(f"--stream must be one of {', '.join(STREAMS)}, got {options.stream!r}")
    audio_pert, video_pert = split_perturbation(options.perturbation)
    name = describe_input(options.input) if not isinstance(options.input, VideoClip) else "the clip"
    fps, model_rate = fps_of(model, required=True), sample_rate_of(model, required=True)
    if isinstance(options.input, VideoClip):
        c = options.input
        info = VideoInfo(path=name, fps=c.fps, num_frames=c.num_frames, width=c.frame_size[1], height=c.frame_size[0],
                         rotation=0, duration_s=c.duration_s, audio_rate=c.sample_rate,
                         audio_channels=None if c.audio is None else int(c.audio.shape[0]),
                         audio_duration_s=None if c.audio is None else c.audio.shape[1] / c.sample_rate)
        if options.fps_convert and abs(c.fps - fps) > 1e-3:
            raise ValueError(f"fps_convert converts video files while decoding; the clip in memory has {c.fps:g} fps: "
                             f"give the file, or resample its frames to {fps:g} fps first")
    else:
        info = probe_video(options.input)
    check_inputs(info, name, fps, model_rate, options)  # every problem at once, before decoding or detection
    reference = None
    if options.reference is not None and not isinstance(options.reference, Tensor):
        paths = [p.strip() for p in str(options.reference).split(",") if p.strip()]
        if len(paths) != 1:
            raise ValueError(f"--task av-enhancement takes one clean --reference (the target talker), got "
                             f"{len(paths)}: {paths}")
        reference = read_waveform(paths[0], model_rate, resample=options.resample, mono=options.mono,
                                  what="reference")
    elif options.reference is not None:
        reference = options.reference.reshape(1, 1, -1)
    if reference is not None and info.audio_duration_s and \
            abs(reference.shape[-1] / model_rate - info.audio_duration_s) > 1.0 / (info.fps or fps) + 0.05:
        raise ValueError(f"the reference lasts {reference.shape[-1] / model_rate:.3f} s but the audio of {name} "
                         f"{info.audio_duration_s:.3f} s; they must cover the same time (cut or pad the reference)")
    video, (wav, rate), how = _face_video(model, options, video_pert, fps, info)
    if wav.shape[0] != 1:
        wav = wav.mean(dim=0, keepdim=True)
    if rate != model_rate:
        wav, rate = resample_audio(wav, rate, model_rate), model_rate
    wav = wav.unsqueeze(0).contiguous()  # (1, 1, time)
    if reference is not None and (options.start_s, options.end_s) != (None, None):  # time-aligned: its same range
        first = int(round(int(round((options.start_s or 0.0) * fps)) * model_rate / fps))
        reference = reference[..., first:first + wav.shape[-1]]
    if reference is not None and reference.shape[-1] != wav.shape[-1]:
        raise ValueError(f"the reference has {reference.shape[-1]} samples but the audio of {name} has "
                         f"{wav.shape[-1]} ({wav.shape[-1] / rate:.3f} s); they must cover the same time (cut or "
                         "pad the reference)")
    if reference is None:
        warnings.warn(f"no --reference for {name}: the score is the SDR of the output against the model's own output "
                      "on the unmasked clip (the unmasked clip scores 100 dB by construction), so the map shows what "
                      "changes the output at all, not what helps the enhancement; give the clean target with "
                      "--reference for a score of quality", stacklevel=2)
    scorer = av_scorer(options.score, reference, options.level_aware)
    spec = av = shares = None
    if options.stream != "video" or options.shares:
        n_fft, hop = stft_for(model, rate, options.n_fft, options.hop_length)
        spec = AVSpectrogram(wav, rate, n_fft=n_fft, hop_length=hop, perturbation=audio_pert)
        av = AudioVisual(spec, video)  # checks that the streams are aligned within one video frame
    if options.shares:
        # one masked copy of the clip per pass on a long clip (4 at once held a 60-s clip's activations 4 times)
        rows = 4 if video.num_frames / video.fps <= LONG_CLIP_SECONDS else 1
        shares = modality_shares(model, av, scorer, batch_size=rows).as_dict()
    if options.stream == "av":
        target_model, modality = model, av
    elif options.stream == "video":
        target_model, modality = FixedAudio(model, wav), video
    else:
        target_model, modality = FixedVideo(model, video.crops), spec
    track = video.track
    face_track = {**track.report, **how, "rotation_applied_deg": info.rotation,
                  "fps_converted_from": info.fps if options.fps_convert and abs(info.fps - fps) > 1e-3 else None}
    metadata = {
        "input": name, "stream": options.stream, "perturbations": {"audio": audio_pert, "video": video_pert},
        "score_against": "reference" if reference is not None else "model output on the unmasked input",
        "target_label": f"{'SI-SDR' if type(scorer).__name__ == 'SISDR' else 'SDR'} of the enhanced speech against "
                        + ("the clean reference" if reference is not None else "the model's own output (no reference)"),
        "av_shares": shares, "face_detection_rate": track.detection_rate, "face_track": face_track,
        "crop_boxes": track.boxes.tolist(),
        "reference": None if options.reference is None else describe_input(options.reference),
    }
    return Problem(model=target_model, modality=modality, scorer=scorer, metadata=metadata,
                   extras={"frames": video.frames, "track": track, "video": video})


def describe_track(report: dict) -> str:
    """One line on the followed face: which, detection rate, shots, switches, frames where it was not found."""
    if not report:
        return "face track: given by the caller"
    switches = report.get("switches", [])
    lost = sum(u["end"] - u["start"] for u in report.get("undetected", []))
    text = (f"face track: --face {report.get('face')} of {len(report.get('face_tracks', []))} face track(s); found on "
            f"{100 * report.get('detection_rate', 0):.0f}% of the {report.get('frames_detected_on')} frames MTCNN ran on; "
            f"{len(report.get('shots', [0]))} shot(s); {len(switches)} switch(es)")
    if switches:
        text += " (" + ", ".join(f"{w['time_s']:.2f} s: face {w['from']} -> {w['to']}, {w['reason']}"
                                 for w in switches[:4]) + (", ..." if len(switches) > 4 else "") + ")"
    text += f"; not found in {lost} frame(s)" if lost else ""
    if report.get("cache"):
        text += f"; detections {'read from' if report.get('from_cache') else 'cached in'} {report['cache']}"
    return text


class AVEnhancementTask(Task, name="av-enhancement", options=AVEnhancementOptions, model="av-enhancer", build=build,
        help=("audio-visual speech enhancement (video with sound): SDR/SI-SDR of the output against --reference, "
          "over the face video and the spectrogram (--stream)")):
    """``--task av-enhancement``: the SDR (``--score sdr``, default) or SI-SDR of the enhanced output of an
    audio-visual enhancer against the clean ``--reference`` (or, without one, against the model's own output
    on the unmasked clip). The input is a video with sound (the mixture); MTCNN tracks the face and the model
    sees face crops. ``--stream av`` (default) explains the spectrogram and the face video on one joint grid,
    ``video`` the face video with the sound kept, ``audio`` the spectrogram with the face kept. Model:
    ``--model`` (default the bundled one). Besides the explanation it writes ``frames.png``: the heat map (or
    the PCA-RGB colours) pasted back onto the full frames."""

    #: defaults of the methods for this task's inputs (the CLI applies them to the fields no flag, --set or
    #: --config gave): extremal with 2 areas x 100 iterations (a pass of the AV model and its backward costs
    #: about 0.3 s per area and iteration on a 2-s clip at 2 cores: 4 areas x 300 took 651 s on a 3.84-s clip);
    #: SmoothGrad's noise on the mask (the joint AV grid has no one input tensor to add noise to)
    method_defaults = {"extremal": {"areas": (0.1, 0.3), "iterations": 100}, "smoothgrad": {"noise_on": "mask"}}

    def write_outputs(self, problem: Problem, explanation, out: Path) -> list[str]:
        """``frames.png``: the explanation's video part pasted back onto the full frames (see
        :func:`avxai.viz.video.plot_frames_strip`); nothing for ``--stream audio`` (no video part)."""
        import matplotlib.pyplot as plt  # optional plotting dependency, imported lazily

        print(describe_track(problem.metadata.get("face_track") or {}))
        if problem.metadata.get("stream") == "audio":
            return []
        fig = plot_frames_strip(explanation, frames=problem.extras["frames"], track=problem.extras["track"])
        fig.savefig(Path(out) / "frames.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        return ["frames.png"]

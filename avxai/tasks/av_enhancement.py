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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from avxai.faces import FaceTracker
from avxai.io.video import VideoClip, read_video
from avxai.metrics.shares import modality_shares
from avxai.modalities.audio_visual import AudioVisual, FixedAudio, FixedVideo
from avxai.io.audio import resample as resample_audio
from avxai.modalities.spectrogram import Spectrogram
from avxai.modalities.video import FaceVideo
from avxai.models.contract import crop_size_of, fps_of, sample_rate_of
from avxai.tasks.audio import describe_input, read_waveform, stft_for
from avxai.tasks.base import Problem, Task
from avxai.tasks.enhancement import reference_scorer
from avxai.viz.video import plot_frames_strip

__all__ = ["AVEnhancementOptions", "AVEnhancementTask", "DEFAULT_PERTURBATIONS", "STREAMS", "build",
           "split_perturbation"]

#: what ``stream`` explains: both streams on one joint grid, the face video alone, the spectrogram alone
STREAMS = ("av", "video", "audio")
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


def _face_video(model: nn.Module, options: AVEnhancementOptions, perturbation: str) -> tuple[FaceVideo, VideoClip]:
    """The tracked face video of the clip and the decoded clip."""
    name = describe_input(options.input) if not isinstance(options.input, VideoClip) else "the clip"
    clip = options.input if isinstance(options.input, VideoClip) else read_video(options.input, need_audio=True)
    if clip.audio is None:
        raise ValueError(f"{name} has no audio track; the audio-visual enhancer needs the sound (the mixture)")
    track = options.track
    if track is None:
        track = FaceTracker(crop_size=crop_size_of(model, required=True)).track(clip.frames, source=name)
    video = FaceVideo(track.crops.unsqueeze(0), clip.fps, perturbation=perturbation, track=track,
                      frames=clip.frames, source=None if isinstance(options.input, VideoClip) else name)
    video.clip = clip
    return video, clip


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
    video, clip = _face_video(model, options, video_pert)
    fps, model_rate = fps_of(model, required=True), sample_rate_of(model, required=True)
    if abs(video.fps - fps) > 1e-3:
        raise ValueError(f"{name} has {video.fps:g} frames per second but the model was trained at {fps:g} "
                         f"fps; re-encode the clip at {fps:g} fps (ffmpeg -i in.mp4 -r {fps:g} out.mp4)")
    wav = clip.audio
    if wav.shape[0] != 1:
        if not options.mono:
            raise ValueError(f"{name} has {wav.shape[0]} audio channels but the model takes mono audio; pass --mono "
                             "(mono=True) to average them")
        wav = wav.mean(dim=0, keepdim=True)
    rate = int(clip.sample_rate)
    if rate != model_rate:
        if not options.resample:
            raise ValueError(f"{name} has audio at {rate} Hz but the model takes {model_rate} Hz; pass "
                             "--resample (resample=True) to resample it, or re-encode the clip's audio")
        wav, rate = resample_audio(wav, rate, model_rate), model_rate
    wav = wav.unsqueeze(0).contiguous()  # (1, 1, time)
    reference = None
    if options.reference is not None:
        if isinstance(options.reference, Tensor):
            reference = options.reference.reshape(1, 1, -1)
        else:
            paths = [p.strip() for p in str(options.reference).split(",") if p.strip()]
            if len(paths) != 1:
                raise ValueError(f"--task av-enhancement takes one clean --reference (the target talker), got "
                                 f"{len(paths)}: {paths}")
            reference = read_waveform(paths[0], rate, resample=options.resample, mono=options.mono,
                                      what="reference")
        if reference.shape[-1] != wav.shape[-1]:
            raise ValueError(f"the reference has {reference.shape[-1]} samples but the audio of {name} has "
                             f"{wav.shape[-1]} ({wav.shape[-1] / rate:.3f} s); they must cover the same time (cut or "
                             "pad the reference)")
    scorer = reference_scorer(options.score, reference)
    spec = av = shares = None
    if options.stream != "video" or options.shares:
        n_fft, hop = stft_for(model, rate, options.n_fft, options.hop_length)
        spec = Spectrogram(wav, rate, n_fft=n_fft, hop_length=hop, perturbation=audio_pert)
        av = AudioVisual(spec, video)  # checks that the streams are aligned within one video frame
    if options.shares:
        shares = modality_shares(model, av, scorer).as_dict()
    if options.stream == "av":
        target_model, modality = model, av
    elif options.stream == "video":
        target_model, modality = FixedAudio(model, wav), video
    else:
        target_model, modality = FixedVideo(model, video.crops), spec
    track = video.track
    metadata = {
        "input": name, "stream": options.stream, "perturbations": {"audio": audio_pert, "video": video_pert},
        "score_against": "reference" if reference is not None else "model output on the unmasked input",
        "av_shares": shares, "face_detection_rate": track.detection_rate,
        "reference": None if options.reference is None else describe_input(options.reference),
    }
    return Problem(model=target_model, modality=modality, scorer=scorer, metadata=metadata,
                   extras={"frames": video.frames, "track": track, "video": video})


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

    def write_outputs(self, problem: Problem, explanation, out: Path) -> list[str]:
        """``frames.png``: the explanation's video part pasted back onto the full frames (see
        :func:`avxai.viz.video.plot_frames_strip`); nothing for ``--stream audio`` (no video part)."""
        import matplotlib.pyplot as plt  # optional plotting dependency, imported lazily

        if problem.metadata.get("stream") == "audio":
            return []
        fig = plot_frames_strip(explanation, frames=problem.extras["frames"], track=problem.extras["track"])
        fig.savefig(Path(out) / "frames.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        return ["frames.png"]

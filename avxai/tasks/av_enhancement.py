"""Audio-visual speech enhancement: which face regions, moments and T-F regions carry the SDR of the output."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from avxai.tasks.base import Problem, Task

__all__ = ["AVEnhancementTask", "STREAMS", "DEFAULT_PERTURBATIONS", "split_perturbation", "build_av_problem"]

#: what ``--stream`` explains: both streams on one joint grid, the face video alone, the spectrogram alone
STREAMS = ("av", "video", "audio")
#: baselines of masked cells: silence for the spectrogram, the clip's mean face (no motion) for the video
DEFAULT_PERTURBATIONS = ("zero", "mean-time")


def split_perturbation(spec: str | None) -> tuple[str, str]:
    """``--perturbation`` of this task -> (audio, video) perturbation names.

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


def build_av_problem(path: "str | Path", model, *, reference: torch.Tensor | None = None, stream: str = "av",
                     perturbation: str | None = None, n_fft: int | None = None, hop_length: int | None = None,
                     resample: bool = False, mono: bool = False, score: str | None = None, tracker=None) -> Problem:
    """Read a clip with sound, track its face and build (model, modality, scorer) for ``stream``.

    ``reference``: the clean target ``(1, 1, time)`` at the model's rate (``None``: the SDR is taken against
    the model's own output on the unmasked clip). ``n_fft`` / ``hop_length``: STFT of the explained
    spectrogram (default the model's). The problem's metadata holds the audio-vs-video shares
    (:func:`avxai.modalities.audio_visual.modality_shares`) and the track's crop boxes; ``extras`` holds
    the full frames and the face track (for heat maps pasted back onto the frames).
    """
    from avxai.faces import FaceTracker
    from avxai.modalities.audio_visual import AudioVisual, FixedAudio, FixedVideo, modality_shares
    from avxai.modalities.spectrogram import Spectrogram, resample as resample_audio
    from avxai.modalities.video import FaceVideo
    from avxai.tasks.enhancement import reference_scorer

    if stream not in STREAMS:
        raise ValueError(f"--stream must be one of {', '.join(STREAMS)}, got {stream!r}")
    audio_pert, video_pert = split_perturbation(perturbation)
    path = str(path)
    tracker = tracker if tracker is not None else FaceTracker(crop_size=int(model.crop_size))
    video = FaceVideo.from_file(path, tracker, perturbation=video_pert, need_audio=True)
    clip = video.clip
    if abs(video.fps - float(model.fps)) > 1e-3:
        raise ValueError(f"{path} has {video.fps:g} frames per second but the model was trained at {model.fps:g} fps; "
                         f"re-encode the clip at {model.fps:g} fps (ffmpeg -i in.mp4 -r {model.fps:g} out.mp4)")
    wav = clip.audio
    if wav.shape[0] != 1:
        if not mono:
            raise ValueError(f"{path} has {wav.shape[0]} audio channels but the model takes mono audio; pass --mono to "
                             "average them")
        wav = wav.mean(dim=0, keepdim=True)
    rate = int(clip.sample_rate)
    if rate != int(model.sample_rate):
        if not resample:
            raise ValueError(f"{path} has audio at {rate} Hz but the model takes {int(model.sample_rate)} Hz; pass "
                             "--resample to resample it, or re-encode the clip's audio")
        wav, rate = resample_audio(wav, rate, int(model.sample_rate)), int(model.sample_rate)
    wav = wav.unsqueeze(0).contiguous()  # (1, 1, time)
    if reference is not None and reference.shape[-1] != wav.shape[-1]:
        raise ValueError(f"the reference has {reference.shape[-1]} samples but the audio of {path} has {wav.shape[-1]} "
                         f"({wav.shape[-1] / rate:.3f} s); they must cover the same time (cut or pad the reference)")
    spec = Spectrogram(wav, rate, n_fft=int(n_fft or model.n_fft), hop_length=int(hop_length or model.hop_length),
                       perturbation=audio_pert)
    av = AudioVisual(spec, video)  # checks that the streams are aligned within one video frame
    scorer = reference_scorer(score, reference)
    shares = modality_shares(model, av, scorer)
    if stream == "av":
        target_model, modality = model, av
    elif stream == "video":
        target_model, modality = FixedAudio(model, wav), video
    else:
        target_model, modality = FixedVideo(model, video.crops), spec
    track = video.track
    metadata = {
        "input": path, "stream": stream, "perturbations": {"audio": audio_pert, "video": video_pert},
        "score_against": "reference" if reference is not None else "model output on the unmasked input",
        "av_shares": shares.as_dict(), "face_detection_rate": track.detection_rate,
    }
    return Problem(model=target_model, modality=modality, scorer=scorer, metadata=metadata,
                   extras={"frames": video.frames, "track": track, "video": video})


class AVEnhancementTask(Task):
    """``--task av-enhancement``: the SDR (``--score sdr``, default) or SI-SDR of the enhanced output of an
    audio-visual enhancer against the clean ``--reference`` (or, without one, against the model's own output
    on the unmasked clip). The input is a video with sound (the mixture); MTCNN tracks the face and the model
    sees face crops. ``--stream av`` (default) explains the spectrogram and the face video on one joint grid,
    ``video`` the face video with the sound kept, ``audio`` the spectrogram with the face kept. Model:
    ``--model-checkpoint`` (a :func:`avxai.models.av_enhancement.save_av_enhancer` checkpoint with its JSON),
    default the bundled one. Besides the explanation it writes ``frames.png``: the heat map (or the PCA-RGB
    colours) pasted back onto the full frames."""

    name = "av-enhancement"
    help = ("audio-visual speech enhancement (video with sound): SDR/SI-SDR of the output against --reference, "
            "over the face video and the spectrogram (--stream)")
    options = frozenset({"input", "reference", "model_checkpoint", "score", "stream"})

    def prepare(self, args: argparse.Namespace) -> Problem:
        from avxai.models.av_enhancement import load_av_enhancer
        from avxai.tasks.enhancement import read_mono

        if getattr(args, "n_mels", None):
            raise ValueError("--n-mels does not apply to --task av-enhancement (its spectrogram is linear-frequency)")
        if args.score not in (None, "sdr", "si-sdr"):
            raise ValueError(f"--score {args.score} is not a signal score; --task av-enhancement takes sdr or si-sdr")
        model = load_av_enhancer(args.model_checkpoint)
        reference = None
        if args.reference:
            paths = [p.strip() for p in str(args.reference).split(",") if p.strip()]
            if len(paths) != 1:
                raise ValueError(f"--task av-enhancement takes one clean --reference (the target talker), got "
                                 f"{len(paths)}: {paths}")
            reference = read_mono(paths[0], int(model.sample_rate), args, "reference")
        problem = build_av_problem(
            args.input, model, reference=reference, stream=getattr(args, "stream", None) or "av",
            perturbation=args.perturbation, n_fft=getattr(args, "n_fft", None),
            hop_length=getattr(args, "hop_length", None), resample=bool(args.resample), mono=bool(args.mono),
            score=args.score)
        problem.metadata["reference"] = args.reference
        return problem

    def write_outputs(self, problem: Problem, explanation, out: Path) -> list[str]:
        """``frames.png``: the explanation's video part pasted back onto the full frames (see
        :func:`avxai.viz.video.plot_frames_strip`); nothing for ``--stream audio`` (no video part)."""
        import matplotlib.pyplot as plt

        if problem.metadata.get("stream") == "audio":
            return []
        from avxai.viz.video import plot_frames_strip

        fig = plot_frames_strip(explanation, frames=problem.extras["frames"], track=problem.extras["track"])
        fig.savefig(Path(out) / "frames.png", dpi=120, bbox_inches="tight")
        plt.close(fig)
        return ["frames.png"]

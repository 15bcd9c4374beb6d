"""Speech enhancement: which T-F regions of the noisy input the enhancer relies on for the SDR of its output."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from torch import Tensor, nn

from avxai.io.audio import load_audio
from avxai.modalities.spectrogram import Spectrogram
from avxai.scorers.sdr import SDR, SISDR, ReferenceScorer
from avxai.tasks.base import Problem, Task, read_segments
from avxai.tasks.target_report import write_target_report

__all__ = ["EnhancementTask", "build_spectrogram", "read_mono", "reference_scorer"]

SCORES = ("sdr", "si-sdr")


def read_mono(path: "str | Path", sample_rate: int, args: argparse.Namespace, what: str) -> Tensor:
    """A mono ``(1, 1, time)`` waveform at ``sample_rate`` from ``path`` (``--resample`` / ``--mono`` as given)."""
    wav, _ = load_audio(path, sample_rate=sample_rate, resample=bool(getattr(args, "resample", False)),
                        mono=bool(getattr(args, "mono", False)))
    if wav.shape[1] != 1:
        raise ValueError(f"{what} {path} has {wav.shape[1]} channels but the model takes mono audio; pass --mono to "
                         "average the channels")
    return wav


def build_spectrogram(wav: Tensor, sample_rate: int, model: nn.Module, args: argparse.Namespace) -> Spectrogram:
    """The spectrogram modality of the input; STFT from the command line, else the model's own (``n_fft``,
    ``hop_length``), else about 32 ms (the power of two nearest ``0.032 * sample_rate``) with a quarter hop."""
    n_fft = getattr(args, "n_fft", None) or getattr(model, "n_fft", None) or 2 ** round(math.log2(0.032 * sample_rate))
    hop = getattr(args, "hop_length", None) or getattr(model, "hop_length", None) or n_fft // 4
    return Spectrogram(wav, sample_rate, n_fft=int(n_fft), hop_length=int(hop), n_mels=getattr(args, "n_mels", None),
                       perturbation=getattr(args, "perturbation", None) or "zero")


def reference_scorer(score: str | None, reference: Tensor | None, source: int = 0) -> ReferenceScorer:
    """``SDR`` (default) or ``SISDR`` against ``reference`` ``(1, sources, time)``, or the model's own output."""
    if score not in (None, *SCORES):
        raise ValueError(f"--score {score} is not a signal score; use one of {', '.join(SCORES)}")
    cls = SISDR if score == "si-sdr" else SDR
    return cls(reference, source=source)


def check_same_length(reference: Tensor, wav: Tensor, ref_path: str, input_path: str) -> None:
    if reference.shape[-1] != wav.shape[-1]:
        raise ValueError(f"the reference {ref_path} has {reference.shape[-1]} samples but the input {input_path} has "
                         f"{wav.shape[-1]}; they must be the same recording length (cut or pad the reference)")


class EnhancementTask(Task):
    """``--task enhancement``: the SDR (``--score sdr``, default) or SI-SDR (``--score si-sdr``) of the enhanced
    output against the clean ``--reference``, or, without one, against the model's own output on the
    unmasked input. Model: ``--model-checkpoint`` (an :func:`avxai.models.enhancement.save_enhancer`
    checkpoint with its JSON), default the bundled reference enhancer. Besides the explanation it writes
    ``target.png`` / ``target.json`` (see :meth:`write_outputs`)."""

    name = "enhancement"
    help = "speech enhancement: SDR/SI-SDR of the enhanced output against --reference (or the model's own output)"
    options = frozenset({"input", "reference", "segments", "model_checkpoint", "score"})

    def prepare(self, args: argparse.Namespace) -> Problem:
        from avxai.models.enhancement import load_enhancer

        model = load_enhancer(args.model_checkpoint)
        rate = model.sample_rate
        wav = read_mono(args.input, rate, args, "input")
        reference = None
        if args.reference:
            paths = [p.strip() for p in str(args.reference).split(",") if p.strip()]
            if len(paths) != 1:
                raise ValueError(f"--task enhancement takes one clean --reference, got {len(paths)}: {paths}")
            reference = read_mono(paths[0], rate, args, "reference")
            check_same_length(reference, wav, paths[0], args.input)
            reference = reference[:, 0:1]
        modality = build_spectrogram(wav, rate, model, args)
        scorer = reference_scorer(args.score, reference)
        return Problem(model=model, modality=modality, scorer=scorer, metadata={
            "input": str(args.input), "reference": args.reference,
            "score_against": "reference" if reference is not None else "model output on the unmasked input",
            "segments": read_segments(getattr(args, "segments", None))},
            extras={"target": None if reference is None else reference[0, 0]})

    def write_outputs(self, problem: Problem, explanation, out: Path) -> list[str]:
        """``target.png`` / ``target.json``: mask vs the clean speech's ideal binary mask (with ``--reference``),
        and the score of the preserved and deleted inputs (:mod:`avxai.tasks.target_report`)."""
        name = problem.scorer.describe()["scorer"]
        against = "the clean reference" if problem.extras.get("target") is not None else "its own unmasked output"
        return write_target_report(problem, explanation, out, f"{name} of the enhanced output vs {against}")

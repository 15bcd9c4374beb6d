"""Speech enhancement: which T-F regions of the noisy input the enhancer relies on for the SDR of its output.

    problem = avxai.tasks.enhancement.build(enhancer, EnhancementOptions(input=noisy, sample_rate=8000,
                                                                        reference=clean, score="si-sdr"))

The score is the SDR (default) or SI-SDR of the enhanced output against the clean ``reference``, or,
without one, against the model's own output on the unmasked input. The spectrogram is on the model's own
STFT unless ``n_fft`` / ``hop_length`` are given (:func:`avxai.tasks.audio.stft_for`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from avxai.io.audio import resample as resample_audio
from avxai.models.contract import sample_rate_of
from avxai.scorers.sdr import SDR, SISDR, ReferenceScorer
from avxai.tasks.audio import AudioOptions, describe_input, read_waveform, spectrogram_for
from avxai.tasks.base import Problem, Task, read_segments
from avxai.tasks.target_report import write_target_report

__all__ = ["EnhancementOptions", "EnhancementTask", "SCORES", "build", "check_same_length", "read_references",
           "reference_scorer"]

SCORES = ("sdr", "si-sdr")


@dataclass(frozen=True)
class EnhancementOptions(AudioOptions):
    """Options of the enhancement task: :class:`~avxai.tasks.audio.AudioOptions` plus

    reference : the clean speech (a file, or a tensor ``(1, time)`` / ``(batch, 1, time)`` at ``sample_rate``
        Hz), as long as the input; ``None``: score against the model's own unmasked output.
    score : ``"sdr"`` (default, BSS-eval v3) or ``"si-sdr"``.
    """

    reference: "str | Path | Tensor | None" = None
    score: str | None = None


def reference_scorer(score: str | None, reference: Tensor | None, source: int = 0) -> ReferenceScorer:
    """``SDR`` (default) or ``SISDR`` against ``reference`` ``(batch, sources, time)``, or the model's own output."""
    if score not in (None, *SCORES):
        raise ValueError(f"score {score!r} is not a signal score; use one of {', '.join(SCORES)}")
    cls = SISDR if score == "si-sdr" else SDR
    return cls(reference, source=source)


def check_same_length(reference: Tensor, wav: Tensor, ref_name: str, input_name: str) -> None:
    if reference.shape[-1] != wav.shape[-1]:
        raise ValueError(f"the reference {ref_name} has {reference.shape[-1]} samples but the input {input_name} has "
                         f"{wav.shape[-1]}; they must be the same recording length (cut or pad the reference)")


def read_references(reference, wav: Tensor, rate: int, options: AudioOptions) -> Tensor:
    """Clean references ``(batch, sources, time)`` at ``rate`` as long as ``wav`` ``(batch, 1, time)``.

    ``reference``: one file, a comma-separated string or a list of files (one per source), or a tensor
    ``(sources, time)`` / ``(batch, sources, time)`` at ``options.sample_rate`` Hz.
    """
    if isinstance(reference, Tensor):
        ref = reference.unsqueeze(0) if reference.dim() == 2 else reference
        if ref.dim() != 3:
            raise ValueError(f"the reference tensor must be (sources, time) or (batch, sources, time), got shape "
                             f"{tuple(reference.shape)}")
        if options.sample_rate is not None and options.sample_rate != rate:
            if not options.resample:
                raise ValueError(f"the reference is at {options.sample_rate} Hz but the model takes {rate} Hz; "
                                 "pass resample=True (--resample) to resample it")
            ref = resample_audio(ref, options.sample_rate, rate)
        check_same_length(ref, wav, "tensor", describe_input(options.input))
        return ref
    paths = [str(p).strip() for p in (reference.split(",") if isinstance(reference, str) else reference)]
    paths = [p for p in paths if p]
    refs = []
    for p in paths:
        r = read_waveform(p, rate, resample=options.resample, mono=options.mono, what="reference")
        check_same_length(r, wav, p, describe_input(options.input))
        refs.append(r[:, 0])
    return refs[0].unsqueeze(1) if len(refs) == 1 else torch.stack(refs, dim=1)


def build(model: nn.Module, options: EnhancementOptions) -> Problem:
    """The enhancement problem: the input's spectrogram and the SDR / SI-SDR of the output.

    Shape: input ``(1, time)`` / ``(batch, 1, time)``; reference the same -> grid ``(freq, frames)``.
    """
    if not isinstance(options, EnhancementOptions):
        raise TypeError(f"build takes EnhancementOptions, got {type(options).__name__}")
    rate = sample_rate_of(model, required=True)
    wav = read_waveform(options.input, rate, sample_rate=options.sample_rate, resample=options.resample,
                        mono=options.mono)
    reference = None
    if options.reference is not None:
        if isinstance(options.reference, (str, Path)) and len([p for p in str(options.reference).split(",")
                                                              if p.strip()]) != 1:
            raise ValueError(f"the enhancement task takes one clean reference, got {options.reference!r}")
        reference = read_references(options.reference, wav, rate, options)[:, 0:1]
    modality = spectrogram_for(model, wav, rate, options)
    scorer = reference_scorer(options.score, reference)
    reference_name = None if options.reference is None else describe_input(options.reference)
    return Problem(model=model, modality=modality, scorer=scorer, metadata={
        "input": describe_input(options.input), "reference": reference_name,
        "score_against": "reference" if reference is not None else "model output on the unmasked input",
        "target_label": f"{'SI-SDR' if type(scorer).__name__ == 'SISDR' else 'SDR'} of the enhanced speech against "
                        + ("the clean reference" if reference is not None else "the model's own output (no reference)"),
        "segments": read_segments(options.segments)},
        extras={"target": None if reference is None else reference[0, 0]})


class EnhancementTask(Task, name="enhancement", options=EnhancementOptions, model="enhancer", build=build,
        help="speech enhancement: SDR/SI-SDR of the enhanced output against --reference (or the model's own output)"):
    """``--task enhancement``: the SDR (``--score sdr``, default) or SI-SDR (``--score si-sdr``) of the enhanced
    output against the clean ``--reference``, or, without one, against the model's own output on the
    unmasked input. Model: ``--model`` (default the bundled reference enhancer). Besides the explanation it
    writes ``target.png`` / ``target.json`` (see :meth:`write_outputs`)."""

    def write_outputs(self, problem: Problem, explanation, out: Path) -> list[str]:
        """``target.png`` / ``target.json``: mask vs the clean speech's ideal binary mask (with a reference),
        and the score of the preserved and deleted inputs (:mod:`avxai.tasks.target_report`)."""
        return write_target_report(problem, explanation, out, problem.metadata["target_label"])

"""Speech separation: per source k, which T-F regions of the mixture carry the SDR of separated source k.

    problem = avxai.tasks.separation.build(separator, SeparationOptions(input=mixture, sample_rate=8000,
                                                                       reference=sources, source=1))

The score is the SDR (default) or SI-SDR of separated source ``source`` against reference ``source``; the
output channel that carries it is matched once, on the unmasked mixture, and kept fixed under masking.
Without references: channel ``source`` against the model's own output on the unmasked mixture.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from torch import Tensor, nn

from avxai.models.contract import num_sources_of, sample_rate_of
from avxai.tasks.audio import AudioOptions, describe_input, read_waveform, spectrogram_for
from avxai.tasks.base import Problem, Task, read_segments
from avxai.tasks.enhancement import read_references, reference_scorer
from avxai.tasks.target_report import write_target_report

__all__ = ["SeparationOptions", "SeparationTask", "build"]


@dataclass(frozen=True)
class SeparationOptions(AudioOptions):
    """Options of the separation task: :class:`~avxai.tasks.audio.AudioOptions` plus

    reference : the clean sources: files (a list, or one comma-separated string) or a tensor
        ``(sources, time)`` / ``(batch, sources, time)`` at ``sample_rate`` Hz; ``None``: the model's own output.
    source : which source to explain, 0-based.
    score : ``"sdr"`` (default) or ``"si-sdr"``.
    """

    reference: "str | Path | Sequence[str | Path] | Tensor | None" = None
    source: int = 0
    score: str | None = None


def build(model: nn.Module, options: SeparationOptions) -> Problem:
    """The separation problem: the mixture's spectrogram and the SDR / SI-SDR of source ``options.source``.

    Shape: input ``(1, time)`` / ``(batch, 1, time)``, reference ``(batch, sources, time)`` -> grid
    ``(freq, frames)``.
    """
    if not isinstance(options, SeparationOptions):
        raise TypeError(f"build takes SeparationOptions, got {type(options).__name__}")
    rate = sample_rate_of(model, required=True)
    wav = read_waveform(options.input, rate, sample_rate=options.sample_rate, resample=options.resample,
                        mono=options.mono)
    source = int(options.source)
    if source < 0:
        raise ValueError(f"source must be >= 0 (0-based), got {source}")
    reference = None
    if options.reference is not None:
        reference = read_references(options.reference, wav, rate, options)  # (batch, sources, time)
        if source >= reference.shape[1]:
            raise ValueError(f"--source {source + 1} does not exist: {reference.shape[1]} reference(s) were given "
                             f"({describe_input(options.reference)}); sources are counted from 1")
    elif source >= num_sources_of(model, required=True):
        raise ValueError(f"--source {source + 1} does not exist: the model separates {num_sources_of(model)} "
                         "sources (counted from 1)")
    modality = spectrogram_for(model, wav, rate, options)
    scorer = reference_scorer(options.score, reference, source=source)
    reference_name = None if options.reference is None else (
        options.reference if isinstance(options.reference, str) else
        describe_input(options.reference) if isinstance(options.reference, (Tensor, Path)) else
        ",".join(str(p) for p in options.reference))
    return Problem(model=model, modality=modality, scorer=scorer, metadata={
        "input": describe_input(options.input), "reference": reference_name, "source": source,
        "target_label": f"{'SI-SDR' if type(scorer).__name__ == 'SISDR' else 'SDR'} of source {source + 1} against "
                        + ("its reference" if reference is not None else "the model's own output (no reference)"),
        "score_against": "reference" if reference is not None else "model output on the unmasked input",
        "segments": read_segments(options.segments)},
        extras={"target": None if reference is None else reference[0, source]})


class SeparationTask(Task, name="separation", options=SeparationOptions, model="separator", build=build,
        help="speech separation: SDR/SI-SDR of source --source against --reference s1.wav,s2.wav (or own output)"):
    """``--task separation``: the SDR (``--score sdr``, default) or SI-SDR of separated source ``--source k``
    (default 0) against reference k of ``--reference s1.wav,s2.wav``; the output channel that carries source k
    is matched once, on the unmasked mixture, and kept fixed under masking. Without references: channel k
    against the model's own output on the unmasked mixture. Model: ``--model`` (default the bundled
    ConvTasNet). Besides the explanation it writes ``target.png`` / ``target.json`` (see :meth:`write_outputs`)."""

    def write_outputs(self, problem: Problem, explanation, out: Path) -> list[str]:
        """``target.png`` / ``target.json``: mask vs source k's ideal binary mask (with references), and the
        score of the preserved and deleted inputs (:mod:`avxai.tasks.target_report`)."""
        return write_target_report(problem, explanation, out, problem.metadata["target_label"])

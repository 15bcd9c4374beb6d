"""Speech separation: per source k, which T-F regions of the mixture carry the SDR of separated source k."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from avxai.tasks.base import Problem, Task, read_segments
from avxai.tasks.target_report import write_target_report
from avxai.tasks.enhancement import build_spectrogram, check_same_length, read_mono, reference_scorer

__all__ = ["SeparationTask"]


class SeparationTask(Task):
    """``--task separation``: the SDR (``--score sdr``, default) or SI-SDR of separated source ``--source k``
    (default 0) against reference k of ``--reference s1.wav,s2.wav``; the output channel that carries source k
    is matched once, on the unmasked mixture, and kept fixed under masking. Without references: channel k
    against the model's own output on the unmasked mixture. Model: ``--model-checkpoint`` (an
    :func:`avxai.models.separation.save_separator` checkpoint with its JSON), default the bundled ConvTasNet.
    Besides the explanation it writes ``target.png`` / ``target.json`` (see :meth:`write_outputs`)."""

    name = "separation"
    help = "speech separation: SDR/SI-SDR of source --source against --reference s1.wav,s2.wav (or own output)"
    options = frozenset({"input", "reference", "source", "segments", "model_checkpoint", "score"})

    def prepare(self, args: argparse.Namespace) -> Problem:
        from avxai.models.separation import load_separator

        model = load_separator(args.model_checkpoint)
        rate = model.sample_rate
        wav = read_mono(args.input, rate, args, "input")
        source = 0 if args.source is None else int(args.source)
        if source < 0:
            raise ValueError(f"--source must be >= 0 (0-based), got {source}")
        reference = None
        if args.reference:
            paths = [p.strip() for p in str(args.reference).split(",") if p.strip()]
            refs = []
            for p in paths:
                r = read_mono(p, rate, args, "reference")
                check_same_length(r, wav, p, args.input)
                refs.append(r[:, 0])
            reference = torch.stack(refs, dim=1)  # (1, sources, time)
            if source >= len(paths):
                raise ValueError(f"--source {source} does not exist: {len(paths)} reference(s) were given "
                                 f"({', '.join(paths)}); sources are 0-based")
        elif source >= model.num_sources:
            raise ValueError(f"--source {source} does not exist: the model separates {model.num_sources} sources "
                             "(0-based)")
        modality = build_spectrogram(wav, rate, model, args)
        scorer = reference_scorer(args.score, reference, source=source)
        return Problem(model=model, modality=modality, scorer=scorer, metadata={
            "input": str(args.input), "reference": args.reference, "source": source,
            "score_against": "reference" if reference is not None else "model output on the unmasked input",
            "segments": read_segments(getattr(args, "segments", None))},
            extras={"target": None if reference is None else reference[0, source]})

    def write_outputs(self, problem: Problem, explanation, out: Path) -> list[str]:
        """``target.png`` / ``target.json``: mask vs source k's ideal binary mask (with ``--reference``), and the
        score of the preserved and deleted inputs (:mod:`avxai.tasks.target_report`)."""
        name = problem.scorer.describe()["scorer"]
        k = problem.metadata["source"]
        against = f"reference {k}" if problem.extras.get("target") is not None else "its own unmasked output"
        return write_target_report(problem, explanation, out, f"{name} of separated source {k} vs {against}")

"""Frame-level models (voice-activity detectors, speaker-activity and frame classifiers): explain the mean or
max of a per-frame score over a time region or over the frames the model detects.

    import avxai
    vad = avxai.resolve_model("silero_vad.jit", args={"sr": 16000, "chunk": 512})  # (batch, frames[, classes])
    problem = avxai.tasks.frames.build(vad, avxai.tasks.frames.FramesOptions(input=wav, sample_rate=16000,
                                                                             region=(1.0, 2.5)))
    explanation = avxai.occlusion(problem.model, problem.modality, problem.scorer)

The model returns per-frame values ``(batch, frames)`` or ``(batch, frames, classes)``. Which frames count
(:class:`~avxai.scorers.frames.FrameScore`): ``region="START-END"`` (seconds) or ``(start, end)``; ``"all"``;
or ``None`` (default), the frames the model detects on the unmasked input (per-frame probability at or above
``threshold``). The seconds map to frames with the model's ``frame_hop_s`` when it states one (a chunked VAD:
``chunk / sample_rate``), else with ``input duration / output frames``. The spectrogram's STFT follows
:func:`avxai.tasks.audio.stft_for`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avxai.explanation import to_jsonable
from avxai.hygiene import evaluation_mode
from avxai.models.contract import frame_hop_of, sample_rate_of
from avxai.scorers.frames import FRAME_OUTPUTS, FRAME_REDUCTIONS, FrameScore
from avxai.tasks.audio import AudioOptions, describe_input, read_waveform, spectrogram_for
from avxai.tasks.base import Problem, Task, read_segments
from avxai.viz.style import OKABE_ITO, PAGE_WIDTH, paper_style

__all__ = ["FramesOptions", "FramesTask", "build", "parse_region", "frames_report", "write_frames_report"]


@dataclass(frozen=True)
class FramesOptions(AudioOptions):
    """Options of the frames task: :class:`~avxai.tasks.audio.AudioOptions` plus

    region : ``"START-END"`` seconds (``"1.0-2.5"``) or ``(start, end)``: score the frames in it; ``"all"``: every
        frame; ``None`` or ``"detected"``: the frames detected on the unmasked input.
    score : what a frame's value is: ``"probability"`` (default; a one-column output must already be a
        probability, as a VAD's), ``"logit"`` or ``"sigmoid"`` (see :data:`avxai.scorers.frames.FRAME_OUTPUTS`).
    reduce : ``"mean"`` (default) or ``"max"`` over the chosen frames.
    target : the output column (class, speaker) of a ``(batch, frames, classes)`` output; ``None``: the only
        one, or the column with the highest mean over the chosen frames.
    threshold : the detection threshold on the per-frame probability (default 0.5).
    """

    region: "str | tuple[float, float] | None" = None
    score: str | None = None
    reduce: str | None = None
    target: int | None = None
    threshold: float | None = None


def parse_region(region: "str | tuple | list | None") -> "tuple[float, float] | str":
    """``"1.0-2.5"`` -> ``(1.0, 2.5)``; ``(1, 2.5)`` -> ``(1.0, 2.5)``; ``"all"`` and ``"detected"`` (or
    ``None``) stay names. Raises ``ValueError`` naming the accepted forms."""
    if region is None:
        return "detected"
    if isinstance(region, str):
        text = region.strip().lower()
        if text in ("all", "detected"):
            return text
        start, sep, end = text.partition("-")
        try:
            if not sep:
                raise ValueError
            values = (float(start), float(end))
        except ValueError:
            raise ValueError(f"region must be START-END in seconds (e.g. 1.0-2.5), 'all' or 'detected', got "
                             f"{region!r}") from None
    else:
        try:
            values = tuple(float(v) for v in region)
        except (TypeError, ValueError):
            raise ValueError(f"region must be (start, end) seconds, 'START-END', 'all' or 'detected', got "
                             f"{region!r}") from None
        if len(values) != 2:
            raise ValueError(f"region must be two numbers (start, end) in seconds, got {region!r}")
    start, end = values
    if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
        raise ValueError(f"region must be START-END seconds with 0 <= START < END, got {region!r}")
    return start, end


def build(model: nn.Module, options: FramesOptions) -> Problem:
    """The frames problem: the input's spectrogram and a :class:`~avxai.scorers.frames.FrameScore`.

    Shape: input ``(channels, time)`` / ``(batch, channels, time)`` -> grid ``(freq or mel, frames)``; the
    model's output ``(batch, frames)`` or ``(batch, frames, classes)``.
    """
    if not isinstance(options, FramesOptions):
        raise TypeError(f"build takes FramesOptions, got {type(options).__name__}")
    rate = sample_rate_of(model, required=True)
    if options.score not in (None, *FRAME_OUTPUTS):
        raise ValueError(f"score {options.score!r} is not a frame score: use {', '.join(FRAME_OUTPUTS)}")
    if options.reduce not in (None, *FRAME_REDUCTIONS):
        raise ValueError(f"reduce {options.reduce!r} is not a reduction over frames: use "
                         f"{', '.join(FRAME_REDUCTIONS)}")
    region = parse_region(options.region)
    if options.threshold is not None and region != "detected":
        raise ValueError("threshold sets which frames are detected; it applies only without a region (or with "
                         "region 'detected')")
    wav = read_waveform(options.input, rate, sample_rate=options.sample_rate, resample=options.resample,
                        mono=options.mono)
    modality = spectrogram_for(model, wav, rate, options)
    duration = wav.shape[-1] / rate
    scorer = FrameScore(options.score or "probability", options.reduce or "mean", target=options.target,
                        region=region if isinstance(region, tuple) else None, detect=region == "detected",
                        threshold=0.5 if options.threshold is None else options.threshold,
                        frame_hop_s=frame_hop_of(model), duration_s=duration)
    metadata: dict[str, Any] = {"input": describe_input(options.input), "segments": read_segments(options.segments),
                                "region": region if isinstance(region, str) else list(region)}
    return Problem(model=model, modality=modality, scorer=scorer, metadata=metadata)


class FramesTask(Task, name="frames", options=FramesOptions, model=None, build=build,
        help=("frame-level models (VAD, speaker activity): mean/max (--reduce) of a per-frame probability, logit or "
          "sigmoid (--score) over --region START-END seconds, all frames, or the frames it detects (default)")):
    """``--task frames``: a VAD's or a speaker-activity model's per-frame output, its mean or max
    (``--reduce``) over ``--region START-END`` seconds, ``all`` frames or the frames it detects (default;
    ``--threshold``), as ``--score probability|logit|sigmoid`` of column ``--target``."""

    def write_outputs(self, problem: Problem, explanation, out: Path) -> list[str]:
        """``frames.json`` / ``frames.png``: the model's per-frame output, the scored frames, and the share of the
        positive evidence inside them (:func:`write_frames_report`)."""
        return write_frames_report(problem, explanation, out)


def frames_report(problem: Problem, explanation, index: int = 0) -> dict[str, Any]:
    """The unmasked model's per-frame values (in the scorer's units), the scored frames, their times, and the
    share of the explanation's positive attribution whose STFT frames lie in the scored frames' time (beside
    the share of the time they cover: a uniform map's share)."""
    model, modality = problem.model, problem.modality
    with evaluation_mode(model), torch.inference_mode():
        output = model(modality.model_input())
    scorer = problem.scorer.prepare(output)
    values = scorer.per_frame(output)[index].float().cpu()
    chosen = scorer.frames[index].cpu()
    info = scorer.describe()
    hop = info["frame_hop_s"] or (modality.waveform.shape[-1] / modality.sample_rate / values.numel())
    doc: dict[str, Any] = {"units": scorer.units, "frame_hop_s": hop, "frame_hop_from": info["frame_hop_from"],
                           "values": values.tolist(), "scored": chosen.nonzero().flatten().tolist(),
                           "region_s": info["region_s"], "detect": info["detect"], "threshold": info.get("threshold"),
                           "reduce": info["reduce"], "target": info["target"]}
    attribution = getattr(explanation, "attribution", None)
    if attribution is not None and explanation.axes and explanation.axes[-1] == "time":
        positive = attribution[index].detach().float().cpu().clamp(min=0)
        positive = positive.reshape(-1, positive.shape[-1]).sum(dim=0)   # per STFT frame
        times = torch.arange(positive.numel()) * modality.hop_length / modality.sample_rate  # centred frames
        inside = chosen[(times / hop).long().clamp(max=chosen.numel() - 1)]
        total = float(positive.sum())
        doc["evidence_share_in_scored_frames"] = float(positive[inside].sum()) / total if total > 0 else None
        doc["time_share_of_scored_frames"] = float(inside.float().mean())
    return doc


def write_frames_report(problem: Problem, explanation, out: Path) -> list[str]:
    """Write ``frames.json`` and ``frames.png`` (per-frame output with the scored frames shaded) for input 0;
    print one line with the share of the evidence in the scored frames; return the names written."""
    import matplotlib  # plotting library, imported only when a figure is written

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    doc = frames_report(problem, explanation)
    out = Path(out)
    (out / "frames.json").write_text(json.dumps(to_jsonable(doc), indent=2) + "\n")
    hop, values = doc["frame_hop_s"], doc["values"]
    what = (f"region {doc['region_s'][0]:g}-{doc['region_s'][1]:g} s" if doc["region_s"] else
            f"detected at >= {doc['threshold']:g}" if doc["detect"] else "all frames")
    with paper_style():  # the print look of every figure (avxai.viz.style): page width, text >= 7 pt
        fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 2.0), layout="constrained")
        ax.step([i * hop for i in range(len(values))], values, where="post", color="k", lw=1.2)
        for i in doc["scored"]:
            ax.axvspan(i * hop, (i + 1) * hop, color=OKABE_ITO[1], alpha=0.3, lw=0)
        ax.set(xlabel="time (s)", ylabel=f"model output ({doc['units']})", xlim=(0, len(values) * hop),
               title=f"per-frame output; scored frames shaded ({what}, {doc['reduce']})")
        fig.savefig(out / "frames.png", dpi=150)
    plt.close(fig)
    share = doc.get("evidence_share_in_scored_frames")
    line = f"{len(doc['scored'])} of {len(values)} frames scored ({what})"
    if share is not None:
        line += (f"; {100 * share:.1f}% of the positive evidence lies in them "
                 f"({100 * doc['time_share_of_scored_frames']:.1f}% of the time)")
    print(f"      frames: {line}")
    return ["frames.json", "frames.png"]

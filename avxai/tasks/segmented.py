"""Segment-wise explanations of long inputs: the input cut into consecutive segments of a few seconds, each a
problem of its own built the way its task builds it, the method run on each, the maps stitched along time.

    explanation = explain_in_segments(get_task("speaker"), model, SpeakerOptions(input="talk.wav"),
                                      get_method("extremal"), ExtremalConfig(), seconds=60, folder="out/segments")

Why: a gradient method keeps one row's activations of the whole input (a 10-minute input on the bundled speaker
model needs more than 2 GiB for one row); a segment's row is as small as the segment. The question changes and
the metadata says so (``metadata["segment_wise"]["question"]``): each segment is explained on its own, the model
saw one segment at a time (its context, its normalisation, its pooling over the segment only).

How each task's inputs follow a segment: the input (and a time-aligned ``reference``) is sliced; an
enrollment (``enroll``) and a class ``target`` are not. A speaker target left to the model is the class
predicted on the whole input, fixed for every segment (a segment's own prediction could differ). The AV task
tracks the face once on the whole clip and slices the crops and the sound (``start_s`` / ``end_s``).

Each segment's explanation is saved in ``folder/NNN`` as soon as it is done; a rerun with the same input, method
and settings reuses it. A segment that fails is reported (``segment_wise.failed``, zeros in the maps) and the
others are kept; rerunning explains the failed ones again.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avxai.explanation import Explanation, to_jsonable
from avxai.hygiene import evaluation_mode, model_device
from avxai.methods.plan import default_context, plan_run
from avxai.models.contract import fps_of, sample_rate_of
from avxai.tasks.audio import AudioOptions, read_waveform, stft_for
from avxai.tasks.av_enhancement import AVEnhancementOptions
from avxai.tasks.base import Problem, Task
from avxai.tasks.enhancement import read_references
from avxai.tasks.stitch import Span, core_of, segment_spans, stitch

__all__ = ["QUESTION", "SEGMENT_TASKS", "default_context", "explain_in_segments", "input_duration"]

#: tasks whose problems can be cut into time segments
SEGMENT_TASKS = ("speaker", "enhancement", "separation", "av-enhancement")
#: a method's results that hold for one segment (integrated gradients' completeness on the segment's own path,
#: Grad-CAM's per-stream maxima): kept in each segment's record of ``segment_wise.segments``
PER_SEGMENT = ("completeness", "part_max")
#: what a segment-wise explanation answers, stated in its metadata
QUESTION = "each segment explained on its own: the model saw one segment at a time"


def input_duration(problem: Problem) -> float | None:
    """Seconds of the problem's input (a spectrogram's waveform, an AV clip), or ``None`` when unknown."""
    modality = problem.modality
    meta = modality.metadata() if hasattr(modality, "metadata") else {}
    if isinstance(meta, dict) and meta.get("duration_s"):
        return float(meta["duration_s"])
    parts = meta.get("parts", {}) if isinstance(meta, dict) else {}
    durations = [p.get("duration_s") for p in parts.values() if p.get("duration_s")]
    return float(max(durations)) if durations else None


class _Inputs:
    """The whole input of a task, read once, and each segment's options cut from it."""

    def __init__(self, task: Task, model: nn.Module, options: Any, whole: Problem | None):
        if task.name not in SEGMENT_TASKS:
            raise ValueError(f"--task {task.name} cannot be explained in segments (segment-wise explanations are for "
                             f"{', '.join(SEGMENT_TASKS)}); use --segment-seconds 0")
        self.task, self.options, self.notes = task, options, []
        if isinstance(options, AVEnhancementOptions):
            if whole is None or "track" not in whole.extras:  # the face tracked once, on the whole clip
                whole = task.build(model, dataclasses.replace(options, shares=False, stream="video"))
            self.track, fps = whole.extras["track"], fps_of(model, required=True)
            self.quantum, self.duration = 1.0 / fps, self.track.num_frames / fps
            return
        if not isinstance(options, AudioOptions):
            raise TypeError(f"segment-wise explanations take a task's options, got {type(options).__name__}")
        rate = self.rate = sample_rate_of(model, required=True)
        self.wav = read_waveform(options.input, rate, sample_rate=options.sample_rate, resample=options.resample,
                                 mono=options.mono)
        # segments start on STFT frames (the hop), so each segment's frames lie on the whole input's time grid
        hop = stft_for(model, rate, options.n_fft, options.hop_length)[1]
        self.quantum, self.duration = hop / rate, self.wav.shape[-1] / rate
        reference = getattr(options, "reference", None)
        self.reference = None if reference is None else read_references(reference, self.wav, rate, options)
        self.fixed = {}
        enroll = getattr(options, "enroll", None)
        if isinstance(enroll, torch.Tensor):  # read at the input's rate before the segments pass the model's
            self.fixed["enroll"] = read_waveform(enroll, rate, sample_rate=options.sample_rate,
                                                 resample=options.resample, mono=True, what="enrollment")
        if task.name == "speaker" and enroll is None and options.target is None:
            self.fixed["target"] = self._predicted_class(model)

    def _predicted_class(self, model: nn.Module):
        """The class predicted on the whole input (one pass without gradients), fixed for every segment."""
        with evaluation_mode(model), torch.inference_mode():
            out = model(self.wav.to(model_device(model)))
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            self.notes.append("target: each segment's own predicted class (the model's output is not (batch, classes))")
            return None
        classes = out.argmax(dim=-1).tolist()
        self.notes.append(f"target: class {classes if len(classes) > 1 else classes[0]}, predicted on the whole "
                          "input, explained in every segment")
        return classes[0] if len(classes) == 1 else classes

    def options_for(self, span: Span) -> Any:
        if isinstance(self.options, AVEnhancementOptions):
            return dataclasses.replace(self.options, track=self.track, start_s=span.context_start_s,
                                       end_s=span.context_end_s, shares=False)
        lo, hi = (round(t * self.rate) for t in (span.context_start_s, span.context_end_s))
        changes: dict[str, Any] = {"input": self.wav[..., lo:hi].contiguous(), "sample_rate": self.rate,
                                   "mono": False, "segments": None, **self.fixed}
        if self.reference is not None:
            changes["reference"] = self.reference[..., lo:hi].contiguous()
        return dataclasses.replace(self.options, **changes)


def _fingerprint(task: Task, method: Any, config: Any, span: Span, source: str) -> dict:
    settings = {k: v for k, v in to_jsonable(config).items() if k != "progress"}
    return {"task": task.name, "method": method.name, "config": settings, "span": span.as_dict(), "input": source}


def _reusable(folder: Path, fingerprint: dict) -> Explanation | None:
    """The segment's saved explanation when it was made with the same fingerprint, else ``None``."""
    doc = folder / "explanation.json"
    if not doc.exists():
        return None
    try:
        saved = json.loads(doc.read_text()).get("metadata", {}).get("segment", {}).get("fingerprint")
        if saved != json.loads(json.dumps(to_jsonable(fingerprint))):
            return None
        return Explanation.load(folder)
    except (OSError, ValueError, KeyError):
        return None


def explain_in_segments(task: Task, model: nn.Module, options: Any, method: Any, config: Any, *, seconds: float,
                        folder: str | Path, context_s: float | None = None, whole: Problem | None = None,
                        reason: str | None = None, say: Callable[[str], None] | None = None) -> Explanation:
    """Explain ``options.input`` in segments of ``seconds`` (with ``context_s`` on each side, default
    :func:`default_context`) and stitch them into one explanation of the whole input.

    ``folder``: where each segment's explanation is saved (``NNN/``) and found again by a rerun. ``whole``: the
    whole input's problem when already built (the AV task's face track is taken from it). ``reason``: why the
    input was cut (stated in the metadata). ``say``: receives one line per segment (progress). The method's
    config is planned on the first segment (:func:`avxai.methods.plan.plan_run`: occlusion's batch from the
    budget). Raises ``ValueError`` when every segment fails.

    Shape: the stitched attribution / grid / masks have the whole input's time axis.
    """
    say = say or (lambda line: None)
    given = config  # what a rerun is compared on (the plan fills in e.g. a batch size)
    context_s = default_context(seconds) if context_s is None else float(context_s)
    inputs = _Inputs(task, model, options, whole)
    spans = segment_spans(inputs.duration, seconds, context_s, inputs.quantum)
    folder = Path(folder)
    source = str(getattr(options, "input", "")) if not isinstance(getattr(options, "input", None), torch.Tensor) \
        else f"tensor {tuple(options.input.shape)}"
    cores: dict[int, dict] = {}
    records, failed, first, plan, total, unstitched = [], [], None, None, 0.0, []
    started, done = time.perf_counter(), 0  # the ETA: wall time per segment explained in this run
    for span in spans:
        fingerprint = _fingerprint(task, method, given, span, source)
        where = folder / f"{span.index:03d}"
        what = f"segment {span.index + 1}/{len(spans)} ({span.start_s:.1f}-{span.end_s:.1f} s)"
        explanation = _reusable(where, fingerprint)
        status = "reused"
        if explanation is None:
            status = "explained"
            try:
                problem = task.build(model, inputs.options_for(span))
                if plan is None:
                    config, plan = plan_run(method, problem.model, problem.modality, config, scorer=problem.scorer)
                    if plan is not None:
                        say(f"segment {plan.line()}")
                explanation = method(problem.model, problem.modality, problem.scorer, config)
                explanation.metadata.update({k: v for k, v in problem.metadata.items()
                                             if v is not None and k not in ("crop_boxes", "segments")})
                explanation.metadata["segment"] = {**span.as_dict(), "fingerprint": fingerprint}
                explanation.save(where, figure=False, media=True)
                del problem
            except Exception as err:  # noqa: BLE001 - one failing segment must not lose the others
                text = f"{type(err).__name__}: {err}".splitlines()[0]
                failed.append({**span.as_dict(), "error": text})
                records.append({**span.as_dict(), "status": "failed", "error": text})
                say(f"{what}: FAILED ({text}); the other segments go on")
                explanation = None
                gc.collect()
                continue
        cores[span.index] = core_of(explanation, span)
        if first is None:
            first, unstitched = _light(explanation), sorted(explanation.arrays)
        total += float(explanation.metadata.get("seconds") or 0.0)
        records.append({**span.as_dict(), "status": status, "folder": str(where),
                        "scores": to_jsonable(explanation.scores),
                        "warnings": list(explanation.metadata.get("warnings", [])),
                        **{k: to_jsonable(explanation.metadata[k]) for k in PER_SEGMENT if k in explanation.metadata}})
        done += status == "explained"
        left = sum(1 for s in spans if s.index > span.index)
        eta = f"; about {(time.perf_counter() - started) / done * left:.0f} s left" if done and left else ""
        say(f"{what}: {status} ({where}){eta}")
        del explanation
        gc.collect()
    if not cores:
        raise ValueError(f"every segment failed; the first: {failed[0]['error']}")
    info = {"seconds": seconds, "count": len(spans), "overlap_s": 2 * context_s, "context_s": context_s,
            "stitch": "each segment's context cut away: consecutive segments meet at the centre of their overlap",
            "question": QUESTION, "reason": reason, "folder": str(folder), "notes": inputs.notes,
            "segments": records, "failed": failed, "segment_plan": None if plan is None else plan.as_dict(),
            "not_stitched": [f"arrays/{name}: in each segment's folder" for name in unstitched]}
    stitched = stitch(first, cores, spans, info)
    for key in PER_SEGMENT:  # a segment's own result, not the whole input's: kept per segment only
        if key in stitched.metadata and key != "part_max":  # part_max: the stitched map's own (stitch.py)
            stitched.metadata[key] = f"per segment: segment_wise.segments[i].{key}"
    stitched.metadata["seconds"] = total
    stitched.metadata["warnings"] = _warnings(records)
    stitched.arrays.update(_segment_scores(records))
    return stitched


def _light(explanation: Explanation) -> Explanation:
    """The explanation without its tensors (the stitched one takes its method, axes and metadata)."""
    return dataclasses.replace(explanation, attribution=explanation.attribution[:, :0], grid=explanation.grid[:, :0],
                               masks=None, history={}, arrays={}, scores={},
                               media={k: (v[0], None, v[2]) for k, v in explanation.media.items()})


def _warnings(records: list[dict]) -> list[str]:
    """Each kind of warning once (its words without the numbers in parentheses), with the segments that gave it
    and the first one's full text."""
    seen: dict[str, tuple[list[int], str]] = {}
    for r in records:
        for w in r.get("warnings", []):
            seen.setdefault(re.sub(r"\([^()]*\)", "()", w), ([], w))[0].append(r["index"] + 1)
    return [f"segment{'s' if len(idx) > 1 else ''} {_ranges(idx)}: {w}" for idx, w in seen.values()]


def _ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``"1-3, 5"``."""
    out: list[str] = []
    for n in numbers:
        if out and out[-1].split("-")[-1] == str(n - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{n}"
        else:
            out.append(str(n))
    return ", ".join(out)


def _segment_scores(records: list[dict]) -> dict[str, torch.Tensor]:
    """``segment_<score>``: each segment's score, ``(batch, segments[, areas])``, NaN for a failed segment."""
    names = {k for r in records for k in r.get("scores", {})}
    out = {}
    for name in sorted(names):
        values = [r.get("scores", {}).get(name) for r in sorted(records, key=lambda r: r["index"])]
        like = torch.as_tensor(next(v for v in values if v is not None), dtype=torch.float64)
        rows = [torch.as_tensor(v, dtype=torch.float64) if v is not None else torch.full_like(like, math.nan)
                for v in values]
        out[f"segment_{name}"] = torch.stack(rows, dim=1)  # (batch, segments[, areas])
    return out

"""``avxai explain``: one input of a model explained by one method, saved with its figures.

The flags become the task's options (:func:`task_options`), the model (:func:`task_model`) and the method's config
(:func:`method_config`, with the task's own defaults: :func:`task_defaults`); the plan is printed before the run.
A long input whose one row does not fit ``--max-memory`` is explained in segments (:mod:`avxai.tasks.segmented`),
said in the plan line and in the metadata; ``--segment-seconds`` sets the segments, 0 turns them off.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import warnings
from pathlib import Path

import torch

from avxai.cli_parser import SHORTCUTS, TASK_FLAGS
from avxai.config import build_config
from avxai.explanation import runtime_info
from avxai.hygiene import model_device
from avxai.memory import check_batch_memory, format_size, memory_budget
from avxai.methods import get_method
from avxai.methods.base import ExplanationWarning
from avxai.methods.plan import auto_segment_seconds, plan_run
from avxai.metrics.localisation import segment_mass
from avxai.models.spec import parse_model_args, resolve_model, spec_forms
from avxai.safety import check_output_dir
from avxai.tasks import Task, get_task
from avxai.tasks.base import Problem
from avxai.tasks.segmented import (
    QUESTION,
    SEGMENT_TASKS,
    default_context,
    explain_in_segments,
    input_duration,
)
from avxai.tasks.stitch import segment_spans
from avxai.viz.labels import growth_text

__all__ = ["applied_task_defaults", "method_config", "run_explain", "task_defaults", "task_model", "task_options"]


def task_options(task: Task, args: argparse.Namespace):
    """The task's options from the parsed flags: every given task flag must be a field of its options class."""
    fields = {f.name for f in dataclasses.fields(task.options_class)}
    source = getattr(args, "source", None)
    if source is not None and source < 1:
        raise ValueError(f"--source {source}: sources are counted from 1 (--source 1 is the first)")
    # "not in (None, False)" would drop --target 0 and --source 0 (0 == False): compare by identity
    given = {k: v for k in TASK_FLAGS if (v := getattr(args, k, None)) is not None and v is not False}
    if "source" in given:  # counted from 1 on the command line, 0-based in the options
        given["source"] = source - 1
    extra = [k for k in given if k not in fields]
    if extra:
        flags = ", ".join("--" + o.replace("_", "-") for o in extra)
        raise ValueError(f"{flags} do(es) not apply to --task {task.name}; it reads "
                         + ", ".join("--" + o.replace("_", "-") for o in TASK_FLAGS if o in fields))
    return task.options_class(**given)


def task_model(task: Task, args: argparse.Namespace):
    """``--model SPEC`` with its ``--model-arg``s (default: the task's bundled model) through the one spec resolver
    (:func:`avxai.models.spec.resolve_model`)."""
    if args.model is None and args.architecture is None and task.default_model is None:
        raise ValueError(f"--task {task.name} has no bundled model: name yours with --model SPEC ({spec_forms()})")
    return resolve_model(args.model, architecture=args.architecture, args=parse_model_args(args.model_arg),
                         default=task.default_model)


def method_config(method, args: argparse.Namespace):
    """The method's frozen config from ``--config`` (a mapping, or one under the method's name), ``--set`` and
    the shortcut flags; ``progress`` follows ``--quiet``."""
    fields = {f.name for f in dataclasses.fields(method.config_class)}
    return build_config(method.config_class, file=args.config, section=method.name,
                        values={"progress": not args.quiet} if "progress" in fields else None, sets=args.set,
                        shortcuts={k: getattr(args, k) for k in SHORTCUTS})


def task_defaults(task: Task, method, config, args: argparse.Namespace):
    """The config with the task's own defaults for this method (``Task.method_defaults``, e.g. the AV task's
    extremal areas and iterations) in the fields that no flag, ``--set`` or ``--config`` file gave."""
    defaults = dict(getattr(task, "method_defaults", {}).get(method.name, {}))
    given = {k for k in SHORTCUTS if getattr(args, k, None) is not None}
    given |= {item.split("=", 1)[0].strip().replace("-", "_") for item in args.set}
    if args.config and defaults:
        plain, from_file = method.config_class(), build_config(method.config_class, file=args.config, section=method.name)
        given |= {k for k in defaults if getattr(from_file, k) != getattr(plain, k)}
    keep = {k: v for k, v in defaults.items() if k not in given}
    return dataclasses.replace(config, **keep) if keep else config


def applied_task_defaults(task: Task, method, before, after) -> dict:
    """The task's method defaults that :func:`task_defaults` put into the config (``before`` -> ``after``):
    printed and saved in ``metadata["task_defaults"]``, so a run says which settings came from the task."""
    defaults = getattr(task, "method_defaults", {}).get(method.name, {})
    return {k: getattr(after, k) for k in defaults if getattr(after, k) != getattr(before, k)}


def run_explain(args: argparse.Namespace) -> int:
    check_output_dir(args.out)  # before any work: a wrong --out fails now, not after the computation
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    task = get_task(args.task)
    options = task_options(task, args)
    method = get_method(args.method)
    given = method_config(method, args)
    config = task_defaults(task, method, given, args)
    from_task = applied_task_defaults(task, method, given, config)
    if from_task:
        print(f"note: --task {task.name} sets {method.name} " + ", ".join(f"{k}={v!r}" for k, v in from_task.items())
              + " (override with --set)", file=sys.stderr)
    model = on_device(task_model(task, args), args.device)
    with warnings.catch_warnings(record=True) as caught:  # the task's warnings (a lost face, no reference): one line
        warnings.simplefilter("always", UserWarning)
        problem = task.build(model, options)
    build_warnings = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))
    for message in build_warnings:
        print(f"avxai explain: warning: {message}", file=sys.stderr)
    check_memory(problem, config)  # say up front what the batches need, not an allocator error after a minute
    planned, plan = plan_for(method, problem, config, args)  # the plan: work, batches, memory, time
    segments = segment_choice(task, args, plan, problem)
    if segments is not None:  # never silently: the plan line says the question changed and how to turn it off
        seconds, context, count, reason = segments
        note = (f"segment-wise: {count} segments of {seconds:g} s (+{context:g} s context each side) because "
                f"{reason}; {QUESTION}; --segment-seconds 0 explains the whole input at once")
        if plan is None:
            print(f"plan: {method.name}, {note}", file=sys.stderr)
        else:  # the whole input's plan, with the choice instead of the chunking the segments replace
            plan.notes = [note]
    if plan is not None:
        print(plan.line(), file=sys.stderr)
    failed = []
    with warnings.catch_warnings(), memory_budget(args.max_memory):  # printed below, once each, from the metadata
        warnings.simplefilter("ignore", ExplanationWarning)
        if segments is None:
            explanation = method(problem.model, problem.modality, problem.scorer, planned)
        else:
            problem = _outputs_problem(task, problem)  # the whole input's tensors freed before the segments
            gc.collect()
            say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
            explanation = explain_in_segments(task, model, options, method, config, seconds=seconds,
                                              folder=Path(args.out) / "segments", context_s=context,
                                              whole=problem if "track" in problem.extras else None,
                                              reason=reason, say=say)
            failed = explanation.metadata["segment_wise"]["failed"]
    for message in explanation.metadata.get("warnings", []):
        print(f"avxai explain: warning: {message}", file=sys.stderr)
    explanation.metadata.update({k: v for k, v in problem.metadata.items() if v is not None})
    if build_warnings:
        explanation.metadata["warnings"] = build_warnings + list(explanation.metadata.get("warnings", []))
    explanation.metadata["task"] = task.name
    if from_task:
        explanation.metadata["task_defaults"] = {k: list(v) if isinstance(v, tuple) else v
                                                 for k, v in from_task.items()}
    if plan is not None:
        explanation.metadata["plan"] = plan.as_dict()
    explanation.metadata["model_name"] = (Path(args.model.rstrip("/")).name if args.model else None) or \
        args.architecture or task.default_model  # the model as figure titles name it
    explanation.metadata["runtime"] = runtime_info(next(model.parameters(), torch.empty(0)).device)
    shares = segment_mass(explanation)  # with --segments: how much of the evidence lies in each label's turns
    if shares:
        explanation.metadata["segment_mass"] = shares
    out = explanation.save(args.out)
    if problem.modality is None and type(task).write_outputs is not Task.write_outputs:
        with warnings.catch_warnings():  # said once already, when the whole input was first built
            warnings.simplefilter("ignore", UserWarning)
            problem = task.build(model, options)
    task.write_outputs(problem, explanation, out)
    report(explanation, out)
    if failed:
        print(f"avxai explain: {len(failed)} of {explanation.metadata['segment_wise']['count']} segments failed ("
              + "; ".join(f"{f['start_s']:g}-{f['end_s']:g} s: {f['error']}" for f in failed[:3])
              + "); they are zero in the maps. Run the same command again to explain them (finished segments in "
              f"{Path(args.out) / 'segments'} are reused)", file=sys.stderr)
        return 1
    return 0


def segment_choice(task: Task, args: argparse.Namespace, plan, problem: Problem):
    """``(seconds, context_s, count, reason)`` of a segment-wise run, or ``None`` for the whole input:
    ``--segment-seconds S`` (0: never), else chosen when one row of the whole input does not fit the budget
    (:func:`avxai.methods.plan.auto_segment_seconds`)."""
    wanted = getattr(args, "segment_seconds", None)
    if wanted == 0:
        return None
    duration = input_duration(problem)
    if wanted is None:
        if task.name not in SEGMENT_TASKS:
            return None
        wanted = auto_segment_seconds(plan, duration)
        if wanted is None:
            return None
        reason = (f"one row of the whole {duration:.0f} s input needs >= {format_size(plan.row_bytes)}, over the "
                  f"{format_size(plan.budget)} budget (--max-memory)")
    else:
        reason = f"--segment-seconds {wanted:g}"
    if duration is None:
        raise ValueError(f"--segment-seconds: the length of this --task {task.name} input is unknown; explain it "
                         "whole (--segment-seconds 0)")
    context = args.segment_context if getattr(args, "segment_context", None) is not None else default_context(wanted)
    count = len(segment_spans(duration, wanted, context))
    if count == 1:
        print(f"note: --segment-seconds {wanted:g} covers the whole {duration:.1f} s input: explained at once",
              file=sys.stderr)
        return None
    return wanted, context, count, reason


def _outputs_problem(task: Task, problem: Problem) -> Problem:
    """What the task's outputs need after a segment-wise run: the AV task's face track and frames (kept); for
    the others only the metadata (the whole input is built again when the task writes outputs of its own)."""
    if "track" in problem.extras:
        return problem
    return Problem(model=problem.model, modality=None, scorer=None, metadata=problem.metadata)


def on_device(model, device: str | None):
    """``model`` moved to ``--device`` (``None``: where it is); the task builds its input there."""
    if device is None:
        return model
    try:
        target = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available here; use --device cpu")
    return model.to(target)


def plan_for(method, problem, config, args):
    """The method's plan (:func:`avxai.methods.plan.plan_run`) under ``--max-memory`` (printed by the caller, one
    line, also with ``--quiet``); the config the run uses (occlusion: its batch size from the budget)."""
    with memory_budget(args.max_memory):
        return plan_run(method, problem.model, problem.modality, config, scorer=problem.scorer)


def check_memory(problem, config) -> None:
    """Refuse, before the method runs, a ``--batch-size`` whose perturbed inputs cannot fit in the memory
    available (:func:`avxai.memory.check_batch_memory`; a lower bound, so it never refuses what would fit)."""
    batch_size = getattr(config, "batch_size", None)
    if isinstance(batch_size, int) and batch_size > 0:
        modality = problem.modality
        need = check_batch_memory(problem.model, modality.model_input(), modality.representation, batch_size,
                                  rows=modality.batch_size, device=model_device(problem.model)).get("batch", 0)
        if need >= 1 << 30:  # worth knowing before a long run
            print(f"note: batches of {batch_size} perturbed inputs need at least {need / (1 << 30):.1f} GiB of "
                  "memory; --batch-size lowers it", file=sys.stderr)


def report(explanation, out: Path) -> None:
    """Print the scores and what was written."""
    units = explanation.metadata.get("scorer", {}).get("units", "")
    # scores that are not in the scorer's units: class indices, and ratios to the unmasked score
    own_units = {"max_class": "(class)", "target": "(class)"}
    for name, value in explanation.scores.items():
        if name == "area_growth":  # dB scores as differences, positive scores as ratios (avxai.viz.labels)
            print(f"{name:>12}: {growth_text(explanation)}")
            continue
        as_int = name in ("max_class", "target")
        vals = ", ".join(f"{v:.0f}" if as_int else f"{v:.3f}" for v in value.flatten().tolist()[:8])
        print(f"{name:>12}: {vals} {own_units.get(name, units)}")
    for name, value in explanation.arrays.items():  # a segment-wise run: each segment's own scores
        if name.startswith("segment_") and name[8:] in ("unmasked", "preserved", "deleted"):
            vals = ", ".join(f"{v:.3f}" for v in value[0].reshape(value.shape[1], -1)[:, -1].tolist()[:8])
            more = ", ..." if value.shape[1] > 8 else ""
            area = f", area {explanation.areas[-1]:g}" if value.dim() > 2 and explanation.areas else ""
            print(f"{name[8:]:>12}: {vals}{more} {units} (per segment{area})")
    for label, entry in (explanation.metadata.get("segment_mass") or {}).items():
        parts = []
        if "positive" in entry:
            parts.append(f"{100 * entry['positive'][0]:.1f}% of the positive attribution")
        if "masks" in entry:
            areas = explanation.areas or []
            parts.append("mask mass " + ", ".join(f"{100 * v:.1f}%" + (f" (area {a:g})" if a is not None else "")
                                                  for v, a in zip(entry["masks"][0], list(areas) + [None] * 99)))
        print(f"in segments {label!r}: " + "; ".join(parts))
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out}/ "
          f"({explanation.metadata.get('seconds', 0):.1f} s)")

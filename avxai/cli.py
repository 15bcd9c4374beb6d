"""Command line: ``avxai demo``, ``avxai explain``, ``avxai audit``."""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import sys
import warnings
from pathlib import Path
from typing import Sequence

import torch

from avxai.audit.command import add_audit_parser, run_audit_command
from avxai.config import build_config
from avxai.demo import DEMO_MODELS, run_demo as demo
from avxai.explanation import runtime_info
from avxai.hygiene import model_device
from avxai.inspect_command import add_inspect_parser, run_inspect_command
from avxai.memory import check_batch_memory, memory_budget, parse_size
from avxai.methods import METHODS, get_method
from avxai.methods.plan import plan_run
from avxai.methods.base import ExplanationWarning
from avxai.metrics.localisation import segment_mass
from avxai.models.registry import describe_architectures
from avxai.models.spec import parse_model_args, resolve_model, spec_forms
from avxai.perturbations import PERTURBATION_NAMES
from avxai.safety import check_output_dir
from avxai.tasks import TASKS, Task, get_task
from avxai.version import __version__
from avxai.viz.labels import growth_text

#: flags of the "task inputs" and "audio" groups: each is passed to the task when its options class has the field
TASK_FLAGS = ("input", "reference", "enroll", "source", "target", "segments", "score", "stream", "region", "reduce",
              "threshold", "n_fft", "hop_length", "n_mels", "perturbation", "resample", "mono", "fps_convert", "face",
              "face_confidence", "min_face_size", "detect_every", "track_cache")
#: method-config fields with a flag of their own
SHORTCUTS = ("areas", "window", "stride", "iterations", "batch_size", "seed")


def _csv(kind):
    def parse(text: str):
        try:
            return tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
    return parse


def _positive_int(text: str) -> int:
    """argparse type: an int >= 1 (0 is refused, never replaced by a default)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="avxai", description="Explain audio-visual and speech models: which time-frequency regions of the "
                                  "spectrogram and which face regions carry a model's result.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the installed version (from the package metadata) and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="explain the bundled speaker model on the bundled A-B-A utterance",
                          description="Load the bundled speaker-identification model and A-B-A utterance (speaker A, "
                                      "then B, then A), explain speaker A's logit with occlusion on the spectrogram, "
                                      "and write the explanation (JSON, arrays, figure, WAVs) to --out.")
    demo.add_argument("--out", default="avxai-out", help="output folder (default: %(default)s)")
    demo.add_argument("--method", default="occlusion", choices=sorted(METHODS), help="method (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument("--model", default="speakernet", choices=DEMO_MODELS,
                      help="speakernet: the bundled model on generated speech; resemblyzer: Resemblyzer's pretrained "
                           "speaker encoder on real recordings, the cosine to A's enrollment (pip install "
                           "avxai[resemblyzer]) (default: %(default)s)")

    ex = sub.add_parser("explain", help="explain one input of a model", description=(
        "Explain one input of a model. Task options (--input, --reference, ...) are read by the tasks named in "
        "their help; giving one that the chosen task does not read is an error."))
    ex.add_argument("--task", required=True, choices=sorted(TASKS),
                    help="; ".join(f"{n}: {t.help}" for n, t in sorted(TASKS.items())))
    ex.add_argument("--method", default="occlusion", choices=sorted(METHODS), help="method (default: %(default)s)")
    ex.add_argument("--out", required=True, help="output folder for explanation.json, arrays.npz, figures, media")
    g = ex.add_argument_group("task inputs")
    g.add_argument("--input", required=True, help="audio (.wav/.flac) or video (.mp4) to explain")
    g.add_argument("--reference", help="clean reference audio, comma-separated for several sources (enhancement, "
                                       "separation, av-enhancement); without it the SDR is taken against the model's "
                                       "own unmasked output")
    g.add_argument("--enroll", help="enrollment audio: explain the verification cosine score (speaker); several "
                                    "files separated by commas: the mean of their unit embeddings")
    g.add_argument("--source", type=int, help="which separated source to explain, counted from 1 (separation)")
    g.add_argument("--target", type=int, help="target class index; default: the class predicted on the input "
                                               "(speaker); the output column of a (batch, frames, classes) model "
                                               "(frames)")
    g.add_argument("--segments", help="JSON file of labelled segments (start_s, end_s, label): drawn on figures, "
                                      "and the share of the evidence inside each label's segments is printed and "
                                      "saved (metadata segment_mass)")
    g.add_argument("--model", metavar="SPEC",
                   help="the model; default: the task's bundled reference model (frames has none). Accepted forms: "
                        + spec_forms().replace("%", "%%"))
    g.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="an argument of the --model (YAML value), repeatable: constructor arguments of an avxai "
                        "architecture, arguments of a package.module:factory, options of an adapter (e.g. "
                        "sample_rate=16000, chunk=512)")
    g.add_argument("--architecture", help="the architecture of a --model checkpoint without its JSON: "
                                          + describe_architectures())
    g.add_argument("--stream", choices=["av", "video", "audio"],
                   help="which input stream to explain (av-enhancement): av = spectrogram and face video on one "
                        "joint grid (default), video = the face crops with the sound kept, audio = the spectrogram "
                        "with the face kept")
    g.add_argument("--score",
                   choices=["logit", "probability", "log-probability", "sigmoid", "cosine", "sdr", "si-sdr"],
                   help="what to explain; default per task (speaker: logit, or cosine with --enroll; "
                        "log-probability counts evidence for other speakers against the target; enhancement/"
                        "separation: sdr; frames: probability per frame, or logit, or sigmoid of a per-frame logit)")
    g.add_argument("--region", metavar="START-END",
                   help="frames: score the frames between START and END seconds (e.g. 1.0-2.5), 'all' frames, or "
                        "'detected' (default: the frames the model detects on the input, see --threshold)")
    g.add_argument("--reduce", choices=["mean", "max"], help="frames: mean (default) or max over the scored frames")
    g.add_argument("--threshold", type=float,
                   help="frames: a frame is detected when its probability is at least this (default 0.5)")
    a = ex.add_argument_group("audio")
    a.add_argument("--n-fft", type=_positive_int, help="STFT size in samples (default: the model's own STFT when it has one, "
                                             "as the enhancement and AV models do; else about 32 ms: 512 at 16 kHz, 256 at 8 kHz)")
    a.add_argument("--hop-length", type=_positive_int,
                   help="STFT hop in samples (default: the model's own; else n_fft / 4)")
    a.add_argument("--n-mels", type=_positive_int, help="mask on this many mel bands instead of linear frequency bins")
    a.add_argument("--resample", action="store_true",
                   help="resample inputs to the model's sample rate (otherwise a mismatch is an error)")
    a.add_argument("--mono", action="store_true", help="average the input's channels")
    a.add_argument("--perturbation", help="what masked cells become: " + ", ".join(PERTURBATION_NAMES) +
                                          " (NAME:VALUE sets an SNR in dB or a blur sigma in cells); av-enhancement "
                                          "also takes AUDIO,VIDEO, one per stream (e.g. zero,spatial-blur:8)")
    v = ex.add_argument_group("video (av-enhancement)")
    v.add_argument("--fps-convert", action="store_true",
                   help="convert the clip's frames to the model's frame rate while decoding (nearest frame in time, "
                        "as FFmpeg's fps filter; otherwise another rate is an error)")
    v.add_argument("--face", help="which face the crops follow: 'largest' (default: in each shot the face with the "
                                  "most box area over time) or a face track number from the metadata's "
                                  "face_track.face_tracks (0 = the most prominent face of the clip)")
    v.add_argument("--face-confidence", type=float, help="MTCNN probability a face needs (default 0.9)")
    v.add_argument("--min-face-size", type=_positive_int, help="smallest face looked for, in pixels (default 20)")
    v.add_argument("--detect-every", type=_positive_int,
                   help="run the face detector on every N-th frame of a shot, interpolating between (default 1, "
                        "or 3 for frames over 640 x 360 pixels)")
    v.add_argument("--track-cache", help="folder for cached face detections, keyed by the clip's hash and the "
                                         "tracker settings (default ~/.cache/avxai/tracks, or $AVXAI_CACHE_DIR/"
                                         "tracks); 'off': detect every time")
    m = ex.add_argument_group("method configuration (each must exist in the chosen method's config)")
    m.add_argument("--config", help="YAML file of method config fields (a mapping, or a mapping under the method name)")
    m.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override one config field (YAML value), repeatable, e.g. --set iterations=200")
    m.add_argument("--areas", type=_csv(float), help="extremal: mask areas, e.g. 0.05,0.1,0.2")
    m.add_argument("--window", type=_csv(int), help="occlusion: window in cells per grid axis, e.g. 16,8")
    m.add_argument("--stride", type=_csv(int), help="occlusion: stride in cells per grid axis")
    m.add_argument("--iterations", type=int, help="optimisation steps (extremal)")
    m.add_argument("--batch-size", type=int, help="perturbed inputs per forward pass")
    m.add_argument("--seed", type=int, help="random seed")
    ex.add_argument("--threads", type=_positive_int,
                    help="torch CPU threads (default: torch's own); recorded in explanation.json: the same seed and "
                         "threads give bitwise-equal results")
    ex.add_argument("--quiet", action="store_true", help="no progress bar")
    r = ex.add_argument_group("resources")
    r.add_argument("--max-memory", type=_memory_size, metavar="SIZE",
                   help="memory budget of the batches of perturbed inputs, e.g. 2G or 800M (default: 1G, at most half "
                        "of the memory available); batches are sized to fit, and a long input's extremal rows run in "
                        "chunks; the plan printed before the run says what was chosen")
    r.add_argument("--device", help="where the model and the explanation run: cpu, cuda, cuda:1 (default: where "
                                    "the model is)")

    add_audit_parser(sub)
    add_inspect_parser(sub)
    return parser


def task_options(task: Task, args: argparse.Namespace):
    """The task's options from the parsed flags: every given task flag must be a field of its options class."""
    fields = {f.name for f in dataclasses.fields(task.options_class)}
    source = getattr(args, "source", None)
    if source is not None and source < 1:
        raise ValueError(f"--source {source}: sources are counted from 1 (--source 1 is the first)")
    given = {k: getattr(args, k) for k in TASK_FLAGS if getattr(args, k, None) not in (None, False)}
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
    with warnings.catch_warnings(record=True) as caught:  # the task's warnings (a lost face, no reference): one line
        warnings.simplefilter("always", UserWarning)
        problem = task.build(on_device(task_model(task, args), args.device), options)
    build_warnings = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))
    for message in build_warnings:
        print(f"avxai explain: warning: {message}", file=sys.stderr)
    check_memory(problem, config)  # say up front what the batches need, not an allocator error after a minute
    config, plan = plan_for(method, problem, config, args)  # the plan: work, batches, memory, time; printed
    with warnings.catch_warnings(), memory_budget(args.max_memory):  # printed below, once each, from the metadata
        warnings.simplefilter("ignore", ExplanationWarning)
        explanation = method(problem.model, problem.modality, problem.scorer, config)
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
    explanation.metadata["runtime"] = runtime_info(next(problem.model.parameters(), torch.empty(0)).device)
    shares = segment_mass(explanation)  # with --segments: how much of the evidence lies in each label's turns
    if shares:
        explanation.metadata["segment_mass"] = shares
    out = explanation.save(args.out)
    task.write_outputs(problem, explanation, out)
    report(explanation, out)
    return 0


def _memory_size(text: str) -> int:
    """argparse type: a memory size (2G, 800M, bytes)."""
    try:
        return parse_size(text)
    except (ValueError, TypeError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None


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
    """The method's plan (:func:`avxai.methods.plan.plan_run`) under ``--max-memory``, printed (one line, also with
    ``--quiet``); the config the run uses (occlusion: its batch size from the budget)."""
    with memory_budget(args.max_memory):
        config, plan = plan_run(method, problem.model, problem.modality, config, scorer=problem.scorer)
    if plan is not None:
        print(plan.line(), file=sys.stderr)
    return config, plan


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


def run_demo(args: argparse.Namespace) -> int:
    check_output_dir(args.out)  # before any work
    demo(out=Path(args.out), method=args.method, progress=not args.quiet, model=args.model)
    return 0


#: what the user can cause and fix (a bad value, file or flag): one line and exit code 2. ImportError: a
#: missing optional extra; OSError: a file that cannot be read or written; UnpicklingError: a damaged or unsafe
#: checkpoint. Any other exception is a bug in avxai and keeps its traceback.
USER_ERRORS = (ValueError, TypeError, OSError, ImportError, pickle.UnpicklingError)

#: what Ctrl-C (or SIGTERM during an audit) prints, per command
INTERRUPTED = {"audit": "interrupted; run the same command again to continue"}


def one_line(err: BaseException) -> str:
    """The error's message on one line (a multi-line message from a library is joined), without torch's advice
    to load checkpoints unsafely."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip() and "weights_only" not in line]
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return " ".join(lines) or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return run_demo(args)
        if args.command == "explain":
            return run_explain(args)
        if args.command == "audit":
            return run_audit_command(args)
        if args.command == "inspect":
            return run_inspect_command(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; 130 = 128 + SIGINT, as shells report it
        print(f"\navxai {args.command}: {INTERRUPTED.get(args.command, 'interrupted')}", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        print(f"avxai {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())

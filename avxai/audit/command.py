"""``avxai audit``: the command-line front of :func:`avxai.audit.run_audit` (parser and runner)."""

from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any

from avxai.audit.config import AuditConfig
from avxai.audit.driver import run_audit
from avxai.audit.findings import CRITERIA
from avxai.audit.model import load_audit_model
from avxai.audit.summary import ReportOptions
from avxai.config import build_config, parse_sets
from avxai.methods import METHODS, get_method
from avxai.models.registry import describe_architectures
from avxai.models.spec import parse_model_args, spec_forms

__all__ = ["add_audit_parser", "run_audit_command", "findings_line"]


def _csv(kind):
    def parse(text: str):
        try:
            values = tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated {kind.__name__}s, got {text!r}")
        return values
    return parse


def add_audit_parser(sub) -> argparse.ArgumentParser:
    """Add the ``audit`` subcommand to ``sub`` (the ``add_subparsers`` object of the main parser)."""
    p = sub.add_parser(
        "audit", help="explain every trial of a speaker-verification trial list and report where the evidence lies",
        description=(
            "Audit a speaker-verification model on a trial list: per trial the cosine score of the test utterance "
            "against the enrollment, an explanation of that score on the test spectrogram, the mask's mass in "
            "speech-active frames (energy VAD) and in labelled target segments, the scores of the preserved and "
            "deleted input per area and the deletion curve; over the audit the EER, minDCF, the statistics of "
            "target and non-target trials, the accept / reject decision per trial, and the trials flagged as decided "
            "on non-speech, on an interfering talker or on channel. Writes results.jsonl (one "
            "line per finished trial; a rerun with the same arguments continues an interrupted audit), "
            "summary.json and report.html to --out."),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("trials", metavar="TRIALS.csv",
                   help="trial list: columns enroll,test,label (audio paths relative to the CSV; label 1 = same "
                        "speaker) and optional id, condition, target_segments, interferer_segments ('0.0-1.2;2.0-2.8' "
                        "seconds); lines whose first field starts with # are comments")
    p.add_argument("--out", required=True, help="output folder (rerun with the same folder to continue an audit)")
    p.add_argument("--model", metavar="SPEC",
                   help="the speaker model (one with an embedder); default: the bundled speakernet. Accepted forms: "
                        + spec_forms().replace("%", "%%") + ". Bundled names and avxai checkpoints travel to the "
                        "workers as bytes; the other forms as the spec, resolved in each worker (its files must be "
                        "readable there)")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="an argument of the --model (YAML value), repeatable (e.g. sample_rate=16000)")
    p.add_argument("--architecture", metavar="NAME",
                   help="what --model is when no .json lies beside it (a .json, {\"architecture\": NAME, \"model\": "
                        "{...}}, sets other arguments). Any registered architecture with an embedder: "
                        + describe_architectures())
    p.add_argument("--method", default="occlusion", choices=sorted(METHODS),
                   help="explanation method: any registered method that returns masks (their statistics at --areas) "
                        "or an attribution (the masks of its top --areas cells)")
    e = p.add_argument_group("where the trials run")
    e.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: in this process, or in --workers processes; ray: one Ray task per batch of trials")
    e.add_argument("--workers", type=int, default=0,
                   help="local engine: worker processes (0 = in this process, one torch thread each)")
    e.add_argument("--address", help="ray engine: cluster address ('auto', 'HOST:6379' or 'ray://HOST:10001'); "
                                     "default: start a Ray instance on this machine")
    e.add_argument("--batch-trials", type=int,
                   help="trials per task (default: 1 for local, 2 for ray)")
    e.add_argument("--threads", type=int, default=1,
                   help="torch threads per worker (per process with --workers 0); results can differ bitwise between "
                        "thread counts, so continue an audit with the threads it started with")
    e.add_argument("--max-retries", type=int, default=3,
                   help="times a batch whose worker process dies (or whose Ray task fails) is run again before its "
                        "trials are recorded as failed")
    r = p.add_argument_group("this run")
    r.add_argument("--limit", type=int, help="run at most this many unfinished trials now (continue later)")
    r.add_argument("--retry-failed", action="store_true", help="run again the trials recorded as failed")
    r.add_argument("--no-media", action="store_true",
                   help="no per-trial figure and WAVs (faster; the report then has no players)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    x = p.add_argument_group("explanation")
    x.add_argument("--areas", type=_csv(float), default=(0.05, 0.1, 0.2, 0.4),
                   help="mask areas (fractions of the spectrogram) for the preserved/deleted scores and mask statistics")
    x.add_argument("--media-area", type=float, help="area whose mask the report draws and plays (default: the middle one)")
    x.add_argument("--window", type=_csv(int),
                   help="the method's window in cells (freq bins,frames), e.g. occlusion's; audit default 32,20")
    x.add_argument("--stride", type=_csv(int), help="the method's stride in cells (default: the window, no overlap)")
    x.add_argument("--iterations", type=int, help="the method's optimisation steps, e.g. extremal's (its default: 300)")
    x.add_argument("--seed", type=int, help="the method's random seed, e.g. of extremal's mask initialisation")
    x.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="any other field of the method's config (YAML value), repeatable, e.g. --set variant=dual")
    x.add_argument("--batch-size", type=int, default=32, help="perturbed inputs per forward pass")
    x.add_argument("--curve-steps", type=int, default=10, help="steps of the deletion (score-drop) curve")
    a = p.add_argument_group("audio")
    a.add_argument("--n-fft", type=int,
                   help="STFT size of the explained spectrogram (samples); default as avxai explain: the model's own "
                        "STFT, else about 32 ms (512 at 16 kHz)")
    a.add_argument("--hop-length", type=int, help="STFT hop (samples); default: the model's own, else n_fft / 4")
    a.add_argument("--n-mels", type=int, help="mask on this many mel bands instead of linear bins")
    a.add_argument("--perturbation", default="zero", help="what removed cells become: zero, mean, noise:SNR_DB, ...")
    a.add_argument("--resample", action="store_true", help="resample audio to the model's rate (otherwise an error)")
    a.add_argument("--mono", action="store_true", help="average the channels of multi-channel files")
    a.add_argument("--min-duration", type=float, default=0.5, help="shorter utterances fail (seconds)")
    v = p.add_argument_group("voice activity (energy based)")
    v.add_argument("--vad-frame", type=float, default=0.02, help="frame length (seconds)")
    v.add_argument("--vad-threshold-db", type=float, default=-30.0, help="active: within this many dB of the loudest frame")
    v.add_argument("--vad-floor-margin-db", type=float, default=6.0,
                   help="and at least this many dB above the noise floor (5th percentile of frame energies)")
    s = p.add_argument_group("report")
    s.add_argument("--p-target", type=float, default=0.01, help="prior of a target trial in the minDCF")
    s.add_argument("--c-miss", type=float, default=1.0, help="cost of a miss in the minDCF")
    s.add_argument("--c-fa", type=float, default=1.0, help="cost of a false alarm in the minDCF")
    s.add_argument("--threshold", type=float,
                   help="accept a trial when its score is at or above this (default: the EER threshold of the "
                        "finished trials); the report marks each trial's decision and its false accept / reject")
    s.add_argument("--reliance-threshold", type=float, default=0.2,
                   help="flag 'non-speech': the masks put at least this much more of their mass on non-speech "
                        "frames than those frames' share")
    s.add_argument("--interferer-threshold", type=float, default=0.5,
                   help="flag 'interferer': at least this share of the smallest mask lies on the labelled "
                        "interfering talker (target trials)")
    s.add_argument("--nonspeech-score-threshold", type=float,
                   help="flag 'channel': the non-speech frames alone score at least this (default: the decision "
                        "threshold, i.e. they alone would be accepted)")
    s.add_argument("--top", type=int, default=20, help="how many ranked trials summary.json's 'suspicious' lists")
    return p


#: command-line flags that set a field of the method's config: flag -> field
SHORTCUTS = {"window": "window", "stride": "stride", "iterations": "iterations", "seed": "seed"}


def _method_options(args: argparse.Namespace) -> dict[str, Any]:
    """The method's config fields the command line sets: ``--set FIELD=VALUE`` and the shortcut flags.

    Checked by the config loader against the method's config (an unknown field, a flag the method does not
    take or a value of the wrong type raises ``ValueError`` naming the flag, the field and the expected type).
    """
    cls = get_method(args.method).config_class
    names = {f.name for f in fields(cls)}
    shortcuts = {field: getattr(args, flag) for flag, field in SHORTCUTS.items()}
    if args.window is not None and args.stride is None and "stride" in names:
        shortcuts["stride"] = args.window  # the audit's windows do not overlap unless --stride says so
    build_config(cls, sets=args.set, shortcuts=shortcuts)
    options = {key: value for key, (value, _) in parse_sets(args.set).items()}
    options.update({key: value for key, value in shortcuts.items() if value is not None})
    return options


def build_audit_config(args: argparse.Namespace) -> AuditConfig:
    """The :class:`~avxai.audit.AuditConfig` the parsed arguments describe."""
    return AuditConfig(
        method=args.method, method_options=_method_options(args), areas=args.areas, media_area=args.media_area,
        n_fft=args.n_fft, hop_length=args.hop_length, n_mels=args.n_mels,
        perturbation=args.perturbation, resample=args.resample, mono=args.mono, min_duration_s=args.min_duration,
        vad_frame_s=args.vad_frame, vad_threshold_db=args.vad_threshold_db,
        vad_floor_margin_db=args.vad_floor_margin_db, curve_steps=args.curve_steps, batch_size=args.batch_size)


def _fmt(value, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.2f}%" if pct else f"{value:.4f}"


def findings_line(summary: dict) -> str:
    """The findings headline in one line: trials decided on non-speech, the interferer, channel; the errors."""
    f, d = summary["findings"], summary["decision"]
    parts = [f"{f[c.flag]['flagged']} of {f[c.flag]['applies']} {c.finding}" for c in CRITERIA]
    line = f"findings: the model decides {', '.join(parts)}; {f['any']} of {f['trials']} trials flagged"
    if d["threshold"] is not None:
        line += (f"; at the {'EER' if d['source'] == 'EER' else 'given'} threshold {d['threshold']:.4f}: "
                 f"{f['false_accept']} false accepts, {f['false_reject']} false rejects")
    return line


def run_audit_command(args: argparse.Namespace) -> int:
    """Run the audit the arguments describe and print the summary; 0 when the audit ran, an error when every
    trial this run ran failed (a wrong setting, not a wrong trial)."""
    config = build_audit_config(args)
    report = ReportOptions(p_target=args.p_target, c_miss=args.c_miss, c_fa=args.c_fa, threshold=args.threshold,
                           nonspeech_reliance_threshold=args.reliance_threshold,
                           interferer_mass_threshold=args.interferer_threshold,
                           nonspeech_score_threshold=args.nonspeech_score_threshold, top_suspicious=args.top)
    source = load_audit_model(args.model, args.architecture, parse_model_args(args.model_arg))
    try:
        summary = run_audit(args.trials, args.out, config, model=source,
                            engine=args.engine, workers=args.workers,
                            address=args.address, batch_trials=args.batch_trials, max_retries=args.max_retries,
                            limit=args.limit, retry_failed=args.retry_failed, report=report,
                            media=not args.no_media, progress=not args.quiet, threads=args.threads)
    except RuntimeError as err:  # workers that cannot start: say so in the CLI's error format
        raise ValueError(str(err)) from err
    c, run = summary["counts"], summary["run"]
    print(f"trials: {c['trials']} ({c['finished']} finished, {c['pending']} pending; {c['ok']} ok, {c['failed']} "
          f"failed; {c['target']} target, {c['nontarget']} non-target)")
    print(f"this run: {run['trials_run']} trials in {run['seconds']:.1f} s"
          + (f" ({run['trials_per_s']:.3f} trials/s)" if run["trials_per_s"] else ""))
    print(f"EER {_fmt(summary['eer'], pct=True)}, minDCF(p_target={summary['p_target']:g}) {_fmt(summary['min_dcf'])}"
          + (f" ({summary['note']})" if summary.get("note") else ""))
    print(findings_line(summary))
    flagged = [s for s in summary["suspicious"] if s["flags"]]
    if flagged:
        print("flagged first: " + ", ".join(f"{s['id']} ({', '.join(s['flags'])})" for s in flagged[:5]))
    for item in summary["failed"][:5]:
        print(f"failed {item['id']} (CSV line {item['line']}): {item['error']['message']}")
    print(f"report: {args.out}/report.html")
    if run["trials_run"] and run["failed"] == run["trials_run"]:
        first = summary["failed"][0]["error"]["message"] if summary["failed"] else "see the report"
        raise ValueError(f"every trial of this run failed ({run['failed']} of {run['trials_run']}; the first: "
                         f"{first}); "
                         "fix the cause, then rerun with --retry-failed")
    return 0

"""Speaker-verification audit of the bundled speaker model on generated trials.

1. Builds a trial list from generated speakers (``avxai.audit.generate.build_trial_list``): clean single-speaker
   trials, A-B-A trials (the enrolled speaker, an interfering talker, the enrolled speaker again; target
   segments labelled), speech in white noise with silent gaps, and speech padded with digital silence.
   Half of each condition are target trials (same speaker), half non-target.
2. Runs ``avxai.audit.run_audit`` on the bundled model (resumable: rerun the same command to continue).
3. Prints the EER, minDCF, the mean statistics per condition, the findings (trials decided on non-speech, on the
   interfering talker, on channel; errors at the decision threshold) and the trials ranked first;
   ``<out>/report.html`` shows everything, ``<out>/summary.json`` holds the numbers.

    .venv/bin/python recipes/speaker_audit/run.py                       # 48 trials, extremal
    .venv/bin/python recipes/speaker_audit/run.py --debug               # 8 trials, a few iterations (CI)
    .venv/bin/python recipes/speaker_audit/run.py --workers 2
    .venv/bin/python recipes/speaker_audit/run.py --engine ray --address auto
    .venv/bin/python recipes/speaker_audit/run.py --set audit.method=occlusion --set data.trials_per_condition=4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

from avxai.audit import AuditConfig, ReportOptions, run_audit  # noqa: E402
from avxai.audit.command import findings_line  # noqa: E402
from avxai.audit.generate import build_trial_list  # noqa: E402
from avxai.config import build_config  # noqa: E402


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _set(cfg: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = cfg
    for i, key in enumerate(parents):
        if not isinstance(node.get(key), dict):
            if key in node or i == 0:
                raise ValueError(f"--set {dotted}: {'.'.join(parents[:i + 1])} is not a section of the config")
            node[key] = {}
        node = node[key]
    if not parents and leaf not in cfg:
        raise ValueError(f"--set {dotted}: the config has no key {leaf!r}; keys: {', '.join(sorted(cfg))}")
    node[leaf] = value


def parse_args(argv=None) -> tuple[dict, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (YAML value): out=..., data.KEY=..., audit.KEY=..., "
                        "audit.method_options.METHOD.KEY=...")
    p.add_argument("--out", help="output folder (default: the config's out)")
    p.add_argument("--engine", choices=["local", "ray"], help="where the trials run (default: the config's)")
    p.add_argument("--workers", type=int, help="local engine: worker processes")
    p.add_argument("--address", help="ray engine: cluster address, e.g. auto or HOST:6379")
    p.add_argument("--debug", action="store_true", help="8 trials, short utterances, few iterations (CI)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    cfg = yaml.safe_load(args.config.read_text()) or {}
    debug = cfg.pop("debug", {}) or {}
    if args.debug:
        cfg = _merge(cfg, debug)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--set expects KEY=VALUE, got {item!r}")
        try:
            _set(cfg, key.strip(), yaml.safe_load(value))
        except ValueError as err:
            p.error(str(err))
    for name in ("out", "engine", "workers", "address"):
        if getattr(args, name) is not None:
            cfg[name] = getattr(args, name)
    if args.debug and not args.out and not any(s.startswith("out=") for s in args.set):
        cfg["out"] = str(cfg["out"]).rstrip("/") + "-debug"
    return cfg, args


def build_data(folder: Path, data: dict) -> Path:
    """The trial list and its audio; reused when it was built with the same parameters."""
    stamp = folder / "generator.json"
    params = json.dumps(data, sort_keys=True)
    csv_path = folder / "trials.csv"
    if csv_path.exists() and stamp.exists() and stamp.read_text() == params:
        return csv_path
    d = dict(data)
    csv_path = build_trial_list(folder, d.pop("trials_per_condition"), speaker_ids=tuple(d.pop("speaker_ids")),
                                aba_durations=tuple(d.pop("aba_durations")), noisy_layout=tuple(d.pop("noisy_layout")),
                                padded_s=tuple(d.pop("padded_s")), **d)
    stamp.write_text(params)
    return csv_path


def audit_config(cfg: dict) -> AuditConfig:
    """The ``audit:`` section as an :class:`AuditConfig` (through the config loader: a wrong field or type names
    itself). ``method_options`` holds one entry per method and the chosen method's is used, so
    ``--set audit.method=occlusion`` does not hand extremal's fields to occlusion."""
    audit = dict(cfg["audit"])
    options = audit.get("method_options") or {}
    if not isinstance(options, dict) or not all(isinstance(v, dict) or v is None for v in options.values()):
        raise ValueError(f"config: audit.method_options must map a method name to the fields of its config, e.g. "
                         f"{{extremal: {{iterations: 100}}}}; got {options!r}")
    audit["method_options"] = tuple((options.get(audit.get("method", "occlusion")) or {}).items())
    return build_config(AuditConfig, values=audit)


def report_options(cfg: dict) -> ReportOptions:
    """The ``report:`` section (thresholds of the decision and of the flags) as :class:`ReportOptions`."""
    return build_config(ReportOptions, values=dict(cfg.get("report") or {}))


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value, signed: bool = False) -> str:
    return "n/a" if value is None else (f"{value:+.3f}" if signed else f"{value:.3f}")


def main(argv=None) -> int:
    cfg, args = parse_args(argv)
    out = Path(cfg["out"])
    try:
        config = audit_config(cfg)  # a field the method does not have fails here, before any data is built
        report = report_options(cfg)
    except ValueError as err:
        print(f"speaker_audit: error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    trials_csv = build_data(out / "data", cfg["data"])
    built = time.perf_counter() - start
    model = cfg.get("model")
    summary = run_audit(trials_csv, out / "audit", config, model=model, architecture=cfg.get("architecture"),
                        engine=cfg["engine"], workers=int(cfg["workers"]), address=cfg.get("address"),
                        report=report, progress=not args.quiet)
    c, run = summary["counts"], summary["run"]
    print(f"data: {trials_csv} ({c['trials']} trials, built in {built:.1f} s)")
    print(f"audit: {run['trials_run']} trials run now in {run['seconds']:.1f} s ({c['ok']} ok, {c['failed']} failed) "
          f"with {config.method} on {model or 'the bundled model'}")
    print(f"EER {_pct(summary['eer'])}, minDCF(p_target={summary['p_target']:g}) {_num(summary['min_dcf'])}")
    print(f"{'condition':<10} {'target':>6} {'non-t.':>6} {'EER':>7} {'non-speech reliance (mean)':>27}")
    for name, v in summary["conditions"].items():
        reliance = (v["nonspeech_reliance"] or {}).get("mean")
        print(f"{name:<10} {v['target']:>6} {v['nontarget']:>6} {_pct(v['eer']):>7} {_num(reliance, signed=True):>27}")
    stats = summary["statistics"]
    for name in ("nonspeech_mass", "target_mass", "drop_deleted"):
        s = stats[name]
        parts = [f"{cls} {s[cls]['mean']:.3f} (n={s[cls]['n']})" for cls in ("target", "nontarget") if s[cls]]
        print(f"{s['description']}: " + ", ".join(parts))
    print(findings_line(summary))
    print("ranked first: " + ", ".join(f"{s['id']} ({', '.join(s['flags']) or 'no flag'})"
                                       for s in summary["suspicious"][:5]))
    print(f"report: {out / 'audit' / 'report.html'} ({time.perf_counter() - start:.1f} s in all)")
    return 0 if c["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Method benchmark, real-model track: every method on real pretrained models and real recordings (issue 16).

Tasks (``real:`` block of ``config.yaml``; inputs from :mod:`avxai.data.real_speech`, the bundled recordings of two
real talkers, codec2-examples, LGPL-2.1):

``aba``          Resemblyzer's GE2E encoder (real weights from its wheel), A-B-A of the two talkers; the cosine to
                 A's separate enrollment recording; truth = A's turns.
``bab``          the same on B-A-B; the cosine to B's enrollment; truth = B's turns.
``noisy``        Resemblyzer on talker A in 0.5 s pieces with 0.5 s silences and white noise at 5 dB SNR; the
                 cosine to A's enrollment; truth = the speech pieces.
``noisy_vad``    Silero's VAD (TorchScript from the silero-vad wheel, 512-sample chunks) on the same input; the
                 mean speech probability over the frames it detects; truth = the speech pieces.

For each (task, method): the share of the area-0.2 mask in the truth (extremal: its own mask; other methods: their
top 20 % of cells) beside a uniform map's share, the share of the positive attribution, Li et al.'s multi-speaker
AUC (A-B-A, B-A-B), Bolanos et al.'s 100 ms segment AUC, the unmasked / preserved / deleted scores of that mask
and SpeechBrain's AI, AD, AG, FF, Fid-In on them (``avxai.metrics.interpretability``; masked cells take the
modality's perturbation, ``zero``), and the seconds the method took. Extremal's own preserved / deleted scores
and masses at every area go in ``extremal.csv``.

Usage::

    python recipes/method_benchmark/real.py                       # the full track (about 15 min on 2 loaded cores)
    python recipes/method_benchmark/real.py --quick               # seconds: short inputs, few iterations
    python recipes/method_benchmark/real.py --tasks aba --methods extremal,occlusion --out /tmp/real
    python recipes/method_benchmark/real.py --methods extremal --set extremal.iterations=300 --out /tmp/real300
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.resources
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from avxai.config import build_config
from avxai.data.real_speech import RealUtterance, speech_with_gaps_and_noise, turns_utterance
from avxai.methods import METHODS, get_method, method_names
from avxai.metrics.interpretability import interpretability_metrics
from avxai.metrics.localisation import frames_in_segments, mass_in_segments
from avxai.metrics.masks import map_at_area
from avxai.metrics.time_auc import speaker_localisation_auc, time_annotation_auc
from avxai.models import load_model
from avxai.models.spec import resolve_model
from avxai.tasks import frames, speaker

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
COLUMNS = ["task", "model", "method", "mass", "uniform", "positive_share", "li_auc", "segment_auc", "unmasked",
           "preserved", "deleted", "AI", "AD", "AG", "FF", "Fid-In", "seconds", "failure"]
HEADERS = {"mass": "mass@0.2 in truth ↑", "uniform": "uniform", "positive_share": "pos. share ↑",
           "li_auc": "Li AUC ↑", "segment_auc": "segment AUC ↑", "unmasked": "p(x)", "preserved": "p(x·m)",
           "deleted": "p(x·(1-m))", "AI": "AI %", "AD": "AD % ↓", "AG": "AG %", "FF": "FF ↑", "Fid-In": "Fid-In ↑",
           "seconds": "s"}


@dataclasses.dataclass
class RealTask:
    """A real model, one input on a spectrogram, its scorer, the truth's segments and how to read its score."""

    name: str
    model_name: str
    problem: Any
    utterance: RealUtterance
    segments: list[dict]
    upper: float            # the score's maximum (cosine and probability: 1), for AG
    decision: str           # Fid-In: "none" (an embedding's cosine) or "threshold" (a probability at 0.5)
    skip: dict[str, str]    # method -> why it does not apply


def merge(base: dict, over: dict) -> dict:
    """Recursive dict merge: ``over`` wins key by key (as in ``run.py``)."""
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _crop(u: RealUtterance, seconds: float | None) -> RealUtterance:
    """The first ``seconds`` of ``u`` with its segments clipped (quick mode)."""
    if not seconds or seconds >= u.duration_s:
        return u
    n = int(round(seconds * u.sample_rate))
    segments = {label: [(s, min(e, seconds)) for s, e in spans if s < seconds - 0.05]
                for label, spans in u.segments.items()}
    return dataclasses.replace(u, waveform=u.waveform[..., :n], segments=segments)


def utterance_for(name: str, tcfg: dict) -> RealUtterance:
    if tcfg["input"] in ("ABA", "BAB"):
        return turns_utterance(tcfg["input"], target_turn_s=tcfg.get("target_turn_s"))
    return speech_with_gaps_and_noise(snr_db=float(tcfg.get("snr_db", 5.0)), seed=int(tcfg.get("seed", 0)),
                                      gap_s=float(tcfg.get("gap_s", 0.5)), piece_s=float(tcfg.get("piece_s", 0.5)))


def build_task(name: str, tcfg: dict, spec: dict, crop_s: float | None) -> "RealTask | str":
    """The task, or the reason it is skipped (a missing optional package)."""
    u = _crop(utterance_for(name, tcfg), crop_s)
    segments = u.segment_list()
    stft = dict(n_fft=int(spec["n_fft"]), hop_length=int(spec["hop_length"]), perturbation=spec["perturbation"])
    if tcfg["model"] == "resemblyzer":
        try:
            model = load_model("resemblyzer")
        except ImportError as err:
            return f"{err}"
        problem = speaker.build(model, speaker.SpeakerOptions(input=u.waveform, sample_rate=u.sample_rate,
                                                              enroll=u.enroll[u.speaker], segments=segments, **stft))
        skip = {"gradcam": "Resemblyzer's LSTM runs on partial utterances folded into the batch: no layer's "
                           "activations map to the input's time axis"}
        return RealTask(name, "Resemblyzer GE2E (pretrained)", problem, u, segments, 1.0, "none", skip)
    if tcfg["model"] == "silero-vad":
        try:
            import silero_vad  # optional dependency (pip install avxai[vad]); its import sets torch's threads
        except ImportError:
            return "silero-vad is not installed (pip install avxai[vad])"
        threads = torch.get_num_threads()
        path = Path(str(importlib.resources.files(silero_vad).joinpath("data/silero_vad.jit")))
        model = resolve_model(str(path), args={"sr": 16000, "chunk": 512})
        torch.set_num_threads(threads)
        problem = frames.build(model, frames.FramesOptions(input=u.waveform, sample_rate=u.sample_rate,
                                                           segments=segments, **stft))
        skip = {"gradcam": "a TorchScript module takes no hooks"}
        return RealTask(name, "Silero VAD 6 (pretrained, TorchScript)", problem, u, segments, 1.0, "threshold", skip)
    raise ValueError(f"task {name}: model must be 'resemblyzer' or 'silero-vad', got {tcfg['model']!r}")


def _float(x: Any) -> float:
    return float(torch.as_tensor(x, dtype=torch.float64).reshape(-1)[0])


def measure(task: RealTask, expl: Any, area: float, batch_size: int) -> tuple[dict, dict | None]:
    """The row's numbers for one explanation (see the module docstring), and extremal's per-area numbers."""
    modality, times = task.problem.modality, np.asarray(expl.coordinates["time"])
    target, axes = task.utterance.target, tuple(expl.axes)
    grid_dims = len(axes)
    t_axis = axes.index("time")
    inside = frames_in_segments(times, task.segments, target)
    row: dict[str, Any] = {"uniform": float(inside.double().mean())}
    mask, used, k = map_at_area(expl, area, 0)
    if k is None:  # an attribution: its top cells at the area, binarised
        top = torch.zeros(mask.numel())
        top[torch.argsort(mask.reshape(-1).float(), descending=True, stable=True)[:max(1, round(used * mask.numel()))]] = 1
        mask = top.view(mask.shape)
    row["mass"] = _float(mass_in_segments(mask.movedim(t_axis, -1), times, task.segments, target))
    positive = expl.attribution.detach().clamp_min(0).movedim(1 + t_axis, -1)
    row["positive_share"] = (_float(mass_in_segments(positive, times, task.segments, target, grid_dims=grid_dims))
                             if float(positive.sum()) > 0 else float("nan"))
    labels = {s["label"] for s in task.segments}
    row["li_auc"] = (_float(speaker_localisation_auc(expl.attribution, times, task.segments, target, axes))
                     if len(labels) > 1 else float("nan"))
    row["segment_auc"] = _float(time_annotation_auc(expl.attribution, times, task.segments, target, axes,
                                                    duration_s=task.utterance.duration_s))
    sb = interpretability_metrics(task.problem.model, modality, task.problem.scorer, mask[None].float(),
                                  upper=task.upper, decision=task.decision, threshold=0.5, batch_size=batch_size)
    row.update({name: _float(v) for name, v in sb.items()})
    per_area = None
    if expl.masks is not None:
        masks = expl.masks.movedim(2 + t_axis, -1)
        shares = mass_in_segments(masks, times, task.segments, target, grid_dims=grid_dims)[0]
        per_area = {"areas": [float(a) for a in expl.areas], "mass": shares.tolist(),
                    "final_area": [float(m.mean()) for m in expl.masks[0]],
                    "own_unmasked": _float(expl.scores["unmasked"]),
                    "own_preserved": torch.as_tensor(expl.scores["preserved"]).reshape(-1).tolist(),
                    "own_deleted": torch.as_tensor(expl.scores["deleted"]).reshape(-1).tolist()}
    return row, per_area


def _fmt(key: str, v: Any) -> str:
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    return f"{v:.1f}" if key in ("seconds", "AI", "AD", "AG") else f"{v:.3f}"


def _note(row: dict) -> str:
    if row.get("failure"):
        return row["failure"].replace("|", "/")[:140]
    return f"{len(row['warnings'])} warning(s)" if row.get("warnings") else ""


def markdown(rows: list[dict]) -> str:
    cols = COLUMNS[:1] + COLUMNS[2:-1]
    lines = ["| " + " | ".join(HEADERS.get(c, c) for c in cols) + " | note |", "|" + "---|" * (len(cols) + 1)]
    lines += ["| " + " | ".join(_fmt(c, r.get(c)) for c in cols) + f" | {_note(r)} |" for r in rows]
    return "\n".join(lines) + "\n"


def extremal_markdown(per_area: list[dict]) -> str:
    lines = ["| task | area | mass in truth | final area | own p(x·m) | own p(x·(1-m)) | p(x) | uniform |",
             "|---|---|---|---|---|---|---|---|"]
    for r in per_area:
        for j, a in enumerate(r["areas"]):
            lines.append(f"| {r['task']} | {a:g} | {r['mass'][j]:.3f} | {r['final_area'][j]:.3f} | "
                         f"{r['own_preserved'][j]:.3f} | {r['own_deleted'][j]:.3f} | {r['own_unmasked']:.3f} | "
                         f"{r['uniform']:.3f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--out", type=Path, default=REPO / "avxai-out" / "method_benchmark_real")
    p.add_argument("--quick", action="store_true", help="short inputs and few iterations: the config's real.quick")
    p.add_argument("--methods", help="comma-separated subset of the registered methods")
    p.add_argument("--tasks", help="comma-separated subset of the config's real tasks")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--set", action="append", default=[], metavar="METHOD.FIELD=VALUE",
                   help="override a method's config field for every task (YAML value), e.g. extremal.iterations=300")
    return p.parse_args(argv)


def overrides(items: list[str]) -> dict:
    """``["extremal.saturation=1.0", ...]`` -> ``{"extremal": {"saturation": 1.0}}`` (values parsed as YAML)."""
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, dot, field = key.strip().partition(".")
        if not sep or not dot or not method or not field:
            raise ValueError(f"--set takes METHOD.FIELD=VALUE (e.g. extremal.iterations=300), got {item!r}")
        if method not in METHODS:
            raise ValueError(f"--set {item!r}: unknown method {method!r}; available: {', '.join(sorted(METHODS))}")
        out.setdefault(method, {})[field] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load(args.config.read_text())["real"]
    if args.quick:
        cfg = merge(cfg, cfg.get("quick", {}))
    cfg = merge(cfg, {"method_configs": overrides(args.set)})
    tasks = args.tasks.split(",") if args.tasks else list(cfg["tasks"])
    unknown = [t for t in tasks if t not in cfg["tasks"]]
    if unknown:
        raise ValueError(f"unknown real task(s) {unknown}; choose from {', '.join(cfg['tasks'])}")
    methods = method_names(args.methods or sorted(METHODS))
    rows, per_area, skipped = [], [], {}
    for name in tasks:
        task = build_task(name, cfg["tasks"][name], cfg["spectrogram"], cfg.get("crop_s"))
        if isinstance(task, str):
            skipped[name] = task
            print(f"[skip] {name}: {task}", flush=True)
            continue
        u = task.utterance
        print(f"[task] {name}: {task.model_name}, {u.duration_s:.2f} s, target {u.target!r}, grid "
              f"{task.problem.modality.grid_shape}", flush=True)
        for m in methods:
            reason = task.skip.get(m) or (cfg.get("method_skip") or {}).get(m) or (
                "" if m in cfg["method_configs"] else f"no entry under real.method_configs in {args.config.name}")
            if reason:
                skipped[f"{name}/{m}"] = reason
                print(f"  [skip] {m}: {reason}", flush=True)
                continue
            values = merge(cfg["method_configs"][m] or {}, (cfg.get("task_method_configs", {}).get(name) or {}).get(m) or {})
            if "seed" in {f.name for f in dataclasses.fields(METHODS[m].config_class)}:
                values.setdefault("seed", int(cfg.get("seed", 0)))
            config = build_config(METHODS[m].config_class, values=values)
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    expl = get_method(m)(task.problem.model, task.problem.modality, task.problem.scorer, config)
                except (ValueError, RuntimeError) as err:  # the method refused (e.g. a NaN gradient): a row says so
                    expl, failure = None, f"raised {type(err).__name__}: {err}"
            seconds = time.perf_counter() - start
            if expl is not None and not torch.isfinite(expl.attribution).all():
                expl, failure = None, "returned a map with NaN or infinite values (without raising)"
            notes = sorted({str(w.message) for w in caught}
                           | {str(w) for w in (expl.metadata.get("warnings", []) if expl is not None else [])})
            if expl is None:
                print(f"  {m:22s} FAILED: {failure}", flush=True)
                rows.append({"task": name, "model": task.model_name, "method": m, "seconds": seconds,
                             "failure": failure, "warnings": notes})
                continue
            row, areas = measure(task, expl, float(cfg["area"]), int(cfg["batch_size"]))
            rows.append({"task": name, "model": task.model_name, "method": m, **row, "seconds": seconds,
                         "warnings": notes})
            if areas is not None:
                per_area.append({"task": name, "method": m, "uniform": row["uniform"], **areas})
            print(f"  {m:22s} " + "  ".join(f"{c}={_fmt(c, row.get(c))}" for c in COLUMNS[3:-2])
                  + f"  s={seconds:.1f}" + (f"  warnings: {len(notes)}" if notes else ""), flush=True)
    write(args.out, rows, per_area, {"config": cfg, "quick": args.quick, "skipped": skipped,
                                     "threads": torch.get_num_threads(), "torch": torch.__version__})
    print("\n" + markdown(rows) + ("\n" + extremal_markdown(per_area) if per_area else ""))
    print(f"wrote {args.out}/results.csv, results.md, extremal.csv, results.json", flush=True)
    return rows


def write(out: Path, rows: list[dict], per_area: list[dict], meta: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    with open(out / "extremal.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["task", "method", "area", "mass", "final_area", "own_preserved", "own_deleted", "own_unmasked",
                    "uniform"])
        for r in per_area:
            for j, a in enumerate(r["areas"]):
                w.writerow([r["task"], r["method"], a, r["mass"][j], r["final_area"][j], r["own_preserved"][j],
                            r["own_deleted"][j], r["own_unmasked"], r["uniform"]])
    (out / "results.md").write_text(markdown(rows) + ("\n" + extremal_markdown(per_area) if per_area else ""))
    (out / "results.json").write_text(json.dumps({"rows": rows, "extremal": per_area, **meta}, indent=1,
                                                 default=str) + "\n")


if __name__ == "__main__":
    try:
        sys.exit(0 if main() is not None else 1)
    except ValueError as err:  # a bad --tasks / --methods / config value: one line
        sys.exit(f"method_benchmark real: error: {err}")

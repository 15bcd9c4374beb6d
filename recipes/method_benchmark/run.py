"""Method benchmark: every explanation method on controlled tasks whose relevant region is known.

Tasks (each skipped, with the reason printed, when its model or audio is not there):

``aba``           the bundled speaker model on the A-B-A utterance (``avxai/assets/speaker``); input 0 explains
                  speaker A's logit (truth: A's frames), input 1 speaker B's logit (truth: B's frame).
``separation``    the bundled ConvTasNet on its demo mixture (``avxai/assets/separation``); input ``s`` explains the
                  SI-SDR of source ``s`` (truth: the source's ideal binary mask, ``avxai.metrics.masks``).
``talking_face``  the bundled audio-visual enhancer on its example clip (``avxai/assets/av_enhancement``): the SI-SDR of
                  the enhanced output, explained on the tracked face crops with the audio held fixed (truth:
                  the generator's mouth box in each crop).

For each (task, method): mass of the positive attribution inside the truth, pointing game, IoU at the truth's
area, deletion and insertion AUC (range-normalised, the modality's own perturbation), the Spearman
correlation with the map of a fully re-initialised model (Adebayo et al. 2018; lower = the map depends
more on the model), and seconds per input. A seeded random attribution is scored as a reference row.

Writes ``<out>/results.csv``, ``results.md``, ``curves.json`` and every explanation under
``<out>/explanations/<task>/<method>/`` (``Explanation.save``; the paper-figure recipe reads them).

Usage::

    python recipes/method_benchmark/run.py                 # full run (tens of minutes on 2 CPU cores)
    python recipes/method_benchmark/run.py --debug         # under a minute: fewer iterations and steps
    python recipes/method_benchmark/run.py --methods saliency,gradcam --tasks aba --out /tmp/bench
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import yaml
from torch import Tensor, nn

from avxai.config import build_config
from avxai.data.mixtures import load_segments, segments_to_mask
from avxai.io.audio import load_audio
from avxai.methods import METHODS, get_method, method_names
from avxai.metrics import (
    deletion_curve, insertion_curve, iou_at_truth_area, mass_in_mask, pointing_game, randomisation_check,
)
from avxai.metrics.masks import ideal_binary_mask
from avxai.models.registry import load_model
from avxai.tasks import av_enhancement, separation, speaker

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

COLUMNS = ["task", "method", "mass", "pointing", "iou", "deletion_auc", "insertion_auc", "randomisation_r",
           "s_per_input"]
HEADERS = {"task": "task", "method": "method", "mass": "mass in truth ↑", "pointing": "pointing ↑",
           "iou": "IoU@area ↑", "deletion_auc": "deletion AUC ↓", "insertion_auc": "insertion AUC ↑",
           "randomisation_r": "rand. ρ (best near 0)", "s_per_input": "s / input"}


@dataclass
class BenchTask:
    """One controlled problem: a model, a batch on a modality, a scorer, and the truth ``(batch, *grid)``."""

    name: str
    model: nn.Module
    modality: Any
    scorer: Any
    truth: Tensor
    labels: list[str]
    gradcam_layer: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


# -- configuration --------------------------------------------------------------------------------------------
def merge(base: dict, over: dict) -> dict:
    """Recursive dict merge: ``over`` wins key by key."""
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# -- tasks ----------------------------------------------------------------------------------------------------
def _fingerprints(*paths: Path) -> dict[str, str]:
    """``path -> sha256[:16]`` of the files a task read, so a table names the exact model and audio."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in paths}


def aba_task(cfg: dict, assets: Path) -> "BenchTask | str":
    ckpt, wav_path, seg_path = (assets / "speaker" / n for n in ("speaker_net.pt", "aba.wav", "aba_segments.json"))
    missing = [p for p in (ckpt, wav_path, seg_path) if not p.exists()]
    if missing:
        return "missing " + ", ".join(map(str, missing)) + " (written by recipes/speaker/train.py)"
    model = load_model(ckpt)
    segments, meta = load_segments(seg_path, with_metadata=True)
    classes = {label: int(meta[label]["class_index"]) for label in ("A", "B")}
    wav, sr = load_audio(wav_path, sample_rate=model.sample_rate, mono=True)  # (1, 1, time)
    spec = cfg["spectrogram"]
    # input 0 explains A's logit, input 1 B's
    problem = speaker.build(model, speaker.SpeakerOptions(
        input=wav.repeat(2, 1, 1), sample_rate=sr, target=(classes["A"], classes["B"]), score="logit",
        n_fft=spec["n_fft"], hop_length=spec["hop_length"], n_mels=spec.get("n_mels"),
        perturbation=spec["perturbation"]))
    modality = problem.modality
    times = torch.as_tensor(modality.coordinates()["time"])
    truth = torch.stack([segments_to_mask(segments, times, label).bool() for label in ("A", "B")])
    truth = truth[:, None, :].expand(2, modality.grid_shape[0], -1).contiguous()
    return BenchTask("aba", problem.model, modality, problem.scorer, truth,
                     labels=[f"speaker A (class {classes['A']})", f"speaker B (class {classes['B']})"],
                     gradcam_layer=cfg["gradcam_layers"].get("aba"),
                     metadata={"segments": [dataclasses.asdict(s) for s in segments], "targets": ["A", "B"],
                               "files": _fingerprints(ckpt, wav_path, seg_path)})


def separation_task(cfg: dict, assets: Path) -> "BenchTask | str":
    folder = assets / "separation"
    checkpoint = folder / "convtasnet.pt"
    mixture = next((folder / n for n in ("mixture.wav", "mix.wav") if (folder / n).exists()), None)
    sources = sorted(folder.glob("s[0-9].wav")) or sorted(folder.glob("source*.wav"))
    if not checkpoint.exists() or mixture is None or len(sources) < 2:
        return f"needs convtasnet.pt, mixture.wav, s1.wav and s2.wav in {folder} (recipes/separation/train.py)"
    return _separation_problem(cfg, checkpoint, mixture, sources)


def _separation_problem(cfg: dict, checkpoint: Path, mixture: Path, sources: list[Path]) -> "BenchTask | str":
    model = load_model(checkpoint)
    mix, sr = load_audio(mixture, sample_rate=model.sample_rate, mono=True)
    refs = [load_audio(p, sample_rate=model.sample_rate, mono=True)[0].reshape(-1) for p in sources[:2]]
    n = min(mix.shape[-1], *(r.shape[-1] for r in refs))
    mix, refs = mix[..., :n], torch.stack([r[:n] for r in refs])  # (1, 1, n), (2, n)
    sep = cfg.get("separation", {})
    n_fft, hop = int(sep.get("n_fft", 256)), int(sep.get("hop_length", 64))
    # input s explains source s: its reference lists source s first (scorer source 0, output channel matched)
    problem = separation.build(model, separation.SeparationOptions(
        input=mix.repeat(2, 1, 1), sample_rate=sr, reference=torch.stack([refs, refs.flip(0)]), source=0,
        score="si-sdr", n_fft=n_fft, hop_length=hop, perturbation=cfg["spectrogram"]["perturbation"]))
    modality = problem.modality
    truth = torch.stack([ideal_binary_mask(refs[s], refs[1 - s], n_fft, hop) for s in (0, 1)]) > 0.5
    if tuple(truth.shape[1:]) != modality.grid_shape:
        return f"ideal binary mask {tuple(truth.shape[1:])} does not match the grid {modality.grid_shape}"
    return BenchTask("separation", problem.model, modality, problem.scorer, truth, labels=["source 1", "source 2"],
                     gradcam_layer=cfg["gradcam_layers"].get("separation"),
                     metadata={"targets": ["source 1", "source 2"],
                               "files": _fingerprints(checkpoint, mixture, *sources[:2])})


def talking_face_task(cfg: dict, assets: Path) -> "BenchTask | str":
    """The bundled audio-visual enhancer on its example clip: the SI-SDR of the enhanced output against the clean
    target, explained on the face crops (audio fixed: the AV task's ``stream="video"``); truth = the generator's
    mouth box in each crop."""
    folder = assets / "av_enhancement"
    names = ("av_enhancer.pt", "example.mp4", "clean.wav", "mouth_boxes.json")
    missing = [n for n in names if not (folder / n).exists()]
    if missing:
        return f"needs {', '.join(missing)} in {folder} (recipes/av_enhancement/train.py)"
    tf = cfg.get("talking_face", {})
    model = load_model(folder / "av_enhancer.pt")
    try:  # a clip at another rate, or a reference of another length: skip with the task's reason
        problem = av_enhancement.build(model, av_enhancement.AVEnhancementOptions(
            input=folder / "example.mp4", reference=folder / "clean.wav", stream="video", score="si-sdr", mono=True,
            perturbation=f"zero,{tf.get('perturbation', 'spatial-blur')}", shares=False))
    except ValueError as err:
        return f"{err}; re-run recipes/av_enhancement/train.py"
    video = problem.modality
    boxes_doc = json.loads((folder / "mouth_boxes.json").read_text())
    boxes = torch.tensor(boxes_doc["mouth_boxes"], dtype=torch.float32)
    if boxes.shape[0] != video.num_frames:
        return f"mouth_boxes.json has {boxes.shape[0]} boxes for {video.num_frames} frames of example.mp4"
    truth = video.region_in_crop(boxes, float(tf.get("mouth_grow", 0.0))).bool().unsqueeze(0)  # (1, T, S, S)
    return BenchTask("talking_face", problem.model, video, problem.scorer, truth,
                     labels=["target talker"], gradcam_layer=cfg["gradcam_layers"].get("talking_face"),
                     metadata={"targets": ["target talker"],
                               "files": _fingerprints(*(folder / n for n in names))})


TASKS: dict[str, Callable[[dict, Path], "BenchTask | str"]] = {
    "aba": aba_task, "separation": separation_task, "talking_face": talking_face_task,
}


# -- measuring ------------------------------------------------------------------------------------------------
def score_attribution(task: BenchTask, attribution: Tensor, mcfg: dict) -> tuple[dict, dict]:
    """Localisation and faithfulness numbers (means over the batch, per input under ``"per_input"``) and the
    two curves."""
    kw = dict(steps=mcfg["steps"], batch_size=mcfg["batch_size"], normalise=mcfg["normalise"])
    dele = deletion_curve(task.model, task.modality, task.scorer, attribution, **kw)
    ins = insertion_curve(task.model, task.modality, task.scorer, attribution, **kw)
    per_input = {
        "mass": mass_in_mask(attribution, task.truth).tolist(),
        "pointing": pointing_game(attribution, task.truth, mcfg["pointing_tolerance"]).float().tolist(),
        "iou": iou_at_truth_area(attribution, task.truth).tolist(),
        "deletion_auc": dele.auc.tolist(),
        "insertion_auc": ins.auc.tolist(),
    }
    row: dict[str, Any] = {k: float(np.nanmean(v)) for k, v in per_input.items()}
    row["per_input"] = per_input
    return row, {"deletion": dele.to_dict(), "insertion": ins.to_dict()}


def run_method(task: BenchTask, name: str, config: Any, mcfg: dict, seed: int, out: Path) -> tuple[dict, dict]:
    method = get_method(name)
    start = time.perf_counter()
    expl = method(task.model, task.modality, task.scorer, config)
    seconds = time.perf_counter() - start
    row, curves = score_attribution(task, expl.attribution, mcfg)
    row["randomisation_r"] = float("nan")
    if mcfg["randomisation"]:
        rand = randomisation_check(method, task.model, task.modality, task.scorer, config, layers=[""], seed=seed,
                                   include_unchanged=False, reference=expl.attribution)
        row["randomisation_r"] = rand.final()
        row["per_input"]["randomisation_r"] = [None if np.isnan(v) else float(v) for v in rand.correlations[-1]]
    row["s_per_input"] = seconds / task.modality.batch_size
    expl.metadata.update(task.metadata)
    expl.metadata.update({"task": task.name, "labels": task.labels, "benchmark": row})
    expl.save(out / "explanations" / task.name / name)
    return row, curves


def random_row(task: BenchTask, mcfg: dict, seed: int) -> tuple[dict, dict]:
    gen = torch.Generator().manual_seed(seed)
    attribution = torch.rand((task.modality.batch_size, *task.modality.grid_shape), generator=gen)
    row, curves = score_attribution(task, attribution, mcfg)
    row.update(randomisation_r=float("nan"), s_per_input=0.0)
    return row, curves


# -- tables ---------------------------------------------------------------------------------------------------
def _fmt(key: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.2f}" if key == "s_per_input" else f"{value:.3f}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(HEADERS[c] for c in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_fmt(c, r.get(c)) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict], curves: dict, out: Path, meta: dict, labels: dict | None = None) -> None:
    """``results.csv`` / ``results.md`` (means per task and method), ``results_per_input.csv``, ``curves.json``
    and ``run.json``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({c: r.get(c) for c in COLUMNS})
    with open(out / "results_per_input.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["task", "method", "input"] + COLUMNS[2:-1])
        writer.writeheader()
        for r in rows:
            per = r.get("per_input") or {}
            n = len(next(iter(per.values()), []))
            names = (labels or {}).get(r["task"]) or [f"input {j + 1}" for j in range(n)]
            for i in range(n):
                writer.writerow({"task": r["task"], "method": r["method"], "input": names[i],
                                 **{k: per[k][i] for k in COLUMNS[2:-1] if k in per}})
    (out / "results.md").write_text(markdown_table(rows))
    (out / "curves.json").write_text(json.dumps(curves, indent=1) + "\n")
    (out / "run.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")


# -- main -----------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--out", type=Path, default=REPO / "avxai-out" / "method_benchmark")
    p.add_argument("--assets", type=Path, default=REPO / "avxai" / "assets", help="bundled models and audio (default avxai/assets/)")
    p.add_argument("--debug", action="store_true", help="fast run: the config's `debug` overrides")
    p.add_argument("--methods", help="comma-separated subset of the config's methods")
    p.add_argument("--tasks", help="comma-separated subset of the config's tasks")
    p.add_argument("--seed", type=int, help="override the config's seed")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    cfg = yaml.safe_load(args.config.read_text())
    if args.debug:
        cfg = merge(cfg, cfg.get("debug", {}))
    seed = cfg.get("seed", 0) if args.seed is None else args.seed
    methods = method_names(args.methods or list(cfg["methods"]))
    tasks = args.tasks.split(",") if args.tasks else list(cfg["tasks"])
    for t in tasks:
        if t not in TASKS:
            raise ValueError(f"unknown task {t!r}; choose from {', '.join(TASKS)}")

    rows: list[dict] = []
    curves: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    labels: dict[str, list[str]] = {}
    files: dict[str, dict] = {}
    for task_name in tasks:
        task = TASKS[task_name](cfg, args.assets)
        if isinstance(task, str):
            skipped[task_name] = task
            print(f"[skip] task {task_name}: {task}", flush=True)
            continue
        print(f"[task] {task_name}: {task.modality.batch_size} inputs ({'; '.join(task.labels)}), grid "
              f"{task.modality.grid_shape} {task.modality.axes}", flush=True)
        curves[task_name] = {}
        labels[task_name] = task.labels
        files[task_name] = task.metadata.get("files", {})
        mcfg = merge(cfg["metrics"], cfg.get("task_metrics", {}).get(task_name) or {})
        for name in methods:
            only = (cfg.get("method_tasks") or {}).get(name)
            if only is not None and task_name not in only:
                skipped[f"{task_name}/{name}"] = f"{name} applies to {', '.join(only)} only (method_tasks)"
                print(f"[skip] {task_name}/{name}: applies to {', '.join(only)} only (method_tasks in the config)",
                      flush=True)
                continue
            if name not in cfg["method_configs"]:
                raise ValueError(f"method {name!r} has no entry under method_configs in {args.config}; add "
                                 f"'{name}: {{}}' for its default config")
            values = merge(cfg["method_configs"][name] or {},
                           (cfg.get("task_method_configs", {}).get(task_name) or {}).get(name) or {})
            if name == "gradcam" and task.gradcam_layer is not None:
                values.setdefault("layer", task.gradcam_layer)
            if "seed" in {f.name for f in dataclasses.fields(METHODS[name].config_class)}:
                values.setdefault("seed", seed)  # the run's seed reaches every stochastic method (extremal, smoothgrad)
            config = build_config(METHODS[name].config_class, values=values)
            row, c = run_method(task, name, config, mcfg, seed, args.out)
            rows.append({"task": task_name, "method": name, **row})
            curves[task_name][name] = c
            print(f"  {name:22s} " + "  ".join(f"{k}={_fmt(k, row[k])}" for k in COLUMNS[2:]), flush=True)
        if mcfg.get("random_baseline", True):
            row, c = random_row(task, mcfg, seed)
            rows.append({"task": task_name, "method": "random", **row})
            curves[task_name]["random"] = c
    write_tables(rows, curves, args.out, {"config": cfg, "debug": args.debug, "seed": seed, "skipped": skipped, "files": files,
                                          "torch": torch.__version__, "threads": torch.get_num_threads()}, labels)
    print()
    print(markdown_table(rows))
    print(f"wrote {args.out / 'results.csv'}, results.md, curves.json and explanations/", flush=True)
    return rows


if __name__ == "__main__":
    try:
        sys.exit(0 if main() is not None else 1)
    except ValueError as err:  # bad --methods / --tasks / config values: the message says what to fix
        sys.exit(f"method_benchmark: error: {err}")

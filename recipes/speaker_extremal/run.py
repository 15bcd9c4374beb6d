"""Extremal perturbation of the bundled speaker model: single speaker, A-B-A turns, speech in noise.

Experiments (``experiments`` in config.yaml):

``single``        identification: the logit of speaker A on a fresh utterance of A;
``verification``  the cosine between the embedding of that utterance and the embedding of ``enroll_A.wav``
                  (``SpeakerCosine`` with the model's ``embedder()``);
``aba``           the logit of A on ``aba.wav`` (A, then B, then A): the fraction of mask mass inside A's turns
                  at every area (acceptance: >= ``aba_min_fraction`` at ``aba_area``);
``noise``         the logit of A on an utterance with silent sections and white noise: the fraction of mask
                  mass in the speech-active frames.

Each experiment saves its explanation (``Explanation.save``: JSON, arrays, the per-area figure with input /
mask / perturbed input, WAVs) under ``<out>/<name>``; ``<out>/area_growth.pdf|png`` plots the preserved score
over the unmasked score against the area for every experiment (the paper's Fig. 5); ``<out>/summary.json``
holds the numbers, which are also printed. ``recipes/paper_figures/make_figures.py --explanations <out>``
redraws every figure for print from the saved explanations.

    .venv/bin/python recipes/speaker_extremal/run.py
    .venv/bin/python recipes/speaker_extremal/run.py --set grid=linear --set extremal.iterations=150
    .venv/bin/python recipes/speaker_extremal/run.py --debug          # a few iterations, a smoke test
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

from avxai import ClassLogit, ExtremalConfig, Spectrogram, SpeakerCosine, extremal  # noqa: E402
from avxai.data.mixtures import build_noisy_with_silence, load_segments  # noqa: E402
from avxai.data.synthetic import SyntheticSpeaker  # noqa: E402
from avxai.io.audio import load_audio  # noqa: E402
from avxai.metrics.localisation import mass_in_segments  # noqa: E402
from avxai.models.checkpoint import load_checkpoint_config, load_speaker_model  # noqa: E402

EXPERIMENTS = ("single", "verification", "aba", "noise")


def parse_args(argv=None) -> tuple[dict, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key (value parsed as YAML); extremal.KEY=VALUE for ExtremalConfig fields")
    p.add_argument("--out", help="output folder (default: the config's out, avxai-out/speaker_extremal)")
    p.add_argument("--debug", action="store_true", help="5 iterations per experiment: checks the plumbing only")
    args = p.parse_args(argv)
    cfg = yaml.safe_load(args.config.read_text()) or {}
    if args.out:
        cfg["out"] = args.out
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--set expects KEY=VALUE, got {item!r}")
        target, key = (cfg.setdefault("extremal", {}), key[len("extremal."):]) if key.startswith("extremal.") \
            else (cfg, key)
        if target is cfg and key.strip() not in cfg:  # extremal.* keys are checked against ExtremalConfig below
            p.error(f"--set {key.strip()}: no such key in {args.config.name}; keys: {', '.join(sorted(cfg))}")
        target[key.strip()] = yaml.safe_load(value)
    if args.debug:
        cfg["extremal"]["iterations"] = 5
        cfg["out"] = str(Path(cfg["out"]) / "debug")
    unknown = set(cfg.get("experiments", [])) - set(EXPERIMENTS)
    if unknown:
        p.error(f"unknown experiments {sorted(unknown)}; choose from {EXPERIMENTS}")
    if cfg.get("grid") not in ("mel", "linear"):
        p.error(f"grid must be 'mel' or 'linear', got {cfg.get('grid')!r}")
    fields = {f.name for f in dataclasses.fields(ExtremalConfig)}
    bad = set(cfg["extremal"]) - fields
    if bad:
        p.error(f"unknown extremal keys {sorted(bad)}; ExtremalConfig fields are {sorted(fields)}")
    return cfg, args


def extremal_config(cfg: dict) -> ExtremalConfig:
    kw = dict(cfg["extremal"])
    for key in ("areas", "step", "sigma", "growth_areas", "betas"):
        if isinstance(kw.get(key), list):
            kw[key] = tuple(kw[key])
    return ExtremalConfig(**kw)


def modality(cfg: dict, wav: torch.Tensor, sample_rate: int) -> Spectrogram:
    return Spectrogram(wav, sample_rate, n_fft=cfg["n_fft"], hop_length=cfg["hop_length"],
                       n_mels=cfg["n_mels"] if cfg["grid"] == "mel" else None)


def describe(expl, segments=None, label=None) -> dict:
    """Per-area numbers of an explanation of one input."""
    out = {
        "areas": expl.areas,
        "mask_area": expl.masks[0].flatten(1).mean(dim=1).tolist(),
        "unmasked": float(expl.scores["unmasked"][0]),
        "preserved": expl.scores["preserved"][0].tolist(),
        "deleted": expl.scores["deleted"][0].tolist(),
        "area_growth": expl.scores["area_growth"][0].tolist(),
        "seconds": expl.metadata["seconds"],
        "iterations_run": expl.metadata["iterations_run"],
    }
    if "max_class" in expl.scores:
        out["max_class_preserved"] = expl.scores["max_class"][0].tolist()
    if segments is not None:
        times = expl.coordinates["time"]
        seg = [dataclasses.asdict(s) for s in segments]
        frac = mass_in_segments(expl.masks[0], times, seg, label=label, grid_dims=2)
        uniform = mass_in_segments(torch.ones_like(expl.masks[0, 0]), times, seg, label=label)
        out["fraction_in_segments"] = frac.tolist()
        out["uniform_fraction"] = float(uniform)
        out["segments_label"] = label
    return out


def plot_area_growth(summary: dict, path_stem: Path) -> list[Path]:
    """Preserved score / unmasked score against the kept area, one line per experiment (PDF and PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from avxai.viz.style import COLUMN_WIDTH, paper_style, save_figure

    with paper_style():
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.3), constrained_layout=True)
        for name, numbers in summary["experiments"].items():
            areas = summary["extremal"]["growth_areas"] or summary["extremal"]["areas"]
            ax.plot([100 * a for a in areas], numbers["area_growth"], marker="o", ms=3, label=name)
        ax.axhline(1.0, color="grey", lw=0.6, ls="--")
        ax.set_xlabel("kept area (% of the time-frequency grid)")
        ax.set_ylabel("preserved / unmasked score")
        ax.legend(frameon=False)
        return save_figure(fig, path_stem)


def main(argv=None) -> dict:
    cfg, args = parse_args(argv)
    torch.set_num_threads(int(cfg.get("threads", 2)))
    assets = (REPO / cfg["assets"]) if not Path(cfg["assets"]).is_absolute() else Path(cfg["assets"])
    out = (REPO / cfg["out"]) if not Path(cfg["out"]).is_absolute() else Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    ckpt = assets / "speaker_net.pt"
    if not ckpt.is_file():
        raise SystemExit(f"no speaker model at {ckpt}; train it with recipes/speaker/train.py or set assets=")
    model = load_speaker_model(ckpt)
    sr = model.sample_rate
    segments, seg_meta = load_segments(assets / "aba_segments.json", with_metadata=True)
    target = int(seg_meta["target_class"])
    speaker_seed = int(load_checkpoint_config(ckpt)["speakers"]["speaker_seed"])
    speaker_a = SyntheticSpeaker(int(seg_meta["A"]["speaker_id"]), seed=speaker_seed)
    config = extremal_config(cfg)
    summary = {"config": cfg, "extremal": dataclasses.asdict(config), "target_class": target, "debug": args.debug,
               "experiments": {}}
    print(f"speaker model {ckpt} ({sr} Hz), target class A = {target}; grid {cfg['grid']}; "
          f"{config.iterations} iterations, areas {config.areas}, perturbation {config.perturbation or 'zero'}")

    def run(name, model_, wav, scorer, segments_=None, label=None):
        start = time.perf_counter()
        expl = extremal(model_, modality(cfg, wav, sr), scorer, config)
        if segments_ is not None:
            expl.metadata["segments"] = [dataclasses.asdict(s) for s in segments_]
        expl.save(out / name)
        numbers = describe(expl, segments_, label)
        numbers["wall_seconds"] = round(time.perf_counter() - start, 2)
        summary["experiments"][name] = numbers
        line = f"{name:13s} unmasked {numbers['unmasked']:.3f}  preserved {[round(v, 3) for v in numbers['preserved']]}"
        if "fraction_in_segments" in numbers:
            line += (f"  mass in {label} {[round(v, 3) for v in numbers['fraction_in_segments']]} "
                     f"(uniform {numbers['uniform_fraction']:.3f})")
        print(line + f"  [{numbers['wall_seconds']} s]", flush=True)
        return expl

    single = speaker_a.utterance(cfg["single_utterance_s"], sample_rate=sr, seed=cfg["single_seed"]).reshape(1, 1, -1)
    if "single" in cfg["experiments"]:
        run("single", model, single, ClassLogit(target))
    if "verification" in cfg["experiments"]:
        enroll, _ = load_audio(assets / "enroll_A.wav", sample_rate=sr)
        embedder = model.embedder().eval()
        run("verification", embedder, single, SpeakerCosine(embedder, enroll))
    if "aba" in cfg["experiments"]:
        aba, _ = load_audio(assets / "aba.wav", sample_rate=sr)
        run("aba", model, aba, ClassLogit(target), segments, "A")
        frac = summary["experiments"]["aba"]["fraction_in_segments"]
        if cfg["aba_area"] in config.areas:
            value = frac[config.areas.index(cfg["aba_area"])]
            summary["aba_acceptance"] = {"area": cfg["aba_area"], "fraction_in_A": value,
                                         "required": cfg["aba_min_fraction"],
                                         "passed": value >= cfg["aba_min_fraction"]}
        else:
            print(f"A-B-A: aba_area {cfg['aba_area']} is not among the optimised areas {config.areas}: no acceptance "
                  "check (add it to extremal.areas)")
    if "noise" in cfg["experiments"]:
        noisy, speech = build_noisy_with_silence(speaker_a, sr, seed=cfg["noise_seed"],
                                                 layout=tuple(cfg["noise_layout"]), snr_db=cfg["noise_snr_db"],
                                                 kind=cfg["noise_kind"])
        run("noise", model, noisy.reshape(1, 1, -1), ClassLogit(target), speech, "speech")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if summary["experiments"]:
        plot_area_growth(summary, out / "area_growth")
    if "aba_acceptance" in summary:
        acc = summary["aba_acceptance"]
        print(f"A-B-A: {acc['fraction_in_A']:.3f} of the mask mass in A's turns at area {acc['area']} "
              f"(required >= {acc['required']}): {'PASS' if acc['passed'] else 'FAIL'}"
              + (" [--debug: a few iterations, not a measurement]" if args.debug else ""))
    print(f"wrote {out}/summary.json, area_growth.pdf/png and one explanation folder per experiment")
    return summary


if __name__ == "__main__":
    result = main()
    failed = not result.get("aba_acceptance", {}).get("passed", True) and not result["debug"]  # --debug measures nothing
    sys.exit(1 if failed else 0)

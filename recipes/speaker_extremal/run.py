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
from dataclasses import dataclass, field
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

from avxai import ExtremalConfig, extremal  # noqa: E402
from avxai.config import build_config  # noqa: E402
from avxai.data.mixtures import build_noisy_with_silence, load_segments  # noqa: E402
from avxai.data.synthetic import SyntheticSpeaker  # noqa: E402
from avxai.metrics.localisation import mass_in_segments  # noqa: E402
from avxai.models.checkpoint import load_checkpoint_config  # noqa: E402
from avxai.models.registry import load_model  # noqa: E402
from avxai.tasks.speaker import SpeakerOptions, build  # noqa: E402

EXPERIMENTS = ("single", "verification", "aba", "noise")


@dataclass(frozen=True)
class RecipeConfig:
    """The recipe's keys in config.yaml (``extremal:`` holds the fields of :class:`avxai.ExtremalConfig`)."""

    assets: str = "avxai/assets/speaker"
    out: str = "avxai-out/speaker_extremal"
    threads: int = 2
    experiments: tuple[str, ...] = EXPERIMENTS
    grid: str = "mel"
    n_mels: int = 40
    n_fft: int = 512
    hop_length: int = 160
    single_utterance_s: float = 3.0
    single_seed: int = 11
    noise_layout: tuple[float, ...] = (0.5, 1.0, 0.6, 1.0, 0.5)
    noise_snr_db: float = 10.0
    noise_kind: str = "white"
    noise_seed: int = 0
    aba_area: float = 0.2
    aba_min_fraction: float = 0.8
    extremal: dict = field(default_factory=dict)


def parse_args(argv=None) -> tuple[RecipeConfig, ExtremalConfig, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=HERE / "config.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key (value parsed as YAML); extremal.KEY=VALUE for ExtremalConfig fields")
    p.add_argument("--out", help="output folder (default: the config's out, avxai-out/speaker_extremal)")
    p.add_argument("--debug", action="store_true", help="5 iterations per experiment: checks the plumbing only")
    args = p.parse_args(argv)
    method_sets = [s[len("extremal."):] for s in args.set if s.startswith("extremal.")]
    recipe_sets = [s for s in args.set if not s.startswith("extremal.")]
    try:
        cfg = build_config(RecipeConfig, file=args.config, sets=recipe_sets, shortcuts={"out": args.out})
        method = build_config(ExtremalConfig, values=cfg.extremal, sets=method_sets,
                              shortcuts={"iterations": 5 if args.debug else None})
    except ValueError as err:
        p.error(str(err))
    if args.debug:
        cfg = dataclasses.replace(cfg, out=str(Path(cfg.out) / "debug"))
    unknown = set(cfg.experiments) - set(EXPERIMENTS)
    if unknown:
        p.error(f"unknown experiments {sorted(unknown)}; choose from {EXPERIMENTS}")
    if cfg.grid not in ("mel", "linear"):
        p.error(f"grid must be 'mel' or 'linear', got {cfg.grid!r}")
    return cfg, method, args


def options(cfg: RecipeConfig, wav, sample_rate: int | None = None, **kw) -> SpeakerOptions:
    """The speaker task's options for an input (a file, or a tensor at ``sample_rate``) on the recipe's grid."""
    return SpeakerOptions(input=wav, sample_rate=sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                          n_mels=cfg.n_mels if cfg.grid == "mel" else None, **kw)


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
    """The area growth of every experiment (PDF and PNG), one panel per kind of score (the identification
    logit and the verification cosine are not on one axis; :func:`avxai.viz.growth.plot_area_growth`), from
    the explanations saved beside ``path_stem``."""
    from avxai.explanation import Explanation
    from avxai.viz.growth import plot_area_growth as draw
    from avxai.viz.style import paper_style, save_figure

    expls = []
    for name in summary["experiments"]:
        expl = Explanation.load(path_stem.parent / name)
        expl.metadata["labels"] = [name] * expl.batch_size  # the legend names the experiment
        expls.append(expl)
    with paper_style():
        return save_figure(draw(expls), path_stem)


def main(argv=None) -> dict:
    cfg, config, args = parse_args(argv)
    torch.set_num_threads(cfg.threads)
    assets = (REPO / cfg.assets) if not Path(cfg.assets).is_absolute() else Path(cfg.assets)
    out = (REPO / cfg.out) if not Path(cfg.out).is_absolute() else Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = assets / "speaker_net.pt"
    if not ckpt.is_file():
        raise SystemExit(f"no speaker model at {ckpt}; train it with recipes/speaker/train.py or set assets=")
    model = load_model(ckpt)
    sr = model.sample_rate
    segments, seg_meta = load_segments(assets / "aba_segments.json", with_metadata=True)
    target = int(seg_meta["target_class"])
    speaker_seed = int(load_checkpoint_config(ckpt)["speakers"]["speaker_seed"])
    speaker_a = SyntheticSpeaker(int(seg_meta["A"]["speaker_id"]), seed=speaker_seed)
    summary = {"config": dataclasses.asdict(cfg) | {"extremal": dataclasses.asdict(config)},
               "extremal": dataclasses.asdict(config), "target_class": target, "debug": args.debug, "experiments": {}}
    print(f"speaker model {ckpt} ({sr} Hz), target class A = {target}; grid {cfg.grid}; "
          f"{config.iterations} iterations, areas {config.areas}, perturbation {config.perturbation or 'zero'}")

    def run(name, opts: SpeakerOptions, segments_=None, label=None):
        start = time.perf_counter()
        problem = build(model, opts)
        expl = extremal(problem.model, problem.modality, problem.scorer, config)
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

    single = speaker_a.utterance(cfg.single_utterance_s, sample_rate=sr, seed=cfg.single_seed).reshape(1, 1, -1)
    if "single" in cfg.experiments:
        run("single", options(cfg, single, sr, target=target))
    if "verification" in cfg.experiments:
        run("verification", options(cfg, single, sr, enroll=assets / "enroll_A.wav"))
    if "aba" in cfg.experiments:
        run("aba", options(cfg, assets / "aba.wav", target=target), segments, "A")
        frac = summary["experiments"]["aba"]["fraction_in_segments"]
        if cfg.aba_area in config.areas:
            value = frac[config.areas.index(cfg.aba_area)]
            summary["aba_acceptance"] = {"area": cfg.aba_area, "fraction_in_A": value,
                                         "required": cfg.aba_min_fraction,
                                         "passed": value >= cfg.aba_min_fraction}
        else:
            print(f"A-B-A: aba_area {cfg.aba_area} is not among the optimised areas {config.areas}: no acceptance "
                  "check (add it to extremal.areas)")
    if "noise" in cfg.experiments:
        noisy, speech = build_noisy_with_silence(speaker_a, sr, seed=cfg.noise_seed, layout=tuple(cfg.noise_layout),
                                                 snr_db=cfg.noise_snr_db, kind=cfg.noise_kind)
        run("noise", options(cfg, noisy.reshape(1, 1, -1), sr, target=target), speech, "speech")
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

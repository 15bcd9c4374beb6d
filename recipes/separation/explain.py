"""Explain the reference separator on held-out two-speaker mixtures and compare the masks with the IBM.

    python recipes/separation/explain.py                    # occlusion + extremal, 4 mixtures x 2 sources
    python recipes/separation/explain.py --methods occlusion --mixtures 1 --out /tmp/sep_expl
    python recipes/separation/explain.py --debug            # seconds: 1 mixture, coarse settings

For every mixture and source k the score is the SDR (``--score sdr``, BSS-eval v3) or SI-SDR of separated
source k against reference k; the output channel of source k is fixed on the unmasked mixture. Each
method (occlusion and extremal perturbation) runs on the problem the separation task builds
(:func:`avxai.tasks.separation.build`): ``get_method(name)(model, modality, scorer, config)``. The extremal mask is optimised at
area = source k's energy share of the mixture; the IoU of its top-area cells with source k's ideal
binary mask (IBM, 0 dB threshold, same STFT) is the localisation measure
(:func:`avxai.metrics.masks.compare_with_ibm`). Occlusion's attribution is binarised at the same area.
A random map's expected IoU (``a * t / (a + t - a * t)`` for areas a and t) is printed beside it.

Outputs (``--out``): ``results.json`` (every number), ``<method>_m<i>_s<k>.png`` (mixture, mask, IBM,
overlap, SDR of the preserved and deleted inputs) and the explanation folders of the first mixture.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from avxai.config import build_config
from avxai.data.speech_mixtures import two_speaker_mixture
from avxai.data.speech_mixtures import heldout_speakers
from avxai.methods import get_method, method_names
from avxai.metrics.masks import compare_with_ibm, energy_share, ideal_binary_mask, preserve_delete_scores
from avxai.models.checkpoint import load_checkpoint_config
from avxai.models.registry import load_model
from avxai.models.separation import DEFAULT_SEPARATOR_CHECKPOINT
from avxai.tasks.separation import SeparationOptions, build
from avxai.viz.separation import plot_mask_vs_ibm

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="separator checkpoint (default: assets/separation/convtasnet.pt)")
    p.add_argument("--out", type=Path, default=REPO / "avxai-out" / "separation_explain")
    p.add_argument("--methods", default="occlusion,extremal", help="comma-separated registered methods")
    p.add_argument("--mixtures", type=int, default=4, help="held-out mixtures to explain (each: 2 sources)")
    p.add_argument("--seconds", type=float, default=1.0, help="mixture length")
    p.add_argument("--sir-db", type=float, default=0.0, help="power of speaker A over speaker B")
    p.add_argument("--score", choices=("sdr", "si-sdr"), default="sdr")
    p.add_argument("--n-fft", type=int, default=256)
    p.add_argument("--hop-length", type=int, default=64)
    p.add_argument("--window", type=int, nargs=2, default=(8, 8), help="occlusion window (freq bins, frames)")
    p.add_argument("--stride", type=int, nargs=2, default=(4, 4), help="occlusion stride (freq bins, frames)")
    p.add_argument("--iterations", type=int, default=300, help="extremal optimisation steps")
    p.add_argument("--variant", choices=("preserve", "delete", "dual"), default="dual",
                   help="extremal variant: dual (default) keeps what the source needs and removes it from the "
                        "complement, as an ideal binary mask does; preserve alone also keeps free silent cells")
    p.add_argument("--step", type=int, nargs=2, default=(2, 2),
                   help="extremal mask step (freq bins, frames): 2 bins = 62.5 Hz at 8 kHz, fine enough for harmonics")
    p.add_argument("--sigma", type=float, nargs=2, default=(4.0, 4.0), help="extremal mask sigma (freq bins, frames)")
    p.add_argument("--speakers", type=int, nargs=2, default=(120, 130),
                   help="held-out speaker id range [first, stop); ids the checkpoint was trained on are refused")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    p.add_argument("--debug", action="store_true", help="1 mixture, coarse occlusion, 10 extremal iterations")
    args = p.parse_args(argv)
    if args.debug:
        args.mixtures, args.iterations, args.window, args.stride = 1, 10, (32, 32), (32, 32)
    return args


def method_config(name: str, args, area: float):
    """The config of method ``name`` (:func:`avxai.config.build_config` on the registry's config class): the
    recipe's flags for occlusion and extremal; another method is an error."""
    method = get_method(name)
    values = {"occlusion": dict(window=tuple(args.window), stride=tuple(args.stride), batch_size=16),
              "extremal": dict(areas=(min(max(round(area, 3), 0.01), 0.99),), iterations=args.iterations, seed=args.seed,
                               variant=args.variant, step=tuple(args.step), sigma=tuple(args.sigma))}
    if name not in values:
        raise SystemExit(f"this recipe configures {' and '.join(values)} only; --methods named {name!r}")
    return method, build_config(method.config_class, values=values[name])


def summarise(items: list[dict], methods: list[str]) -> dict:
    """Mean / min / max IoU, chance IoU and preserved / deleted scores per method, and the IBM oracle."""
    summary = {}
    for name in methods:
        rows = [it["methods"][name] for it in items]
        ious = np.array([r["iou"] for r in rows])
        summary[name] = {"mean_iou": round(float(ious.mean()), 3), "min_iou": round(float(ious.min()), 3),
                         "max_iou": round(float(ious.max()), 3),
                         "fraction_iou_at_least_0.5": round(float((ious >= 0.5).mean()), 3),
                         "mean_chance_iou": round(float(np.mean([r["chance_iou"] for r in rows])), 3),
                         "mean_iou_at_ibm_area": round(float(np.mean([r["iou_at_ibm_area"] for r in rows])), 3),
                         "mean_preserved": round(float(np.mean([r["preserved"] for r in rows])), 2),
                         "mean_deleted": round(float(np.mean([r["deleted"] for r in rows])), 2),
                         "mean_seconds": round(float(np.mean([r["seconds"] for r in rows])), 1)}
    summary["ibm_oracle"] = {k: round(float(np.mean([it[key] for it in items])), 2) for k, key in
                             (("mean_unmasked", "unmasked"), ("mean_preserved", "ibm_preserved"),
                              ("mean_deleted", "ibm_deleted"))}
    summary["n"] = len(items)
    return summary


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model or "separator")
    sr = model.sample_rate
    try:
        methods = method_names(args.methods)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    for name in methods:
        method_config(name, args, 0.5)  # a method this recipe does not configure fails now, not after the first one
    speakers = heldout_speakers(range(*args.speakers),
                                load_checkpoint_config(args.model or DEFAULT_SEPARATOR_CHECKPOINT))
    rng = np.random.default_rng(args.seed)
    results = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "items": []}
    for i in range(args.mixtures):
        a, b = rng.choice(len(speakers), size=2, replace=False)
        mix = two_speaker_mixture(speakers[a], speakers[b], args.seconds, sr, args.sir_db, seed=30_000 + i)
        x, sources = mix.mixture.view(1, 1, -1), mix.sources.unsqueeze(0)
        for k in range(sources.shape[1]):
            problem = build(model, SeparationOptions(input=x, sample_rate=sr, reference=sources, source=k,
                                                     score=args.score, n_fft=args.n_fft, hop_length=args.hop_length))
            modality, scorer = problem.modality, problem.scorer
            ibm = ideal_binary_mask(sources[0, k], x[0, 0] - sources[0, k], args.n_fft, args.hop_length)
            share = energy_share(sources[0, k], x[0, 0] - sources[0, k])
            oracle = preserve_delete_scores(model, modality, scorer, ibm.unsqueeze(0))
            oracle_scores = {"preserved": float(oracle["preserved"]), "deleted": float(oracle["deleted"])}
            item = {"mixture": i, "speakers": [int(speakers[a].speaker_id), int(speakers[b].speaker_id)], "source": k,
                    "energy_share": round(share, 4), "ibm_area": round(float(ibm.mean()), 4),
                    "unmasked": round(float(oracle["unmasked"]), 2),
                    "ibm_preserved": round(float(oracle["preserved"]), 2),
                    "ibm_deleted": round(float(oracle["deleted"]), 2), "methods": {}}
            for name in methods:
                method, config = method_config(name, args, share)
                t0 = time.perf_counter()
                expl = method(model, modality, scorer, config)
                seconds = time.perf_counter() - t0
                cmp = compare_with_ibm(model, modality, scorer, expl, ibm, area=share)
                item["methods"][name] = {k: round(v, 4) for k, v in cmp.items()} | {"seconds": round(seconds, 1)}
                fig = plot_mask_vs_ibm(expl, ibm, area=cmp["area"], scores=cmp, ibm_scores=oracle_scores,
                                       title=f"{args.score} of separated source {k} vs reference {k}")
                fig.savefig(args.out / f"{name}_m{i}_s{k}.png", dpi=100, bbox_inches="tight")
                plt.close(fig)
                if i == 0:
                    expl.save(args.out / f"{name}_m{i}_s{k}", figure=False)
                print(f"mixture {i} source {k}: {name:>9} IoU {cmp['iou']:.2f} at area {cmp['area']:.2f} "
                      f"(chance {cmp['chance_iou']:.2f}; IBM area {cmp['ibm_area']:.2f}), {args.score} unmasked "
                      f"{item['unmasked']:.1f} preserved {cmp['preserved']:.1f} deleted {cmp['deleted']:.1f} dB; "
                      f"IBM preserved {item['ibm_preserved']:.1f} ({seconds:.0f} s)", flush=True)
            results["items"].append(item)

    summary = summarise(results["items"], methods)
    results["summary"] = summary
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote figures and results.json to {args.out}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])

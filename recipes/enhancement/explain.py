"""Explain the reference enhancer on held-out noisy speech and compare the masks with the speech's IBM.

    python recipes/enhancement/explain.py                   # occlusion + extremal, white / babble / band noise
    python recipes/enhancement/explain.py --methods occlusion --out /tmp/enh_expl
    python recipes/enhancement/explain.py --debug           # seconds

For each noisy utterance the enhancer is explained for two scores (``--score sdr`` BSS-eval v3, or
``si-sdr``): against the clean reference, and against its own output on the unmasked input (no clean
reference needed). Each problem is built by the enhancement task (:func:`avxai.tasks.enhancement.build`) and
each method runs through the same path, ``get_method(name)(model, modality, scorer, config)``; the extremal mask is optimised at area =
the speech's energy share of the noisy input, and compared with the speech's ideal binary mask (IBM, speech
vs noise, 0 dB threshold, same STFT) by IoU (:func:`avxai.metrics.masks.compare_with_ibm`).

Outputs (``--out``): ``results.json``, ``<method>_<noise>_<reference|own>.png`` and the explanation
folders of the babble utterance.
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
from avxai.data.speech_mixtures import UtterancePool, noisy_utterance
from avxai.data.speech_mixtures import heldout_speakers
from avxai.methods import get_method, method_names
from avxai.metrics.masks import compare_with_ibm, energy_share, ideal_binary_mask, preserve_delete_scores
from avxai.models.checkpoint import load_checkpoint_config
from avxai.models.enhancement import DEFAULT_ENHANCER_CHECKPOINT
from avxai.models.registry import load_model
from avxai.tasks.enhancement import EnhancementOptions, build
from avxai.viz.separation import plot_mask_vs_ibm

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="enhancer checkpoint (default: assets/enhancement/enhancer.pt)")
    p.add_argument("--out", type=Path, default=REPO / "avxai-out" / "enhancement_explain")
    p.add_argument("--methods", default="occlusion,extremal", help="comma-separated registered methods")
    p.add_argument("--noises", default="white,babble,band", help="noise kinds, one utterance each")
    p.add_argument("--utterances", type=int, default=1, help="utterances per noise kind")
    p.add_argument("--snr-db", type=float, default=0.0)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--score", choices=("sdr", "si-sdr"), default="sdr")
    p.add_argument("--n-fft", type=int, default=256)
    p.add_argument("--hop-length", type=int, default=64)
    p.add_argument("--window", type=int, nargs=2, default=(8, 8), help="occlusion window (freq bins, frames)")
    p.add_argument("--stride", type=int, nargs=2, default=(4, 4), help="occlusion stride (freq bins, frames)")
    p.add_argument("--iterations", type=int, default=300, help="extremal optimisation steps")
    p.add_argument("--variant", choices=("preserve", "delete", "dual"), default="dual",
                   help="extremal variant: dual (default) keeps what the output needs and removes it from the "
                        "complement, as an ideal binary mask does")
    p.add_argument("--step", type=int, nargs=2, default=(2, 2), help="extremal mask step (freq bins, frames)")
    p.add_argument("--sigma", type=float, nargs=2, default=(4.0, 4.0), help="extremal mask sigma (freq bins, frames)")
    p.add_argument("--speakers", type=int, nargs=2, default=(120, 130),
                   help="held-out speaker ids [first, stop); ids the checkpoint was trained on are refused")
    p.add_argument("--babble-speakers", type=int, nargs=2, default=(230, 240), help="babble talker ids [first, stop)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy 2-core machine)")
    p.add_argument("--debug", action="store_true", help="one noise, coarse occlusion, 10 extremal iterations")
    args = p.parse_args(argv)
    if args.debug:
        args.noises, args.iterations, args.window, args.stride = "babble", 10, (32, 32), (32, 32)
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


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model or "enhancer")
    sr = model.sample_rate
    try:
        methods = method_names(args.methods)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    for name in methods:
        method_config(name, args, 0.5)  # a method this recipe does not configure fails now, not after the first one
    trained = load_checkpoint_config(args.model or DEFAULT_ENHANCER_CHECKPOINT)
    speakers = heldout_speakers(range(*args.speakers), trained)
    heldout_speakers(range(*args.babble_speakers), trained)  # babble talkers must not be training speakers either
    babble = UtterancePool(range(*args.babble_speakers), sr, utterances=1, utterance_s=args.seconds + 1.0,
                           seed=args.seed + 11, speaker_seed=speakers[0].seed)
    items, j = [], 0
    for kind in args.noises.split(","):
        for u in range(args.utterances):
            m = noisy_utterance(speakers[j % len(speakers)], args.seconds, sr, args.snr_db, kind, seed=40_000 + j,
                                pool=babble)
            j += 1
            noisy, clean = m.noisy.view(1, 1, -1), m.clean.view(1, 1, -1)
            ibm = ideal_binary_mask(clean[0, 0], m.noise[0], args.n_fft, args.hop_length)
            share = energy_share(clean[0, 0], m.noise[0])
            for against, reference in (("reference", clean), ("own", None)):
                problem = build(model, EnhancementOptions(input=noisy, sample_rate=sr, reference=reference,
                                                          score=args.score, n_fft=args.n_fft,
                                                          hop_length=args.hop_length))
                modality, scorer = problem.modality, problem.scorer
                oracle = preserve_delete_scores(model, modality, scorer, ibm.unsqueeze(0))
                oracle_scores = {"preserved": float(oracle["preserved"]), "deleted": float(oracle["deleted"])}
                item = {"noise": kind, "utterance": u, "against": against, "energy_share": round(share, 4),
                        "ibm_area": round(float(ibm.mean()), 4), "unmasked": round(float(oracle["unmasked"]), 2),
                        "ibm_preserved": round(float(oracle["preserved"]), 2),
                        "ibm_deleted": round(float(oracle["deleted"]), 2), "methods": {}}
                for name in methods:
                    method, config = method_config(name, args, share)
                    t0 = time.perf_counter()
                    expl = method(model, modality, scorer, config)
                    seconds = time.perf_counter() - t0
                    cmp = compare_with_ibm(model, modality, scorer, expl, ibm, area=share)
                    item["methods"][name] = {k: round(v, 4) for k, v in cmp.items()} | {"seconds": round(seconds, 1)}
                    tag = f"{name}_{kind}{u if args.utterances > 1 else ''}_{against}"
                    fig = plot_mask_vs_ibm(expl, ibm, area=cmp["area"], scores=cmp, ibm_scores=oracle_scores,
                                           title=f"{args.score} of the enhanced output vs {against}, {kind} noise")
                    fig.savefig(args.out / f"{tag}.png", dpi=100, bbox_inches="tight")
                    plt.close(fig)
                    if kind == "babble" and u == 0:
                        expl.save(args.out / tag, figure=False)
                    print(f"{kind:>6} vs {against:>9}: {name:>9} IoU {cmp['iou']:.2f} at area {cmp['area']:.2f} "
                          f"(chance {cmp['chance_iou']:.2f}; IBM area {cmp['ibm_area']:.2f}), {args.score} unmasked "
                          f"{item['unmasked']:.1f} preserved {cmp['preserved']:.1f} deleted {cmp['deleted']:.1f} dB;"
                          f" IBM preserved {item['ibm_preserved']:.1f} ({seconds:.0f} s)", flush=True)
                items.append(item)

    summary = {}
    for against in ("reference", "own"):
        for name in methods:
            rows = [it["methods"][name] for it in items if it["against"] == against]
            if rows:
                summary[f"{name}_vs_{against}"] = {
                    key: round(float(np.mean([r[key] for r in rows])), 3)
                    for key in ("iou", "chance_iou", "iou_at_ibm_area", "preserved", "deleted", "seconds")}
    results = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "items": items,
               "summary": summary}
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote figures and results.json to {args.out}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])

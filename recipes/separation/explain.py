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
from pathlib import Path

import numpy as np

from avxai.data.speech_mixtures import heldout_speakers, two_speaker_mixture
from avxai.metrics.masks import energy_share, ideal_binary_mask
from avxai.models.checkpoint import load_checkpoint_config
from avxai.models.separation import DEFAULT_SEPARATOR_CHECKPOINT
from avxai.tasks.separation import SeparationOptions, build

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE.parent) not in sys.path:  # recipes/ibm_comparison.py, shared with the other explain recipe
    sys.path.insert(0, str(HERE.parent))

from ibm_comparison import add_flags, explain_against_ibm, start


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="separator checkpoint (default: avxai/assets/separation/convtasnet.pt)")
    p.add_argument("--out", type=Path, default=REPO / "avxai-out" / "separation_explain")
    p.add_argument("--mixtures", type=int, default=4, help="held-out mixtures to explain (each: 2 sources)")
    p.add_argument("--seconds", type=float, default=1.0, help="mixture length")
    p.add_argument("--sir-db", type=float, default=0.0, help="power of speaker A over speaker B")
    add_flags(p)
    p.add_argument("--debug", action="store_true", help="1 mixture, coarse occlusion, 10 extremal iterations")
    args = p.parse_args(argv)
    if args.debug:
        args.mixtures, args.iterations, args.window, args.stride = 1, 10, (32, 32), (32, 32)
    return args


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
    model, methods = start(args, "separator")
    sr = model.sample_rate
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
            noise = x[0, 0] - sources[0, k]
            ibm = ideal_binary_mask(sources[0, k], noise, args.n_fft, args.hop_length)
            share = energy_share(sources[0, k], noise)
            head = {"mixture": i, "speakers": [int(speakers[a].speaker_id), int(speakers[b].speaker_id)], "source": k}
            item = explain_against_ibm(model, problem, ibm, share, methods, args, head=head,
                                       suffix=f"_m{i}_s{k}", save=i == 0,
                                       title=f"{args.score} of separated source {k} vs reference {k}",
                                       label=f"mixture {i} source {k}")
            results["items"].append(item)

    summary = summarise(results["items"], methods)
    results["summary"] = summary
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote figures and results.json to {args.out}")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])

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
from pathlib import Path

import numpy as np

from avxai.data.speech_mixtures import UtterancePool, heldout_speakers, noisy_utterance
from avxai.metrics.masks import energy_share, ideal_binary_mask
from avxai.models.checkpoint import load_checkpoint_config
from avxai.models.enhancement import DEFAULT_ENHANCER_CHECKPOINT
from avxai.tasks.enhancement import EnhancementOptions, build

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(HERE.parent) not in sys.path:  # recipes/ibm_comparison.py, shared with the other explain recipe
    sys.path.insert(0, str(HERE.parent))

from ibm_comparison import add_flags, explain_against_ibm, start


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="enhancer checkpoint (default: avxai/assets/enhancement/enhancer.pt)")
    p.add_argument("--out", type=Path, default=REPO / "avxai-out" / "enhancement_explain")
    p.add_argument("--noises", default="white,babble,band", help="noise kinds, one utterance each")
    p.add_argument("--utterances", type=int, default=1, help="utterances per noise kind")
    p.add_argument("--snr-db", type=float, default=0.0)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--babble-speakers", type=int, nargs=2, default=(230, 240), help="babble talker ids [first, stop)")
    add_flags(p)
    p.add_argument("--debug", action="store_true", help="one noise, coarse occlusion, 10 extremal iterations")
    args = p.parse_args(argv)
    if args.debug:
        args.noises, args.iterations, args.window, args.stride = "babble", 10, (32, 32), (32, 32)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    model, methods = start(args, "enhancer")
    sr = model.sample_rate
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
                item = explain_against_ibm(model, problem, ibm, share, methods, args,
                                           head={"noise": kind, "utterance": u, "against": against},
                                           suffix=f"_{kind}{u if args.utterances > 1 else ''}_{against}",
                                           save=kind == "babble" and u == 0, label=f"{kind:>6} vs {against:>9}",
                                           title=f"{args.score} of the enhanced output vs {against}, {kind} noise")
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

"""How much of an extremal mask over the face video lies on the mouth, on held-out generated talking faces.

    python recipes/av_enhancement/mouth_mass.py                      # 8 clips of 2 s, area 0.1, dual (~5 min, 1 core)
    python recipes/av_enhancement/mouth_mass.py --clips 2 --iterations 60 --out /tmp/mm   # quick look

For each held-out mixture (speakers, utterances and head motions never seen in training; the same
generator as the training recipe's held-out set, another seed) the script

1. tracks the face with MTCNN (:class:`avxai.faces.FaceTracker`, as ``avxai explain`` does) and crops it at
   the model's crop size;
2. explains the SDR of the bundled AV enhancer's output against the clean target over the face video alone
   (the model hears the unperturbed mixture: the AV task's ``stream="video"``,
   :func:`avxai.tasks.av_enhancement.build`), with
   extremal perturbation at one area (default 0.1 of the frames x height x width grid);
3. maps the generator's ground truth into crop pixels with the track's crop boxes and measures the
   fraction of the mask's mass inside: the *mouth region* (every crop pixel the mouth animation changes
   in some frame of the clip: the lips, and the chin and neck the jaw warp moves, from
   ``AVExample.mouth_masks``; where the mouth is closed these pixels show the jaw at rest, which is
   evidence too), the same region frame by frame (only the pixels changed in that frame), and the tight
   box around the drawn lips (``mouth_boxes``). Chance level = the region's share of the grid.

Prints a table and writes ``mouth_mass.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from avxai.config import build_config
from avxai.data.av_mixtures import AVMixtureConfig, AVMixtures, crop_faces
from avxai.faces import FaceTracker, crop_boxes
from avxai.io.video import VideoClip
from avxai.methods.extremal import ExtremalConfig, extremal
from avxai.models.av_enhancement import DEFAULT_AV_ENHANCER_CHECKPOINT
from avxai.models.checkpoint import load_checkpoint_config
from avxai.models.registry import load_model
from avxai.scorers.sdr import bss_sdr
from avxai.tasks.av_enhancement import AVEnhancementOptions, build

REPO = Path(__file__).resolve().parents[2]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="AV enhancer checkpoint (default: the bundled one)")
    p.add_argument("--clips", type=int, default=8, help="held-out mixtures to explain")
    p.add_argument("--duration", type=float, default=2.0, help="seconds per mixture")
    p.add_argument("--area", type=float, default=0.1, help="extremal area (fraction of the video grid kept)")
    p.add_argument("--iterations", type=int, default=150, help="extremal iterations")
    p.add_argument("--variant", default="dual", choices=["preserve", "delete", "dual"],
                   help="extremal variant (dual: the kept face must carry the SDR and the removed face must lose it)")
    p.add_argument("--step", help="extremal mask step per axis (time,height,width) in cells, e.g. 50,2,2 "
                   "(default: the method's, about 32 parameters per axis)")
    p.add_argument("--sigma", help="extremal mask sigma per axis in cells, e.g. 100,4,4 (default: three times the step on a video grid, twice on audio)")
    p.add_argument("--save", type=Path, help="also save the explanation of the first clip (figure, arrays) here")
    p.add_argument("--perturbation", default="mean-time",
                   help="what removed face pixels become (mean-time = the clip's mean face; spatial-blur, freeze, ...)")
    p.add_argument("--faces", default="astronaut,camera", help="stills the held-out faces are drawn from")
    p.add_argument("--crops", default="tracker", choices=["tracker", "generator"],
                   help="tracker: MTCNN tracks every clip (as avxai explain does); generator: boxes from the "
                        "generator's face boxes (no tracking residue, as in training)")
    p.add_argument("--seed", type=int, default=3000, help="seed of the held-out mixtures")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--out", type=Path, default=REPO / "avxai-out" / "av_mouth_mass")
    return p.parse_args(argv)


def to_crop(masks: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Frame-pixel masks ``(T, H, W)`` -> coverage of each crop pixel ``(T, size, size)`` in [0, 1]."""
    frames = (masks.float() * 255).round().to(torch.uint8)[..., None].expand(*masks.shape, 3).contiguous()
    return crop_boxes(frames, boxes, size)[:, 0]


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_model(args.model or "av-enhancer")
    train = load_checkpoint_config(args.model or DEFAULT_AV_ENHANCER_CHECKPOINT).get("train", {})
    lo, hi = train.get("eval_speakers", (100, 112))
    gen = AVMixtures(range(lo, hi), config=AVMixtureConfig(
        sample_rate=model.sample_rate, fps=model.fps, duration_s=args.duration, sir_db=0.0,
        frame_size=tuple(train.get("frame_size", (112, 112))), faces=tuple(args.faces.split(","))), seed=args.seed, speaker_seed=train.get("speaker_seed", 0))
    tracker = FaceTracker(crop_size=model.crop_size)
    axes = lambda text, kind: None if text is None else tuple(kind(v) for v in text.split(","))  # noqa: E731
    cfg = build_config(ExtremalConfig, values=dict(areas=(args.area,), iterations=args.iterations,
                                                   variant=args.variant, seed=0, step=axes(args.step, int),
                                                   sigma=axes(args.sigma, float)))
    rows = []
    t0 = time.perf_counter()
    for i in range(args.clips):
        ex = gen.example(i)
        track = tracker.track(ex.frames, f"held-out mixture {i}")
        if args.crops == "generator":  # the same track object, with the generator's boxes and their crops
            crops, boxes = crop_faces(ex, model.crop_size)
            track = dataclasses.replace(track, boxes=boxes, crops=crops)
        clip = VideoClip(frames=ex.frames, fps=ex.fps, audio=ex.mixture, sample_rate=model.sample_rate)
        # the face video alone, the model hearing the unperturbed mixture; no audio/video shares (not reported)
        problem = build(model, AVEnhancementOptions(input=clip, track=track, reference=ex.target, stream="video",
                                                    perturbation=f"zero,{args.perturbation}", shares=False))
        video, scorer, wav = problem.modality, problem.scorer, clip.audio.unsqueeze(0)
        expl = extremal(problem.model, video, scorer, cfg)
        with torch.no_grad():  # the whole face replaced by the baseline (the mean face by default)
            blank = model(wav, video.perturb(torch.zeros(1, *video.grid_shape)))
            mixture_sdr = float(bss_sdr(wav[:, 0].double(), ex.target.double())[0])
        mask = expl.masks[0, 0].double()
        size = model.crop_size
        per_frame = to_crop(ex.mouth_masks, track.boxes, size).double()
        regions = {"mouth_region": per_frame.amax(dim=0, keepdim=True).expand_as(per_frame),
                   "mouth_region_per_frame": per_frame,
                   "lips_box": video.region_in_crop(ex.mouth_boxes).double()}
        row = {"clip": i, "face": ex.face, "unmasked_sdr_db": round(float(expl.scores["unmasked"][0]), 2),
               "preserved_sdr_db": round(float(expl.scores["preserved"][0, 0]), 2),
               "blanked_sdr_db": round(float(scorer.prepare(blank)(blank)[0]), 2),
               "mixture_sdr_db": round(mixture_sdr, 2),
               "mask_area": round(float(mask.mean()), 4)}
        for name, region in regions.items():
            row[f"{name}_mass"] = round(float((mask * region).sum() / mask.sum()), 3)
            row[f"{name}_share_of_grid"] = round(float(region.mean()), 4)
        # the most a mask of this area can put in the region: all of it when the region is larger than the mask
        row["mouth_region_best_possible"] = round(min(1.0, row["mouth_region_share_of_grid"] / row["mask_area"]), 3)
        rows.append(row)
        if args.save is not None and i == 0:
            expl.save(args.save)
        print(json.dumps(row), flush=True)
    def mean_of(sel):
        return {k: round(float(np.mean([r[k] for r in sel])), 3) for k in rows[0] if k not in ("clip", "face")}

    summary = mean_of(rows)
    summary["min_mouth_region_mass"] = min(r["mouth_region_mass"] for r in rows)
    per_face = {f: mean_of([r for r in rows if r["face"] == f]) for f in sorted({r["face"] for r in rows})}
    doc = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "extremal": {"areas": list(cfg.areas), "iterations": cfg.iterations, "variant": cfg.variant,
                        "step": cfg.step, "sigma": cfg.sigma},
           "rows": rows, "mean": summary, "per_face": per_face, "seconds": round(time.perf_counter() - t0, 1)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mouth_mass.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\n{args.clips} held-out clips of {args.duration} s, extremal {args.variant} at area {args.area}, "
          f"{args.iterations} iterations, video baseline {args.perturbation}:")
    print(f"  mask mass in the mouth region {summary['mouth_region_mass']:.3f} (min {summary['min_mouth_region_mass']:.3f}; "
          f"the region is {summary['mouth_region_share_of_grid']:.3f} of the grid)")
    print(f"  ... in the region frame by frame {summary['mouth_region_per_frame_mass']:.3f} (region: "
          f"{summary['mouth_region_per_frame_share_of_grid']:.3f} of the grid)")
    print(f"  mask mass in the lips box     {summary['lips_box_mass']:.3f} (box: {summary['lips_box_share_of_grid']:.3f} "
          "of the grid)")
    for face, s in per_face.items():
        print(f"  {face}: mouth region {s['mouth_region_mass']:.3f} (chance {s['mouth_region_share_of_grid']:.3f}, best "
              f"possible at this area {s['mouth_region_best_possible']:.3f}), frame by frame "
              f"{s['mouth_region_per_frame_mass']:.3f}, lips box {s['lips_box_mass']:.3f}")
    print(f"  SDR of the mixture {summary['mixture_sdr_db']:.2f} dB; of the output: {summary['unmasked_sdr_db']:.2f} dB, "
          f"with the face blanked ({args.perturbation}) {summary['blanked_sdr_db']:.2f} dB, with {args.area:g} of the "
          f"video kept {summary['preserved_sdr_db']:.2f} dB")
    print(f"  {doc['seconds']:.0f} s; written {args.out / 'mouth_mass.json'}")
    return doc


if __name__ == "__main__":
    main(sys.argv[1:])

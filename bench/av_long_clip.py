"""Peak memory and time of the av-enhancement task on a long generated clip, method by method.

    .venv/bin/python bench/av_long_clip.py [--seconds 60] [--size 1280x720] [--methods pca-rgb,occlusion,extremal]
        [--set extremal:iterations=20] [--threads 2] [--keep clip.mp4 --cache folder]

The gradient methods (saliency, smoothgrad, integrated-gradients, gradcam) keep one row's activations of the whole
clip (>= 3.74 GiB at 60 s on the bundled model), so at 60 s they too run segment-wise; their batches are sized from
the budget, so ``--set smoothgrad:samples=2`` / ``--set integrated-gradients:steps=2`` need the same memory as the
defaults whenever one row per pass is what fits.

The clip (written frame by frame, never held whole) is a real face photograph (scikit-image's astronaut, public
domain) moving on a gradient, with a syllable-like tone as its sound (8 kHz mono, 25 fps: what the bundled
model takes). Each method runs in a fresh process (``avxai explain`` through ``avxai.cli.main``) so that its
peak resident memory (``ru_maxrss``) is its own; the face detections are cached by the first run (the second
and later runs read them, as a user's second command does). Prints wall seconds and peak MB per method, and
the load average (the development CPU is shared: numbers under load say so), and each run's plan line: at 60 s
extremal's one row of the whole clip (>= 3.74 GiB) does not fit the default budget, so ``avxai explain`` explains
the clip in segments (the plan line says how many and why; ``--segment-seconds 0`` measures the whole-clip run).
Reduced work is stated with the results (``--set extremal:iterations=2``: memory does not depend on the count).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction

import numpy as np


def write_long_clip(path: str, seconds: float, width: int, height: int) -> None:
    import av
    import torch
    from torchvision.ops import roi_align

    from avxai.data.talking_face import _locate

    img, box, _ = _locate("astronaut")
    cx, cy, half = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 0.65 * max(box[2] - box[0], box[3] - box[1])
    side = max(64, height // 4)
    rois = torch.tensor([[0.0, cx - half, cy - half, cx + half, cy + half]], dtype=torch.float32)
    face = roi_align(torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float(), rois, (side, side), aligned=True)
    face = face[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    bg = np.stack([60 + 40 * np.sin(x / width * np.pi * (c + 1)) + 30 * y / height for c in range(3)], -1)
    bg = bg.clip(0, 255).astype(np.uint8)
    n, rate = round(seconds * 25), 8000
    with av.open(path, "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "23", "preset": "veryfast"}
        a = out.add_stream("aac", rate=rate)
        a.layout = "mono"
        for t in range(n):
            frame = bg.copy()
            fx = int(width / 3 + width / 6 * math.sin(t / 50))
            fy = int(height / 4 + height / 12 * math.sin(t / 37))
            frame[fy:fy + side, fx:fx + side] = face
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, 25)
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        s = np.arange(int(seconds * rate)) / rate
        wav = (0.3 * np.sin(2 * np.pi * 220 * s) * np.sin(np.pi * 3 * s) ** 2).astype(np.float32)[None]
        af = av.AudioFrame.from_ndarray(wav, format="fltp", layout="mono")
        af.sample_rate, af.pts, af.time_base = rate, 0, Fraction(1, rate)
        for p in a.encode(af):
            out.mux(p)
        for p in a.encode():
            out.mux(p)


CHILD = """
import resource, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
from avxai.cli import main
t = time.perf_counter()
code = main(sys.argv[2:])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"BENCH exit {code} wall {time.perf_counter() - t:.1f} s peak {peak:.0f} MB", flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--methods", default="pca-rgb,occlusion,extremal")
    parser.add_argument("--set", action="append", default=[], help="METHOD:FIELD=VALUE, e.g. extremal:iterations=20")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", help="write the clip here and keep it")
    parser.add_argument("--max-memory", help="--max-memory of avxai explain (default: its default)")
    parser.add_argument("--segment-seconds", help="--segment-seconds of avxai explain (default: its own choice)")
    parser.add_argument("--cache", help="the face detections' cache folder (default: a temporary one); a second bench "
                                        "run on the same --keep clip with the same --cache detects no faces again")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as folder:
        path = args.keep or os.path.join(folder, "long.mp4")
        if not os.path.exists(path):
            t = time.perf_counter()
            write_long_clip(path, args.seconds, width, height)
            print(f"wrote a {args.seconds:g} s {width}x{height} clip ({os.path.getsize(path) / 1e6:.1f} MB) in "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
        for method in args.methods.split(","):
            sets = [s.split(":", 1)[1] for s in args.set if s.startswith(method + ":")]
            argv = ["explain", "--task", "av-enhancement", "--input", path, "--method", method, "--quiet",
                    "--track-cache", args.cache or os.path.join(folder, "cache"), "--out", os.path.join(folder, method)]
            for s in sets:
                argv += ["--set", s]
            if args.max_memory:
                argv += ["--max-memory", args.max_memory]
            if args.segment_seconds is not None:
                argv += ["--segment-seconds", args.segment_seconds]
            res = subprocess.run([sys.executable, "-c", CHILD, str(args.threads), *argv], capture_output=True, text=True,
                                 check=False)
            lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
            bench = [ln for ln in lines if ln.startswith("BENCH")]
            print(f"{method:10s} {' '.join(sets) or 'defaults':24s} "
                  + (bench[0][6:] if bench else "failed: " + " | ".join(lines[-3:])), flush=True)
            for line in lines:
                if line.startswith("plan:"):
                    print(f"{'':10s} {line}", flush=True)
        print(f"load average {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()

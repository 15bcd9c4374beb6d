"""Long recordings: wall time and peak resident memory of ``avxai explain --task speaker`` (the bundled speaker
model) at the CLI's defaults on 3 s, 60 s and 10 min of real speech (``avxai/assets/real/aba.wav``, a 7 s
recording, repeated to the length).

Every run is its own process (``os.wait4`` gives its peak RSS; the bench kills it above ``--rss-limit`` and says
so). By default the bench finishes in about 3 minutes on a quiet 2-core machine, so some runs do less work than
the defaults, and it says which: occlusion at 3 s and 60 s runs at the defaults; extremal at 3 s and 60 s runs
``--quick-iterations`` (20) iterations (its cost per iteration, hence the 60 s / 3 s ratio, does not depend on
the count); at 10 min both run few windows / iterations, at the default memory budget: peak memory depends on the
batch and the rows, not on how many there are. ``--full`` runs everything at the defaults (hours at 10 min).
At 10 min extremal's one row of the whole input (>= 2.23 GiB on this model) does not fit the default budget,
so ``avxai explain`` explains it in segments (the plan line says how many and why; the summary repeats it);
``--segment-seconds 0`` measures the whole-input run instead (5.20 GB before the segments existed).
The gradient methods (``--methods saliency smoothgrad integrated-gradients gradcam``) keep one row of the whole
input too and go segment-wise the same way; their batches are sized from the budget, so reduced samples / steps
(``--set smoothgrad:samples=2``) change the memory only where more rows than that would fit in one pass.

Goals (issue 17): 60 s takes at most 25x the time of 3 s; 10 min finishes at defaults in at most 3 GB.

    .venv/bin/python bench/long_recordings.py                 # ~3 min quiet
    .venv/bin/python bench/long_recordings.py --full          # the defaults everywhere (hours)
    .venv/bin/python bench/long_recordings.py --device cuda --lengths 4 60 600
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "avxai" / "assets" / "real" / "aba.wav"

#: runs one ``avxai explain`` in this process (the bench starts one per measurement)
CHILD = """
import resource, sys, numpy as np, soundfile as sf
from avxai.cli import main
seconds, out = float(sys.argv[1]), sys.argv[2]
x, sr = sf.read(sys.argv[3], dtype="float32")
n = int(seconds * sr)
sf.write(out + "/in.wav", np.tile(x, -(-n // len(x)))[:n], sr)
try:
    rc = main(["explain", "--task", "speaker", "--input", out + "/in.wav", "--out", out + "/out"] + sys.argv[4:])
finally:
    print("PEAK_RSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
    import torch
    if torch.cuda.is_available() and torch.cuda.max_memory_allocated():
        print("PEAK_CUDA_BYTES", torch.cuda.max_memory_allocated(), file=sys.stderr)
sys.exit(rc)
"""


def run_one(seconds: float, flags: list[str], rss_limit: int, timeout: float) -> dict:
    """Wall time (s), peak RSS (bytes) and exit of one ``avxai explain`` run in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(seconds), tmp, str(SPEECH), *flags],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed, seen = [], [0]

        def watch():  # kill the run above the RSS limit (a machine shared with others must not swap)
            while proc.poll() is None:
                try:
                    rss = int(Path(f"/proc/{proc.pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                except (OSError, ValueError, IndexError):
                    break
                seen[0] = max(seen[0], rss)
                if rss > rss_limit or time.perf_counter() - start > timeout:
                    killed.append("rss" if rss > rss_limit else "timeout")
                    proc.kill()
                    break
                time.sleep(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        out, err = proc.communicate()
        wall = time.perf_counter() - start
        watcher.join()
        lines = err.splitlines()
        plan = [line for line in lines if line.startswith("plan:")]
        # the child's own resource.getrusage peak; a killed child: the largest RSS the watcher saw
        peak = [int(line.split()[1]) * 1024 for line in lines if line.startswith("PEAK_RSS_KB")]
        cuda = [int(line.split()[1]) for line in lines if line.startswith("PEAK_CUDA_BYTES")]
        errors = [line for line in lines if not line.startswith(("PEAK_RSS_KB", "PEAK_CUDA_BYTES", "plan:"))]
        return {"seconds": seconds, "wall_s": round(wall, 2), "rc": proc.returncode,
                "killed": killed[0] if killed else None, "peak_rss_gb": round((peak or seen)[0] / 1e9, 3),
                "peak_cuda_gb": round(cuda[0] / 1e9, 3) if cuda else None, "plan": plan[0] if plan else None,
                "error": errors[-1] if proc.returncode and errors else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=float, nargs="+", default=[3, 60, 600], help="seconds of speech")
    ap.add_argument("--methods", nargs="+", default=["occlusion", "extremal"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default=None, help="--device of avxai explain (cpu, cuda)")
    ap.add_argument("--full", action="store_true", help="every run at the CLI's defaults (hours at 10 min)")
    ap.add_argument("--quick-iterations", type=int, default=20, help="extremal iterations at <= 60 s unless --full")
    ap.add_argument("--long-iterations", type=int, default=2, help="extremal iterations above 60 s unless --full")
    ap.add_argument("--long-windows", type=int, default=8, help="occlusion windows above 60 s unless --full")
    ap.add_argument("--set", action="append", default=[],
                    help="METHOD:FIELD=VALUE for avxai explain --set, e.g. smoothgrad:samples=2 (stated as reduced work)")
    ap.add_argument("--max-memory", default=None, help="--max-memory of avxai explain (default: its default)")
    ap.add_argument("--segment-seconds", default=None,
                    help="--segment-seconds of avxai explain (default: its own choice; 0: the whole input at once)")
    ap.add_argument("--rss-limit", type=float, default=8.0, help="kill a run above this many GB (default 8)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="kill a run after this many seconds")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()

    results = []
    for method in args.methods:
        for seconds in sorted(args.lengths):
            flags = ["--method", method, "--threads", str(args.threads), "--quiet"]
            reduced = None
            if args.device:
                flags += ["--device", args.device]
            if args.max_memory:
                flags += ["--max-memory", args.max_memory]
            if args.segment_seconds is not None:
                flags += ["--segment-seconds", args.segment_seconds]
            if not args.full and method == "extremal":
                iterations = args.quick_iterations if seconds <= 60 else args.long_iterations
                flags += ["--iterations", str(iterations)]
                reduced = f"{iterations} iterations (default 300)"
            if not args.full and method == "occlusion" and seconds > 60:
                # the default grid (257 bins x frames) cut into --long-windows windows along time, none in frequency
                frames = int(seconds * 16000 / 128) + 1
                w = -(-frames // args.long_windows)
                flags += ["--window", f"257,{w}", "--stride", f"257,{w}"]
                reduced = f"{args.long_windows} windows (default 1024)"
            sets = [item.split(":", 1)[1] for item in args.set if item.startswith(method + ":")]
            for item in sets:
                flags += ["--set", item]
            if sets:
                reduced = ", ".join(filter(None, [reduced, *sets]))
            r = run_one(seconds, flags, int(args.rss_limit * 1e9), args.timeout)
            segments = re.search(r"segment-wise: (\d+) segments of ([\d.]+) s", r["plan"] or "")
            r.update(method=method, reduced=reduced,
                     segments=f"{segments.group(1)} x {segments.group(2)} s" if segments else "whole input")
            results.append(r)
            print(json.dumps(r), flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; threads {args.threads}; "
          f"model: avxai's bundled speaker model (SpeakerNet, trained), real speech repeated")
    print(f"{'method':>10} {'length':>8} {'wall s':>8} {'peak RSS GB':>12}  {'segments':>14}  work")
    for r in results:
        state = "" if r["rc"] == 0 else f"  FAILED ({r['killed'] or r['error']})"
        print(f"{r['method']:>10} {r['seconds']:>7.0f}s {r['wall_s']:>8.1f} {r['peak_rss_gb']:>12.2f}  "
              f"{r['segments']:>14}  {r['reduced'] or 'defaults'}{state}")
    for method in args.methods:
        rows = {r["seconds"]: r for r in results if r["method"] == method and r["rc"] == 0}
        if 3 in rows and 60 in rows and rows[3]["reduced"] == rows[60]["reduced"]:
            ratio = rows[60]["wall_s"] / rows[3]["wall_s"]
            print(f"{method}: 60 s / 3 s wall time = {ratio:.1f}x (goal <= 25x: {'met' if ratio <= 25 else 'NOT met'})")
        if 600 in rows:
            gb = rows[600]["peak_rss_gb"]
            print(f"{method}: 10 min peak RSS = {gb:.2f} GB (goal <= 3 GB: {'met' if gb <= 3 else 'NOT met'}; "
                  f"{rows[600]['reduced'] or 'defaults'}; {rows[600]['segments']})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

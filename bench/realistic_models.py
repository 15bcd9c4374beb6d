"""Methods on realistic model sizes against the models' own passes (issue 17).

Models (3 s of the bundled real recording ``avxai/assets/real/aba.wav``, explained on the task's spectrogram):

* ``ecapa512`` / ``ecapa1024``: SpeechBrain's ECAPA-TDNN, C = 512 / 1024 (random weights, seeded) behind an
  80-band log-mel front end and a 16-class linear head; score: the logit of the class predicted on the input;
* ``resemblyzer``: Resemblyzer's pretrained GE2E encoder (real weights, ``avxai.models.load_model``); score:
  the cosine to the embedding of the input itself;
* ``convtasnet``: torchaudio's ConvTasNet at the paper's size (N = 512, L = 16, B = H = 128/512, P = 3, X = 8,
  R = 3, two sources; random weights), 8 kHz; score: SI-SDR of source 1 against the model's unmasked output.

Arms, each ratio measured side by side (interleaved repeats, every other one reversed; median of the paired
ratios):

* extremal, K = 3 areas, N iterations / the bare model's N forward + N - 1 backward passes at batch K
  (goal <= 1.05), at each N of ``--iterations`` (default 10 and 20), and the per-iteration ratio (slope)
  ``(t(N2) - t(N1)) / (bare(N2) - bare(N1))`` from the same repeats, where the fixed costs cancel (the unmasked,
  fully removed and final deleted scores: forward passes the bare arm does not make): what a run of the default
  300 iterations pays. Extremal runs under a memory budget that holds its K rows' activations, as the bare arm does
  (``--max-memory``; the row says when the default 1 GiB budget would run them in chunks with recomputation);
* occlusion over W windows / the bare model's forward passes over W inputs at the same batch size (goal <= 1.10);
* saliency / SmoothGrad (S samples) / integrated gradients (S steps) / the bare model's forward + backward passes
  over as many inputs at the same batch size.

    .venv/bin/python bench/realistic_models.py                       # ~6 min quiet, 2 threads
    .venv/bin/python bench/realistic_models.py --models ecapa512 ecapa1024 resemblyzer --methods extremal
    .venv/bin/python bench/realistic_models.py --models convtasnet --methods extremal --iterations 5 10
    .venv/bin/python bench/realistic_models.py --device cuda --seconds 4 --iterations 300 --models ecapa512
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

from avxai import (ExtremalConfig, IntegratedGradientsConfig, OcclusionConfig, SaliencyConfig, SmoothGradConfig,
                   Spectrogram, extremal, integrated_gradients, occlusion, saliency, smoothgrad)
from avxai.io.audio import load_audio, resample
from avxai.memory import available_memory, format_size, memory_budget, parse_size, rows_within_budget
from avxai.scorers.classification import ClassLogit
from avxai.scorers.sdr import SISDR
from avxai.scorers.speaker import SpeakerCosine

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "avxai" / "assets" / "real" / "aba.wav"


class EcapaSpeaker(nn.Module):
    """Waveform ``(n, 1, time)`` at 16 kHz -> 80-band log-mel -> ECAPA-TDNN (C channels) -> 16 logits."""

    sample_rate = 16000

    def __init__(self, channels: int, seed: int = 0):
        super().__init__()
        import torchaudio  # optional dependency: speechbrain
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

        torch.manual_seed(seed)
        self.mel = torchaudio.transforms.MelSpectrogram(self.sample_rate, n_fft=512, win_length=400, hop_length=160,
                                                        n_mels=80)
        self.ecapa = ECAPA_TDNN(input_size=80, channels=[channels] * 4 + [3 * channels], lin_neurons=192)
        self.head = nn.Linear(192, 16)

    def forward(self, waveform):
        logmel = torch.log(self.mel(waveform.mean(dim=1)) + 1e-6)
        logmel = logmel - logmel.mean(dim=-1, keepdim=True)
        return self.head(self.ecapa(logmel.transpose(1, 2)).squeeze(1))


class TasNet(nn.Module):
    """torchaudio's ConvTasNet (paper size) on ``(n, 1, time)`` at 8 kHz -> sources ``(n, 2, time)``."""

    sample_rate = 8000

    def __init__(self, seed: int = 0):
        super().__init__()
        from torchaudio.models import ConvTasNet

        torch.manual_seed(seed)
        self.net = ConvTasNet(num_sources=2)  # the defaults are the paper's best configuration

    def forward(self, waveform):
        return self.net(waveform)


def build(name: str, seconds: float, device: torch.device):
    """``(model, waveform (1, 1, time), scorer, n_fft, hop)`` of one named set-up."""
    wav, rate = load_audio(SPEECH, mono=True)
    if name.startswith("ecapa"):
        model = EcapaSpeaker(int(name[5:]))
    elif name == "resemblyzer":
        from avxai.models import load_model
        model = load_model("resemblyzer")
    elif name == "convtasnet":
        model = TasNet()
    else:
        raise SystemExit(f"unknown model {name!r}")
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    sr = model.sample_rate
    wav = resample(wav, rate, sr) if sr != rate else wav
    wav = wav[..., :int(seconds * sr)].to(device)
    if name.startswith("ecapa"):
        with torch.no_grad():
            scorer = ClassLogit(int(model(wav).argmax()))
    elif name == "resemblyzer":
        scorer = SpeakerCosine(model, wav, sample_rate=sr)
    else:
        scorer = SISDR(None, source=0)
    n_fft = 2 ** round(torch.log2(torch.tensor(0.032 * sr)).item())
    return model, wav, scorer, n_fft, n_fft // 4


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_grad(model, x, n_forward, n_backward, device):
    """``n_forward`` forward passes of ``model`` on ``x``, ``n_backward`` of them with a backward pass."""
    start = time.perf_counter()
    for i in range(n_forward):
        if i < n_backward:
            inp = x.detach().requires_grad_(True)
            out = model(inp)
            torch.autograd.grad(out.float().mean(), inp)
        else:
            with torch.inference_mode():
                model(x)
    sync(device)
    return time.perf_counter() - start


def bare_forward(model, x, inputs, batch, device):
    """Forward passes over ``inputs`` inputs, ``batch`` at a time (the last batch shorter)."""
    start = time.perf_counter()
    with torch.inference_mode():
        for first in range(0, inputs, batch):
            model(x[:min(batch, inputs - first)])
    sync(device)
    return time.perf_counter() - start


def timed(run, device):
    start = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - start


def arms(name, model, wav, scorer, n_fft, hop, args, device):
    """``{method: ([(tag, run_method, run_bare), ...], what)}`` for the requested methods (extremal: one pair per
    N of ``--iterations``)."""
    def mod():
        return Spectrogram(wav, model.sample_rate, n_fft=n_fft, hop_length=hop)

    grid = mod().grid_shape
    out = {}
    k, n = 3, args.iterations
    if "extremal" in args.methods:
        # like with like: the bare arm keeps the activations of its K rows for the backward pass, so extremal runs
        # under a budget that holds them too (at the default 1 GiB budget a model whose K rows need more runs them in
        # chunks with activations recomputed in the backward pass: a different computation, said in `what`)
        budget = args.max_memory or available_memory(device) or (1 << 40)
        chunked, _ = rows_within_budget(model, mod(), k)  # at the default budget
        note = getattr(chunked, "plan_note", None)
        xk = wav.repeat(k, 1, 1)
        pairs = []
        for n in args.iterations:
            ecfg = ExtremalConfig(areas=(0.05, 0.1, 0.2), iterations=n)

            def run(ecfg=ecfg):
                with memory_budget(budget):
                    return extremal(model, mod(), scorer, ecfg)

            pairs.append((f"N={n}", run, lambda n=n: bare_grad(model, xk, n, n - 1, device)))
        what = (f"K={k}, N={'/'.join(map(str, args.iterations))} vs N forward + N - 1 backward at batch {k}; budget "
                f"{format_size(budget)}" + (f" (at the default budget: {note})" if note else ""))
        out["extremal"] = (pairs, what)
    if "occlusion" in args.methods:
        w = [max(1, -(-g // args.occlusion_split)) for g in grid]
        ocfg = OcclusionConfig(window=tuple(w), stride=tuple(w), batch_size=args.batch_size)
        windows = 1
        for g, wi in zip(grid, w):
            windows *= -(-g // wi)
        xb = wav.repeat(args.batch_size, 1, 1)
        out["occlusion"] = ([("", lambda: occlusion(model, mod(), scorer, ocfg),
                              lambda: bare_forward(model, xb, windows, args.batch_size, device))],
                            f"{windows} windows vs {windows} forward inputs at batch {args.batch_size}")
    s = args.samples
    if "saliency" in args.methods:
        out["saliency"] = ([("", lambda: saliency(model, mod(), scorer, SaliencyConfig()),
                             lambda: bare_grad(model, wav, 1, 1, device))], "vs 1 forward + backward")
    xs = wav.repeat(min(s, 32), 1, 1)
    if "smoothgrad" in args.methods:
        out["smoothgrad"] = ([("", lambda: smoothgrad(model, mod(), scorer, SmoothGradConfig(samples=s)),
                               lambda: bare_grad(model, xs, -(-s // 32), -(-s // 32), device))],
                             f"{s} samples vs forward + backward of {s} inputs")
    if "integrated-gradients" in args.methods:
        out["integrated-gradients"] = (
            [("", lambda: integrated_gradients(model, mod(), scorer, IntegratedGradientsConfig(steps=s)),
              lambda: bare_grad(model, wav.repeat(min(s + 1, 32), 1, 1), -(-(s + 1) // 32), -(-(s + 1) // 32),
                                device))],
            f"{s} steps vs forward + backward of {s + 1} inputs (+ 2 forward end points in the method)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["ecapa512", "ecapa1024", "resemblyzer", "convtasnet"])
    ap.add_argument("--methods", nargs="+",
                    default=["extremal", "occlusion", "saliency", "smoothgrad", "integrated-gradients"])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--iterations", type=int, nargs="+", default=[10, 20],
                    help="extremal iterations N, one ratio each; with two or more, also the per-iteration ratio "
                         "(slope) between the first and the last, what a 300-iteration run pays")
    ap.add_argument("--max-memory", type=parse_size, default=None,
                    help="extremal's memory budget (default: the memory available, so that extremal keeps the "
                         "activations of its K rows as the bare arm does)")
    ap.add_argument("--occlusion-split", type=int, default=8, help="occlusion windows per grid axis")
    ap.add_argument("--batch-size", type=int, default=16, help="occlusion batch (both arms)")
    ap.add_argument("--samples", type=int, default=16, help="SmoothGrad samples / integrated-gradients steps")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = []
    for name in args.models:
        model, wav, scorer, n_fft, hop = build(name, args.seconds, device)
        runs = arms(name, model, wav, scorer, n_fft, hop, args, device)
        for method, (pairs, what) in runs.items():
            try:
                _, run, bare = pairs[0]
                run(), bare()  # warm: first-call costs (allocations, library set-up) out of the timing
            except ValueError as err:  # a method that refuses this model (e.g. IG at a singular baseline): a row
                row = {"model": name, "method": method, "what": what, "error": str(err).split(";")[0]}
                results.append(row)
                print(json.dumps(row), flush=True)
                continue
            times = {tag: ([], []) for tag, _, _ in pairs}  # tag -> (method s, bare s), one per repeat
            for r in range(args.repeats):  # interleaved: every other repeat in reverse order
                steps = [(tag, key, fn) for tag, run, bare in pairs for key, fn in (("m", run), ("b", bare))]
                for tag, key, fn in (steps if r % 2 == 0 else steps[::-1]):
                    times[tag][0 if key == "m" else 1].append(timed(fn, device) if key == "m" else fn())
            for tag, (ms, bs) in times.items():
                row = {"model": name, "method": f"{method} {tag}".strip(), "what": what,
                       "method_s": [round(m, 3) for m in ms], "bare_s": [round(b, 3) for b in bs],
                       "ratio": round(statistics.median(m / b for m, b in zip(ms, bs)), 3)}
                results.append(row)
                print(json.dumps(row), flush=True)
            if len(pairs) > 1:  # per-iteration cost: (t(N2) - t(N1)) / (bare(N2) - bare(N1)), fixed costs cancel
                (t1, (m1, b1)), (t2, (m2, b2)) = list(times.items())[0], list(times.items())[-1]
                slopes = [(y - x) / (v - u) for x, y, u, v in zip(m1, m2, b1, b2)]
                # what is left of t(N1) once its iterations are paid at the slope: the fixed cost per run (the
                # unmasked, fully removed and deleted scores' passes, set-up, media), in bare iterations' worth
                fixed = statistics.median(x - statistics.median(slopes) * u for x, u in zip(m1, b1))
                per_it = statistics.median((v - u) for u, v in zip(b1, b2)) / (args.iterations[-1] - args.iterations[0])
                row = {"model": name, "method": f"{method} slope",
                       "what": f"({t2} - {t1}) per iteration; fixed per run {fixed:.3f} s = {fixed / per_it:.2f} "
                               f"bare iterations",
                       "method_s": [round(y - x, 3) for x, y in zip(m1, m2)],
                       "bare_s": [round(v - u, 3) for u, v in zip(b1, b2)], "ratio": round(statistics.median(slopes), 3)}
                results.append(row)
                print(json.dumps(row), flush=True)
    goals = {"extremal": 1.05, "occlusion": 1.10}
    print(f"\n{args.device}, {args.threads} threads, {args.seconds:g} s, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (median of {args.repeats} paired ratios)")
    print(f"{'model':>12} {'method':>22} {'method s':>9} {'bare s':>8} {'ratio':>7}  goal")
    for r in results:
        if "error" in r:
            print(f"{r['model']:>12} {r['method']:>22}  refused: {r['error'][:90]}")
            continue
        goal = goals.get(r["method"].split()[0])
        verdict = "" if goal is None else f"<= {goal}: {'met' if r['ratio'] <= goal else 'NOT met'}"
        print(f"{r['model']:>12} {r['method']:>22} {statistics.median(r['method_s']):>9.3f} "
              f"{statistics.median(r['bare_s']):>8.3f} {r['ratio']:>7.3f}  {verdict}")
        if r["method"].endswith("slope"):
            print(f"{'':>36}{r['what']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: avxai extremal perturbation vs TorchRay's ``extremal_perturbation`` on the same model and input.

The input is a speaker utterance's mel power spectrogram treated as a ``1 x 1 x mel x frames`` image; the
model is the speaker network from its log-mel onwards (``log(mel + floor)``, mean normalisation, TDNN,
pooling, classifier), so both libraries see the same "image" and the same model. Perturbation: fade to
zero (TorchRay ``"fade"``, avxai ``"zero"``: ``m * x``); variant preserve; no flip jitter; the same areas,
iterations, step and sigma. Each run is repeated; the best time is kept (the CPU is shared).

Both final rewards are measured the same way: the target logit of ``m * x`` with each library's final masks
(their areas are printed too), and of the top-``a`` binarised masks (exactly the same area for both).

``--model ecapa512`` (issue 17: time to reach TorchRay's final reward): SpeechBrain's ECAPA-TDNN at C = 512
(random weights, seeded: ``EcapaSpeaker`` of ``bench/realistic_models.py``) on 3 s of the bundled real recording
at 16 kHz; the image is its 80-band mel power spectrogram ``(1, 1, 80, frames)``, the model everything from the
log-mel on (``log(mel + 1e-6)``, mean normalisation, ECAPA-TDNN, 16-class head); target: the class predicted on
the input; areas 0.05 / 0.1 / 0.2; 2 threads. Each repeat runs TorchRay for ``--iterations`` (800) and avxai's
extremal for each of ``--avxai-iterations`` (its area-regulariser schedule spans the run, so the run length
matters), in alternating order. TorchRay's final reward per area (target logit of ``m * x`` with its final masks)
is the bar; avxai *reaches* it at the first iteration whose masks score at least that on every area while each
mask keeps no more of the input than TorchRay's mask of that area, or its target area, whichever is larger (+
``--area-tol``), read from avxai's per-iteration history (the same logit of ``m * x``); the *strict* reading
allows no more than the target area (+ ``--area-tol``) whatever TorchRay's area (TorchRay's soft area constraint
may leave its masks larger than their targets). The time to reach it is taken at the end of that iteration's
forward pass (a wrapper stamps every forward pass that carries gradients; set-up included; the last iteration
counts the whole call); the ratio is TorchRay's time for all its iterations over it, wall and CPU seconds, median
of the paired repeats. Goal >= 10x. With random weights the target logit is small (~0.2): TorchRay's reward is
not scaled (avxai's is, by ``|score(x) - score(nothing)|``), so its fixed area weight (300) dominates it.

    .venv/bin/python bench/extremal_vs_torchray.py                 # bundled speaker model and aba.wav
    .venv/bin/python bench/extremal_vs_torchray.py --iterations 800 --repeats 2 --threads 1
    .venv/bin/python bench/extremal_vs_torchray.py --model ecapa512            # ~5-6 min on 2 quiet cores
    .venv/bin/python bench/extremal_vs_torchray.py --model ecapa512 --repeats 1 --avxai-iterations 50 100 200 300
    .venv/bin/python bench/extremal_vs_torchray.py --model ecapa512 --quick    # smoke run, < 1 min

TorchRay is only needed here (``.venv/bin/pip install --no-deps torchray``); the package never imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn


def load_model_and_audio():
    """(speaker model, waveform (1, 1, time), target class, description)."""
    from avxai.models import ARCHITECTURES, load_model

    checkpoint = ARCHITECTURES["speakernet"].bundled_path()
    if checkpoint.exists():
        from avxai.io.audio import load_audio

        model = load_model("speakernet")
        wav, _ = load_audio(checkpoint.parent / "aba.wav", sample_rate=model.sample_rate)
        wav = wav.reshape(1, 1, -1)
        with torch.no_grad():
            target = int(model.eval()(wav).argmax())
        return model, wav, target, "bundled SpeakerNet on aba.wav"
    from avxai.data.synthetic import SyntheticSpeaker
    from avxai.models.speaker import SpeakerNet

    print("note: avxai/assets/speaker/speaker_net.pt not found: using an untrained SpeakerNet (timings only)")
    torch.manual_seed(0)  # the bench's own process: a fixed random model
    model = SpeakerNet(n_speakers=16)
    wav = SyntheticSpeaker(0, seed=0).utterance(3.0, sample_rate=16000, seed=3).reshape(1, 1, -1).float()
    with torch.no_grad():
        target = int(model.eval()(wav).argmax())
    return model, wav, target, "untrained SpeakerNet on a synthetic utterance"


class MelImageModel(nn.Module):
    """The speaker network from its mel power spectrogram on: image ``(n, 1, mel, frames)`` -> logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        logmel = torch.log(image[:, 0] + self.net.log_floor)
        logmel = logmel - logmel.mean(dim=-1, keepdim=True)
        return self.net.classifier(self.net.embedding(self.net.pool(self.net.tdnn(logmel))))


class EcapaMelImage(nn.Module):
    """ECAPA-TDNN from its mel power spectrogram on: image ``(n, 1, mel, frames)`` -> logits ``(n, classes)``.

    ``net`` is ``EcapaSpeaker`` of ``bench/realistic_models.py`` (front end ``log(mel + 1e-6)``, mean normalisation)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        logmel = torch.log(image[:, 0] + 1e-6)
        logmel = logmel - logmel.mean(dim=-1, keepdim=True)
        return self.net.head(self.net.ecapa(logmel.transpose(1, 2)).squeeze(1))


def load_ecapa(channels, seconds):
    """(image model, image (1, 1, 80, frames) mel power, target class, description) of the ECAPA set-up."""
    # the issue-17 realistic-model set-up: one definition, in bench/realistic_models.py
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from realistic_models import build

    net, wav = build(f"ecapa{channels}", seconds, torch.device("cpu"))[:2]
    model = EcapaMelImage(net).eval()
    with torch.no_grad():
        image = net.mel(wav.mean(dim=1)).unsqueeze(1)
        target = int(net(wav).argmax())
        assert torch.allclose(model(image), net(wav), atol=1e-3), "the image model must match the ECAPA model"
    return model, image, target, (f"ECAPA-TDNN C = {channels} (random weights, seed 0) on {seconds:g} s of "
                                  f"avxai/assets/real/aba.wav at 16 kHz")


class Stamped(nn.Module):
    """The model, stamping (wall, CPU) seconds at the end of every forward pass whose input carries gradients (the
    optimisation's passes; set-up and final scoring run without them, and so may the last iteration's pass)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.stamps = []

    def forward(self, x):
        out = self.model(x)
        if torch.is_grad_enabled() and x.requires_grad:
            self.stamps.append((time.perf_counter(), time.process_time()))
        return out


def score_masks(model, image, target, masks):
    """Target logit of ``m * x`` for masks ``(K, mel, frames)``."""
    with torch.inference_mode():
        return model(masks.unsqueeze(1) * image)[:, target]


def top_area(masks, areas):
    """Binary masks keeping exactly the top ``a`` fraction of cells of each mask."""
    flat = masks.reshape(masks.shape[0], -1)
    out = torch.zeros_like(flat)
    for i, a in enumerate(areas):
        out[i, flat[i].topk(int(round(a * flat.shape[1]))).indices] = 1.0
    return out.reshape(masks.shape)


def iteration_at_95(history_score, history_area, areas, final, tol=0.03):
    """First iteration where every area's mask is within ``tol`` of its area and its score is within 5% of
    the final score (``score >= final - 0.05 |final|``)."""
    ok = (history_score >= final - 0.05 * final.abs()) & ((history_area - torch.tensor(areas)).abs() <= tol)
    ok = ok.all(dim=1)
    # the first iteration from which it stays reached
    for t in range(len(ok)):
        if ok[t:].all():
            return t + 1
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="speakernet", choices=["speakernet", "ecapa512", "ecapa1024"],
                        help="speakernet: the bundled model, same-iteration timing; ecapa512/1024: time to reach "
                             "TorchRay's final reward")
    parser.add_argument("--areas", type=float, nargs="+", default=None,
                        help="default 0.05 0.1 0.2 0.3 (speakernet), 0.05 0.1 0.2 (ecapa)")
    parser.add_argument("--iterations", type=int, default=800, help="TorchRay's (speakernet: both libraries')")
    parser.add_argument("--avxai-iterations", type=int, nargs="+", default=[50, 100],
                        help="ecapa: the lengths of avxai's runs (each its own run)")
    parser.add_argument("--area-tol", type=float, default=0.03,
                        help="ecapa: how much more of the input than TorchRay's mask (or the target area) a "
                             "reaching mask may keep (default: avxai's own area_tolerance, 0.03)")
    parser.add_argument("--seconds", type=float, default=3.0, help="ecapa: audio length")
    parser.add_argument("--step", type=int, default=3)
    parser.add_argument("--sigma", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="default 1 (speakernet), 2 (ecapa)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run (< 1 min): TorchRay 60 iterations, avxai 20 and 40, one repeat")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    ecapa = args.model.startswith("ecapa")
    if args.areas is None:
        args.areas = [0.05, 0.1, 0.2] if ecapa else [0.05, 0.1, 0.2, 0.3]
    if args.threads is None:
        args.threads = 2 if ecapa else 1
    if args.quick:
        args.iterations, args.avxai_iterations, args.repeats = 60, [20, 40], 1
    if args.iterations < 1 or args.repeats < 1 or min(args.avxai_iterations) < 2:
        parser.error("--iterations and --repeats take counts >= 1, --avxai-iterations counts >= 2")
    try:
        from torchray.attribution.extremal_perturbation import extremal_perturbation
    except ImportError:
        print("skipped: TorchRay is not installed (.venv/bin/pip install --no-deps torchray)")
        return 0
    warnings.filterwarnings("ignore", message="torch.meshgrid")
    torch.set_num_threads(args.threads)

    if ecapa:
        return main_reach(args, extremal_perturbation)
    from avxai import ClassLogit, ExtremalConfig, TensorModality, extremal

    net, wav, target, what = load_model_and_audio()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    model = MelImageModel(net).eval()
    with torch.no_grad():
        image = net.mel(wav[:, 0]).unsqueeze(1)  # (1, 1, mel, frames) mel power
        assert torch.allclose(model(image), net(wav), atol=1e-3), "the image model must match the speaker model"
    areas = list(args.areas)
    print(f"{what}; image {tuple(image.shape)}, target class {target}, areas {areas}, {args.iterations} iterations, "
          f"step {args.step}, sigma {args.sigma}, {args.threads} thread(s); load average "
          f"{open('/proc/loadavg').read().split()[0]} on a shared CPU")

    def run_avxai(iterations):
        config = ExtremalConfig(areas=tuple(areas), iterations=iterations, step=args.step, sigma=args.sigma)
        start = time.perf_counter()
        expl = extremal(model, TensorModality(image, ("mel", "time"), "zero", nonnegative=True), ClassLogit(target),
                        config)
        return time.perf_counter() - start, expl

    def run_torchray(iterations):
        start = time.perf_counter()
        masks, _ = extremal_perturbation(model, image, target, areas=areas, perturbation="fade", max_iter=iterations,
                                         step=args.step, sigma=args.sigma, jitter=False, variant="preserve",
                                         resize=True)
        return time.perf_counter() - start, masks[:, 0]

    results = {}
    third = max(1, args.iterations // 3)
    for name, fn, its in (("torchray", run_torchray, args.iterations), ("avxai", run_avxai, args.iterations),
                          ("avxai_third", run_avxai, third)):
        times, out = [], None
        for _ in range(args.repeats):
            seconds, out = fn(its)
            times.append(seconds)
        masks = out.masks[0] if name.startswith("avxai") else out
        results[name] = {
            "iterations": its, "seconds": min(times), "all_seconds": [round(t, 2) for t in times],
            "mask_area": masks.flatten(1).mean(1).tolist(),
            "reward": score_masks(model, image, target, masks).tolist(),
            "reward_binary_top_area": score_masks(model, image, target, top_area(masks, areas)).tolist(),
        }
        if name == "avxai":
            h = out.history
            final = h["score"][-1, 0]
            results[name]["iteration_95"] = iteration_at_95(h["score"][:, 0], h["area"][:, 0], areas, final)
        print(f"{name:12s} {its:4d} it  {min(times):7.2f} s  area {[round(a, 3) for a in results[name]['mask_area']]}  "
              f"reward {[round(r, 2) for r in results[name]['reward']]}  binary "
              f"{[round(r, 2) for r in results[name]['reward_binary_top_area']]}", flush=True)
    unmasked = float(model(image)[0, target])
    tr, av, av3 = results["torchray"], results["avxai"], results["avxai_third"]
    summary = {
        "unmasked_logit": unmasked,
        "speedup_same_iterations": tr["seconds"] / av["seconds"],
        "speedup_third_iterations": tr["seconds"] / av3["seconds"],
        "mean_reward": {k: sum(v["reward"]) / len(v["reward"]) for k, v in results.items()},
        "mean_reward_binary": {k: sum(v["reward_binary_top_area"]) / len(areas) for k, v in results.items()},
        "avxai_iteration_95": av["iteration_95"],
    }
    print(f"unmasked logit {unmasked:.2f}")
    print(f"time: TorchRay {tr['seconds']:.2f} s, avxai {av['seconds']:.2f} s (same {args.iterations} iterations: "
          f"{summary['speedup_same_iterations']:.2f}x), avxai {third} iterations {av3['seconds']:.2f} s "
          f"({summary['speedup_third_iterations']:.2f}x)")
    print("mean final reward (target logit of m*x): " + ", ".join(f"{k} {v:.2f}" for k, v in summary["mean_reward"].items()))
    print("mean reward of the top-a binarised masks: "
          + ", ".join(f"{k} {v:.2f}" for k, v in summary["mean_reward_binary"].items()))
    print(f"avxai reaches 95% of its final reward (all areas within 0.03) at iteration {av['iteration_95']} "
          f"of {args.iterations}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "model": what, "results": results, "summary": summary}, f, indent=2)
    return 0


def reached_at(score, area, bar_reward, limit):
    """First iteration (1-based) whose masks score at least ``bar_reward`` on every area while keeping at most
    ``limit`` of the input; ``None`` if none does.

    Shape: ``score``, ``area`` ``(iterations, K)``; ``bar_reward``, ``limit`` ``(K,)``."""
    limit = torch.as_tensor(limit)
    ok = ((score >= torch.as_tensor(bar_reward)) & (area <= limit)).all(dim=1)
    hits = ok.nonzero()
    return int(hits[0, 0]) + 1 if len(hits) else None


def main_reach(args, extremal_perturbation):
    """Time for avxai's extremal to reach the final reward of TorchRay's run on the ECAPA image (see the docstring)."""
    from avxai import ClassLogit, ExtremalConfig, TensorModality, extremal
    from avxai.methods.base import ExplanationWarning

    # both libraries optimise the same unsaturated objective; avxai's warnings about it (score above the unmasked
    # one on a random-weight model, areas off target in a short run) would only repeat what the table shows
    warnings.filterwarnings("ignore", category=ExplanationWarning)
    model, image, target, what = load_ecapa(int(args.model[5:]), args.seconds)
    for p in model.parameters():
        p.requires_grad_(False)
    stamped = Stamped(model).eval()
    areas = list(args.areas)
    load = [f"{x:.2f}" for x in os.getloadavg()]
    print(f"{what}; image {tuple(image.shape)}, target class {target}, areas {areas}, TorchRay {args.iterations} "
          f"iterations, avxai {args.avxai_iterations}, step {args.step}, sigma {args.sigma}, {args.threads} "
          f"thread(s), {args.repeats} repeat(s); load average {' '.join(load)} on {torch.get_num_threads()} of "
          f"{os.cpu_count()} CPUs", flush=True)
    # warm: first-call costs (oneDNN set-up, allocations) out of both arms' timings
    warm = image.repeat(len(areas), 1, 1, 1).requires_grad_(True)
    torch.autograd.grad(model(warm)[:, target].sum(), warm)

    def run_torchray():
        stamped.stamps.clear()
        wall, cpu = time.perf_counter(), time.process_time()
        masks, _ = extremal_perturbation(stamped, image, target, areas=areas, perturbation="fade",
                                         max_iter=args.iterations, step=args.step, sigma=args.sigma, jitter=False,
                                         variant="preserve", resize=True)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        masks = masks[:, 0].detach()
        return {"wall_s": wall, "cpu_s": cpu, "passes": len(stamped.stamps),
                "reward": score_masks(model, image, target, masks).tolist(),
                "area": masks.flatten(1).mean(1).tolist()}

    def run_avxai(iterations):
        stamped.stamps.clear()
        config = ExtremalConfig(areas=tuple(areas), iterations=iterations, step=args.step, sigma=args.sigma)
        wall, cpu = time.perf_counter(), time.process_time()
        expl = extremal(stamped, TensorModality(image, ("mel", "time"), "zero", nonnegative=True),
                        ClassLogit(target), config)
        wall_end, cpu_end = time.perf_counter(), time.process_time()
        final = expl.masks[0]
        return {"iterations": iterations, "wall_s": wall_end - wall, "cpu_s": cpu_end - cpu,
                "passes": len(stamped.stamps), "reward": score_masks(model, image, target, final).tolist(),
                "area": final.flatten(1).mean(1).tolist(),
                # per iteration: the history's reward (target logit of m * x) and area (iterations, K), and the
                # (wall, CPU) seconds from the call's start to the end of that iteration's forward pass; the last
                # iteration's pass may run without gradients (unstamped): its time is then the whole call's
                "history": (expl.history["score"][:, 0], expl.history["area"][:, 0]),
                "stamps": [(w - wall, c - cpu) for w, c in stamped.stamps] + [(wall_end - wall, cpu_end - cpu)]}

    readings = {"": "mask area <= max(TorchRay's, target) + tol", "strict": "mask area <= target + tol"}

    def check(row, bar):
        """Where ``row`` (an avxai run) first reaches ``bar`` (a TorchRay run), in both readings: each mask keeps
        no more of the input than TorchRay's mask of that area or the target area (+ tol); strict: no more than
        the target area (+ tol), whatever TorchRay's area."""
        score, area = row.pop("history")
        stamps = row.pop("stamps")
        if len(stamps) - 1 not in (row["iterations"], row["iterations"] - 1):
            raise SystemExit(f"expected one stamped forward pass per iteration (the last one may be unstamped), "
                             f"got {len(stamps) - 1} for {row['iterations']}: the time to reach cannot be read")
        stamps = stamps[:row["iterations"] - 1] + stamps[-1:]  # iteration t ends at stamps[t - 1]
        target = torch.tensor(areas)
        limits = {"": torch.maximum(torch.tensor(bar["area"]), target) + args.area_tol, "strict": target + args.area_tol}
        row["reach"] = {}
        for name, limit in limits.items():
            at = reached_at(score, area, bar["reward"], limit)
            row["reach"][name] = None if at is None else {
                "iteration": at, "wall_s": stamps[at - 1][0], "cpu_s": stamps[at - 1][1],
                "ratio_wall": bar["wall_s"] / stamps[at - 1][0], "ratio_cpu": bar["cpu_s"] / stamps[at - 1][1],
                "reward": score[at - 1].tolist(), "area": area[at - 1].tolist()}
        return row

    repeats = []
    for r in range(args.repeats):
        # alternate the order: TorchRay first on even repeats, last on odd ones
        if r % 2 == 0:
            tr = run_torchray()
            av = [run_avxai(n) for n in args.avxai_iterations]
        else:
            av = [run_avxai(n) for n in args.avxai_iterations]
            tr = run_torchray()
        av = [check(row, tr) for row in av]
        repeats.append({"torchray": tr, "avxai": av})
        print(f"repeat {r + 1}: TorchRay {args.iterations} it {tr['wall_s']:.1f} s wall / {tr['cpu_s']:.1f} s CPU "
              f"({tr['passes']} passes), final reward {[round(x, 2) for x in tr['reward']]}, area "
              f"{[round(x, 3) for x in tr['area']]}", flush=True)
        for row in av:
            reach = "; ".join(
                f"{name or 'reach'}: " + ("never" if got is None else
                                          f"it {got['iteration']}, {got['wall_s']:.1f} s wall / {got['cpu_s']:.1f} s "
                                          f"CPU ({got['ratio_wall']:.1f}x / {got['ratio_cpu']:.1f}x)")
                for name, got in row["reach"].items())
            print(f"  avxai {row['iterations']:4d} it {row['wall_s']:.1f} s wall / {row['cpu_s']:.1f} s CPU, final "
                  f"reward {[round(x, 2) for x in row['reward']]}, area {[round(x, 3) for x in row['area']]}; {reach}",
                  flush=True)

    with torch.no_grad():
        unmasked = float(model(image)[0, target])
    print(f"\nunmasked logit {unmasked:.2f}; {args.threads} thread(s); load average now "
          f"{os.getloadavg()[0]:.2f} (before {load[0]})")
    print(f"time for avxai to reach the final reward of TorchRay's {args.iterations} iterations on every area, ratio "
          f"= TorchRay's time / avxai's time to reach it, median of {args.repeats} paired repeat(s); goal >= 10x "
          f"(tol {args.area_tol})")
    summary = {}
    for name, rule in readings.items():
        summary[name or "reach"] = part = {}
        for i, n in enumerate(args.avxai_iterations):
            got = [rep["avxai"][i]["reach"][name] for rep in repeats]
            if any(g is None for g in got):
                part[n] = None
                print(f"  {rule:45s} avxai run of {n:4d} it: not reached in {sum(g is None for g in got)} of "
                      f"{len(got)} repeat(s)")
                continue
            wall = statistics.median(g["ratio_wall"] for g in got)
            cpu = statistics.median(g["ratio_cpu"] for g in got)
            part[n] = {"iterations": [g["iteration"] for g in got], "ratio_wall": wall, "ratio_cpu": cpu}
            print(f"  {rule:45s} avxai run of {n:4d} it: at iteration {part[n]['iterations']}: {wall:.1f}x wall, "
                  f"{cpu:.1f}x CPU" + ("" if args.quick else f" ({'met' if min(wall, cpu) >= 10 else 'NOT met'})"))
        reached = {n: v for n, v in part.items() if v is not None}
        if args.quick:
            continue
        if reached:
            n = max(reached, key=lambda k: min(reached[k]["ratio_wall"], reached[k]["ratio_cpu"]))
            best = min(reached[n]["ratio_wall"], reached[n]["ratio_cpu"])
            print(f"  {rule:45s} best: the avxai run of {n} iterations, {best:.1f}x (the lower of wall and CPU): goal "
                  f">= 10x {'met' if best >= 10 else 'NOT met'}")
        else:
            print(f"  {rule:45s} not reached in any avxai run: goal NOT met (try longer runs: --avxai-iterations)")
    if args.quick:
        print("--quick: a smoke run (TorchRay far from converged at 60 iterations), no verdict")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "model": what, "target": target, "unmasked_logit": unmasked,
                       "repeats": repeats, "summary": summary}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

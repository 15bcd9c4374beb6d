"""Benchmark: avxai extremal perturbation vs TorchRay's ``extremal_perturbation`` on the same model and input.

The input is a speaker utterance's mel power spectrogram treated as a ``1 x 1 x mel x frames`` image; the
model is the speaker network from its log-mel onwards (``log(mel + floor)``, mean normalisation, TDNN,
pooling, classifier), so both libraries see the same "image" and the same model. Perturbation: fade to
zero (TorchRay ``"fade"``, avxai ``"zero"``: ``m * x``); variant preserve; no flip jitter; the same areas,
iterations, step and sigma. Each run is repeated; the best time is kept (the CPU is shared).

Both final rewards are measured the same way: the target logit of ``m * x`` with each library's final masks
(their areas are printed too), and of the top-``a`` binarised masks (exactly the same area for both).

    .venv/bin/python bench/extremal_vs_torchray.py                 # bundled speaker model and aba.wav
    .venv/bin/python bench/extremal_vs_torchray.py --iterations 800 --repeats 2 --threads 1

TorchRay is only needed here (``.venv/bin/pip install --no-deps torchray``); the package never imports it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

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
    parser.add_argument("--areas", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3])
    parser.add_argument("--iterations", type=int, default=800)
    parser.add_argument("--step", type=int, default=3)
    parser.add_argument("--sigma", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    try:
        from torchray.attribution.extremal_perturbation import extremal_perturbation
    except ImportError:
        print("skipped: TorchRay is not installed (.venv/bin/pip install --no-deps torchray)")
        return 0
    warnings.filterwarnings("ignore", message="torch.meshgrid")
    torch.set_num_threads(args.threads)

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


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the overhead of extremal perturbation over the model's own forward + backward passes.

ratio = time of ``extremal`` with ``K`` areas and ``N`` iterations / time of ``N`` forward + backward passes of
the bare model on a batch of ``K`` inputs (gradient w.r.t. the input, the model frozen). Everything else
extremal does per iteration (smooth mask, upsampling, perturbation, inverse STFT, sort-based area
regulariser, optimiser step) is overhead; so are the one-off start (unmasked and fully-removed scores) and
end (final scores, media). Goal: ratio <= 1.15.

Two set-ups on the speaker model (bundled checkpoint and aba.wav when present, else an untrained
SpeakerNet on a synthetic utterance):

* ``spectrogram``: ``Spectrogram(n_mels=40)`` grid, perturbed magnitudes -> inverse STFT -> the waveform
  model (what the recipe does); the bare model is the speaker network on waveforms. A second ratio divides by
  N forward + backward passes of the model behind the modality, masks -> inverse STFT -> network (the function
  any gradient method differentiates here): the overhead of the method itself, without that of the modality.
* ``mel-image``: the model from its mel power spectrogram on (as in bench/extremal_vs_torchray.py); the bare
  model is that image model.
* ``ecapa``: a realistic model in place of the speaker model, the ``spectrogram`` set-up otherwise: SpeechBrain's
  ECAPA-TDNN (C = 512, 192-dim embedding, random weights, seeded) behind a differentiable 80-band log-mel front end
  (torchaudio) and a random linear head to 16 classes, on the first 3 s of the audio at 16 kHz. Needs
  ``speechbrain`` (installed by ``make setup-test``). Run it with ``--areas 0.1 0.2 0.3 --threads 2`` for the
  issue's set-up (K = 3 areas, two threads).

``--parts`` adds, for each set-up, extremal's loop with only part of its mask side, to show where the
overhead comes from next to the model (each a ratio to the same baselines):

* ``fixed masks``: the perturbation, the model's passes, the score and the gradient w.r.t. the masks, with
  masks that never change (no mask side at all);
* ``+ smooth masks``: the smooth masks, their upsampling and their gradient;
* ``+ area, history, Adam``: all of extremal's mask side, without its bookkeeping and one-off start and end.

``--oversample 1`` adds extremal with that smooth-mask resolution (``ExtremalConfig.oversample``).

(``--kernels-ab``, at commit 01bfbff, timed extremal with and without the compiled CPU kernels that the mask side
had then: see docs/results/extremal.md.)

All loops run with glibc's allocator told to keep freed memory (``--allocator steady``, the default): with
its default thresholds it returns large freed blocks to the system and faults them back in page by page, a
few hundred to a few thousand page faults per iteration (1-3 ms) in the bare model's loop and in extremal's,
by amounts that change from run to run. ``--allocator default`` measures with glibc's defaults. The page
faults per iteration of each loop are printed.

    .venv/bin/python bench/extremal_overhead.py --iterations 100 --repeats 7 --threads 1
    .venv/bin/python bench/extremal_overhead.py --iterations 100 --repeats 7 --threads 1 --allocator default
    .venv/bin/python bench/extremal_overhead.py --iterations 100 --repeats 9 --threads 2 --setups mel-image --parts
    .venv/bin/python bench/extremal_overhead.py --iterations 20 --repeats 7 --threads 2 --setups ecapa \
        --areas 0.1 0.2 0.3
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import math
import resource
import statistics
import sys
import time

import torch
from torch import nn

from avxai import ClassLogit, ExtremalConfig, Spectrogram, TensorModality, extremal
from avxai.engine import score_and_output
from avxai.methods.area import AreaConstraint, ones_of
from avxai.methods.optimisers import Adam
from avxai.methods.smooth_mask import SmoothMaskGenerator

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from extremal_vs_torchray import MelImageModel, load_model_and_audio  # noqa: E402


def keep_freed_memory() -> bool:
    """glibc: serve large blocks from the heap and never trim it (``mallopt`` M_MMAP_THRESHOLD, M_TRIM_THRESHOLD),
    so that memory freed by one iteration is reused by the next without page faults. False without glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30) or libc.mallopt(m_mmap_threshold, 32 << 20)) and \
        bool(libc.mallopt(m_trim_threshold, 1 << 30))


def page_faults() -> int:
    """Minor page faults of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def passes_through(model, modality, k, target, n):
    """Seconds for ``n`` forward + backward passes of ``model`` behind ``modality``: ``k`` masks of ones ->
    ``modality.perturb`` (the inverse STFT for a waveform model) -> ``model``, gradient w.r.t. the masks."""
    ones = torch.ones(k * modality.batch_size, *modality.grid_shape)
    start = time.perf_counter()
    for _ in range(n):
        masks = ones.detach().requires_grad_(True)
        model(modality.perturb(masks))[:, target].sum().backward()
    return time.perf_counter() - start


def bare_passes(model, x, target, n):
    """Seconds for ``n`` forward + backward passes of ``model`` on ``x`` (gradient w.r.t. ``x``)."""
    start = time.perf_counter()
    for _ in range(n):
        inp = x.detach().requires_grad_(True)
        model(inp)[:, target].sum().backward()
    return time.perf_counter() - start


class EcapaSpeaker(nn.Module):
    """A realistic speaker model, random weights: waveform ``(n, channels, time)`` at 16 kHz -> 80-band log-mel
    (torchaudio, 25 ms window in a 512-point FFT, 10 ms hop, mean-normalised over time) -> SpeechBrain's ECAPA-TDNN
    (``channels``, 192-dim embedding) -> a linear head -> logits ``(n, classes)``."""

    sample_rate = 16000

    def __init__(self, channels: int = 512, classes: int = 16, seed: int = 0):
        super().__init__()
        import torchaudio  # optional dependencies of this set-up only
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

        torch.manual_seed(seed)
        self.mel = torchaudio.transforms.MelSpectrogram(self.sample_rate, n_fft=512, win_length=400, hop_length=160,
                                                        n_mels=80)
        self.ecapa = ECAPA_TDNN(input_size=80, channels=[channels] * 4 + [3 * channels], lin_neurons=192)
        self.head = nn.Linear(192, classes)

    def forward(self, waveform):
        logmel = torch.log(self.mel(waveform.mean(dim=1)) + 1e-6)  # (n, 80, frames)
        logmel = logmel - logmel.mean(dim=-1, keepdim=True)
        return self.head(self.ecapa(logmel.transpose(1, 2)).squeeze(1))


PARTS = ("fixed masks", "+ smooth masks", "+ area, history, Adam")


def partial_mask_side(model, modality, scorer, config, n, parts):
    """Seconds for ``n`` steps of extremal's loop with the first ``parts`` of :data:`PARTS` (``parts`` 0: fixed
    masks; 1: smooth masks, their upsampling and gradient; 2: also the area constraint, the areas and the Adam
    step), in extremal's order, for ``modality`` of one input."""
    grid, k = modality.grid_shape, len(config.areas)
    step, sigma = config.resolve(grid)
    generator = SmoothMaskGenerator(grid, step, sigma, temperature=config.temperature, oversample=config.oversample,
                                    radius=config.radius)
    cells = math.prod(generator.out_shape)
    area = AreaConstraint(ones_of(torch.tensor(config.areas, dtype=torch.float64), cells).tolist(), cells)
    params = generator.init_params(k, config.init, config.init_jitter, config.seed).requires_grad_(True)
    optimiser = Adam(params, lr=config.learning_rate, betas=config.betas)
    fixed, score_grad = torch.full((k, *grid), config.init), -torch.ones(k)
    start = time.perf_counter()
    for it in range(n):
        if parts == 0:
            masks = fixed.clone().requires_grad_(True)
        else:
            smooth = generator(params)
            masks = generator.upsample(smooth)
            if parts == 2:
                _, regul_grad = area(smooth, weight=config.lambda_at(it))
                masks.detach().reshape(k, -1).mean(dim=1)
        scores, _ = score_and_output(model, modality, scorer, masks)
        if parts == 0:
            torch.autograd.grad(scores, masks, score_grad)
        elif parts == 1:
            torch.autograd.grad(scores, params, score_grad)
        else:
            (grad,) = torch.autograd.grad([scores, smooth], params, [score_grad, regul_grad])
            optimiser.step(grad)
            with torch.no_grad():
                params.clamp_(0.0, 1.0)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--areas", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--setups", nargs="+", default=["spectrogram", "mel-image"])
    parser.add_argument("--parts", action="store_true",
                        help="also time extremal's loop with only part of its mask side (see the module docstring)")
    parser.add_argument("--oversample", type=int, nargs="+", default=[],
                        help="also time extremal with these ExtremalConfig.oversample values (smooth-mask cells "
                             "per parameter step): what the smooth masks' resolution costs")
    parser.add_argument("--allocator", choices=["steady", "default"], default="steady",
                        help="steady: glibc keeps freed memory (no page-fault churn); default: glibc's thresholds")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.allocator == "steady" and not keep_freed_memory():
        print("no glibc mallopt here: measuring with the allocator's defaults")

    net, wav, target, what = load_model_and_audio()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    k, n = len(args.areas), args.iterations
    print(f"{what}; K = {k} areas, N = {n} iterations, {args.threads} thread(s), allocator {args.allocator}; load "
          f"average {open('/proc/loadavg').read().split()[0]} on a shared CPU (best of {args.repeats})")
    config = ExtremalConfig(areas=tuple(args.areas), iterations=n)
    for setup in args.setups:
        model, audio, goal = net, wav, target
        if setup == "ecapa":
            model = EcapaSpeaker().eval()
            for p in model.parameters():
                p.requires_grad_(False)
            audio = wav[..., :3 * model.sample_rate]
            with torch.no_grad():
                goal = int(model(audio).argmax())
            print(f"ecapa: ECAPA-TDNN C=512 (random weights), {audio.shape[-1] / model.sample_rate:.1f} s, "
                  f"target {goal}")
        if setup in ("spectrogram", "ecapa"):
            def modality():
                return Spectrogram(audio, model.sample_rate, n_fft=512, hop_length=160, n_mels=40)

            x = audio.repeat(k, 1, 1)
        elif setup == "mel-image":
            model = MelImageModel(net).eval()
            with torch.no_grad():
                image = net.mel(wav[:, 0]).unsqueeze(1)

            def modality():
                return TensorModality(image, ("mel", "time"), "zero", nonnegative=True)

            x = image.repeat(k, 1, 1, 1)
        else:
            raise SystemExit(f"unknown setup {setup!r}; choose spectrogram, mel-image or ecapa")
        baselines = {"bare model": lambda: bare_passes(model, x, goal, n)}
        if setup in ("spectrogram", "ecapa"):
            behind = modality()
            baselines["model behind the modality"] = lambda: passes_through(model, behind, k, goal, n)
        explained = {}

        def run_extremal(config):
            explained["masks"] = extremal(model, modality(), ClassLogit(goal), config).masks

        timed = {"extremal": lambda: run_extremal(config)}
        for oversample in args.oversample or ():  # other smooth-mask resolutions, for comparison
            other = dataclasses.replace(config, oversample=oversample)
            timed[f"extremal, oversample {oversample}"] = lambda other=other: run_extremal(other)
        if args.parts:
            part_view = modality()
            for level, name in enumerate(PARTS):
                timed[name] = (lambda level=level: partial_mask_side(model, part_view, ClassLogit(goal), config, n,
                                                                     level))
        extremal(model, modality(), ClassLogit(goal), ExtremalConfig(areas=tuple(args.areas), iterations=3))  # warm
        bare_passes(model, x, goal, 3)
        for level in range(len(PARTS) if args.parts else 0):
            partial_mask_side(model, part_view, ClassLogit(goal), config, 3, level)
        times = {name: [] for name in [*timed, *baselines]}
        faults = dict.fromkeys(times, 0)
        for repeat in range(args.repeats):  # interleaved, so that all see the same (shared, noisy) machine
            runs = [*baselines.items(), *timed.items()]
            for name, run in runs[::-1] if repeat % 2 else runs:  # every other repeat backwards: no arm always first
                before, start = page_faults(), time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
                faults[name] += page_faults() - before
        print(f"{setup:12s} grid {tuple(explained['masks'].shape[2:])}", flush=True)
        for name in timed:
            loop = times[name]
            print(f"  {name}: {min(loop):.2f} s (all {[round(t, 2) for t in loop]}; "
                  f"{round(faults[name] / (args.repeats * n))} page faults per iteration)", flush=True)
            for base_name in baselines:
                base = times[base_name]
                paired = statistics.median(e / b for e, b in zip(loop, base))
                print(f"    / {base_name}: {min(base):.2f} s -> ratio {min(loop) / min(base):.3f} (best / best; median "
                      f"of the {args.repeats} paired ratios {paired:.3f})  (all {[round(t, 2) for t in base]}; "
                      f"{round(faults[base_name] / (args.repeats * n))} page faults per iteration)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the overhead of extremal perturbation over the model's own forward + backward passes.

ratio = time of ``extremal`` with ``K`` areas and ``N`` iterations / time of ``N`` forward + backward passes of
the bare model on a batch of ``K`` inputs (gradient w.r.t. the input, the model frozen). Everything else
extremal does per iteration (smooth mask, upsampling, perturbation, inverse STFT, sort-based area
regulariser, optimiser step) is overhead; so are the one-off start (unmasked and fully-removed scores) and
end (final scores, media). Goal: ratio <= 1.15.

Two set-ups on the speaker model (bundled checkpoint and aba.wav when present, else an untrained
SpeakerNet on a synthetic utterance):

* ``spectrogram``: ``Spectrogram(n_mels=40)`` grid, perturbed magnitudes -> inverse STFT -> the waveform
  model (what the recipe does); the bare model is the speaker network on waveforms.
* ``mel-image``: the model from its mel power spectrogram on (as in bench/extremal_vs_torchray.py); the bare
  model is that image model.

    .venv/bin/python bench/extremal_overhead.py --iterations 100 --repeats 7 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from extremal_vs_torchray import MelImageModel, load_model_and_audio  # noqa: E402


def bare_passes(model, x, target, n):
    """Seconds for ``n`` forward + backward passes of ``model`` on ``x`` (gradient w.r.t. ``x``)."""
    start = time.perf_counter()
    for _ in range(n):
        inp = x.detach().requires_grad_(True)
        model(inp)[:, target].sum().backward()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--areas", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--setups", nargs="+", default=["spectrogram", "mel-image"])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from avxai import ClassLogit, ExtremalConfig, Spectrogram, TensorModality, extremal

    net, wav, target, what = load_model_and_audio()
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    k, n = len(args.areas), args.iterations
    print(f"{what}; K = {k} areas, N = {n} iterations, {args.threads} thread(s); load average "
          f"{open('/proc/loadavg').read().split()[0]} on a shared CPU (best of {args.repeats})")
    config = ExtremalConfig(areas=tuple(args.areas), iterations=n)
    for setup in args.setups:
        if setup == "spectrogram":
            model = net

            def modality():
                return Spectrogram(wav, net.sample_rate, n_fft=512, hop_length=160, n_mels=40)

            x = wav.repeat(k, 1, 1)
        elif setup == "mel-image":
            model = MelImageModel(net).eval()
            with torch.no_grad():
                image = net.mel(wav[:, 0]).unsqueeze(1)

            def modality():
                return TensorModality(image, ("mel", "time"), "zero", nonnegative=True)

            x = image.repeat(k, 1, 1, 1)
        else:
            raise SystemExit(f"unknown setup {setup!r}; choose spectrogram or mel-image")
        extremal(model, modality(), ClassLogit(target), ExtremalConfig(areas=tuple(args.areas), iterations=3))  # warm
        bare_passes(model, x, target, 3)
        bare, ext = [], []
        for _ in range(args.repeats):  # interleaved, so that both see the same (shared, noisy) machine
            bare.append(bare_passes(model, x, target, n))
            start = time.perf_counter()
            expl = extremal(model, modality(), ClassLogit(target), config)
            ext.append(time.perf_counter() - start)
        ratio = min(ext) / min(bare)
        paired = statistics.median(e / b for e, b in zip(ext, bare))
        print(f"{setup:12s} grid {tuple(expl.masks.shape[2:])}: extremal {min(ext):.2f} s, bare model {min(bare):.2f} s "
              f"-> ratio {ratio:.3f} (best / best; median of the {args.repeats} paired ratios {paired:.3f})  "
              f"(all extremal {[round(t, 2) for t in ext]}, bare {[round(t, 2) for t in bare]})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Occlusion speed: avxai vs captum.attr.Occlusion on the same model, input, windows and baseline.

    .venv/bin/python bench/occlusion_vs_captum.py [--repeats 3] [--batch-size 64] [--threads 2]

Model: the bundled speaker model (log-mel + TDNN) explaining speaker A's logit on the bundled A-B-A
utterance; the grid is the STFT magnitude (257 bins x frames), the model sees the iSTFT waveform.
Both tools get the same forward function, the same window / stride / baseline and the same number of
perturbed inputs per forward pass. Prints both times, the ratio and the largest difference between maps.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--window", default="16,12")
    parser.add_argument("--stride", default="8,6")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        from captum.attr import Occlusion as CaptumOcclusion
    except ImportError:
        raise SystemExit("captum is not installed: pip install captum (it is in avxai's dev extra)")

    from avxai import ClassLogit, OcclusionConfig, Spectrogram, occlusion
    from avxai.data.mixtures import load_segments
    from avxai.demo import speaker_assets
    from avxai.io.audio import load_audio
    from avxai.models import load_model

    model = load_model("speakernet")
    folder = speaker_assets()
    wav, rate = load_audio(folder / "aba.wav", sample_rate=model.sample_rate)
    target = load_segments(folder / "aba_segments.json", with_metadata=True)[1]["target_class"]
    modality = Spectrogram(wav, rate, n_fft=512, hop_length=128, perturbation="mean")
    window = tuple(int(v) for v in args.window.split(","))
    stride = tuple(int(v) for v in args.stride.split(","))
    scorer = ClassLogit(int(target))
    config = OcclusionConfig(window=window, stride=stride, batch_size=args.batch_size)

    def forward(magnitude):
        return scorer(model(modality.to_model_input(magnitude)))

    grid = modality.representation
    baseline = modality.perturbation.baseline(grid, modality.info)
    captum = CaptumOcclusion(forward)

    ours_t, theirs_t = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        ours = occlusion(model, modality, scorer, config).attribution
        ours_t.append(time.perf_counter() - start)
        start = time.perf_counter()
        with torch.no_grad():
            theirs = captum.attribute(grid, sliding_window_shapes=(1, *window), strides=(1, *stride),
                                      baselines=baseline, perturbations_per_eval=args.batch_size)[:, 0]
        theirs_t.append(time.perf_counter() - start)
    diff = (ours - theirs).abs().max().item()
    a, c = min(ours_t), min(theirs_t)
    print(f"grid {tuple(modality.grid_shape)}, window {window}, stride {stride}, batch {args.batch_size}, "
          f"threads {args.threads}")
    print(f"avxai occlusion : {a:7.2f} s (best of {args.repeats})")
    print(f"captum Occlusion: {c:7.2f} s (best of {args.repeats})")
    print(f"speed-up        : {c / a:7.2f}x   max |difference| = {diff:.2e}")


if __name__ == "__main__":
    main()

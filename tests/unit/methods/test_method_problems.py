"""Every registered method x every problem kind: a spectrogram, a face video and an audio-visual pair.

Methods are read from ``METHODS`` at collection time, so a new method gets its rows; one without an entry in
``FAST_CONFIGS`` is skipped with the reason. The toy models (``tests/toys_problems.py``) score a known region
only: a T-F region of the spectrogram, a mouth region of the face crops, and both for the audio-visual model.
For each method and problem, on a batch of two inputs: the attribution has shape ``(batch, *grid)`` and is
finite; two runs with the same config (seed included) give identical maps; and, for the methods whose maps are
evidence for the score, the evidence concentrates on the known region: the region's share of the map's
absolute mass is at least ``share + MARGIN * (1 - share)``, ``share`` being the region's fraction of the
cells (the uniform share), per input and, on the audio-visual grid, per part (each stream's region).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from toys.problems import (
    CROP,
    FPS,
    FRAMES,
    HOP,
    N_FFT,
    SPEC_REGION,
    SR,
    VIDEO_REGION,
    AVRegion,
    FaceRegion,
    SpectrogramRegion,
    region_mask,
    spec_grid_shape,
    toy_crops,
    toy_waveform,
)

from avxai import ClassLogit, Spectrogram
from avxai.methods import METHODS
from avxai.modalities.audio_visual import AudioVisual
from avxai.modalities.video import FaceVideo

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
BATCH = 2

#: the region's share of the absolute attribution must close at least this fraction of the gap between the
#: uniform share and 1 (0.5: half-way from "no better than uniform" to "all in the region")
MARGIN = 0.5


@dataclass(frozen=True)
class Problem:
    """A toy problem: a model, a fresh modality per call, and the known region of each part of the grid.

    regions : one 0/1 mask per part (one for a plain modality), on that part's grid.
    composite : the attribution is split into parts with ``modality.split_mask``.
    occlusion : (window, stride) in cells for occlusion on this grid.
    extremal : ExtremalConfig overrides for this grid (areas near the region's size, smoothing per axis).
    """

    model: Callable[[], nn.Module]
    modality: Callable[[], Any]
    regions: tuple[Tensor, ...]
    composite: bool
    occlusion: tuple[tuple[int, ...], tuple[int, ...]]
    extremal: dict


def _spectrogram() -> Spectrogram:
    return Spectrogram(toy_waveform(BATCH), SR, n_fft=N_FFT, hop_length=HOP, perturbation="zero")


def _face_video() -> FaceVideo:
    return FaceVideo(toy_crops(BATCH), FPS, perturbation="zero")


SPEC_TRUTH = region_mask(spec_grid_shape(), SPEC_REGION)
VIDEO_TRUTH = region_mask((FRAMES, CROP, CROP), VIDEO_REGION)

PROBLEMS = {
    "spectrogram": Problem(SpectrogramRegion, _spectrogram, (SPEC_TRUTH,), False,
                           occlusion=((3, 4), (3, 4)),
                           extremal={"areas": (round(float(SPEC_TRUTH.mean()), 4),), "step": 2, "sigma": (2.0, 3.0)}),
    "face-video": Problem(FaceRegion, _face_video, (VIDEO_TRUTH,), False,
                          occlusion=((1, 2, 2), (1, 2, 2)),
                          extremal={"areas": (round(float(VIDEO_TRUTH.mean()), 4),), "step": 1,
                                    "sigma": (0.5, 0.7, 0.7)}),
    "audio-visual": Problem(AVRegion, lambda: AudioVisual(_spectrogram(), _face_video()), (SPEC_TRUTH, VIDEO_TRUTH),
                            True, occlusion=((3, 4, 1, 2, 2), (3, 4, 1, 2, 2)),
                            extremal={"areas": (round(0.5 * float(SPEC_TRUTH.mean() + VIDEO_TRUTH.mean()), 4),),
                                      "step": (2, 2, 1, 1, 1), "sigma": (2.0, 3.0, 0.5, 0.7, 0.7)}),
}


@dataclass(frozen=True)
class Fast:
    """A method's fast config for a problem, and whether its map is evidence for the score (``localises``;
    when not, ``why`` says why the region check does not apply)."""

    make: Callable[[Problem, str], Any]
    localises: bool = True
    why: str = ""

    def __post_init__(self):
        if not self.localises and not self.why:
            raise ValueError("a method whose map is not checked against the known region must say why (why=...)")


def _extremal(problem: Problem, _name: str):
    return METHODS["extremal"].config_class(iterations=80, seed=0, progress=False, **problem.extremal)


#: method name -> its fast config per problem (factories, so that a half-written method only fails its rows)
FAST_CONFIGS = {
    "occlusion": Fast(lambda p, _: METHODS["occlusion"].config_class(window=p.occlusion[0], stride=p.occlusion[1])),
    "saliency": Fast(lambda p, _: METHODS["saliency"].config_class()),
    # noise on the mask: an audio-visual input has one representation per stream (noise_on="representation"
    # refuses it by design); the mask is the one space every problem shares
    "smoothgrad": Fast(lambda p, _: METHODS["smoothgrad"].config_class(samples=4, noise_on="mask", seed=1)),
    "integrated-gradients": Fast(lambda p, _: METHODS["integrated-gradients"].config_class(steps=8)),
    # the toys' Grad-CAM layers: the spectrogram's (n, 4, freq, frames) features, the face's (n, 4, frames, h, w);
    # the audio-visual toy has no convolution to find by default: one layer per stream, named
    "gradcam": Fast(lambda p, name: METHODS["gradcam"].config_class(
        layer={"spectrogram": "features", "face-video": "clip_features",
               "audio-visual": {"audio": "audio.features", "video": "video.clip_features"}}[name])),
    "extremal": Fast(_extremal),
    "pca-rgb": Fast(lambda p, _: METHODS["pca-rgb"].config_class(), localises=False,
                    why="PCA-RGB colours a layer's features by their principal components; it does not attribute "
                        "the score, so only its shape and finiteness are checked"),
}

#: (method, problem) rows that fail today, with the reason; strict xfails: a row that starts passing fails the
#: suite, so that its entry is removed here
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


def _rows():
    """Every registered method (read at collection time, so methods added later are included) x every problem."""
    out = []
    for name in sorted(METHODS):
        for problem in sorted(PROBLEMS):
            reason = KNOWN_FAILURES.get((name, problem))
            marks = [pytest.mark.xfail(strict=True, raises=ValueError, reason=reason)] if reason else []
            out.append(pytest.param(name, problem, marks=marks, id=f"{name}-{problem}"))
    return out


def _region_share(attribution: Tensor, truth: Tensor) -> float:
    """The region's share of the absolute attribution ``(*grid)``."""
    mass = attribution.abs().double()
    return float((mass * truth).sum() / mass.sum().clamp_min(1e-30))


@pytest.mark.parametrize("name, problem", _rows())
def test_method_on_problem(name, problem):
    if name not in FAST_CONFIGS:
        pytest.skip(f"method {name!r} has no fast config in tests/test_method_problems.py FAST_CONFIGS; add one")
    spec, fast = PROBLEMS[problem], FAST_CONFIGS[name]
    method = METHODS[name]
    model = spec.model()
    config = fast.make(spec, problem)
    modality = spec.modality()

    first = method(model, modality, ClassLogit(0), config)
    assert tuple(first.attribution.shape) == (BATCH, *modality.grid_shape), "attribution must be (batch, *grid)"
    assert torch.isfinite(first.attribution).all()
    second = method(model, spec.modality(), ClassLogit(0), config)
    assert torch.equal(first.attribution, second.attribution), "two runs with the same config and seed differ"

    if not fast.localises:
        return
    for i in range(BATCH):
        parts = modality.split_mask(first.attribution[i:i + 1]) if spec.composite else [first.attribution[i:i + 1]]
        for part, truth in zip(parts, spec.regions):
            assert part.abs().sum() > 0, f"input {i}: the map is zero on a part whose region the score reads"
            share, uniform = _region_share(part[0], truth), float(truth.mean())
            need = uniform + MARGIN * (1 - uniform)
            assert share >= need, (f"input {i}: {share:.3f} of the evidence lies in the known region of "
                                   f"{tuple(truth.shape)} (uniform share {uniform:.3f}, need >= {need:.3f})")

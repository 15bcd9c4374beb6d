"""One conformance table over every modality kind: a new modality is one row of ``MODALITIES``.

For each row, on a batch of two inputs: masks of the grid shape are accepted and others are refused; an
all-ones mask leaves the model input unchanged (with and without a mask that requires grad, the two code
paths of a spectrogram); an all-zeros mask with the ``"zero"`` perturbation gives the zero baseline; coarse
masks upsample to the grid with values in [0, 1]; ``media()`` gives the expected kinds with their rate; the
metadata round-trips through JSON; row ``i`` of ``n`` masks perturbs input ``i % batch`` exactly as
perturbing that input alone does.

Tolerance: model inputs are compared to ``ATOL`` times the largest magnitude of the unperturbed input
(the inverse STFT of a spectrogram is exact only to float32 rounding; other modalities are exact).
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
from dataclasses import dataclass
from typing import Any, Callable

import pytest
import torch
from torch import Tensor

import avxai.modalities
from avxai import Modality, Spectrogram, TensorModality
from avxai.modalities.audio_visual import AVSpectrogram, AudioVisual
from avxai.modalities.video import FaceVideo

from toys.problems import FPS, HOP, N_FFT, SR, toy_crops, toy_waveform

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
ATOL = 1e-5  # relative to the input's largest magnitude
BATCH = 2


@dataclass(frozen=True)
class ModalityRow:
    """How to build one modality kind, and what its media hold.

    inputs : ``batch`` -> the raw inputs (a tensor, or a tuple of tensors), deterministic.
    build : ``(inputs, perturbation)`` -> the modality; ``perturbation`` ``None`` = the row's own (a per-input,
        non-zero baseline, so that the batch rule is tested with a baseline that differs between inputs).
    media : expected media kinds -> the modality attribute holding their rate (``"sample_rate"``, ``"fps"``).
    composite : the modality has parts (``parts()``) and takes one coarse mask per part in ``upsample``.
    """

    inputs: Callable[[int], Any]
    build: Callable[[Any, "str | None"], Any]
    media: dict[str, str]
    composite: bool = False

    def make(self, perturbation: "str | None" = None, batch: int = BATCH):
        return self.build(self.inputs(batch), perturbation)


def _spectrogram(wav, perturbation, **kwargs):
    return Spectrogram(wav, SR, n_fft=N_FFT, hop_length=HOP, perturbation=perturbation or "mean", **kwargs)


def _grid(shape):
    return lambda batch: torch.rand(batch, *shape, generator=torch.Generator().manual_seed(5)) + 0.1


def _tensor(axes):
    return lambda x, perturbation: TensorModality(x, axes, perturbation or "mean", nonnegative=True)


def _face_video(crops, perturbation):
    return FaceVideo(crops, FPS, perturbation=perturbation or "spatial-blur:2")


def _audio_visual(inputs, perturbation):
    wav, crops = inputs
    return AudioVisual(_spectrogram(wav, perturbation or "mean"),
                       FaceVideo(crops, FPS, perturbation=perturbation or "mean-time"))


AUDIO, VIDEO = {"audio": "sample_rate"}, {"video": "fps"}

#: modality kind -> row; every test below runs on every row
MODALITIES = {
    "spectrogram-linear": ModalityRow(toy_waveform, _spectrogram, AUDIO),
    "spectrogram-mel": ModalityRow(toy_waveform, lambda x, p: _spectrogram(x, p, n_mels=12), AUDIO),
    "spectrogram-magnitude-input": ModalityRow(toy_waveform, lambda x, p: _spectrogram(x, p, model_input="magnitude"),
                                               AUDIO),
    "tensor-1d": ModalityRow(_grid((2, 40)), _tensor(("time",)), {}),
    "tensor-3d": ModalityRow(_grid((1, 3, 10, 20)), _tensor(("delta", "mel", "time")), {}),
    "face-video": ModalityRow(toy_crops, _face_video, VIDEO),
    "av-spectrogram": ModalityRow(toy_waveform, lambda x, p: AVSpectrogram(x, SR, n_fft=N_FFT, hop_length=HOP,
                                                                         perturbation=p or "mean"), AUDIO),
    "audio-visual": ModalityRow(lambda b: (toy_waveform(b), toy_crops(b)), _audio_visual, {**AUDIO, **VIDEO},
                                composite=True),
}

rows = pytest.mark.parametrize("kind", sorted(MODALITIES))


def _tensors(model_input) -> list[Tensor]:
    """The tensors of a model input: one tensor, or a tuple of them (an audio-visual pair)."""
    return list(model_input) if isinstance(model_input, (tuple, list)) else [model_input]


def _assert_close(got, want, scale: float, what: str) -> None:
    got, want = _tensors(got), _tensors(want)
    assert len(got) == len(want), f"{what}: {len(got)} tensors, expected {len(want)}"
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what} (tensor {k}): shape {tuple(g.shape)}, expected {tuple(w.shape)}"
        diff = (g.detach() - w.detach()).abs().max().item()
        assert diff <= ATOL * scale, f"{what} (tensor {k}): differs by {diff:.3g} (tolerance {ATOL * scale:.3g})"


def _scale(modality) -> float:
    return max(t.detach().abs().max().item() for t in _tensors(modality.model_input()))


@rows
def test_masks_of_the_grid_shape_are_accepted_and_others_refused(kind):
    modality = MODALITIES[kind].make()
    grid = tuple(modality.grid_shape)
    assert len(grid) == len(modality.axes) and all(isinstance(n, int) and n > 0 for n in grid)
    assert modality.batch_size == BATCH
    out = modality.perturb(torch.full((2 * BATCH, *grid), 0.5))
    assert all(t.shape[0] == 2 * BATCH for t in _tensors(out)), "one perturbed input per mask row"
    with pytest.raises(ValueError, match="mask"):
        modality.perturb(torch.ones(BATCH, *grid[:-1], grid[-1] + 1))  # one cell too many on the last axis
    with pytest.raises(ValueError, match="multiple of the batch"):
        modality.perturb(torch.ones(BATCH + 1, *grid))


@rows
def test_all_ones_mask_leaves_the_model_input_unchanged(kind):
    modality = MODALITIES[kind].make()
    ones = torch.ones(BATCH, *modality.grid_shape)
    scale = _scale(modality)
    _assert_close(modality.perturb(ones), modality.model_input(), scale, "perturb(ones)")
    # gradient methods perturb with a mask that requires grad (a spectrogram then takes its full inverse STFT)
    with torch.enable_grad():
        _assert_close(modality.perturb(ones.clone().requires_grad_(True)), modality.model_input(), scale,
                      "perturb(ones) with a mask that requires grad")


@rows
def test_all_zeros_mask_with_the_zero_perturbation_gives_the_baseline(kind):
    modality = MODALITIES[kind].make("zero")
    zeros = torch.zeros(BATCH, *modality.grid_shape)
    scale = _scale(modality)
    for what, out in (("perturb(zeros)", modality.perturb(zeros)),
                      ("perturb(zeros) with grad", modality.perturb(zeros.clone().requires_grad_(True)))):
        for k, t in enumerate(_tensors(out)):
            assert t.abs().max().item() <= ATOL * scale, f"{what} (tensor {k}) is not the zero baseline"


@rows
def test_upsampling_coarse_masks_gives_the_grid_in_unit_range(kind):
    row = MODALITIES[kind]
    modality = row.make()
    gen = torch.Generator().manual_seed(0)

    def coarse(shape):
        return torch.rand(3, *[max(1, n // 3) for n in shape], generator=gen)

    masks = [coarse(p.grid_shape) for p in modality.parts()] if row.composite else coarse(modality.grid_shape)
    up = modality.upsample(masks)
    assert tuple(up.shape) == (3, *modality.grid_shape)
    assert float(up.min()) >= 0.0 and float(up.max()) <= 1.0
    # a constant coarse mask stays that constant everywhere
    flat = [torch.full_like(m, 0.25) for m in masks] if row.composite else torch.full_like(masks, 0.25)
    assert torch.allclose(modality.upsample(flat), torch.full_like(up, 0.25))


@rows
def test_media_give_the_expected_kinds_and_rates(kind):
    row = MODALITIES[kind]
    modality = row.make()
    media = modality.media(modality.representation)
    assert set(media) == set(row.media), f"media kinds {sorted(media)}, expected {sorted(row.media)}"
    for name, rate_attr in row.media.items():
        data, rate = media[name]
        assert rate == getattr(modality, rate_attr) and rate > 0
        assert data.shape[0] == BATCH and torch.isfinite(data).all()
    if "audio" in media:  # the unperturbed waveform, (batch, channels, time)
        wav, _ = media["audio"]
        assert wav.shape == toy_waveform(BATCH).shape
        assert (wav - toy_waveform(BATCH)).abs().max() <= ATOL * toy_waveform(BATCH).abs().max()
    if "video" in media:  # the unperturbed crops, (batch, frames, 3, S, S) in [0, 1]
        video, _ = media["video"]
        assert torch.allclose(video, toy_crops(BATCH))


@rows
def test_metadata_round_trips_through_json(kind):
    modality = MODALITIES[kind].make()
    meta = modality.metadata()
    assert json.loads(json.dumps(meta, allow_nan=False)) == meta  # strict JSON: no NaN or infinity
    assert meta["kind"] == modality.kind and meta["grid_shape"] == list(modality.grid_shape)
    assert meta["batch_size"] == BATCH


@rows
def test_row_i_of_the_masks_belongs_to_input_i_mod_batch(kind):
    row = MODALITIES[kind]
    inputs = row.inputs(BATCH)
    modality = row.build(inputs, None)
    alone = [row.build(_take(inputs, j), None) for j in range(BATCH)]
    scale = _scale(modality)
    gen = torch.Generator().manual_seed(1)
    shapes = [p.grid_shape for p in modality.parts()] if row.composite else [modality.grid_shape]
    blocks = zip(*[_mask_blocks(shape, gen) for shape in shapes])  # per block: one mask tensor per part
    for kind_of_masks, parts in zip(("hard", "soft", "local"), blocks):
        masks = modality.join_masks(list(parts)) if row.composite else parts[0]
        together = _tensors(modality.perturb(masks))
        for i in range(masks.shape[0]):
            want = alone[i % BATCH].perturb(masks[i:i + 1])
            _assert_close([t[i:i + 1] for t in together], want, scale,
                          f"{kind_of_masks} mask row {i} (input {i % BATCH})")


def _mask_blocks(shape: tuple[int, ...], gen: torch.Generator) -> list[Tensor]:
    """Three blocks of ``3 * BATCH`` masks ``(n, *shape)``: hard random, soft random, and local (ones with one
    small box removed, the last ``BATCH`` rows all ones: a spectrogram then re-synthesises only the frames
    touched)."""
    n = 3 * BATCH
    local = torch.ones(n, *shape)
    for i in range(n - BATCH):
        box = []
        for size in shape:
            side = max(1, size // 4)
            start = int(torch.randint(0, size - side + 1, (1,), generator=gen))
            box.append(slice(start, start + side))
        local[(i, *box)] = 0.0
    return [(torch.rand(n, *shape, generator=gen) > 0.5).float(), torch.rand(n, *shape, generator=gen), local]


def _take(inputs, j: int):
    """Input ``j`` alone (a batch of one) of a tensor or a tuple of tensors."""
    if isinstance(inputs, tuple):
        return tuple(x[j:j + 1] for x in inputs)
    return inputs[j:j + 1]


def test_every_modality_class_has_a_row():
    """A new modality in ``avxai.modalities`` gets this table's checks only once it has a row."""
    for info in pkgutil.walk_packages(avxai.modalities.__path__, "avxai.modalities."):
        importlib.import_module(info.name)
    covered = {type(row.make()) for row in MODALITIES.values()}

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    missing = sorted(f"{c.__module__}.{c.__qualname__}" for c in set(subclasses(Modality))
                     if c.__module__.startswith("avxai.modalities.") and not inspect.isabstract(c)
                     and c not in covered and not any(issubclass(k, c) for k in covered))  # bases of covered: fine
    assert not missing, f"modalities without a row in MODALITIES: {missing}; add one"

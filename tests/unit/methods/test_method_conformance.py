"""One conformance table over every registered method (looked up at test time, so new methods are included).

For each method in ``METHODS`` with a fast config in ``FAST_CONFIGS`` and each toy problem: the attribution
has shape ``(batch, *grid)``; two runs with the same seed give the same maps; explaining a batch of two inputs
gives the same maps as explaining each input alone; the model's training flags, ``requires_grad`` flags and
hooks are what they were before. A registered method without an entry here is skipped with the reason.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from avxai import ClassLogit, Spectrogram, TensorModality
from avxai.methods import METHODS


def _extremal_config():
    from avxai.methods.extremal import ExtremalConfig

    fields = {f.name for f in dataclasses.fields(ExtremalConfig)}
    wanted = {"areas": (0.1, 0.3), "iterations": 6, "seed": 0}
    return ExtremalConfig(**{k: v for k, v in wanted.items() if k in fields})


#: method name -> factory of a tiny, fast config (a factory so that importing a half-written method only
#: fails its own rows)
FAST_CONFIGS = {
    "occlusion": lambda: METHODS["occlusion"].config_class(window=(4, 8)),
    "saliency": lambda: METHODS["saliency"].config_class(),
    "smoothgrad": lambda: METHODS["smoothgrad"].config_class(samples=4, seed=1),
    "integrated-gradients": lambda: METHODS["integrated-gradients"].config_class(steps=8),
    "gradcam": lambda: METHODS["gradcam"].config_class(),
    "extremal": _extremal_config,
    "pca-rgb": lambda: METHODS["pca-rgb"].config_class(),  # the model's default feature layer, fitted per input
}

#: absolute tolerance on batch invariance, relative to the map's largest magnitude
BATCH_TOLERANCE = {"default": 1e-4,
                   # extremal optimises masks over many iterations, which can amplify float summation-order
                   # differences between a batch of 2 and a batch of 1 (kernels chosen per batch size); looser
                   # on purpose. Measured on these toys: 0.0 (its initial jitter is drawn per area, not per row)
                   "extremal": 1e-3}


def _seeded_init(model: nn.Module, seed: int) -> None:
    """Weights from a private generator (no global RNG state), scaled by fan-in; biases 0, BatchNorm identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / p[0].numel()) ** 0.5)
            else:
                p.fill_(1.0 if name.endswith("weight") else 0.0)


class GridNet(nn.Module):
    """A small CNN on a ``(batch, 1, freq, time)`` grid, with BatchNorm (eval mode matters)."""

    pca_layers = {"grid": "features.2"}  # PCA-to-RGB's default layer: 4 channels at the grid's resolution

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                                      nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(4, 3)
        _seeded_init(self, 0)
        with torch.no_grad():
            self.features[1].running_mean.copy_(torch.linspace(-0.2, 0.2, 4))
            self.features[1].running_var.copy_(torch.linspace(0.5, 1.5, 4))

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(-2, -1)))


class WaveNet(nn.Module):
    """A small 1-D CNN on waveforms ``(batch, 1, time)``, explained through a mel spectrogram grid."""

    sample_rate = 8000
    pca_layers = {"audio": "tdnn.2"}  # PCA-to-RGB's default layer: 6 channels per frame

    def __init__(self):
        super().__init__()
        self.tdnn = nn.Sequential(nn.Conv1d(1, 6, 64, stride=32), nn.BatchNorm1d(6), nn.ReLU(),
                                  nn.Conv1d(6, 6, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(6, 3)
        _seeded_init(self, 1)

    def forward(self, wav):
        return self.head(self.tdnn(wav).mean(dim=-1))


def _grid_problem():
    x = torch.rand(2, 1, 8, 24, generator=torch.Generator().manual_seed(2))
    return GridNet(), lambda inputs: TensorModality(inputs, ("freq", "time"), nonnegative=True), x


def _spectrogram_problem():
    wav = torch.randn(2, 1, 1200, generator=torch.Generator().manual_seed(3)) * 0.3
    return WaveNet(), lambda inputs: Spectrogram(inputs, 8000, n_fft=128, hop_length=64, n_mels=16), wav


PROBLEMS = {"tensor-grid": _grid_problem, "mel-waveform": _spectrogram_problem}


def _method_rows():
    from avxai.methods import METHODS as registered  # at collection time: includes methods added later

    return sorted(registered)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("name", _method_rows())
def test_method_conformance(name, problem):
    if name not in FAST_CONFIGS:
        pytest.skip(f"method {name!r} has no fast config in tests/test_conformance.py FAST_CONFIGS; add one")
    method = METHODS[name]
    config = FAST_CONFIGS[name]()
    model, make_modality, inputs = PROBLEMS[problem]()
    # a state the method must restore: training mode and a mix of requires_grad flags
    model.train()
    params = list(model.parameters())
    for i, p in enumerate(params):
        p.requires_grad_(i % 2 == 0)
    training = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in params]
    state = {k: v.clone() for k, v in model.state_dict().items()}

    modality = make_modality(inputs)
    first = method(model, modality, ClassLogit(), config)
    grid = modality.grid_shape
    assert first.attribution.shape == (2, *grid), "attribution must be (batch, *grid)"
    assert first.grid.shape == (2, *grid) and first.axes == tuple(modality.axes)
    assert torch.isfinite(first.attribution).all()

    second = method(model, make_modality(inputs), ClassLogit(), config)
    assert torch.equal(first.attribution, second.attribution), "two runs with the same seed differ"

    scale = max(float(first.attribution.abs().max()), 1e-12)
    tol = BATCH_TOLERANCE.get(name, BATCH_TOLERANCE["default"]) * scale
    for i in range(2):
        alone = method(model, make_modality(inputs[i:i + 1]), ClassLogit(), config)
        diff = (alone.attribution[0] - first.attribution[i]).abs().max().item()
        assert diff <= tol, f"input {i}: batch of 2 vs alone differ by {diff:.3g} (tolerance {tol:.3g})"

    assert [m.training for m in model.modules()] == training, "training flags were not restored"
    assert [p.requires_grad for p in params] == flags, "requires_grad flags were not restored"
    assert all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               for m in model.modules()), "hooks were left on the model"
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()), "the method changed the model"

"""Toy modalities and models whose relevant region is known, for the extremal-perturbation tests.

``GridToy`` masks a ``(batch, 1, *grid)`` tensor cell by cell (1, 2 or 3 grid axes) and hands the masked
tensor to the model as is. ``RegionSum`` scores the sum of its input inside a known box, so the correct
explanation of its logit is that box and nothing else.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from avxai.modalities.base import Modality

AXES = {1: ("time",), 2: ("freq", "time"), 3: ("time", "height", "width")}


class GridToy(Modality):
    """A ``(batch, 1, *grid)`` non-negative tensor masked cell by cell; the model takes the masked tensor."""

    kind = "toy"

    def __init__(self, x: Tensor, perturbation="zero"):
        self.axes = AXES[x.dim() - 2]
        super().__init__(x, perturbation, nonnegative=True)

    def to_model_input(self, representation: Tensor) -> Tensor:
        return representation


class RegionSum(nn.Module):
    """Logits ``(n, 2)``: class 0 = mean of the input inside ``region`` (a tuple of slices), class 1 = 0.

    The parameter-free weights are a buffer, so the model has one (frozen) parameter to exercise hygiene.
    """

    def __init__(self, grid: tuple[int, ...], region: tuple[slice, ...]):
        super().__init__()
        weight = torch.zeros(grid)
        weight[region] = 1.0
        self.register_buffer("weight", weight / weight.sum())
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        score = (x.mean(dim=1) * self.weight).flatten(1).sum(dim=1) + self.bias
        return torch.stack([score, torch.zeros_like(score)], dim=1)


class BandFrames(nn.Module):
    """A spectrogram model: logit of class 0 = RMS of its magnitude input in a band x frame box.

    Takes magnitudes ``(n, 1, freq, frames)``; class 1 is the RMS of the whole input (a distractor).
    """

    def __init__(self, band: slice, frames: slice):
        super().__init__()
        self.band, self.frames = band, frames
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, mag: Tensor) -> Tensor:
        power = mag.pow(2).mean(dim=1)
        inside = power[:, self.band, self.frames].mean(dim=(1, 2))
        total = power.mean(dim=(1, 2))
        return torch.stack([self.gain * (inside + 1e-8).sqrt(), (total + 1e-8).sqrt()], dim=1)


def region_fraction(masks: Tensor, region: tuple[slice, ...]) -> Tensor:
    """Fraction of mask mass inside ``region``. Shape: ``(..., *grid)`` -> ``(...)``."""
    nd = len(region)
    inside = torch.zeros(masks.shape[-nd:], dtype=torch.bool)
    inside[region] = True
    total = masks.flatten(-nd).sum(-1)
    return (masks * inside).flatten(-nd).sum(-1) / total.clamp_min(1e-12)


def region_area(grid: tuple[int, ...], region: tuple[slice, ...]) -> float:
    """Fraction of the grid covered by ``region``."""
    sizes = [len(range(*s.indices(n))) for s, n in zip(region, grid)]
    return math.prod(sizes) / math.prod(grid)


def positive_input(grid: tuple[int, ...], batch: int = 1, seed: int = 0) -> Tensor:
    """``(batch, 1, *grid)`` values in [0.5, 1.5] (every cell carries some signal)."""
    gen = torch.Generator().manual_seed(seed)
    return 0.5 + torch.rand((batch, 1, *grid), generator=gen)


class GaussianRelevance(nn.Module):
    """Logits ``(n, 2)``: class 0 = input weighted by a Gaussian bump centred at ``centre`` (width ``width`` cells).

    Every cell matters a little, the centre most: the best mask of any area is a blob around the centre.
    """

    def __init__(self, grid: tuple[int, ...], centre: tuple[float, ...], width: float):
        super().__init__()
        coords = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in grid], indexing="ij")
        dist2 = sum((c - float(m)) ** 2 for c, m in zip(coords, centre))
        weight = torch.exp(-0.5 * dist2 / width**2)
        self.register_buffer("weight", weight / weight.sum())

    def forward(self, x: Tensor) -> Tensor:
        score = (x.mean(dim=1) * self.weight).flatten(1).sum(dim=1)
        return torch.stack([score, torch.zeros_like(score)], dim=1)

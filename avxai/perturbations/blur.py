"""Blurs: a fixed Gaussian blur along named axes, and the blur pyramid of Fong et al. (2019).

Part of :mod:`avxai.perturbations` (see its docstring for the conventions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from avxai.perturbations.base import GridInfo, Perturbation, PreparedPerturbation, BaselinePerturbation


def gaussian_blur_axis(x: Tensor, dim: int, sigma: float) -> Tensor:
    """Gaussian blur of ``x`` along one dimension, ``sigma`` in grid cells, reflect/replicate padding."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    moved = x.movedim(dim, -1)
    shape = moved.shape
    flat = moved.reshape(-1, 1, shape[-1])
    mode = "reflect" if radius < shape[-1] else "replicate"
    flat = F.pad(flat, (radius, radius), mode=mode)
    out = F.conv1d(flat, kernel).reshape(shape)
    return out.movedim(-1, dim)


@dataclass(frozen=True)
class Blur(BaselinePerturbation):
    """Replace masked cells with a Gaussian blur of the input; ``sigmas`` maps axis name -> sigma in cells.

    ``Blur({"time": 8})`` is a time blur of a spectrogram; ``Blur({"height": 6, "width": 6})`` a spatial blur.
    """

    sigmas: Mapping[str, float] = field(default_factory=lambda: {"time": 4.0})

    def __post_init__(self):
        for axis, s in self.sigmas.items():
            if s <= 0:
                raise ValueError(f"blur sigma for axis {axis!r} must be > 0 cells, got {s}")

    def baseline(self, x: Tensor, info: GridInfo) -> Tensor:
        out = x
        for axis, sigma in self.sigmas.items():
            out = gaussian_blur_axis(out, info.dim(axis), float(sigma))
        return out

    def __hash__(self):
        return hash(tuple(sorted(self.sigmas.items())))


class _Pyramid(PreparedPerturbation):
    def __init__(self, levels: Tensor):
        self.levels = levels  # (L, b, c, *grid); level 0 = input, L-1 = strongest blur

    def apply(self, mask: Tensor) -> Tensor:
        n_levels, b = self.levels.shape[0], self.levels.shape[1]
        n = mask.shape[0]
        if n % b:
            raise ValueError(f"got {n} masks for {b} inputs: the number of masks must be a multiple of the batch size")
        pos = (1.0 - mask.to(self.levels.dtype)).clamp(0, 1) * (n_levels - 1)
        pos = pos.reshape(n // b, b, 1, *mask.shape[1:])
        # linear interpolation between the two levels around pos; the bracket is chosen without gradient so
        # that at a level (pos integer, e.g. mask = 1) the derivative is the one-sided slope towards more blur
        # (a tent weight 1 - |pos - level| has a zero subgradient there and gave wrong mask gradients)
        lower = pos.detach().floor().clamp(max=n_levels - 2)
        frac = pos - lower
        out = 0.0
        for level in range(n_levels - 1):
            inside = (lower == level).to(pos.dtype)
            out = out + inside * ((1.0 - frac) * self.levels[level].unsqueeze(0)
                                  + frac * self.levels[level + 1].unsqueeze(0))
        return out.reshape(n, *self.levels.shape[2:])


@dataclass(frozen=True)
class BlurPyramid(Perturbation):
    """Mask-dependent blur (Fong et al. 2019): mask ``m`` blurs with sigma ``(1 - m) * max_sigma``.

    ``sigmas`` maps axis name -> maximum sigma in cells; ``levels`` blur levels are precomputed
    and linearly interpolated. No flips: suitable for audio axes.
    """

    sigmas: Mapping[str, float] = field(default_factory=lambda: {"time": 8.0})
    levels: int = 8

    def __post_init__(self):
        if self.levels < 2:
            raise ValueError(f"a blur pyramid needs at least 2 levels, got {self.levels}")
        for axis, s in self.sigmas.items():
            if s <= 0:
                raise ValueError(f"blur sigma for axis {axis!r} must be > 0 cells, got {s}")

    def prepare(self, x: Tensor, info: GridInfo) -> PreparedPerturbation:
        stack = []
        for level in range(self.levels):
            frac = level / (self.levels - 1)
            y = x
            for axis, sigma in self.sigmas.items():
                y = gaussian_blur_axis(y, info.dim(axis), frac * float(sigma))
            stack.append(y)
        return _Pyramid(torch.stack(stack))

    def __hash__(self):
        return hash((tuple(sorted(self.sigmas.items())), self.levels))

"""Fixed baselines: a masked cell fades to a constant, a mean, noise, the input's own noise floor, or the input shifted.

Part of :mod:`avxai.perturbations` (see its docstring for the conventions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from avxai.perturbations.base import GridInfo, BaselinePerturbation


@dataclass(frozen=True)
class Constant(BaselinePerturbation):
    """Replace masked cells with a constant ``value`` (0 = silence for magnitudes, black for images)."""

    value: float = 0.0

    def baseline(self, x: Tensor, info: GridInfo) -> Tensor:
        # one value broadcast over the grid (a view, no copy of x's size: a 10-minute spectrogram is 77 MB)
        return x.new_full((1,) * x.dim(), self.value).expand_as(x)


@dataclass(frozen=True)
class Mean(BaselinePerturbation):
    """Replace masked cells with the mean over ``axes`` (all grid axes when ``None``), per input and channel.

    ``Mean(axes=("time",))`` on a face video is the mean face; on a spectrogram it is the long-term spectrum.
    """

    axes: tuple[str, ...] | None = None

    def baseline(self, x: Tensor, info: GridInfo) -> Tensor:
        names = info.axes if self.axes is None else self.axes
        dims = tuple(info.dim(a) for a in names)
        return x.mean(dim=dims, keepdim=True).expand_as(x)


@dataclass(frozen=True)
class Noise(BaselinePerturbation):
    """Replace masked cells with noise whose power is the input's power minus ``snr_db`` dB.

    For a non-negative grid (magnitude spectrogram) the noise is the magnitude of complex Gaussian
    noise (the STFT magnitude of white noise); otherwise Gaussian values around the input mean.
    """

    snr_db: float = 0.0
    seed: int = 0

    def baseline(self, x: Tensor, info: GridInfo) -> Tensor:
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        dims = tuple(range(2, x.dim()))
        scale = 10.0 ** (-self.snr_db / 10.0)
        if info.nonnegative:
            power = (x**2).mean(dim=dims, keepdim=True) * scale
            re = torch.randn(x.shape, generator=gen, dtype=x.dtype)
            im = torch.randn(x.shape, generator=gen, dtype=x.dtype)
            return torch.sqrt((re**2 + im**2) / 2.0 * power).to(x.device)
        mean = x.mean(dim=dims, keepdim=True)
        power = ((x - mean) ** 2).mean(dim=dims, keepdim=True) * scale
        return mean + torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device) * power.sqrt()


@dataclass(frozen=True)
class Floor(BaselinePerturbation):
    """Replace masked cells with the input's own noise floor: what its quietest frames along ``time`` hold.

    The frames are ranked by their energy (mean square over channels and the other grid axes); the quietest
    ``quantile`` of them (at least one) give, per channel and cell of the other axes (per frequency bin of a
    spectrogram), the floor's power. A removed region then sounds like the input's pauses (the background of
    the recording, the noise between words) rather than digital silence, which the models never heard and at
    which some are singular (``sqrt`` or ``log`` of 0): removing stays inside the inputs a model is meant to
    see. The power is at least the input's mean power ``min_db`` dB down (a digitally silent pause does not
    bring back exact zeros).

    ``noise=False`` (``"floor"``): the floor is the root of that power, constant over time (for a magnitude
    spectrogram: the quiet frames' RMS spectrum, heard with the input's phase). ``noise=True``
    (``"floor-noise"``): noise with that power drawn with ``seed`` (a Rayleigh magnitude on a non-negative grid,
    Gaussian values around 0 otherwise).
    """

    quantile: float = 0.1
    min_db: float = -60.0
    noise: bool = False
    seed: int = 0
    axis: str = "time"

    def __post_init__(self):
        if not 0.0 < self.quantile <= 1.0:
            raise ValueError(f"the floor's quantile of quiet frames must be in (0, 1], got {self.quantile}")
        if not math.isfinite(self.min_db) or self.min_db >= 0:
            raise ValueError(f"min_db must be a finite negative number of dB, got {self.min_db}")

    def baseline(self, x: Tensor, info: GridInfo) -> Tensor:
        if self.axis not in info.axes:
            raise ValueError(f"the floor perturbation ranks frames along {self.axis!r}, but this grid has axes "
                             f"{info.axes}; use 'noise' or 'mean' here")
        dim = info.dim(self.axis)
        moved = x.movedim(dim, -1)  # (b, c, *other, frames)
        power = moved.square()
        frames = moved.shape[-1]
        energy = power.flatten(1, -2).mean(dim=1)  # (b, frames)
        k = max(1, int(round(self.quantile * frames)))
        quiet = energy.topk(k, dim=1, largest=False).indices  # (b, k)
        index = quiet.view(quiet.shape[0], *([1] * (moved.dim() - 2)), k).expand(*moved.shape[:-1], k)
        floor_power = power.gather(-1, index).mean(dim=-1, keepdim=True)  # (b, c, *other, 1)
        least = power.flatten(1).mean(dim=1).view(-1, *([1] * (moved.dim() - 1))) * 10.0 ** (self.min_db / 10.0)
        floor_power = torch.maximum(floor_power, least)
        if not self.noise:
            return floor_power.sqrt().expand_as(moved).movedim(-1, dim)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        if info.nonnegative:
            re = torch.randn(moved.shape, generator=gen, dtype=x.dtype).to(x.device)
            im = torch.randn(moved.shape, generator=gen, dtype=x.dtype).to(x.device)
            values = torch.sqrt((re.square() + im.square()) / 2.0 * floor_power)
        else:
            values = torch.randn(moved.shape, generator=gen, dtype=x.dtype).to(x.device) * floor_power.sqrt()
        return values.movedim(-1, dim)


@dataclass(frozen=True)
class Shift(BaselinePerturbation):
    """Replace masked cells with the input shifted ``steps`` cells along ``axis`` (edge held).

    ``Shift("time", 1)`` on a video shows the previous frame in a masked frame (see :class:`Freeze` for a
    frame held over a whole removed run).
    """

    axis: str = "time"
    steps: int = 1

    def baseline(self, x: Tensor, info: GridInfo) -> Tensor:
        dim = info.dim(self.axis)
        size = x.shape[dim]
        idx = (torch.arange(size, device=x.device) - self.steps).clamp(0, size - 1)
        return x.index_select(dim, idx)

"""Perturbations: what a masked-out region of a grid is replaced with.

A perturbation turns a representation ``x`` of shape ``(batch, channels, *grid)`` and a batch
of masks ``(n, *grid)`` (1 = keep) into ``n`` perturbed representations
``(n, channels, *grid)``; row ``i`` of the masks belongs to input ``i % batch``.

Fixed baselines (:class:`Constant`, :class:`Mean`, :class:`Noise`, :class:`Blur`, :class:`Shift`)
compute ``mask * x + (1 - mask) * baseline(x)``. Two depend on the mask: :class:`BlurPyramid`, the
blur of Fong et al. (2019), where a mask value ``m`` selects a blur of strength ``(1 - m) * sigma``,
and :class:`Freeze`, where a removed cell holds the last kept value along time (a frozen frame).
Axes are named (``"time"``, ``"freq"``, ``"height"``, ``"width"``), so the same perturbation
serves a spectrogram ``(freq, time)`` and a video ``(time, height, width)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class GridInfo:
    """What a perturbation needs to know about the grid it acts on.

    ``axes`` names the grid axes (after batch and channels); ``nonnegative`` is true for
    magnitudes (noise is then drawn as a Rayleigh magnitude rather than Gaussian values).
    """

    axes: tuple[str, ...]
    nonnegative: bool = False

    def dim(self, axis: str) -> int:
        """Tensor dimension of a named axis in a ``(batch, channels, *grid)`` tensor."""
        if axis not in self.axes:
            raise ValueError(f"axis {axis!r} is not a grid axis; this grid has axes {self.axes}")
        return 2 + self.axes.index(axis)


def tile_batch(x: Tensor, n: int) -> Tensor:
    """Repeat a ``(batch, ...)`` tensor to ``(n, ...)`` so that row ``i`` is ``x[i % batch]``."""
    b = x.shape[0]
    if n % b:
        raise ValueError(f"cannot spread {n} perturbations over a batch of {b} inputs: {n} is not a multiple of {b}")
    return x.repeat(n // b, *([1] * (x.dim() - 1)))


def _blend(mask: Tensor, x: Tensor, base: Tensor, difference: "Tensor | None" = None) -> Tensor:
    """``base + mask * (x - base)`` with masks ``(n, *grid)`` and ``x, base`` ``(b, c, *grid)``;
    ``difference``: ``x - base`` when already at hand."""
    n, b = mask.shape[0], x.shape[0]
    if n % b:
        raise ValueError(f"got {n} masks for {b} inputs: the number of masks must be a multiple of the batch size")
    m = mask.reshape(n // b, b, 1, *mask.shape[1:])
    difference = x - base if difference is None else difference
    out = torch.addcmul(base.unsqueeze(0), m, difference.unsqueeze(0))
    return out.reshape(n, *x.shape[1:])


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


class Perturbation:
    """Base class. Subclasses implement :meth:`prepare`, returning an object with ``apply(mask)``."""

    def prepare(self, x: Tensor, info: GridInfo) -> "PreparedPerturbation":
        raise NotImplementedError


class PreparedPerturbation:
    """A perturbation bound to one representation ``x`` ``(batch, channels, *grid)``.

    ``baseline`` is the fixed ``(batch, channels, *grid)`` tensor a masked cell fades to when the
    perturbation is a blend ``mask * x + (1 - mask) * baseline`` (so a modality may apply it to a part of
    the grid only), and ``None`` when the result depends on the mask in another way (blur pyramids).
    """

    baseline: Tensor | None = None

    def apply(self, mask: Tensor) -> Tensor:
        """Shape: mask ``(n, *grid)`` -> ``(n, channels, *grid)``."""
        raise NotImplementedError


class _FixedBaseline(PreparedPerturbation):
    def __init__(self, x: Tensor, baseline: Tensor):
        self.x = x
        self.baseline = baseline.to(x.dtype).expand_as(x)
        self.difference = x - self.baseline  # once: apply runs on every step of an optimisation

    def apply(self, mask: Tensor) -> Tensor:
        return _blend(mask.to(self.x.dtype), self.x, self.baseline, self.difference)


class BaselinePerturbation(Perturbation):
    """A perturbation ``mask * x + (1 - mask) * baseline(x)``; subclasses define :meth:`baseline`."""

    def baseline(self, x: Tensor, info: GridInfo) -> Tensor:
        raise NotImplementedError

    def prepare(self, x: Tensor, info: GridInfo) -> PreparedPerturbation:
        return _FixedBaseline(x, self.baseline(x, info))


@dataclass(frozen=True)
class Constant(BaselinePerturbation):
    """Replace masked cells with a constant ``value`` (0 = silence for magnitudes, black for images)."""

    value: float = 0.0

    def baseline(self, x: Tensor, info: GridInfo) -> Tensor:
        return torch.full_like(x, self.value)


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


@dataclass(frozen=True)
class Freeze(Perturbation):
    """Temporal freeze: a removed cell shows the last *kept* value along ``axis`` (a frozen video frame).

    For each cell (pixel) and step ``t``, the held value is the input at the last step ``s <= t`` whose mask
    is at least ``threshold`` (the first step when none is), so a run of removed frames shows one still
    frame rather than the motion (a :class:`Shift` by one frame would replay the motion one frame late).
    Soft masks blend: ``held + mask * (x - held)``; the choice of the held step is not differentiated.
    """

    axis: str = "time"
    threshold: float = 0.5

    def prepare(self, x: Tensor, info: GridInfo) -> PreparedPerturbation:
        return _Freeze(x, info.dim(self.axis), float(self.threshold))


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


class _Freeze(PreparedPerturbation):
    def __init__(self, x: Tensor, dim: int, threshold: float):
        self.x, self.dim, self.threshold = x, dim, threshold

    def apply(self, mask: Tensor) -> Tensor:
        n, b = mask.shape[0], self.x.shape[0]
        if n % b:
            raise ValueError(f"got {n} masks for {b} inputs: the number of masks must be a multiple of the batch size")
        x = tile_batch(self.x, n)  # (n, c, *grid)
        m = mask.to(x.dtype).unsqueeze(1)  # (n, 1, *grid)
        dim = self.dim
        size = x.shape[dim]
        steps = torch.arange(size, device=x.device).view(*([1] * dim), size, *([1] * (x.dim() - dim - 1)))
        # per cell: the last step at or before t whose mask keeps it (no gradient through the choice; the mask
        # still enters through the blend below); cells with nothing kept before them hold the first step
        kept = torch.where(m.detach() >= self.threshold, steps, torch.zeros_like(steps) - 1).expand_as(m)
        last = torch.cummax(kept, dim=dim).values.clamp_min(0)
        held = torch.gather(x, dim, last.expand_as(x).contiguous())
        return held + m * (x - held)


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


def parse_perturbation(spec: "str | Perturbation") -> Perturbation:
    """Build a perturbation from a short name, as used in configs and on the command line.

    ``zero``, ``const:V``, ``mean``, ``mean-time`` (mean over time: long-term spectrum / mean face),
    ``noise[:SNR_DB]``, ``floor[:QUANTILE]`` / ``floor-noise[:QUANTILE]`` (the input's own noise floor: its
    quietest frames, see :class:`Floor`), ``time-blur[:SIGMA]``, ``freq-blur[:SIGMA]``, ``spatial-blur[:SIGMA]``,
    ``freeze`` (hold the previous frame), ``pyramid-time[:SIGMA]``, ``pyramid-freq[:SIGMA]``,
    ``pyramid-tf[:SIGMA]``, ``pyramid-spatial[:SIGMA]``. Sigmas are in grid cells.
    """
    if isinstance(spec, Perturbation):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a perturbation is a Perturbation or a name such as 'zero', got {type(spec).__name__}")
    name, _, arg = spec.partition(":")
    try:
        value = float(arg) if arg else None
    except ValueError:
        raise ValueError(f"bad perturbation {spec!r}: the part after ':' must be a number") from None

    def v(default: float) -> float:
        return default if value is None else value

    table = {
        "zero": lambda: Constant(0.0),
        "const": lambda: Constant(v(0.0)),
        "mean": lambda: Mean(),
        "mean-time": lambda: Mean(("time",)),
        "noise": lambda: Noise(snr_db=v(0.0)),
        "floor": lambda: Floor(quantile=v(0.1)),
        "floor-noise": lambda: Floor(quantile=v(0.1), noise=True),
        "time-blur": lambda: Blur({"time": v(4.0)}),
        "freq-blur": lambda: Blur({"freq": v(4.0)}),
        "spatial-blur": lambda: Blur({"height": v(6.0), "width": v(6.0)}),
        "freeze": lambda: Freeze("time"),
        "pyramid-time": lambda: BlurPyramid({"time": v(8.0)}),
        "pyramid-freq": lambda: BlurPyramid({"freq": v(8.0)}),
        "pyramid-tf": lambda: BlurPyramid({"time": v(8.0), "freq": v(8.0)}),
        "pyramid-spatial": lambda: BlurPyramid({"height": v(10.0), "width": v(10.0)}),
    }
    if name not in table:
        raise ValueError(f"unknown perturbation {spec!r}; choose one of {', '.join(sorted(table))}")
    return table[name]()


PERTURBATION_NAMES: Sequence[str] = (
    "zero", "const", "mean", "mean-time", "noise", "floor", "floor-noise", "time-blur", "freq-blur", "spatial-blur", "freeze",
    "pyramid-time", "pyramid-freq", "pyramid-tf", "pyramid-spatial",
)

"""GridInfo, the blend ``mask * x + (1 - mask) * baseline`` and the base classes of every perturbation.

Part of :mod:`avxai.perturbations` (see its docstring for the conventions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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


def _blend(mask: Tensor, x: Tensor, base: Tensor, difference: "Tensor | None" = None, *, zero: bool = False) -> Tensor:
    """``base + mask * (x - base)`` with masks ``(n, *grid)`` and ``x, base`` ``(b, c, *grid)``;
    ``difference``: ``x - base`` when already at hand; ``zero``: the base is 0 (then ``mask * x``)."""
    n, b = mask.shape[0], x.shape[0]
    if n % b:
        raise ValueError(f"got {n} masks for {b} inputs: the number of masks must be a multiple of the batch size")
    m = mask.reshape(n // b, b, 1, *mask.shape[1:])
    if zero:  # mask * x, laid out like x (the first operand decides the output's layout)
        return (x.unsqueeze(0) * m).reshape(n, *x.shape[1:])
    difference = x - base if difference is None else difference
    out = torch.addcmul(base.unsqueeze(0), m, difference.unsqueeze(0))
    return out.reshape(n, *x.shape[1:])


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
        # once: apply runs on every step of an optimisation; a zero constant baseline (a view, see Constant)
        # makes it x itself, not a copy
        self.zero = _is_zero_constant(self.baseline)
        self.difference = x if self.zero else x - self.baseline

    def apply(self, mask: Tensor) -> Tensor:
        return _blend(mask.to(self.x.dtype), self.x, self.baseline, self.difference, zero=self.zero)


def _is_zero_constant(t: Tensor) -> bool:
    """Whether ``t`` is one zero broadcast over its shape (stride 0 along every axis longer than 1)."""
    broadcast = all(s == 0 or n == 1 for s, n in zip(t.stride(), t.shape))
    return t.numel() > 0 and broadcast and not bool(t[(0,) * t.dim()])


class BaselinePerturbation(Perturbation):
    """A perturbation ``mask * x + (1 - mask) * baseline(x)``; subclasses define :meth:`baseline`."""

    def baseline(self, x: Tensor, info: GridInfo) -> Tensor:
        raise NotImplementedError

    def prepare(self, x: Tensor, info: GridInfo) -> PreparedPerturbation:
        return _FixedBaseline(x, self.baseline(x, info))

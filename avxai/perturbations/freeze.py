"""Freeze: a removed cell holds the last kept value along an axis (a frozen frame).

Part of :mod:`avxai.perturbations` (see its docstring for the conventions).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from avxai.perturbations.base import GridInfo, tile_batch, Perturbation, PreparedPerturbation


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

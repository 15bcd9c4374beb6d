"""The area constraint of extremal perturbation (Fong, Patrick & Vedaldi, ICCV 2019).

A mask ``m`` of ``N`` cells that should keep a fraction ``a`` of them is pulled towards the ramp ``r_a``
(``N - round(a N)`` zeros then ``round(a N)`` ones) by ``R_a(m) = mean((sort(m) - r_a) ** 2)``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def ones_of(areas: Tensor, cells: int) -> Tensor:
    """Number of ones in ``r_a`` per row: ``round(a * cells)``, at least 1. Shape: ``(n,)`` long."""
    return torch.round(areas * cells).long().clamp(1, cells)


def ramp(areas: Tensor, cells: int, dtype: torch.dtype) -> Tensor:
    """The paper's reference vectors ``r_a``: ``(n, cells)``, zeros then ``round(a * cells)`` ones per row."""
    ones = ones_of(areas, cells)
    pos = torch.arange(cells)
    return (pos.unsqueeze(0) >= (cells - ones).unsqueeze(1)).to(dtype)


class AreaConstraint:
    """The area regulariser ``R_a(m) = mean((sort(m) - r_a) ** 2)`` and its gradient, for rows whose ramps
    ``r_a`` have ``ones[i]`` ones (see :func:`ramp`); set up once, evaluated every step, without autograd.

    Computed without a full sort: the ``k`` largest values face the ones and the rest the zeros, so with
    ``t`` the ``k``-th largest value, ``R = mean((m - o) ** 2 + o - o ** 2)`` where ``o`` is 1 above ``t``,
    0 below it, and the values tied at ``t`` share the ones left (exact, ties included); the gradient is
    ``2 (m - o) / N``. Every row's ``t`` comes from one selection: row ``i`` is padded with
    ``max(k) - k_i`` values above any mask value (and the other rows with values below), so that its
    ``max(k)``-th largest value is its own ``k_i``-th.

    Shape: masks ``(n, *grid)`` with ``N`` cells per row -> values ``(n,)`` and gradients ``(n, *grid)``.
    """

    def __init__(self, ones: "Tensor | Sequence[int]", cells: int, dtype: torch.dtype = torch.float32,
                 device: "torch.device | str" = "cpu"):
        ones = [int(v) for v in (ones if isinstance(ones, (tuple, list)) else torch.as_tensor(ones).reshape(-1).tolist())]
        if not ones or min(ones) < 0 or max(ones) > cells:
            raise ValueError(f"ones must give, for each mask, a count in [0, {cells}]; got {ones}")
        self.ones, self.cells = tuple(ones), int(cells)
        self.total_ones = sum(ones)
        most = max(ones)
        self.rank = None if most == 0 else cells - min(ones) + 1  # kthvalue's k (ascending) in a padded row
        above = torch.arange(most - min(ones)).unsqueeze(0) < torch.tensor([most - k for k in ones]).unsqueeze(1)
        self.padding = torch.where(above, math.inf, -math.inf).to(device=device, dtype=dtype)  # (n, pad)
        self._ones = torch.tensor(ones, dtype=dtype, device=device)

    def __call__(self, masks: Tensor, weight: float = 1.0) -> tuple[Tensor, Tensor]:
        """``R_a`` per row ``(n,)`` and ``weight`` times its gradient ``(n, *grid)``."""
        x = masks.detach().reshape(masks.shape[0], -1)
        if x.shape != (len(self.ones), self.cells):
            raise ValueError(f"this area constraint is for {len(self.ones)} masks of {self.cells} cells, got masks "
                             f"of shape {tuple(masks.shape)}")
        if self.rank is None:  # no ones anywhere: every value faces a zero
            return x.square().mean(dim=1), x.mul(2.0 * weight / self.cells).view_as(masks)
        padded = torch.cat([x, self.padding], dim=1) if self.padding.shape[1] else x
        threshold = _kth_smallest(padded, self.rank)  # each row's k-th largest value
        faces = (x >= threshold).to(x.dtype)  # o, when no other value ties with the k-th largest
        # values tied at the threshold share the ones left (no ties: the excess is 0 and o stays 0/1); one formula
        # for both cases, so that no step has to ask the device whether there were ties (no host synchronisation)
        tied = (x == threshold).to(x.dtype)
        excess = faces.sum(dim=1) - self._ones.to(device=x.device, dtype=x.dtype)
        faces = faces - tied * (excess / tied.sum(dim=1).clamp_min(1.0)).unsqueeze(1)
        diff = x - faces
        value = (diff.square() + faces - faces.square()).mean(dim=1)
        return value, diff.mul_(2.0 * weight / self.cells).view_as(masks)


def area_regulariser(masks: Tensor, ones: "Tensor | Sequence[int]") -> Tensor:
    """``R_a(m) = mean((sort(m) - r_a) ** 2)`` per row, ``r_a`` with ``ones[i]`` ones (see :func:`ramp`);
    differentiable, with the gradient of :class:`AreaConstraint`.

    Shape: masks ``(n, *grid)``, ones ``(n,)`` -> ``(n,)``.
    """
    return _AreaRegulariser.apply(masks, ones)


def _kth_smallest(x: Tensor, k: int) -> Tensor:
    """The ``k``-th smallest value of each row of ``x`` ``(n, cells)`` -> ``(n, 1)`` (exact, as ``kthvalue``).

    On the CPU through NumPy's introselect, about four times faster than ``Tensor.kthvalue`` on rows of a
    few thousand values.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not x.requires_grad:
        return torch.from_numpy(np.partition(x.numpy(), k - 1, axis=1)[:, k - 1:k])
    return x.kthvalue(k, dim=1, keepdim=True).values


class _AreaRegulariser(torch.autograd.Function):
    @staticmethod
    def forward(ctx, masks: Tensor, ones: "Tensor | Sequence[int]") -> Tensor:
        cells = masks[0].numel() if masks.shape[0] else 0
        value, grad = AreaConstraint(ones, cells, masks.dtype, masks.device)(masks)
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_value: Tensor):
        (grad,) = ctx.saved_tensors
        return grad * grad_value.view(-1, *[1] * (grad.dim() - 1)), None


__all__ = ["AreaConstraint", "area_regulariser", "ones_of", "ramp"]

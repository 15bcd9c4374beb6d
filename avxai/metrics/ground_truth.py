"""Localisation against a known truth region: attribution mass inside it, pointing game, IoU at its area.

``truth`` is a boolean map ``(batch, *grid)`` on the explanation's grid (``True`` = the cells that carry the
evidence: a speaker's frames, a source's ideal binary mask, the mouth region).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from avxai.explanation import Explanation


def _pair(attribution: "Tensor | Explanation", truth: Tensor) -> tuple[Tensor, Tensor]:
    if isinstance(attribution, Explanation):
        attribution = attribution.attribution
    if not isinstance(attribution, Tensor) or not isinstance(truth, Tensor):
        raise TypeError("attribution (or an Explanation) and truth must be tensors (batch, *grid)")
    if truth.dtype != torch.bool:
        raise TypeError(f"truth must be a boolean tensor (True = relevant cell), got {truth.dtype}; "
                        "use truth > 0.5 for a soft mask")
    if truth.shape != attribution.shape:
        if truth.dim() == attribution.dim() - 1 and truth.shape == attribution.shape[1:]:
            truth = truth.unsqueeze(0).expand_as(attribution)
        else:
            raise ValueError(f"truth has shape {tuple(truth.shape)} but the attribution has {tuple(attribution.shape)}; "
                             "build the truth on the explanation's grid (batch, *grid)")
    if attribution.dim() < 2 or attribution.dim() > 4:
        raise ValueError(f"attribution must be (batch, *grid) with 1 to 3 grid axes, got {tuple(attribution.shape)}")
    if not torch.isfinite(attribution).all():
        raise ValueError("attribution contains NaN or infinite values")
    if not truth.reshape(truth.shape[0], -1).any(dim=1).all():
        raise ValueError("the truth region is empty for at least one input; every input needs a relevant region")
    return attribution.detach().to(torch.float64).cpu(), truth.cpu()


def mass_in_mask(attribution: "Tensor | Explanation", truth: Tensor) -> Tensor:
    """Fraction of the positive attribution mass that lies inside ``truth``.

    ``sum(max(a, 0) * truth) / sum(max(a, 0))``: 1 = all the evidence is inside the region. An input whose
    attribution has no positive mass gets NaN (there is nothing to localise). A uniform map scores the
    truth's area fraction.

    Shape: attribution ``(batch, *grid)``, truth bool ``(batch, *grid)`` -> ``(batch,)``.
    """
    a, t = _pair(attribution, truth)
    pos = a.clamp_min(0.0).reshape(a.shape[0], -1)
    inside = (pos * t.reshape(t.shape[0], -1)).sum(dim=1)
    total = pos.sum(dim=1)
    return torch.where(total > 0, inside / total.clamp_min(1e-300), torch.full_like(total, float("nan")))


def dilate(truth: Tensor, cells: int) -> Tensor:
    """Grow a boolean map ``(batch, *grid)`` by ``cells`` cells along every axis (a box, Chebyshev distance)."""
    if cells <= 0:
        return truth
    nd = truth.dim() - 1
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[nd]
    out = pool(truth.unsqueeze(1).float(), kernel_size=2 * cells + 1, stride=1, padding=cells)
    return out.squeeze(1) > 0.5


def pointing_game(attribution: "Tensor | Explanation", truth: Tensor, tolerance: int = 0) -> Tensor:
    """Pointing game (Zhang et al. 2016): is the maximum of the attribution inside the truth?

    ``tolerance`` cells of slack grow the truth along every axis. When several cells share the maximum,
    the game is a hit only if all of them are inside (a constant map does not win by tie).

    Shape: attribution ``(batch, *grid)``, truth bool ``(batch, *grid)`` -> bool ``(batch,)``.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance must be an int >= 0 (cells), got {tolerance!r}")
    a, t = _pair(attribution, truth)
    region = dilate(t, tolerance).reshape(t.shape[0], -1)
    flat = a.reshape(a.shape[0], -1)
    top = flat == flat.max(dim=1, keepdim=True).values
    return (top & ~region).sum(dim=1) == 0


def iou_at_truth_area(attribution: "Tensor | Explanation", truth: Tensor) -> Tensor:
    """IoU of the truth with the attribution's top ``k`` cells, ``k`` = the truth's area (its cell count).

    At equal areas IoU = precision = recall of the top cells. Ties are broken by grid order.

    Shape: attribution ``(batch, *grid)``, truth bool ``(batch, *grid)`` -> ``(batch,)`` in [0, 1].
    """
    a, t = _pair(attribution, truth)
    flat = a.reshape(a.shape[0], -1)
    tf = t.reshape(t.shape[0], -1)
    out = torch.empty(flat.shape[0], dtype=torch.float64)
    for i in range(flat.shape[0]):
        k = int(tf[i].sum())
        order = torch.argsort(flat[i], descending=True, stable=True)[:k]
        top = torch.zeros_like(tf[i])
        top[order] = True
        out[i] = (top & tf[i]).sum() / (top | tf[i]).sum()
    return out

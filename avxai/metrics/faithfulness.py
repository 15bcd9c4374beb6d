"""Deletion and insertion curves (Petsiuk et al. 2018, RISE) with the modality's own perturbation.

Cells are ordered by attribution, largest first. *Deletion* starts from the input (mask 1) and sends the
top cells to the modality's baseline (mask 0) in ``steps`` steps: a faithful attribution makes the score
fall fast (small area under the curve). *Insertion* starts from the baseline (mask 0) and restores the
top cells: a faithful attribution makes the score rise fast (large area). All masks are scored in batches
by the engine :func:`avxai.engine.evaluate_masks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from avxai.explanation import Explanation
from avxai.hygiene import evaluation_mode
from avxai.checks import check_positive_int
from avxai.engine import check_model_rate, evaluate_masks, prepare_scorer
from avxai.modalities.base import Modality
from avxai.scorers.base import Scorer

Kind = Literal["deletion", "insertion"]
Normalise = Literal["none", "unmasked", "range"]
NORMALISE = ("none", "unmasked", "range")


@dataclass
class FaithfulnessCurve:
    """A deletion or insertion curve for a batch of inputs.

    Attributes
    ----------
    kind : ``"deletion"`` or ``"insertion"``.
    fractions : ``(steps + 1,)`` fraction of grid cells removed (deletion) or restored (insertion), 0 -> 1.
    scores : ``(batch, steps + 1)`` the curve, normalised as ``normalise`` says.
    raw : ``(batch, steps + 1)`` the scores in the scorer's units.
    auc : ``(batch,)`` area under ``scores`` over ``fractions`` (trapezoid rule).
    normalise : ``"none"``, ``"unmasked"`` (divided by the score of the unmasked input) or ``"range"``
        (``(s - s_empty) / (s_full - s_empty)``: 1 = unmasked input, 0 = everything at the baseline).
    units : the scorer's units of ``raw``.
    """

    kind: str
    fractions: np.ndarray
    scores: Tensor
    raw: Tensor
    auc: Tensor
    normalise: str
    units: str = ""

    def to_dict(self) -> dict:
        return {"kind": self.kind, "fractions": self.fractions.tolist(), "scores": self.scores.tolist(),
                "raw": self.raw.tolist(), "auc": self.auc.tolist(), "normalise": self.normalise, "units": self.units}


def trapezoid_auc(fractions: "np.ndarray | Tensor", scores: Tensor) -> Tensor:
    """Area under ``scores (batch, k)`` over ``fractions (k,)`` by the trapezoid rule. Shape: ``(batch,)``."""
    x = torch.as_tensor(np.asarray(fractions), dtype=torch.float64)
    y = scores.to(torch.float64)
    return ((y[:, 1:] + y[:, :-1]) * (x[1:] - x[:-1])).sum(dim=1) / 2.0


def ranked_masks(attribution: Tensor, counts: list[int], kind: Kind) -> Tensor:
    """Masks ``(len(counts), batch, *grid)``: the ``counts[j]`` top cells removed (deletion) or kept (insertion).

    Cells are ranked per input by attribution, largest first; ties keep grid (flattened) order.
    """
    b = attribution.shape[0]
    flat = attribution.reshape(b, -1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(flat.shape[1]).expand(b, -1).contiguous())
    k = torch.as_tensor(counts).view(-1, 1, 1)
    top = (rank.unsqueeze(0) < k).to(attribution.dtype if attribution.is_floating_point() else torch.float32)
    masks = 1.0 - top if kind == "deletion" else top
    return masks.reshape(len(counts), *attribution.shape)


def _attribution(attribution: "Tensor | Explanation", modality: Modality) -> Tensor:
    if isinstance(attribution, Explanation):
        attribution = attribution.attribution
    if not isinstance(attribution, Tensor):
        raise TypeError(f"attribution must be a tensor (batch, *grid) or an Explanation, got {type(attribution).__name__}")
    expected = (modality.batch_size, *modality.grid_shape)
    if tuple(attribution.shape) != expected:
        raise ValueError(f"attribution has shape {tuple(attribution.shape)} but the modality's grid is {expected} "
                         "(batch, *grid); explain the same input with the same modality settings")
    if not torch.isfinite(attribution).all():
        raise ValueError("attribution contains NaN or infinite values; it cannot rank the grid cells")
    return attribution.detach().cpu()


def faithfulness_curve(model: nn.Module, modality: Modality, scorer: Scorer, attribution: "Tensor | Explanation",
                       kind: Kind = "deletion", *, steps: int = 20, batch_size: int = 32,
                       normalise: Normalise = "range", absolute: bool = False) -> FaithfulnessCurve:
    """Deletion or insertion curve of ``attribution`` ``(batch, *grid)`` on ``modality``.

    Parameters
    ----------
    model, modality, scorer : as given to the method that produced the attribution; the scorer is prepared
        on the unmasked output (so ``ClassLogit()`` follows the predicted class) and the model runs under
        :func:`avxai.hygiene.evaluation_mode`.
    kind : ``"deletion"`` (mask 1 -> 0 from the top cells) or ``"insertion"`` (0 -> 1).
    steps : number of steps; step ``j`` changes ``round(j / steps * cells)`` cells.
    batch_size : perturbed inputs per forward pass.
    normalise : ``"range"`` (default; 1 = unmasked, 0 = all cells at the baseline, comparable across inputs
        and units), ``"unmasked"`` (divide by the unmasked score; it must be > 0, e.g. a probability) or
        ``"none"``.
    absolute : rank cells by ``|attribution|`` (for signed maps whose negative cells also matter).

    Shape: attribution ``(batch, *grid)`` -> curve ``(batch, steps + 1)``, AUC ``(batch,)``.
    """
    if kind not in ("deletion", "insertion"):
        raise ValueError(f"kind must be 'deletion' or 'insertion', got {kind!r}")
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    if normalise not in NORMALISE:
        raise ValueError(f"normalise must be one of {', '.join(NORMALISE)}, got {normalise!r}")
    attr = _attribution(attribution, modality)
    if absolute:
        attr = attr.abs()
    b, grid = modality.batch_size, modality.grid_shape
    cells = int(np.prod(grid))
    counts = [int(round(j / steps * cells)) for j in range(steps + 1)]
    masks = ranked_masks(attr, counts, kind).to(modality.representation.dtype)
    ends = torch.stack([torch.ones(b, *grid), torch.zeros(b, *grid)]).to(masks.dtype)
    check_model_rate(model, modality)
    with evaluation_mode(model):
        scorer, _ = prepare_scorer(model, modality, scorer)
        everything = torch.cat([masks, ends]).reshape(-1, *grid)
        raw_all = evaluate_masks(model, modality, scorer, everything, batch_size=batch_size).view(-1, b).T
    raw_all = raw_all.detach().to(torch.float64).clone()
    raw, full, empty = raw_all[:, :-2], raw_all[:, -2:-1], raw_all[:, -1:]
    if normalise == "unmasked":
        if (full <= 0).any():
            raise ValueError(f"normalise='unmasked' divides by the unmasked score, which is {full.flatten().tolist()} "
                             "(must be > 0); use normalise='range' or a positive scorer (ClassProbability)")
        curve = raw / full
    elif normalise == "range":
        span = full - empty
        if (span.abs() < 1e-12).any():
            raise ValueError("the unmasked and the fully masked input score the same, so normalise='range' is "
                             "undefined; the perturbation removes nothing the model uses: pick another "
                             "perturbation, or use normalise='none'")
        curve = (raw - empty) / span
    else:
        curve = raw
    fractions = np.asarray(counts, dtype=float) / cells
    return FaithfulnessCurve(kind=kind, fractions=fractions, scores=curve, raw=raw, auc=trapezoid_auc(fractions, curve),
                             normalise=normalise, units=getattr(scorer, "units", ""))


def deletion_curve(model: nn.Module, modality: Modality, scorer: Scorer, attribution: "Tensor | Explanation",
                   **kwargs) -> FaithfulnessCurve:
    """Deletion curve (top cells sent to the baseline first); lower AUC = more faithful. See :func:`faithfulness_curve`."""
    return faithfulness_curve(model, modality, scorer, attribution, "deletion", **kwargs)


def insertion_curve(model: nn.Module, modality: Modality, scorer: Scorer, attribution: "Tensor | Explanation",
                    **kwargs) -> FaithfulnessCurve:
    """Insertion curve (top cells restored first); higher AUC = more faithful. See :func:`faithfulness_curve`."""
    return faithfulness_curve(model, modality, scorer, attribution, "insertion", **kwargs)

"""Held-out scoring of a trained model: batched forward passes, SDR / SI-SDR rows, their means overall and per
group, and the check that a reloaded checkpoint reproduces the trained model's score."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from avxai.scorers.sdr import bss_sdr, si_sdr

__all__ = ["check_reproduced", "count_parameters", "run_batched", "sdr_rows", "summarise"]


@torch.no_grad()
def run_batched(model: nn.Module, *inputs: Tensor, batch: int) -> Tensor:
    """``model(*inputs)`` in chunks of ``batch`` rows, concatenated. Shape: rows of each input -> rows."""
    n = inputs[0].shape[0]
    return torch.cat([model(*(x[i:i + batch] for x in inputs)) for i in range(0, n, batch)])


def sdr_rows(estimate: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    """BSS-eval SDR and SI-SDR (dB) of each row, in float64. Shape: ``(n, time)`` x 2 -> ``(n,)``, ``(n,)``."""
    est, ref = estimate.double(), reference.double()
    return bss_sdr(est, ref), si_sdr(est, ref)


def summarise(rows: Mapping[str, Tensor], groups: Sequence | None = None) -> dict:
    """Mean of each row (rounded to 0.01) over all items, or per group label when ``groups`` (one label per
    item) is given: ``{label: {name: mean}}`` in first-seen order."""
    def mean(sel: np.ndarray) -> dict:
        return {k: round(float(v[torch.from_numpy(sel)].mean()), 2) for k, v in rows.items()}
    if groups is None:
        return mean(np.ones(len(next(iter(rows.values()))), bool))
    labels = np.array(list(groups))
    return {str(g): mean(labels == g) for g in dict.fromkeys(labels.tolist())}


def check_reproduced(name: str, reloaded: float, trained: float, tolerance: float) -> None:
    """Raise ``RuntimeError`` when the reloaded checkpoint's score ``name`` is more than ``tolerance`` from the
    trained model's (the checkpoint would not be the model that was measured)."""
    if abs(reloaded - trained) > tolerance:
        raise RuntimeError(f"the reloaded checkpoint scores {name} = {reloaded}, the trained model {trained} "
                           f"(tolerance {tolerance}): the saved file does not reproduce the trained model")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


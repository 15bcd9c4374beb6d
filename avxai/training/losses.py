"""Training losses of the reference models, in dB: minus the SNR, minus the SI-SDR (the scorer's
:func:`avxai.scorers.sdr.si_sdr`), and its permutation-invariant form for separation."""

from __future__ import annotations

import itertools

import torch
from torch import Tensor

from avxai.scorers.sdr import si_sdr

__all__ = ["best_permutation", "neg_si_sdr", "neg_snr", "pit_neg_si_sdr"]


def neg_snr(estimate: Tensor, clean: Tensor) -> Tensor:
    """Minus the SNR (dB) of ``estimate`` against ``clean``, mean over the batch (1e-8 guards both powers).

    Shape: ``(batch, channels, time)`` x 2 -> ``()``.
    """
    err = (estimate - clean).pow(2).sum(-1)
    return -(10 * torch.log10((clean.pow(2).sum(-1) + 1e-8) / (err + 1e-8))).mean()


def neg_si_sdr(estimate: Tensor, reference: Tensor) -> Tensor:
    """Minus the SI-SDR (dB, :func:`avxai.scorers.sdr.si_sdr`), mean over every leading axis.

    Shape: ``(..., time)`` x 2 -> ``()``.
    """
    return -si_sdr(estimate, reference).mean()


def _permutation_scores(estimate: Tensor, sources: Tensor) -> tuple[Tensor, Tensor]:
    """SI-SDR of every estimate channel against every source under each permutation: ``(batch, P, S)``, and the
    permutations ``(P, S)``."""
    if estimate.shape != sources.shape or estimate.dim() != 3:
        raise ValueError(f"estimate and sources must both be (batch, sources, time), got {tuple(estimate.shape)} "
                         f"and {tuple(sources.shape)}")
    pairwise = si_sdr(estimate.unsqueeze(1), sources.unsqueeze(2))  # (batch, ref s, est c)
    n = sources.shape[1]
    perms = torch.tensor(list(itertools.permutations(range(n))))
    return pairwise[:, torch.arange(n), perms], perms


def pit_neg_si_sdr(estimate: Tensor, sources: Tensor) -> Tensor:
    """Permutation-invariant loss: minus the mean SI-SDR (dB) under the best permutation per example.

    Shape: ``(batch, S, time)`` x 2 -> ``()``.
    """
    scores, _ = _permutation_scores(estimate, sources)
    return -scores.mean(-1).max(dim=1).values.mean()


def best_permutation(estimate: Tensor, sources: Tensor) -> Tensor:
    """``estimate`` reordered so that channel k matches source k (best total SI-SDR).

    Shape: ``(batch, S, time)`` x 2 -> ``(batch, S, time)``.
    """
    scores, perms = _permutation_scores(estimate, sources)
    best = perms[scores.sum(-1).argmax(1)]  # (batch, S)
    return torch.stack([estimate[b, best[b]] for b in range(estimate.shape[0])])


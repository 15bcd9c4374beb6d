"""SpeechBrain's interpretability metrics (its ``recipes/ESC50/interpret`` recipe: L-MAC, L2I, PIQ), so that
avxai's numbers sit beside the published ones.

With ``p(.)`` the score explained (SpeechBrain: the softmax probability of the class predicted on the unmasked
input ``x``), ``m`` a mask in [0, 1] (1 = keep) applied through the modality's own masking, per input:

* ``AI``  = 100 * 1[p(x * m) > p(x)]                          average increase (share of inputs, in %)
* ``AD``  = 100 * relu(p(x) - p(x * m)) / p(x)                average drop (%)
* ``AG``  = 100 * relu(p(x * m) - p(x)) / (1 - p(x))          average gain (%)
* ``FF``  = p(x) - p(x * (1 - m))                            faithfulness (removing the mask should lower p)
* ``Fid-In`` = 1[argmax f(x * m) = argmax f(x)]              input fidelity (the kept part keeps the decision)

SpeechBrain adds ``eps = 1e-10`` to the AD and AG denominators, and AI is a strict inequality; both as here.
One quirk of its code is *not* copied: its ``compute_AD`` applies a second softmax to outputs that are already
probabilities (``train_lmac.py`` passes ``softmax`` outputs), which the formula above does not have.

Scores that are not probabilities (``bounds``): the score takes the place of ``p`` in every formula. AD divides
by ``p(x)``, so it is reported only where ``p(x) > 0`` (NaN elsewhere); AG divides by the room left to the
score's maximum, ``upper - p(x)``, so it needs a bounded score: ``upper=1`` for a probability **and for a cosine
similarity** (whose maximum is 1, the same formula), NaN for an unbounded score (a logit, an SDR). AI and FF are
defined for any score. Fid-In needs a decision: ``argmax`` over the classes of a ``(batch, classes)`` output, or,
for a score with a decision threshold (a VAD's mean speech probability and 0.5), ``1[p(x * m) >= t] ==
1[p(x) >= t]``; NaN otherwise (an embedding has no argmax that means anything).

Shape: scores ``(batch,)`` -> metrics ``(batch,)`` each; :func:`summarise` averages over inputs as SpeechBrain does.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from avxai.engine import check_model_rate, chunk_rows, prepare_scorer, score_and_output
from avxai.hygiene import evaluation_mode
from avxai.modalities.base import Modality
from avxai.scorers.base import Scorer, as_tensor_output

__all__ = ["EPS", "METRICS", "speechbrain_metrics", "interpretability_metrics", "summarise"]

#: SpeechBrain's ``eps`` in the AD and AG denominators
EPS = 1e-10
#: the metric names, in SpeechBrain's order
METRICS = ("AI", "AD", "AG", "FF", "Fid-In")


def _vector(x: Any, name: str) -> Tensor:
    t = torch.as_tensor(x, dtype=torch.float64)
    if t.dim() != 1:
        raise ValueError(f"{name} must be one score per input, shape (batch,), got shape {tuple(t.shape)}")
    return t


def speechbrain_metrics(unmasked: Tensor, preserved: Tensor, deleted: Tensor | None = None, *,
                        upper: float | None = 1.0, fidelity: Tensor | None = None) -> dict[str, Tensor]:
    """AI, AD, AG, FF and Fid-In per input from the scores of ``x``, ``x * m`` and ``x * (1 - m)``.

    Parameters
    ----------
    unmasked, preserved, deleted : ``p(x)``, ``p(x * m)``, ``p(x * (1 - m))``, each ``(batch,)``; ``deleted=None``
        gives FF as NaN.
    upper : the score's maximum (1 for a probability or a cosine); ``None`` for an unbounded score: AG is NaN.
    fidelity : ``(batch,)`` 1/0 whether the masked input keeps the decision (see :func:`interpretability_metrics`);
        ``None``: Fid-In is NaN.

    Shape: ``(batch,)`` each -> ``{"AI", "AD", "AG", "FF", "Fid-In"}`` each ``(batch,)`` float64 (AI, AD, AG in %).
    """
    p, pm = _vector(unmasked, "unmasked"), _vector(preserved, "preserved")
    if pm.shape != p.shape:
        raise ValueError(f"preserved has {pm.shape[0]} scores for {p.shape[0]} unmasked ones; give one per input")
    if upper is not None and not math.isfinite(float(upper)):
        raise ValueError(f"upper must be the score's finite maximum (1 for a probability or cosine) or None, "
                         f"got {upper!r}")
    nan = torch.full_like(p, float("nan"))
    out = {"AI": 100.0 * (pm > p).to(p.dtype)}
    out["AD"] = torch.where(p > 0, 100.0 * torch.relu(p - pm) / (p + EPS), nan)
    if upper is None:
        out["AG"] = nan.clone()
    else:
        room = float(upper) - p
        out["AG"] = torch.where(room >= 0, 100.0 * torch.relu(pm - p) / (room + EPS), nan)
    if deleted is None:
        out["FF"] = nan.clone()
    else:
        pd = _vector(deleted, "deleted")
        if pd.shape != p.shape:
            raise ValueError(f"deleted has {pd.shape[0]} scores for {p.shape[0]} unmasked ones; give one per input")
        out["FF"] = p - pd
    out["Fid-In"] = nan.clone() if fidelity is None else _vector(fidelity, "fidelity").clone()
    return out


def _decisions(output: Any, scores: Tensor, threshold: float | None) -> Tensor | None:
    """Per row, the model's decision: the argmax of a ``(n, classes)`` output, else the thresholded score."""
    if threshold is not None:
        return (scores >= threshold).to(torch.int64)
    try:
        tensor = as_tensor_output(output, "Fid-In")
    except TypeError:
        return None
    if tensor.dim() == 2 and tensor.shape[1] > 1:
        return tensor.argmax(dim=1)
    return None


def interpretability_metrics(model: nn.Module, modality: Modality, scorer: Scorer, mask: Tensor, *,
                             upper: float | None = 1.0, decision: str = "argmax", threshold: float | None = None,
                             batch_size: int = 16) -> dict[str, Tensor]:
    """SpeechBrain's metrics of ``mask`` ``(batch, *grid)`` (1 = keep) on ``modality``, scored by the engine.

    The unmasked input, ``x * m`` and ``x * (1 - m)`` are scored in batches of ``batch_size`` through the
    modality's own masking (its perturbation fills the removed cells), with the scorer prepared on the unmasked
    output as every method does.

    decision : ``"argmax"`` (Fid-In from the argmax of a ``(batch, classes)`` output: classifiers),
        ``"threshold"`` (the score against ``threshold``: a VAD probability and 0.5) or ``"none"`` (Fid-In NaN:
        embeddings, regressions).
    upper : see :func:`speechbrain_metrics`.

    Returns the metrics and ``"unmasked"``, ``"preserved"``, ``"deleted"`` scores, each ``(batch,)``.
    """
    if decision not in ("argmax", "threshold", "none"):
        raise ValueError(f"decision must be 'argmax', 'threshold' or 'none', got {decision!r}")
    if decision == "threshold" and threshold is None:
        raise ValueError("decision='threshold' needs threshold= (e.g. 0.5 for a probability)")
    b, grid = modality.batch_size, tuple(modality.grid_shape)
    if not isinstance(mask, Tensor) or tuple(mask.shape) != (b, *grid):
        shape = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must have the modality's shape (batch, *grid) = {(b, *grid)}, got {shape}")
    mask = mask.detach().to(modality.representation.dtype)
    if not torch.isfinite(mask).all() or (mask < 0).any() or (mask > 1).any():
        raise ValueError("mask values must be finite and in [0, 1] (1 = keep); binarise an attribution first "
                         "(avxai.metrics.masks.map_at_area)")
    check_model_rate(model, modality)
    rows = torch.cat([torch.ones(b, *grid, dtype=mask.dtype), mask, 1.0 - mask])
    scores, decisions = [], []
    with evaluation_mode(model):
        prepared, _ = prepare_scorer(model, modality, scorer)
        with torch.inference_mode():
            for part in chunk_rows(rows.shape[0], batch_size, b):
                s, output = score_and_output(model, modality, prepared, rows[part])
                scores.append(s.detach().double())
                if decision != "none":
                    decisions.append(_decisions(output, s, threshold if decision == "threshold" else None))
    s = torch.cat(scores)
    fidelity = None
    if decision != "none" and all(d is not None for d in decisions):
        d = torch.cat(decisions)
        fidelity = (d[b:2 * b] == d[:b]).double()
    metrics = speechbrain_metrics(s[:b], s[b:2 * b], s[2 * b:], upper=upper, fidelity=fidelity)
    metrics.update(unmasked=s[:b].clone(), preserved=s[b:2 * b].clone(), deleted=s[2 * b:].clone())
    return metrics


def summarise(metrics: dict[str, Tensor]) -> dict[str, float]:
    """The mean over inputs of each metric (SpeechBrain averages per utterance), NaN entries left out; NaN when
    every entry is NaN."""
    out = {}
    for name, values in metrics.items():
        v = torch.as_tensor(values, dtype=torch.float64).flatten()
        v = v[~torch.isnan(v)]
        out[name] = float(v.mean()) if v.numel() else float("nan")
    return out

"""Speaker-verification error rates from trial scores: detection error trade-off, EER and minimum DCF.

A trial is accepted when its score is ``>= threshold``. For every threshold ``t`` the miss rate is
``P_miss(t) = #{targets with score < t} / #targets`` and the false-alarm rate is
``P_fa(t) = #{non-targets with score >= t} / #non-targets``; the thresholds swept are every distinct
score plus ``+inf`` (reject everything), so the curve runs from ``(P_miss, P_fa) = (0, 1)`` to ``(1, 0)``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["det_curve", "eer", "eer_threshold", "min_dcf"]


def _check(scores: "Sequence[float] | np.ndarray", labels: "Sequence[int] | np.ndarray") -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    raw = np.asarray(labels).reshape(-1)
    if s.shape != raw.shape:
        raise ValueError(f"got {s.size} scores but {raw.size} labels; give one label (1 = target, 0 = non-target) "
                         "per trial score")
    if s.size == 0:
        raise ValueError("no trials: give at least one target and one non-target score")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinite values; drop the failed trials first")
    if raw.dtype == bool:
        raw = raw.astype(np.int64)
    values = set(np.unique(raw).tolist())
    if not values <= {0, 1}:
        raise ValueError(f"labels must be 1 (target: same speaker) or 0 (non-target), got values {sorted(values)}")
    y = raw.astype(np.int64)
    if not (y == 1).any() or not (y == 0).any():
        which = "target (label 1)" if not (y == 1).any() else "non-target (label 0)"
        raise ValueError(f"error rates need both kinds of trial, but there is no {which} trial")
    return s, y


def det_curve(scores: "Sequence[float] | np.ndarray",
              labels: "Sequence[int] | np.ndarray") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every threshold (accept when ``score >= threshold``).

    Returns
    -------
    p_miss, p_fa, thresholds
        ``(n_thresholds,)`` each, thresholds increasing (the last is ``+inf``); ``p_miss`` rises from 0 to 1
        and ``p_fa`` falls from 1 to 0.

    Shape: scores, labels ``(trials,)`` -> three ``(distinct scores + 1,)`` arrays.
    """
    s, y = _check(scores, labels)
    thresholds = np.append(np.unique(s), np.inf)
    tar, non = np.sort(s[y == 1]), np.sort(s[y == 0])
    p_miss = np.searchsorted(tar, thresholds, side="left") / tar.size  # targets strictly below t
    p_fa = 1.0 - np.searchsorted(non, thresholds, side="left") / non.size  # non-targets at or above t
    return p_miss, p_fa, thresholds


def eer(scores: "Sequence[float] | np.ndarray", labels: "Sequence[int] | np.ndarray") -> float:
    """Equal error rate: where the miss rate equals the false-alarm rate, a fraction in [0, 1].

    The DET curve is a staircase; between the two consecutive operating points where
    ``P_miss - P_fa`` changes sign the rates are interpolated linearly (the convex combination of the
    two thresholds), which gives the value ROC-convex-hull tools report. Perfectly separated scores
    give 0; scores that carry no information give about 0.5.

    Shape: scores, labels ``(trials,)`` -> float.
    """
    p_miss, p_fa, _ = det_curve(scores, labels)
    diff = p_miss - p_fa  # rises from -1 to +1
    i = int(np.argmax(diff >= 0))  # first point with P_miss >= P_fa (exists: the last point has diff = 1)
    if diff[i] == 0 or i == 0:
        return float((p_miss[i] + p_fa[i]) / 2)
    # segment between point i-1 (diff < 0) and point i (diff >= 0): find alpha where the rates cross
    d0, d1 = diff[i - 1], diff[i]
    alpha = d0 / (d0 - d1)
    return float(p_miss[i - 1] + alpha * (p_miss[i] - p_miss[i - 1]))


def eer_threshold(scores: "Sequence[float] | np.ndarray", labels: "Sequence[int] | np.ndarray") -> float:
    """A decision threshold at the equal error rate (accept when ``score >= threshold``).

    Of the two operating points of the DET staircase around the crossing (the ones :func:`eer` interpolates
    between), the one whose miss and false-alarm rates are closer (the later one on a tie) is taken, and the
    threshold is put halfway between its score and the next lower score, where no trial lies, so a printed,
    rounded threshold gives the same decisions. Perfectly separated scores give a threshold between the
    highest non-target and the lowest target score (no errors).

    Shape: scores, labels ``(trials,)`` -> float.
    """
    p_miss, p_fa, thresholds = det_curve(scores, labels)
    diff = p_miss - p_fa
    i = int(np.argmax(diff >= 0))
    if i > 0 and abs(diff[i - 1]) < abs(diff[i]):
        i -= 1
    if i == 0:  # accept everything: below the lowest score
        return float(thresholds[0])
    if not np.isfinite(thresholds[i]):  # reject everything: just above the highest score
        return float(np.nextafter(thresholds[i - 1], np.inf))
    return float((thresholds[i - 1] + thresholds[i]) / 2)


def min_dcf(scores: "Sequence[float] | np.ndarray", labels: "Sequence[int] | np.ndarray", p_target: float = 0.01,
            c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised minimum detection cost (NIST SRE).

    ``DCF(t) = c_miss * p_target * P_miss(t) + c_fa * (1 - p_target) * P_fa(t)``, minimised over the
    thresholds and divided by ``min(c_miss * p_target, c_fa * (1 - p_target))``, the cost of the better
    of "accept all" and "reject all". A value of 1 means the scores are no better than that default;
    0 means a threshold separates every trial.

    Shape: scores, labels ``(trials,)`` -> float.
    """
    for name, value in (("p_target", p_target), ("c_miss", c_miss), ("c_fa", c_fa)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"p_target is the prior probability of a target trial and must be in (0, 1), got {p_target}")
    if c_miss <= 0 or c_fa <= 0:
        raise ValueError(f"c_miss and c_fa are costs and must be > 0, got c_miss={c_miss}, c_fa={c_fa}")
    p_miss, p_fa, _ = det_curve(scores, labels)
    dcf = c_miss * p_target * p_miss + c_fa * (1.0 - p_target) * p_fa
    default = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(dcf.min() / default)

"""EER, minDCF and the DET curve against their definitions, computed here by brute force."""

from __future__ import annotations

import numpy as np
import pytest

from avxai.metrics.verification import det_curve, eer, min_dcf


def rates_at(scores, labels, t):
    """P_miss and P_fa when accepting ``score >= t`` (the definition)."""
    s, y = np.asarray(scores, float), np.asarray(labels)
    return float(np.mean(s[y == 1] < t)), float(np.mean(s[y == 0] >= t))


def random_trials(seed, n_target=60, n_non=90, shift=1.5):
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(shift, 1, n_target), rng.normal(0, 1, n_non)])
    labels = np.concatenate([np.ones(n_target, int), np.zeros(n_non, int)])
    return scores, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_det_curve_matches_definition(seed):
    scores, labels = random_trials(seed)
    p_miss, p_fa, thresholds = det_curve(scores, labels)
    assert thresholds[-1] == np.inf and np.all(np.diff(thresholds) > 0)
    for pm, pf, t in zip(p_miss, p_fa, thresholds):
        assert (pm, pf) == pytest.approx(rates_at(scores, labels, t), abs=1e-12)
    assert (p_miss[0], p_fa[0]) == (0.0, 1.0) and (p_miss[-1], p_fa[-1]) == (1.0, 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_eer_lies_where_the_error_rates_cross(seed):
    scores, labels = random_trials(seed)
    e = eer(scores, labels)
    # brute force: over a fine sweep of thresholds the two rates cross between the best operating points
    ts = np.linspace(scores.min() - 1, scores.max() + 1, 5001)
    rates = np.array([rates_at(scores, labels, t) for t in ts])
    gap = np.abs(rates[:, 0] - rates[:, 1])
    i = int(np.argmin(gap))
    lo, hi = sorted(rates[i])
    step = 1.0 / min((labels == 1).sum(), (labels == 0).sum())
    assert lo - step <= e <= hi + step
    # and against the ROC-based EER of scikit-learn's curve (linear interpolation at the crossing)
    sklearn = pytest.importorskip("sklearn.metrics")
    fpr, tpr, _ = sklearn.roc_curve(labels, scores)
    fnr = 1 - tpr
    j = int(np.argmax(fnr <= fpr))
    a = (fnr[j - 1] - fpr[j - 1]) / ((fnr[j - 1] - fpr[j - 1]) - (fnr[j] - fpr[j]))
    assert e == pytest.approx(fpr[j - 1] + a * (fpr[j] - fpr[j - 1]), abs=1e-9)


def test_eer_extremes_and_known_value():
    assert eer([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 0.0
    assert eer([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]) == 1.0
    # one target below one non-target of four each: 1 miss / 4 at the crossing
    assert eer([5, 6, 7, 2.5, 1, 2, 3, 4], [1, 1, 1, 1, 0, 0, 0, 0]) == pytest.approx(0.25)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=4000)
    assert abs(eer(noise, rng.integers(0, 2, 4000)) - 0.5) < 0.03


@pytest.mark.parametrize("p_target,c_miss,c_fa", [(0.01, 1, 1), (0.05, 1, 1), (0.5, 2, 1)])
def test_min_dcf_is_the_normalised_minimum_over_thresholds(p_target, c_miss, c_fa):
    scores, labels = random_trials(4)
    ts = np.concatenate([np.unique(scores), [np.inf, -np.inf]])
    costs = [c_miss * p_target * pm + c_fa * (1 - p_target) * pf
             for pm, pf in (rates_at(scores, labels, t) for t in ts)]
    expected = min(costs) / min(c_miss * p_target, c_fa * (1 - p_target))
    assert min_dcf(scores, labels, p_target, c_miss, c_fa) == pytest.approx(expected, abs=1e-12)
    assert min_dcf([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0], p_target) == 0.0
    assert min_dcf(scores, labels, p_target, c_miss, c_fa) <= 1.0 + 1e-12


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="both kinds"):
        eer([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="labels"):
        eer([0.1, 0.2], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        eer([0.1, float("nan")], [1, 0])
    with pytest.raises(ValueError, match="3 scores but 2 labels"):
        min_dcf([0.1, 0.2, 0.3], [1, 0])
    with pytest.raises(ValueError, match="p_target"):
        min_dcf([0.1, 0.2], [1, 0], p_target=1.0)

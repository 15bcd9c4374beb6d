"""SpeechBrain's interpretability metrics (AI, AD, AG, FF, Fid-In): the reference formulas on hand-made numbers,
and on a toy classifier whose evidence lies in a known region, scored through the engine."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from avxai import ClassProbability, TensorModality
from avxai.metrics.interpretability import EPS, interpretability_metrics, speechbrain_metrics, summarise


def test_formulas_on_hand_made_probabilities():
    p = torch.tensor([0.8, 0.5, 0.2])
    pm = torch.tensor([0.6, 0.75, 0.2])     # a drop, a gain, no change
    pd = torch.tensor([0.1, 0.4, 0.3])
    out = speechbrain_metrics(p, pm, pd, fidelity=torch.tensor([1.0, 0.0, 1.0]))
    torch.testing.assert_close(out["AI"], torch.tensor([0.0, 100.0, 0.0], dtype=torch.float64))  # strict >
    torch.testing.assert_close(out["AD"], torch.tensor([100 * 0.2 / (0.8 + EPS), 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(out["AG"], torch.tensor([0.0, 100 * 0.25 / (0.5 + EPS), 0.0], dtype=torch.float64))
    torch.testing.assert_close(out["FF"], torch.tensor([0.7, 0.1, -0.1], dtype=torch.float64))
    assert out["Fid-In"].tolist() == [1.0, 0.0, 1.0]
    means = summarise(out)
    assert means["AI"] == pytest.approx(100 / 3) and means["FF"] == pytest.approx(0.7 / 3)


def test_scores_that_are_not_probabilities():
    # a cosine (maximum 1): AG on the room left to 1; a negative score has no AD; unbounded: AG is NaN
    out = speechbrain_metrics(torch.tensor([0.67, -0.2]), torch.tensor([0.9, 0.1]), upper=1.0)
    assert out["AG"][0].item() == pytest.approx(100 * 0.23 / 0.33)
    assert out["AD"][0].item() == 0.0 and math.isnan(out["AD"][1].item())
    assert math.isnan(out["FF"][0].item()) and math.isnan(out["Fid-In"][0].item())
    logit = speechbrain_metrics(torch.tensor([3.0]), torch.tensor([5.0]), torch.tensor([1.0]), upper=None)
    assert math.isnan(logit["AG"].item()) and logit["AI"].item() == 100.0 and logit["FF"].item() == 2.0
    assert math.isnan(summarise({"AG": logit["AG"]})["AG"])


def test_bad_shapes_are_one_clear_error():
    with pytest.raises(ValueError, match="one per input"):
        speechbrain_metrics(torch.tensor([0.5, 0.5]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="finite maximum"):
        speechbrain_metrics(torch.tensor([0.5]), torch.tensor([0.5]), upper=float("inf"))


class RegionClassifier(nn.Module):
    """Logits ``(n, 3)``: class 0 = 4 * mean of the input in columns 2-4, class 1 = 4 * mean outside, class 2 = 0."""

    def forward(self, x):
        inside = x[:, 0, :, 2:5].mean(dim=(1, 2))
        outside = torch.cat([x[:, 0, :, :2], x[:, 0, :, 5:]], dim=-1).mean(dim=(1, 2))
        return torch.stack([4 * inside, 4 * outside, torch.zeros_like(inside)], dim=1)


@pytest.fixture
def toy():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 1, 3, 10, generator=gen) * 0.5 + 0.5
    x[:, :, :, 2:5] += 0.5  # class 0 wins on both inputs
    return RegionClassifier(), TensorModality(x, ("freq", "time")), x


def _reference(model, x, mask):
    """The metrics straight from the definitions: softmax probabilities of the class predicted on x."""
    with torch.no_grad():
        f, fm, fd = model(x), model(x * mask[:, None]), model(x * (1 - mask[:, None]))
    c = f.argmax(1, keepdim=True)
    p, pm, pd = (t.softmax(1).gather(1, c)[:, 0].double() for t in (f, fm, fd))
    return {"AI": 100 * (pm > p).double(), "AD": 100 * torch.relu(p - pm) / (p + EPS),
            "AG": 100 * torch.relu(pm - p) / (1 - p + EPS), "FF": p - pd,
            "Fid-In": (fm.argmax(1) == f.argmax(1)).double()}


@pytest.mark.parametrize("which", ["region", "outside", "soft"])
def test_toy_classifier_matches_the_reference(toy, which):
    model, modality, x = toy
    mask = torch.zeros(2, 3, 10)
    if which == "region":
        mask[:, :, 2:5] = 1.0
    elif which == "outside":
        mask[:, :, 5:] = 1.0
    else:
        mask = torch.rand(2, 3, 10, generator=torch.Generator().manual_seed(1))
    got = interpretability_metrics(model, modality, ClassProbability(), mask, batch_size=4)
    want = _reference(model, x, mask)
    for name, value in want.items():
        torch.testing.assert_close(got[name], value, atol=1e-6, rtol=1e-6, msg=name)
    if which == "region":  # keeping the known region keeps the decision, removing it destroys the evidence
        assert got["Fid-In"].tolist() == [1.0, 1.0] and (got["FF"] > 0.3).all()
        assert (got["AI"] == 100).all() and (got["AD"] == 0).all()   # only the competing class's evidence left
    if which == "outside":  # keeping the wrong region flips the decision and drops the probability
        assert got["Fid-In"].tolist() == [0.0, 0.0] and (got["AD"] > 50).all() and (got["FF"] < 0).all()


def test_threshold_decision_and_mask_checks(toy):
    model, modality, _ = toy
    mask = torch.ones(2, 3, 10)
    got = interpretability_metrics(model, modality, ClassProbability(0), mask, decision="threshold", threshold=0.5)
    assert got["Fid-In"].tolist() == [1.0, 1.0] and got["AD"].abs().max() < 1e-6
    none = interpretability_metrics(model, modality, ClassProbability(0), mask, decision="none")
    assert torch.isnan(none["Fid-In"]).all()
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        interpretability_metrics(model, modality, ClassProbability(0), mask * 2)
    with pytest.raises(ValueError, match="shape"):
        interpretability_metrics(model, modality, ClassProbability(0), mask[:1])
    with pytest.raises(ValueError, match="threshold="):
        interpretability_metrics(model, modality, ClassProbability(0), mask, decision="threshold")

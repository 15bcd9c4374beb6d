"""No method returns a NaN or infinite map (issue 16): integrated gradients names a baseline on a singular point of
the model and the one to use instead; saliency names the input; the shared check in new_explanation catches the
rest; the completeness gap is reported and warned about when large."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avxai import ClassLogit
from avxai.methods.base import ExplanationWarning, new_explanation
from avxai.methods.gradients import IntegratedGradientsConfig, integrated_gradients, saliency
from avxai.methods.occlusion import OcclusionConfig, occlusion
from toys.extremal import GridToy, positive_input

pytestmark = pytest.mark.usefixtures("one_thread")


class Norm(nn.Module):
    """Class 0 = the input's L2 norm: sqrt(0) at an all-zero input, where the gradient is NaN (0 * inf)."""

    def forward(self, x):
        score = x.flatten(1).square().sum(dim=1).sqrt()
        return torch.stack([score, torch.zeros_like(score)], dim=1)


class Step(nn.Module):
    """Class 0 = a sharp step of the input's mean: the trapezoid rule with few steps misses its integral."""

    def forward(self, x):
        score = torch.sigmoid(200.0 * (x.flatten(1).mean(dim=1) - 0.37))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def test_ig_with_a_singular_baseline_raises_and_names_the_baseline_to_use():
    x = positive_input((16,))
    with pytest.raises(ValueError, match=r"at the baseline \(alpha = 0.*perturbation='floor'"):
        integrated_gradients(Norm(), GridToy(x), ClassLogit(0), IntegratedGradientsConfig(steps=8))
    # off the singular point: the input's own floor as the baseline, or a rule that never evaluates alpha = 0
    for modality, config in ((GridToy(x, perturbation="floor"), IntegratedGradientsConfig(steps=8)),
                             (GridToy(x), IntegratedGradientsConfig(steps=8, rule="riemann_middle"))):
        expl = integrated_gradients(Norm(), modality, ClassLogit(0), config)
        assert torch.isfinite(expl.attribution).all()
        assert "relative_gap" in expl.metadata["completeness"]


def test_ig_reports_a_large_completeness_gap():
    with pytest.warns(ExplanationWarning, match="completeness gap"):
        expl = integrated_gradients(Step(), GridToy(positive_input((16,))), ClassLogit(0),
                                    IntegratedGradientsConfig(steps=2))
    assert abs(expl.metadata["completeness"]["relative_gap"][0]) > 0.1
    assert any("completeness gap" in w for w in expl.metadata["warnings"])


def test_saliency_at_a_singular_input_raises_naming_the_input():
    x = torch.zeros(1, 1, 16)
    with pytest.raises(ValueError, match="singular at this input"):
        saliency(Norm(), GridToy(x), ClassLogit(0))


def test_no_method_saves_a_nan_map():
    modality = GridToy(positive_input((16,)))
    bad = torch.full((1, 16), float("nan"))
    with pytest.raises(ValueError, match="NaN or infinite"):
        new_explanation("occlusion", modality, bad)
    with pytest.raises(ValueError, match="masks"):
        new_explanation("extremal", modality, torch.zeros(1, 16), masks=torch.full((1, 1, 16), float("inf")))
    # a finite map goes through (occlusion through the same constructor)
    expl = occlusion(Norm(), modality, ClassLogit(0), OcclusionConfig(window=4))
    assert torch.isfinite(expl.attribution).all()

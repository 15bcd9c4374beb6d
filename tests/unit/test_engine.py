"""The batched engine's scoring call (avxai.engine.score_and_output): when the model output is checked for NaN."""

import pytest
import torch
from torch import nn

from avxai import Scorer, TensorModality
from avxai.engine import score_and_output


class First(Scorer):
    units = "a.u."

    def __call__(self, output):
        return output[:, 0]


class NaNWhereZero(nn.Module):
    """Logit 0: ``log`` of the input's first cell, -inf where the mask removed it (zero perturbation); logit 1: 0."""

    def forward(self, x):
        return torch.log(x.reshape(x.shape[0], -1)[:, :1]) * torch.tensor([[1.0, 0.0]])


def test_the_output_check_follows_gradients_unless_told():
    modality = TensorModality(torch.ones(1, 1, 4), axes=("cell",))
    masks = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="NaN or infinite"):
        score_and_output(NaNWhereZero(), modality, First(), masks)  # no gradients: checked
    scores, _ = score_and_output(NaNWhereZero(), modality, First(), masks, check_finite=False)
    assert torch.isinf(scores).all()  # told not to: the loop that asked watches its own values
    grad_masks = masks.clone().requires_grad_(True)
    scores, _ = score_and_output(NaNWhereZero(), modality, First(), grad_masks)  # an optimisation step: unchecked
    assert torch.isinf(scores).all()
    with pytest.raises(ValueError, match="NaN or infinite"):
        score_and_output(NaNWhereZero(), modality, First(), grad_masks, check_finite=True)


def test_a_pass_without_graph_scores_like_one_with_it():
    modality = TensorModality(torch.ones(1, 1, 4) * 2.0, axes=("cell",))
    masks = torch.full((2, 4), 0.5, requires_grad=True)
    with_graph, _ = score_and_output(NaNWhereZero(), modality, First(), masks)
    without, _ = score_and_output(NaNWhereZero(), modality, First(), masks, graph=False)
    assert with_graph.requires_grad and not without.requires_grad
    torch.testing.assert_close(without, with_graph.detach())
    torch.testing.assert_close(without, torch.log(torch.tensor([1.0, 1.0])))  # log(0.5 * 2)

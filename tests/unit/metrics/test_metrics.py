"""Metrics of explanation quality on toys whose values can be worked out by hand."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

from avxai import ClassLogit, TensorModality
from avxai.methods.base import Method, MethodConfig, new_explanation
from avxai.methods.gradients import SaliencyConfig, saliency
from avxai.metrics import (
    deletion_curve, dilate, insertion_curve, iou_at_truth_area, mass_in_mask, parameter_layers, pointing_game,
    randomisation_check, ranked_masks, trapezoid_auc,
)


class Additive(nn.Module):
    """``logit_0 = sum W x`` with non-negative weights: contributions ``W x`` are the exact attribution."""

    def __init__(self, weights):
        super().__init__()
        self.weights = nn.Parameter(weights.clone())

    def forward(self, x):
        s = (x[:, 0] * self.weights).sum(dim=(1, 2))
        return torch.stack([s, -s], dim=1)


@pytest.fixture
def additive():
    gen = torch.Generator().manual_seed(0)
    weights = torch.rand(5, 12, generator=gen) ** 3  # skewed: a few cells carry most of the score
    x = torch.rand(2, 1, 5, 12, generator=gen) + 0.1
    return Additive(weights), TensorModality(x, ("freq", "time")), weights * x[:, 0]


# -- deletion / insertion ------------------------------------------------------------------------------------
def test_ranked_masks_remove_or_keep_the_top_cells():
    attr = torch.tensor([[0.1, 0.9, 0.5, 0.7]])
    dele = ranked_masks(attr, [0, 1, 2, 4], "deletion")[:, 0]
    ins = ranked_masks(attr, [0, 1, 2, 4], "insertion")[:, 0]
    assert dele.tolist() == [[1, 1, 1, 1], [1, 0, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert ins.tolist() == (1 - dele).tolist()


def test_deletion_curve_matches_the_closed_form_of_an_additive_model(additive):
    model, modality, contrib = additive
    curve = deletion_curve(model, modality, ClassLogit(0), contrib, steps=6, normalise="none")
    flat = contrib.reshape(2, -1)
    ordered = flat.sort(dim=1, descending=True).values
    counts = [round(j / 6 * 60) for j in range(7)]
    expected = torch.stack([flat.sum(1) - ordered[:, :k].sum(1) for k in counts], dim=1).double()
    torch.testing.assert_close(curve.raw, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(curve.fractions, np.array(counts) / 60)
    np.testing.assert_allclose(curve.auc.numpy(), np.trapezoid(curve.raw.numpy(), curve.fractions, axis=1),
                               rtol=1e-12)


def test_perfect_attribution_beats_random_on_deletion_and_insertion(additive):
    model, modality, contrib = additive
    random = torch.rand(contrib.shape, generator=torch.Generator().manual_seed(1))
    kw = dict(steps=20, normalise="range")
    good_del = deletion_curve(model, modality, ClassLogit(0), contrib, **kw)
    bad_del = deletion_curve(model, modality, ClassLogit(0), random, **kw)
    good_ins = insertion_curve(model, modality, ClassLogit(0), contrib, **kw)
    bad_ins = insertion_curve(model, modality, ClassLogit(0), random, **kw)
    assert (good_del.auc < bad_del.auc - 0.2).all(), (good_del.auc, bad_del.auc)
    assert (good_ins.auc > bad_ins.auc + 0.2).all(), (good_ins.auc, bad_ins.auc)
    # range normalisation: 1 = the input, 0 = everything at the baseline
    torch.testing.assert_close(good_del.scores[:, 0], torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(good_del.scores[:, -1], torch.zeros(2, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(good_ins.scores[:, -1], torch.ones(2, dtype=torch.float64))
    # for an additive model the two curves of one ranking are mirror images: AUC_del + AUC_ins = 1
    torch.testing.assert_close(good_del.auc + good_ins.auc, torch.ones(2, dtype=torch.float64))


def test_curves_accept_an_explanation_and_check_shapes(additive):
    model, modality, contrib = additive
    expl = saliency(model, modality, ClassLogit(0), SaliencyConfig(absolute=False))
    from_expl = deletion_curve(model, modality, ClassLogit(0), expl, steps=5)
    from_tensor = deletion_curve(model, modality, ClassLogit(0), contrib, steps=5)
    torch.testing.assert_close(from_expl.auc, from_tensor.auc)  # saliency = W x exactly for this model
    with pytest.raises(ValueError, match="grid"):
        deletion_curve(model, modality, ClassLogit(0), contrib[:, :3])
    with pytest.raises(ValueError, match="> 0"):
        deletion_curve(model, modality, ClassLogit(1), contrib, normalise="unmasked")  # logit 1 is negative
    curve = deletion_curve(model, modality, ClassLogit(0), contrib, steps=5, normalise="unmasked")
    torch.testing.assert_close(curve.scores[:, 0], torch.ones(2, dtype=torch.float64))


def test_trapezoid_auc_of_a_line():
    f = np.linspace(0, 1, 11)
    torch.testing.assert_close(trapezoid_auc(f, torch.from_numpy(np.stack([1 - f, f]))), torch.tensor([0.5, 0.5], dtype=torch.float64))


# -- localisation against a truth -----------------------------------------------------------------------------
def test_mass_pointing_iou_on_a_hand_made_1d_map():
    attr = torch.tensor([[1.0, -2.0, 3.0, 0.0, 4.0]])
    truth = torch.tensor([[False, False, True, True, True]])
    assert mass_in_mask(attr, truth).item() == pytest.approx(7 / 8)  # positive mass 1 + 3 + 4, inside 3 + 4
    assert pointing_game(attr, truth).tolist() == [True]
    assert iou_at_truth_area(attr, truth).item() == pytest.approx(2 / 4)  # top 3 = {4, 2, 0}; {2, 4} / {0, 2, 3, 4}
    far = torch.tensor([[True, False, False, False, False]])
    assert pointing_game(attr, far).tolist() == [False]
    assert pointing_game(attr, far, tolerance=3).tolist() == [False]
    assert pointing_game(attr, far, tolerance=4).tolist() == [True]


def test_localisation_on_a_2d_map_with_a_batch():
    attr = torch.zeros(2, 6, 8)
    attr[0, 2, 3] = 5.0  # a peak inside the box
    attr[0, 5, 7] = 1.0  # a little mass outside
    attr[1, 0, 0] = 2.0  # input 1 points outside, two cells (diagonal) from the box corner
    attr[1, 3, 4] = 1.0
    truth = torch.zeros(6, 8, dtype=torch.bool)
    truth[2:4, 2:5] = True  # one truth for the whole batch (broadcast)
    torch.testing.assert_close(mass_in_mask(attr, truth), torch.tensor([5 / 6, 1 / 3], dtype=torch.float64))
    assert pointing_game(attr, truth).tolist() == [True, False]
    assert pointing_game(attr, truth, tolerance=2).tolist() == [True, True]
    iou = iou_at_truth_area(attr, truth)  # area 6: top 6 = the 2 positive cells + 4 zeros in grid order
    assert iou[0].item() == pytest.approx(1 / 11)  # {peak} of 6 truth cells, union 6 + 6 - 1
    assert iou[1].item() == pytest.approx(1 / 11)
    assert dilate(truth.unsqueeze(0), 1)[0].sum().item() == 4 * 5


def test_localisation_edge_cases():
    truth = torch.tensor([[True, True, False, False]])
    assert pointing_game(torch.ones(1, 4), truth).tolist() == [False]  # a tie with cells outside is no hit
    assert pointing_game(torch.tensor([[2.0, 2.0, 0.0, 0.0]]), truth).tolist() == [True]
    assert math.isnan(mass_in_mask(-torch.ones(1, 4), truth).item())  # no positive evidence at all
    assert mass_in_mask(torch.ones(1, 4), truth).item() == pytest.approx(0.5)  # uniform: the truth's area
    with pytest.raises(TypeError, match="boolean"):
        mass_in_mask(torch.ones(1, 4), truth.float())
    with pytest.raises(ValueError, match="empty"):
        pointing_game(torch.ones(1, 4), torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        iou_at_truth_area(torch.ones(1, 4), torch.ones(1, 5, dtype=torch.bool))


# -- randomisation sanity check -----------------------------------------------------------------------------
class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(2)
        self.conv = nn.Conv1d(5, 6, 3, padding=1)
        self.head = nn.Linear(6, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x):
        return self.head(torch.relu(self.conv(x[:, 0])).mean(dim=-1))


@dataclass(frozen=True)
class _InputConfig(MethodConfig):
    pass


class InputMagnitude(Method):
    """Not an explanation of the model at all: it shows the input (an 'edge detector')."""

    name = "input-magnitude"
    config_class = _InputConfig

    def explain(self, model, modality, scorer, config, unmasked):
        return new_explanation(self.name, modality, modality.grid().abs())


def test_randomisation_check_separates_model_dependent_maps():
    x = torch.rand(2, 1, 5, 16, generator=torch.Generator().manual_seed(3)) + 0.1
    modality = TensorModality(x, ("freq", "time"))
    model = TwoLayer()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    assert parameter_layers(model) == ["head", "conv"]
    result = randomisation_check(saliency, model, modality, ClassLogit(0), seed=0)
    assert result.layers == ["(none)", "head", "conv"]
    assert result.correlations.shape == (3, 2)
    np.testing.assert_allclose(result.correlations[0], 1.0)  # the unchanged copy gives the same map
    assert result.final() < 0.6, result.correlations
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is untouched
    assert torch.equal(rng, torch.get_rng_state())  # the global RNG is untouched
    again = randomisation_check(saliency, model, modality, ClassLogit(0), seed=0)
    np.testing.assert_array_equal(again.correlations, result.correlations)  # seeded
    blind = randomisation_check(InputMagnitude(), model, modality, ClassLogit(0), seed=0)
    np.testing.assert_allclose(blind.correlations, 1.0)  # a map that ignores the model fails the check
    absolute = randomisation_check(saliency, model, modality, ClassLogit(0), layers=["head"], absolute=True,
                                   include_unchanged=False)
    assert absolute.layers == ["head"] and absolute.absolute
    with pytest.raises(ValueError, match="no layer 'body'"):
        randomisation_check(saliency, model, modality, ClassLogit(0), layers=["body"])
    with pytest.raises(TypeError, match="get_method"):
        randomisation_check("saliency", model, modality, ClassLogit(0))


def test_randomising_the_whole_model_at_once_reuses_a_reference():
    x = torch.rand(1, 1, 5, 16, generator=torch.Generator().manual_seed(4)) + 0.1
    modality = TensorModality(x, ("freq", "time"))
    model = TwoLayer()
    reference = saliency(model, modality, ClassLogit(0)).attribution
    full = randomisation_check(saliency, model, modality, ClassLogit(0), layers=[""], seed=1,
                               include_unchanged=False, reference=reference, keep_attributions=True)
    cascade = randomisation_check(saliency, model, modality, ClassLogit(0), seed=1, include_unchanged=False)
    assert full.layers == ["(all)"] and full.correlations.shape == (1, 1)
    assert full.final() < 0.6
    assert not torch.equal(full.attributions[0], reference)
    assert np.isfinite(cascade.final())
    with pytest.raises(ValueError, match="reference has shape"):
        randomisation_check(saliency, model, modality, ClassLogit(0), layers=[""], reference=reference[:, :2])


def test_segment_mass_finds_the_time_axis_by_name():
    """The same evidence on a (freq, time) grid and on its (time, freq) transpose gives the same shares."""
    from avxai.explanation import Explanation
    from avxai.metrics.localisation import segment_mass

    times = np.arange(10) * 0.1
    attr = torch.zeros(1, 3, 10)
    attr[0, :, 2:5] = 1.0  # evidence in frames 0.2-0.4 s
    segments = [{"start_s": 0.15, "end_s": 0.45, "label": "A"}, {"start_s": 0.5, "end_s": 1.0, "label": "B"}]

    def explanation(a, axes):
        return Explanation(method="toy", attribution=a, grid=a.clone(), axes=axes, coordinates={"time": times},
                           metadata={"segments": segments})

    last = segment_mass(explanation(attr, ("freq", "time")))
    first = segment_mass(explanation(attr.transpose(1, 2).contiguous(), ("time", "freq")))
    assert last == first and last["A"]["positive"] == [1.0] and last["B"]["positive"] == [0.0]
    assert segment_mass(explanation(attr, ("freq", "band"))) == {}  # no time axis: nothing to measure

"""Extremal perturbation that a model cannot fool (issue 16): the noise-floor perturbation against a model that
scores isolated blobs of noise, the reward's saturation, and the warnings an expert wants (preserved score far
above the unmasked one, area off target, ill-conditioned reward, NaN gradients held still and reported).

Tolerances: speech share at area 0.2 <= 0.3 for the old objective (zero perturbation, no saturation) and >= 0.9 for
the new one on the fooling toy (tests/toys/fooling.py: the speech is 0.25 of the grid, so a mask of area 0.2
can hold 1.0 of its mass there).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avxai import ClassLogit
from avxai.methods.base import ExplanationWarning
from avxai.methods.extremal import ExtremalConfig, extremal
from avxai.perturbations import Floor, GridInfo, parse_perturbation
from toys.extremal import GridToy, RegionSum, positive_input, region_fraction
from toys.fooling import SPEECH, OnsetBait, fooling_input

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, a shared CPU

FAST = dict(areas=(0.2,), iterations=120, step=2, sigma=2.0)


def run(model, x, perturbation=None, **config):
    return extremal(model, GridToy(x, perturbation=perturbation or "zero"), ClassLogit(0),
                    ExtremalConfig(**{**FAST, **config}))


# -- the fooling toy: the old objective keeps the noise blobs, the new one the speech -------------------
def test_old_objective_is_fooled_by_noise_blobs_and_the_new_one_is_not():
    x = fooling_input()
    with pytest.warns(ExplanationWarning):  # the old run: the preserved input scores above the real one
        old = run(OnsetBait(bait=3.0), x, "zero", saturation=None)
    new = run(OnsetBait(bait=3.0), x, "floor", saturation=1.0)
    old_share = float(region_fraction(old.masks, (SPEECH,)))
    new_share = float(region_fraction(new.masks, (SPEECH,)))
    assert old_share <= 0.3, old_share  # the masks sit on blobs of the floor in the pauses
    assert new_share >= 0.9, new_share  # the masks sit on the speech
    assert float(new.scores["preserved"][0, 0]) <= 1.25 * float(new.scores["unmasked"][0])
    assert not new.metadata["warnings"]
    assert any("exceeds the unmasked" in w for w in old.metadata["warnings"])


def test_the_floor_perturbation_alone_closes_the_loophole():
    floor = run(OnsetBait(bait=3.0), fooling_input(), "floor", saturation=None)
    assert float(region_fraction(floor.masks, (SPEECH,))) >= 0.9


def test_saturation_stops_the_reward_at_the_unmasked_score():
    x = fooling_input()
    expl = run(OnsetBait(bait=3.0), x, "zero", saturation=1.0, iterations=40)
    unmasked = float(expl.scores["unmasked"][0])
    reward = expl.history["reward"][:, 0, 0]
    removed = expl.metadata["removed_score"][0]
    assert float(reward.max()) <= 1.0 + 1e-5  # (min(score, s1) - s0) / (s1 - s0) never above 1 ...
    raw = (expl.history["score"][:, 0, 0] - removed) / (unmasked - removed)
    assert float(raw.max()) > 1.05  # ... although the raw preserved score went above the unmasked one


# -- warnings ------------------------------------------------------------------------------------------
def test_area_off_target_warns():
    with pytest.warns(ExplanationWarning, match="area off its target"):
        expl = run(OnsetBait(), fooling_input(), iterations=3)
    assert any("area off its target" in w for w in expl.metadata["warnings"])


class BarelyMoves(nn.Module):
    """Class 0 = 1 + 1e-3 * mean(x): the score barely depends on the input."""

    def forward(self, x):
        score = 1.0 + 1e-3 * x.flatten(1).mean(dim=1)
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def test_ill_conditioned_reward_warns():
    with pytest.warns(ExplanationWarning, match="ill-conditioned"):
        expl = run(BarelyMoves(), positive_input((32,)), iterations=20)
    assert any("ill-conditioned" in w for w in expl.metadata["warnings"])


class ChunkNorm(nn.Module):
    """Class 0 = mean over chunks of 8 cells of the chunk's L2 norm: sqrt(0) on a fully zeroed chunk, whose
    gradient is NaN (0 * inf), as in a model on a fully silent 32 ms chunk."""

    def forward(self, x):
        chunks = x.mean(dim=1).unflatten(1, (-1, 8))
        score = chunks.square().sum(dim=2).sqrt().mean(dim=1)
        return torch.stack([score, torch.zeros_like(score)], dim=1)


def test_nan_mask_gradient_on_zeroed_chunks_is_held_still_and_reported_and_floor_avoids_it():
    x = positive_input((64,))
    x[..., 16:24] = 0.0  # a digitally silent chunk: its norm's gradient is NaN whatever the mask keeps of it
    with pytest.warns(ExplanationWarning, match="mask's gradient was NaN"):
        expl = run(ChunkNorm(), x, "zero", areas=(0.1,), step=1, sigma=1.0)
    assert torch.isfinite(expl.masks).all() and torch.isfinite(expl.attribution).all()
    assert expl.metadata["nonfinite_gradient_cells"] > 0
    floor = run(ChunkNorm(), x, "floor", areas=(0.1,), step=1, sigma=1.0)
    assert floor.metadata["nonfinite_gradient_cells"] == 0


def test_config_checks_the_new_fields():
    for field, value in (("saturation", 0.5), ("saturation", float("inf")), ("warn_above", 0.9),
                         ("area_tolerance", 1.0), ("ill_conditioned", -0.1)):
        with pytest.raises(ValueError, match=field):
            ExtremalConfig(**{field: value})


# -- the floor perturbation ---------------------------------------------------------------------------------
def test_floor_is_the_rms_of_the_quietest_frames_and_never_exact_silence():
    x = torch.ones(1, 1, 4, 20)
    x[..., 5:7] = 0.1  # the two quietest frames (quantile 0.1 of 20)
    base = parse_perturbation("floor").prepare(x, GridInfo(("freq", "time"), nonnegative=True)).baseline
    assert torch.allclose(base, torch.full_like(x, 0.1))
    silent = torch.ones(1, 1, 4, 20)
    silent[..., :4] = 0.0  # digitally silent pauses: the floor is the input's mean power 60 dB down
    base = Floor().prepare(silent, GridInfo(("freq", "time"), nonnegative=True)).baseline
    assert torch.allclose(base, torch.full_like(x, (0.8 * 1e-6) ** 0.5))
    noise = parse_perturbation("floor-noise").prepare(x, GridInfo(("freq", "time"), nonnegative=True)).baseline
    assert noise.shape == x.shape and (noise >= 0).all() and not torch.equal(noise, base)
    with pytest.raises(ValueError, match="time"):
        Floor().prepare(torch.ones(1, 3, 8, 8), GridInfo(("height", "width")))


# -- masks along chosen axes only ----------------------------------------------------------------------------
def test_mask_axes_time_gives_masks_constant_across_frequency_that_find_the_frames():
    grid, frames = (12, 64), slice(16, 40)
    region = (slice(None), frames)  # every frequency row of frames 16-39: a question about *when*
    expl = extremal(RegionSum(grid, region), GridToy(positive_input(grid)), ClassLogit(0),
                    ExtremalConfig(areas=(0.375,), iterations=120, step=2, sigma=2.0, mask_axes="time"))
    masks = expl.masks[0, 0]
    assert torch.equal(masks, masks[:1].expand_as(masks))  # the same value in every frequency row
    assert float(region_fraction(expl.masks, region)) >= 0.9
    assert expl.metadata["mask_axes"] == ["time"]
    with pytest.raises(ValueError, match="not axes of this"):
        extremal(RegionSum(grid, region), GridToy(positive_input(grid)), ClassLogit(0),
                 ExtremalConfig(iterations=2, mask_axes=("height",)))

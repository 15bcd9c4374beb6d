"""The gradient methods' plans: the batch of SmoothGrad / integrated gradients sized from the memory budget (maps
equal to the unbatched ones), an explicit batch honoured, and a row of the whole input over the budget said in
``row_bytes`` so that a long input is explained in segments (:func:`avxai.methods.plan.auto_segment_seconds`)."""

import dataclasses

import pytest
import torch
from toys.segments import RATE, ToneSpeaker, noise_with_tone

from avxai.methods import get_method
from avxai.methods.plan import RowPlan, auto_segment_seconds, plan_run
from avxai.tasks import get_task

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def problem():
    task = get_task("speaker")
    return task.build(ToneSpeaker(), task.options_class(input=noise_with_tone(2.0, (0.6, 1.2)), sample_rate=RATE))


def settings(name):
    return {"smoothgrad": {"samples": 6, "noise_on": "mask", "noise": 0.1}, "integrated-gradients": {"steps": 6, "rule": "riemann_middle"}}[name]


@pytest.mark.parametrize("name", ["smoothgrad", "integrated-gradients"])
def test_a_small_budget_sizes_the_batch_and_the_map_equals_the_unbatched_one(problem, name):
    method = get_method(name)
    config = dataclasses.replace(method.config_class(), **settings(name))
    assert config.batch_size is None  # the default: from the budget
    _, big = plan_run(method, problem.model, problem.modality, config, budget=1 << 30)
    row = big.row_bytes
    assert isinstance(big, RowPlan) and row > 0 and big.batch == 6 and big.notes == []
    planned, plan = plan_run(method, problem.model, problem.modality, config, budget=int(2.5 * row))
    assert planned.batch_size == plan.batch == 2  # two rows with their activations fit
    assert plan.passes == (3 if name == "smoothgrad" else 3 + 1)  # IG: 6 path points, then its 2 ends
    assert "batch sized from the budget" in plan.line()
    small = method(problem.model, problem.modality, problem.scorer, planned)
    whole = method(problem.model, problem.modality, problem.scorer, dataclasses.replace(config, batch_size=64))
    assert small.metadata["batch_size"] == 2 and whole.metadata["batch_size"] == 64
    torch.testing.assert_close(small.attribution, whole.attribution, rtol=1e-5, atol=1e-7)
    given, _ = plan_run(method, problem.model, problem.modality, dataclasses.replace(config, batch_size=3),
                        budget=int(2.5 * row))
    assert given.batch_size == 3  # an explicit batch is honoured


@pytest.mark.parametrize("name", ["saliency", "smoothgrad", "integrated-gradients", "gradcam"])
def test_a_row_over_the_budget_asks_for_segments(problem, name):
    method = get_method(name)
    config = method.config_class(**settings(name)) if name in ("smoothgrad", "integrated-gradients") else \
        method.config_class()
    _, fits = plan_run(method, problem.model, problem.modality, config, budget=1 << 30)
    assert auto_segment_seconds(fits, 2.0) is None
    budget = fits.row_bytes // 2  # one row of 2 s needs twice the budget: 1 s with its context does not fit
    _, plan = plan_run(method, problem.model, problem.modality, config, budget=budget)
    assert plan.row_bytes == fits.row_bytes and plan.batch == 1 and "over the budget" in plan.line()
    assert auto_segment_seconds(plan, 2.0) == 1.0  # the shortest choice
    # a 60-s input whose 60-s row is 10x the budget: segments of 5 s (5 s + 2 x 0.5 s context <= 6 s)
    long = dataclasses.replace(plan, row_bytes=10 * plan.budget)
    assert auto_segment_seconds(long, 60.0) == 5.0


@pytest.mark.parametrize("name", ["smoothgrad", "integrated-gradients"])
def test_one_pass_of_masks_and_gradients_is_alive_at_a_time(problem, name, monkeypatch):
    """SmoothGrad's copies and IG's path points are made and summed pass by pass (a long input's 16 or 33 rows of
    masks, noise and gradients are never all kept)."""
    from avxai.methods import gradients

    seen, real = [], gradients.mask_gradients

    def spy(model, modality, scorer, masks, **kw):
        seen.append(masks.shape[0])
        return real(model, modality, scorer, masks, **kw)

    monkeypatch.setattr(gradients, "mask_gradients", spy)
    method = get_method(name)
    config = dataclasses.replace(method.config_class(), **settings(name), batch_size=4)
    e = method(problem.model, problem.modality, problem.scorer, config)
    assert seen == [4, 2] and e.attribution.shape == (1, *problem.modality.grid_shape)

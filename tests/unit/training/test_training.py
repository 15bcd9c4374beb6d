"""avxai.training: the budgeted loop, its schedule, the losses, BatchNorm re-estimation, the recipe plumbing and
saving through the model registry."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from avxai.models.enhancement import EnhancerConfig, MaskingEnhancer
from avxai.scorers.sdr import si_sdr
from avxai.training import (
    Budget, TrainingConfig, best_permutation, check_reproduced, neg_si_sdr, neg_snr, parse_train_args,
    pit_neg_si_sdr, recalibrate_batch_norm, save_and_reload, start_run, sub_config, summarise, train_steps,
    warmup_cosine,
)

REPO = Path(__file__).resolve().parents[3]


def _toy(seed: int = 0):
    """A 1x1 convolution learning to halve its input, the target with noise 20 dB below it (so the best
    loss is about -20 dB): (model, optimizer, next_batch)."""
    torch.manual_seed(seed)
    model = nn.Conv1d(1, 1, 1)
    rng = np.random.default_rng(seed)

    def next_batch():
        x = torch.from_numpy(rng.standard_normal((4, 1, 64)).astype(np.float32))
        noise = torch.from_numpy(rng.standard_normal((4, 1, 64)).astype(np.float32))
        return x, 0.5 * x + 0.05 * noise
    return model, torch.optim.Adam(model.parameters(), lr=0.02), next_batch


# ---------------------------------------------------------------------------------------------
# budget and schedule
# ---------------------------------------------------------------------------------------------
def test_the_loop_stops_after_its_steps_and_logs_every_n_and_the_last(capsys):
    model, opt, batches = _toy()
    run = train_steps(model, opt, batches, neg_snr, Budget(7), log_every=3, loss_label="-SNR dB")
    assert run.steps == 7
    assert [row["step"] for row in run.history] == [3, 6, 7]
    assert set(run.history[0]) == {"step", "loss", "seconds"}
    assert "step 7/7 loss (-SNR dB)" in capsys.readouterr().out


def test_the_loop_stops_at_its_wall_clock_budget(capsys):
    model, opt, batches = _toy()

    def slow_batch():
        time.sleep(0.02)
        return batches()
    run = train_steps(model, opt, slow_batch, neg_snr, Budget(10_000, max_wall_s=0.1), log_every=1000)
    assert 1 <= run.steps < 50  # ~5 steps of >= 20 ms fit in 0.1 s
    assert run.wall_s >= 0.1
    assert f"time budget reached after {run.steps} steps" in capsys.readouterr().out
    assert run.history == []  # no row is due before the budget runs out


def test_budget_progress_is_the_largest_spent_share():
    b = Budget(100, max_cpu_s=10.0, max_wall_s=20.0)
    assert b.progress(50, 1.0, 1.0) == 0.5
    assert b.progress(10, 6.0, 1.0) == 0.6
    assert b.progress(10, 1.0, 16.0) == 0.8
    assert Budget(4).progress(3, 1e9, 1e9) == 0.75  # no time limits by default
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        Budget(0)
    with pytest.raises(ValueError, match="max_cpu_s and max_wall_s must be > 0"):
        Budget(5, max_wall_s=0.0)


@pytest.mark.parametrize("step,progress,expected", [
    (0, 0.0, 0.002 / 20), (9, 0.1, 0.002 * 10 / 20 * 0.5 * (1 + math.cos(math.pi * 0.1))),
    (19, 0.5, 0.001), (50, 0.5, 0.001), (99, 1.0, 0.0),
])
def test_warmup_cosine_follows_its_formula(step, progress, expected):
    assert warmup_cosine(step, progress, lr=0.002, warmup_steps=20) == pytest.approx(expected, abs=1e-15)


def test_the_loop_sets_the_scheduled_learning_rate_before_each_step():
    model, opt, batches = _toy()
    cfg = TrainingConfig(steps=5, lr=0.01, warmup_steps=2)
    seen = []

    def batch():
        seen.append(opt.param_groups[0]["lr"])
        return batches()
    train_steps(model, opt, batch, neg_snr, cfg.budget(), lr_at=cfg.warmup_cosine)
    # the CPU and wall shares are tiny next to no limit at all: progress = step / steps
    assert seen == pytest.approx([warmup_cosine(s, s / 5, lr=0.01, warmup_steps=2) for s in range(5)], rel=1e-12)


def test_a_torch_scheduler_steps_after_each_optimiser_step():
    model, opt, batches = _toy()
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train_steps(model, opt, batches, neg_snr, Budget(3), scheduler=sched)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.02 / 8)


def test_a_tiny_model_learns_the_toy_problem():
    model, opt, batches = _toy()
    cfg = TrainingConfig(steps=90, lr=0.02, warmup_steps=5, log_every=30)  # the recipes' schedule
    run = train_steps(model, opt, batches, neg_snr, cfg.budget(), lr_at=cfg.warmup_cosine, log_every=cfg.log_every)
    losses = [row["loss"] for row in run.history]
    assert losses[0] > losses[1] > losses[2] and losses[2] < losses[0] - 10  # dB of SNR gained
    assert losses[2] > -21  # no better than the noise allows
    assert model.weight.item() == pytest.approx(0.5, abs=0.05)


def test_training_is_reproducible_under_a_seed():
    def weights():
        model, opt, batches = _toy(seed=3)
        train_steps(model, opt, batches, neg_snr, Budget(5), clip_grad_norm=1.0)
        return torch.cat([p.detach().flatten() for p in model.parameters()])
    assert torch.equal(weights(), weights())


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------
def test_neg_si_sdr_is_minus_the_scorers_si_sdr():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(3, 2, 400, generator=g, dtype=torch.float64)
    est = ref + 0.3 * torch.randn(3, 2, 400, generator=g, dtype=torch.float64)
    assert neg_si_sdr(est, ref).item() == pytest.approx(-si_sdr(est, ref).mean().item(), rel=1e-12)
    assert neg_si_sdr(ref, ref).item() < -100  # a perfect estimate


def test_pit_loss_and_best_permutation_ignore_the_output_order():
    g = torch.Generator().manual_seed(1)
    src = torch.randn(4, 3, 300, generator=g, dtype=torch.float64)
    est = src + 0.2 * torch.randn(4, 3, 300, generator=g, dtype=torch.float64)
    swapped = est[:, [2, 0, 1]]
    assert pit_neg_si_sdr(swapped, src).item() == pytest.approx(pit_neg_si_sdr(est, src).item(), rel=1e-12)
    assert pit_neg_si_sdr(est, src).item() == pytest.approx(-si_sdr(est, src).mean().item(), rel=1e-12)
    assert torch.equal(best_permutation(swapped, src), est)
    with pytest.raises(ValueError, match=r"\(batch, sources, time\)"):
        pit_neg_si_sdr(est[:, :2], src)


def test_neg_snr_is_minus_the_snr_in_db():
    clean = torch.ones(2, 1, 100)
    est = clean + 0.1  # error power 1 % of the signal's: 20 dB
    assert neg_snr(est, clean).item() == pytest.approx(-20.0, abs=1e-4)


# ---------------------------------------------------------------------------------------------
# BatchNorm, evaluation helpers
# ---------------------------------------------------------------------------------------------
def test_batch_norm_statistics_are_re_estimated_and_momentum_restored():
    model = nn.Sequential(nn.Conv1d(1, 2, 1), nn.BatchNorm1d(2))
    model[1].running_mean.fill_(100.0)
    g = torch.Generator().manual_seed(0)
    batches = [3.0 + torch.randn(8, 1, 50, generator=g) for _ in range(4)]
    it = iter(batches)
    before = [p.clone() for p in model.parameters()]
    assert recalibrate_batch_norm(model, lambda: (next(it), None), 4) == 1
    assert not model.training and model[1].momentum == 0.1
    with torch.no_grad():
        feats = torch.cat([model[0](b) for b in batches])
    assert torch.allclose(model[1].running_mean, feats.mean(dim=(0, 2)), atol=1e-5)  # the average of the batches
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_summarise_gives_means_overall_and_per_group_in_first_seen_order():
    rows = {"a": torch.tensor([1.0, 2.0, 3.0, 5.0]), "b": torch.tensor([0.0, 0.0, 1.0, 1.0])}
    assert summarise(rows) == {"a": 2.75, "b": 0.5}
    assert summarise(rows, ["y", "x", "y", "x"]) == {"y": {"a": 2.0, "b": 0.5}, "x": {"a": 3.5, "b": 0.5}}
    with pytest.raises(RuntimeError, match="does not reproduce"):
        check_reproduced("sdr_out", 1.0, 1.1, 1e-3)
    check_reproduced("sdr_out", 1.0, 1.0005, 1e-3)


# ---------------------------------------------------------------------------------------------
# configs and recipe options
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _RecipeConfig(TrainingConfig, EnhancerConfig):
    noise: float = 0.1


def test_a_recipe_config_is_the_loops_fields_plus_its_own(tmp_path):
    recipe = tmp_path / "recipes" / "toy"
    recipe.mkdir(parents=True)
    (recipe / "config.yaml").write_text("steps: 40\nhidden: 12\nmax_wall_s: 90\n")
    cfg, args = parse_train_args(_RecipeConfig, ["--set", "noise=0.5", "--seed", "3", "--threads", "2"], recipe,
                                 doc=None, debug={"steps": 2})
    assert (cfg.steps, cfg.hidden, cfg.noise, cfg.seed, cfg.threads, cfg.max_wall_s) == (40, 12, 0.5, 3, 2, 90.0)
    assert cfg.budget() == Budget(40, math.inf, 90.0)
    assert args.out == tmp_path / "avxai-out" / "toy_train" and args.assets == tmp_path / "avxai" / "assets" / "toy"
    debug, args = parse_train_args(_RecipeConfig, ["--debug", "--out", str(tmp_path / "o")], recipe, doc=None,
                                   debug={"steps": 2})
    assert debug.steps == 2 and args.assets == tmp_path / "o" / "assets"
    assert sub_config(EnhancerConfig, cfg) == EnhancerConfig(hidden=12)
    with pytest.raises(SystemExit):
        parse_train_args(_RecipeConfig, ["--set", "stepz=3"], recipe, doc=None, debug={})
    with pytest.raises(ValueError, match="warmup_steps must be >= 1"):
        TrainingConfig(warmup_steps=0)


def test_start_run_seeds_torch_and_returns_the_data_generator(restore_threads):
    rng = start_run(5, 1)
    a = torch.rand(3)
    assert torch.get_num_threads() == 1
    assert rng.integers(1 << 30) == np.random.default_rng([5, 0]).integers(1 << 30)
    start_run(5, 1)
    assert torch.equal(torch.rand(3), a)


# ---------------------------------------------------------------------------------------------
# saving through the registry
# ---------------------------------------------------------------------------------------------
def test_saving_through_the_registry_round_trips(tmp_path):
    torch.manual_seed(0)
    model = MaskingEnhancer(EnhancerConfig(hidden=8, dilations=(1, 2))).eval()
    ckpt, reloaded = save_and_reload(model, tmp_path / "enh.pt", architecture="enhancer", kwargs=model.config,
                                     extra={"metrics": {"sdr": 1.5}})
    doc = json.loads(ckpt.with_suffix(".json").read_text())
    assert doc["architecture"] == "enhancer" and doc["model"]["hidden"] == 8 and doc["metrics"] == {"sdr": 1.5}
    assert isinstance(reloaded, MaskingEnhancer) and not reloaded.training
    state, again = model.state_dict(), reloaded.state_dict()
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
    x = torch.randn(1, 1, 800)
    with torch.no_grad():
        assert torch.equal(model(x), reloaded(x))


# ---------------------------------------------------------------------------------------------
# the recipes' --debug runs (the speaker recipe's is in test_speaker_model.py)
# ---------------------------------------------------------------------------------------------
def _recipe(name: str, monkeypatch):
    """``recipes/<name>/train.py`` as a module (registered in ``sys.modules``: dataclasses look it up there)."""
    spec = importlib.util.spec_from_file_location(f"{name}_train", REPO / "recipes" / name / "train.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # a few seconds each
@pytest.mark.parametrize("recipe,checkpoint", [("enhancement", "enhancer.pt"), ("separation", "convtasnet.pt"),
                                               ("av_enhancement", "av_enhancer.pt")])
def test_recipe_debug_run(recipe, checkpoint, tmp_path, monkeypatch, restore_threads):
    mod = _recipe(recipe, monkeypatch)
    metrics = mod.main(["--debug", "--out", str(tmp_path)])
    assert metrics["steps_done"] == mod.DEBUG_OVERRIDES["steps"]
    doc = json.loads((tmp_path / "assets" / checkpoint).with_suffix(".json").read_text())
    assert doc["architecture"] and doc["train"]["steps"] == metrics["steps_done"]
    assert json.loads((tmp_path / "metrics.json").read_text())["heldout"] == metrics["heldout"]

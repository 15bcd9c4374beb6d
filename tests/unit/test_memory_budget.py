"""Memory-aware batching: budgets, the batch a budget allows, rows in chunks with recomputed activations, the
plan printed before a run (avxai.memory, avxai.methods.plan)."""

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from avxai import ExtremalConfig, OcclusionConfig, Scorer, Spectrogram, extremal, occlusion
from avxai.cli import main
from avxai.memory import (DEFAULT_BUDGET, FootprintRecorder, RowChunks, batch_for_budget, current_budget,
                          measure_forward, memory_budget, parse_size, row_need, rows_within_budget)
from avxai.methods import get_method
from avxai.methods.plan import plan_run
from toys.models import FRAMES, FREQ_BAND, RegionEnergy, tone_in_noise

SR = 16000


class First(Scorer):
    units = "a.u."

    def __call__(self, output):
        return output[:, 0]


class WideConv(nn.Module):
    """A waveform model with wide activations (64 channels per sample): one row needs megabytes with gradients.
    Logit 0: energy of the first 64-channel conv's output in samples 4000-8000; logit 1: 0."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(1, 64, 9, padding=4)
        self.mix = nn.Conv1d(64, 8, 1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        h = torch.tanh(self.mix(torch.relu(self.conv(x))))
        score = h[:, :, 4000:8000].pow(2).mean(dim=(1, 2))
        return torch.stack([score, torch.zeros_like(score)], dim=1)


@pytest.mark.parametrize("text, expected", [("2G", 2 << 30), ("1.5GiB", 3 << 29), ("512M", 512 << 20),
                                            ("800MB", 800 << 20), ("3000000", 3000000), (4 << 20, 4 << 20)])
def test_sizes_parse_in_binary_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["two gigs", "-1G", "10K", "", "1.2.3G"])
def test_a_bad_size_says_how_to_write_one(text):
    with pytest.raises(ValueError, match="memory"):
        parse_size(text)


def test_the_budget_is_set_for_a_block_and_restored():
    default = current_budget()
    assert 64 << 20 <= default <= DEFAULT_BUDGET
    with memory_budget("100M") as budget:
        assert budget == current_budget() == 100 << 20
        with memory_budget(None):
            assert current_budget() == default
    assert current_budget() == default


def test_batch_for_budget_fits_the_budget_in_multiples_of_the_inputs():
    assert batch_for_budget(10, 95) == 9
    assert batch_for_budget(10, 95, cap=4) == 4
    assert batch_for_budget(10, 95, multiple=2) == 8
    assert batch_for_budget(10, 5, multiple=3) == 3  # at least one perturbed input per input


def test_measure_forward_sees_every_module_output_per_input():
    model = nn.Sequential(nn.Linear(100, 1000), nn.Linear(1000, 10)).train()
    foot = measure_forward(model, torch.zeros(2, 100), rows=2)
    assert foot.largest == 4000 and foot.total == 4000 + 40 + 40  # the Sequential's own output counted too
    assert foot.per_input(grad=False) == 8000 and foot.per_input(grad=True) == 4080 + 8000
    assert model.training and foot.seconds >= 0


def test_row_chunks_give_the_models_outputs_and_gradients_and_recompute_activations():
    model = WideConv()
    x = torch.randn(5, 1, 12000)
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    out = model(xs[0])
    out[:, 0].sum().backward()
    chunked = RowChunks(model, 2)
    model.calls = 0
    out_c = chunked(xs[1])
    out_c[:, 0].sum().backward()
    assert model.calls == 6  # 3 chunks forward, and again in the backward pass: their activations were not kept
    torch.testing.assert_close(out_c, out, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(xs[1].grad, xs[0].grad, rtol=1e-4, atol=1e-7)
    with torch.no_grad():  # without gradients: chunks, no recomputation
        model.calls = 0
        torch.testing.assert_close(chunked(x), out.detach(), rtol=1e-5, atol=1e-6)
        assert model.calls == 3


def test_rows_within_budget_chunks_only_what_does_not_fit():
    model = WideConv()
    wav = tone_in_noise(seconds=0.75)
    mod = Spectrogram(wav, SR, n_fft=256, hop_length=64)
    assert rows_within_budget(model, mod, 4, budget=1 << 30) == (model, mod)
    chunked, view = rows_within_budget(model, mod, 4, budget=8 << 20)  # one row needs ~8 MB with gradients
    assert isinstance(chunked, RowChunks) and 1 <= chunked.chunk < 4
    assert "at a time" in chunked.plan_note
    masks = torch.rand(4, *mod.grid_shape)  # the chunked model perturbs: the same scores as model(perturb)
    with torch.no_grad():
        torch.testing.assert_close(chunked(view.perturb(masks)), model(mod.perturb(masks)), rtol=1e-5, atol=1e-6)
    assert view.grid_shape == mod.grid_shape


def test_a_recorded_pass_of_a_perturbed_input_measures_a_row_as_row_need_does():
    model = WideConv()
    mod = Spectrogram(tone_in_noise(seconds=0.75), SR, n_fft=256, hop_length=64)
    with FootprintRecorder(model, rows=1) as seen, torch.inference_mode():
        model(mod.perturb(torch.zeros(1, *mod.grid_shape)))
    assert seen.input_bytes == 12000 * 4  # the waveform of 0.75 s
    assert seen.row_need() == row_need(model, mod)[0] > 2 * 64 * 12000 * 4
    model(torch.zeros(1, 1, 100))
    assert len(seen.sizes) == 3  # the hooks are gone after the block


def test_extremal_makes_its_iterations_and_three_scoring_passes_the_last_step_without_a_graph():
    model = WideConv()
    grad = []
    model.register_forward_pre_hook(lambda module, args: grad.append(torch.is_grad_enabled()))
    extremal(model, Spectrogram(tone_in_noise(seconds=0.75), SR, n_fft=256, hop_length=64), First(),
             ExtremalConfig(areas=(0.1, 0.3), iterations=5))
    # unmasked, fully removed (it also measures the memory), 5 iterations, the final masks' complements
    assert len(grad) == 5 + 3
    assert sum(grad) == 4  # the 5th iteration's pass only scores the final masks: no graph, as no backward follows


def test_extremal_under_a_small_budget_finds_the_same_masks():
    wav = tone_in_noise(seconds=0.75)
    config = ExtremalConfig(areas=(0.1, 0.3), iterations=6)
    expected = extremal(WideConv(), Spectrogram(wav, SR, n_fft=256, hop_length=64), First(), config)
    with memory_budget("8M"):
        model = WideConv()
        got = extremal(model, Spectrogram(wav, SR, n_fft=256, hop_length=64), First(), config)
    torch.testing.assert_close(got.masks, expected.masks, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got.history["reward"], expected.history["reward"], rtol=1e-4, atol=1e-5)


def test_occlusion_sizes_its_batches_from_the_budget_and_finds_the_same_map():
    wav = tone_in_noise(seconds=0.3)
    mod = Spectrogram(wav, SR, n_fft=256, hop_length=64, model_input="magnitude")
    cfg = dict(window=(4, 4), stride=(4, 4))
    full = occlusion(RegionEnergy(), mod, First(), OcclusionConfig(batch_size=32, **cfg))
    with memory_budget("1M"):  # one perturbed input: ~ 4 x 129 x 76 cells x 4 bytes x 1.5
        small = occlusion(RegionEnergy(), mod, First(), OcclusionConfig(**cfg))
    assert small.metadata["batch_size"] < 32 and full.metadata["batch_size"] == 32
    torch.testing.assert_close(small.attribution, full.attribution)
    attr = small.attribution[0]
    f, t = divmod(int(attr.argmax()), attr.shape[1])
    assert FREQ_BAND.start - 4 < f < FREQ_BAND.stop + 4 and FRAMES.start - 4 < t < FRAMES.stop + 4


def test_the_plan_says_the_work_the_batches_and_the_choice():
    wav = tone_in_noise(seconds=0.75)
    mod = Spectrogram(wav, SR, n_fft=256, hop_length=64)
    config, plan = plan_run(get_method("occlusion"), WideConv(), mod, OcclusionConfig(window=(43, 47), stride=(43, 47)),
                            budget=8 << 20)
    assert plan.line().startswith("plan: occlusion, 12 windows in ") and config.batch_size == plan.batch
    assert 1 <= plan.batch < 12 and "budget" in plan.notes[0]
    config, plan = plan_run(get_method("extremal"), WideConv(), mod, ExtremalConfig(iterations=50), budget=8 << 20)
    assert "50 iterations x 4 masks" in plan.line() and "at a time" in plan.line() and plan.seconds > 0


def test_the_cli_prints_the_plan_and_takes_max_memory(tmp_path, capsys):
    wav = tmp_path / "in.wav"
    sf.write(wav, tone_in_noise(seconds=1.0)[0, 0].numpy().astype(np.float32), SR)
    code = main(["explain", "--task", "speaker", "--input", str(wav), "--out", str(tmp_path / "out"),
                 "--window", "65,32", "--max-memory", "64M", "--device", "cpu"])
    assert code == 0
    err = capsys.readouterr().err
    assert "plan: occlusion, " in err and "of a 64.0 MiB budget" in err
    with pytest.raises(SystemExit):
        main(["explain", "--task", "speaker", "--input", str(wav), "--out", str(tmp_path / "o2"),
              "--max-memory", "lots"])
    assert "--max-memory: a memory size is a number with a unit" in capsys.readouterr().err
    assert main(["explain", "--task", "speaker", "--input", str(wav), "--out", str(tmp_path / "o3"),
                 "--device", "nonsense"]) == 2
    assert "--device 'nonsense' is not a device" in capsys.readouterr().err

"""Extremal perturbation: toy models with a known relevant region in 1-D, 2-D (spectrogram) and 3-D grids (the
mask side alone: test_smooth_mask.py beside it).

Tolerances: at an area equal to the region's area at least 90% of the mask mass lies inside the region
(the smooth masks spill a little over the region's edges: sigma <= 1 cell here); final mask areas within
0.03 of the requested areas.
"""

from __future__ import annotations

import pytest
import torch

from avxai import ClassLogit, Explanation, Spectrogram
from avxai.methods import METHODS
from avxai.methods.extremal import Extremal, ExtremalConfig, extremal
from avxai.metrics import mass_in_segments
from avxai.perturbations import BlurPyramid
from toys.extremal import BandFrames, GaussianRelevance, GridToy, RegionSum, positive_input, region_area, region_fraction


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, a shared CPU


def noise_spectrogram(model_input="magnitude", n_mels=None, batch=1) -> Spectrogram:
    wav = torch.randn(batch, 1, 4000, generator=torch.Generator().manual_seed(0)) * 0.1  # 0.5 s at 8 kHz
    return Spectrogram(wav, 8000, n_fft=128, hop_length=64, n_mels=n_mels, model_input=model_input)


# -- configuration ------------------------------------------------------------------------------------
@pytest.mark.parametrize("areas", [(0.0,), (1.0,), (1.5,), (0.1, -0.2), ()])
def test_config_rejects_areas_outside_zero_one(areas):
    with pytest.raises(ValueError, match="area"):
        ExtremalConfig(areas=areas)


@pytest.mark.parametrize("sigma", [0.0, -1.0, (1.0, 0.0)])
def test_config_rejects_non_positive_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        ExtremalConfig(sigma=sigma)


@pytest.mark.parametrize("field, value", [("step", 0), ("step", 1.5), ("iterations", 0), ("variant", "keep"),
                                          ("optimiser", "lbfgs"), ("learning_rate", 0.0), ("growth", 0.5),
                                          ("temperature", 0.0), ("perturbation", "smear"), ("media_area", 0.5),
                                          ("patience", 0), ("growth_areas", (1.0,)), ("reward_scale", "max")])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError):
        ExtremalConfig(**{field: value})


def test_config_accepts_lists_and_is_frozen():
    config = ExtremalConfig(areas=[0.1, 0.2], step=[2, 4], sigma=[4, 8])
    assert config.areas == (0.1, 0.2) and config.step == (2, 4) and config.sigma == (4.0, 8.0)
    with pytest.raises(Exception):
        config.iterations = 3
    assert METHODS["extremal"] is extremal and isinstance(extremal, Extremal)


# -- known relevant regions ------------------------------------------------------------------------------
CASES = {
    "1d-time": ((96,), (slice(30, 62),), 2, 2.0),
    "3d-video": ((6, 24, 24), (slice(1, 5), slice(6, 18), slice(8, 20)), 1, (0.5, 0.7, 0.7)),
}


@pytest.mark.parametrize("variant", ["preserve", "delete"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_mask_finds_the_region(case, variant):
    grid, region, step, sigma = CASES[case]
    area = round(region_area(grid, region), 4)
    config = ExtremalConfig(areas=(area,), variant=variant, iterations=150, step=step, sigma=sigma)
    expl = extremal(RegionSum(grid, region), GridToy(positive_input(grid)), ClassLogit(0), config)
    assert expl.masks.shape == (1, 1, *grid)
    assert region_fraction(expl.masks, region).min() >= 0.9


@pytest.mark.parametrize("variant", ["preserve", "delete", "dual"])
def test_mask_finds_the_band_and_frames_of_a_spectrogram_model(variant):
    modality = noise_spectrogram()
    band, frames = slice(16, 40), slice(20, 44)
    region = (band, frames)
    area = round(region_area(modality.grid_shape, region), 4)
    config = ExtremalConfig(areas=(area,), variant=variant, iterations=150, step=1, sigma=0.7)
    expl = extremal(BandFrames(band, frames), modality, ClassLogit(0), config)
    assert region_fraction(expl.masks, region).min() >= 0.9
    # keeping the mask keeps the evidence; removing it removes most of it
    assert expl.scores["preserved"][0, 0] >= 0.9 * expl.scores["unmasked"][0]
    assert expl.scores["deleted"][0, 0] <= 0.2 * expl.scores["unmasked"][0]
    if variant == "dual":
        assert "deleted_score" in expl.history


@pytest.mark.parametrize("grid, centre, width", [((64,), (30,), 10.0), ((32, 40), (14, 22), 8.0),
                                                 ((8, 20, 20), (4, 9, 11), 5.0)])
def test_final_area_matches_each_requested_area(grid, centre, width):
    config = ExtremalConfig(iterations=150)  # default areas (0.05, 0.1, 0.2, 0.3), default step and sigma
    expl = extremal(GaussianRelevance(grid, centre, width), GridToy(positive_input(grid, batch=2)), ClassLogit(0),
                    config)
    areas = expl.masks.flatten(2).mean(dim=2)  # (batch, K)
    assert (areas - torch.tensor(config.areas)).abs().max() <= 0.03
    # larger areas keep more of the score (the area-growth curve rises), and the mask is centred on the bump
    growth = expl.scores["area_growth"]
    assert (growth[:, 1:] >= growth[:, :-1] - 1e-3).all()
    mask = expl.masks[0, 0]  # the smallest area: its centre of mass sits on the bump
    coords = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in grid], indexing="ij")
    centroid = torch.stack([(c * mask).sum() / mask.sum() for c in coords])
    assert (centroid - torch.tensor(centre).float()).abs().max() <= 2


# -- determinism, outputs, saving ---------------------------------------------------------------------------
def test_same_seed_gives_identical_masks_and_another_seed_differs():
    grid, region = (32, 40), (slice(8, 20), slice(12, 28))
    x = positive_input(grid)
    run = lambda seed: extremal(RegionSum(grid, region), GridToy(x), ClassLogit(0),  # noqa: E731
                                ExtremalConfig(areas=(0.1, 0.2), iterations=30, seed=seed))
    first, second, other = run(3), run(3), run(4)
    assert torch.equal(first.masks, second.masks)
    assert torch.equal(first.history["reward"], second.history["reward"])
    assert not torch.equal(first.masks, other.masks)


@pytest.mark.parametrize("variant", ["preserve", "delete", "dual"])
def test_final_masks_and_scores_are_those_of_the_last_step(variant):
    """The last forward pass scores the final masks: no step follows it, and the reported scores are its own."""
    grid, region = (24, 30), (slice(4, 12), slice(6, 20))
    x = positive_input(grid, batch=2)
    model = RegionSum(grid, region)
    expl = extremal(model, GridToy(x), ClassLogit(0), ExtremalConfig(areas=(0.1, 0.3), iterations=12, variant=variant))
    history, scores = expl.history, expl.scores
    assert history["score"].shape == (12, 2, 2) and expl.metadata["iterations_run"] == 12
    if variant != "delete":
        torch.testing.assert_close(scores["preserved"], history["score"][-1])
    if variant != "preserve":
        torch.testing.assert_close(scores["deleted"], history.get("deleted_score", history["score"])[-1])
    # and they are the model's scores of the returned masks
    with torch.no_grad():
        kept = model(expl.masks.transpose(0, 1).reshape(4, 1, *grid) * x.repeat(2, 1, 1, 1))[:, 0]
    torch.testing.assert_close(scores["preserved"], kept.view(2, 2).T, atol=1e-5, rtol=1e-5)
    if variant == "dual":  # reward = (kept - removed) / |score(x) - score(nothing)|
        scale = torch.tensor(expl.metadata["reward_scale"]).view(2, 1)
        torch.testing.assert_close(history["reward"][-1], (scores["preserved"] - scores["deleted"]) / scale)


def test_a_score_without_gradient_is_refused_with_the_fix():
    class Detached(torch.nn.Module):
        def forward(self, x):
            return RegionSum((16, 16), (slice(0, 8), slice(0, 8)))(x).detach()

    with pytest.raises(ValueError, match="gradients.*occlusion"):
        extremal(Detached(), GridToy(positive_input((16, 16))), ClassLogit(0), ExtremalConfig(iterations=3))


def test_explanation_contents_save_reload_and_plot(tmp_path):
    modality = noise_spectrogram(model_input="waveform", n_mels=24, batch=2)

    class WaveBand(torch.nn.Module):  # a waveform model reading mel band energy in frames 20-44
        sample_rate = 8000

        def __init__(self):
            super().__init__()
            self.inner = BandFrames(slice(10, 30), slice(20, 44))

        def forward(self, wav):
            spec = torch.stft(wav.reshape(-1, wav.shape[-1]), 128, 64, window=torch.hann_window(128),
                              return_complex=True).abs().unsqueeze(1)
            return self.inner(spec)

    config = ExtremalConfig(areas=(0.1, 0.3), iterations=20, growth_areas=(0.1, 0.2, 0.3), media_area=0.3,
                            perturbation="pyramid-tf:4")
    expl = extremal(WaveBand(), modality, ClassLogit(0), config)
    b, grid = 2, modality.grid_shape
    assert expl.masks.shape == (b, 2, *grid) and expl.attribution.shape == (b, *grid)
    torch.testing.assert_close(expl.attribution, expl.masks.mean(dim=1))
    for name in ("score", "area", "reward", "regulariser"):
        assert expl.history[name].shape == (20, b, 2)
    for name in ("preserved", "deleted", "max_class", "max_score", "target", "target_score"):
        assert expl.scores[name].shape == (b, 2)
    assert expl.scores["unmasked"].shape == (b,) and expl.scores["area_growth"].shape == (b, 3)
    assert (expl.scores["target"] == 0).all()
    torch.testing.assert_close(expl.scores["target_score"], expl.scores["preserved"])
    assert {"original", "preserved", "deleted"} <= set(expl.media)
    assert "BlurPyramid" in expl.metadata["perturbation"] and expl.metadata["method"] == "extremal"

    expl.metadata["segments"] = [{"start_s": 0.1, "end_s": 0.3, "label": "A"}]
    out = expl.save(tmp_path / "expl")
    assert (out / "figure_0.png").stat().st_size > 0 and (out / "preserved_1.wav").exists()
    back = Explanation.load(out)
    torch.testing.assert_close(back.masks, expl.masks)
    torch.testing.assert_close(back.history["area"], expl.history["area"])
    assert back.areas == [0.1, 0.3] and back.metadata["segments"][0]["label"] == "A"
    fig = back.plot(index=1)
    fig.savefig(tmp_path / "reloaded.png")
    assert (tmp_path / "reloaded.png").stat().st_size > 0


@pytest.mark.parametrize("grid", [(40,), (4, 12, 12)])
def test_plots_1d_and_3d(grid, tmp_path):
    expl = extremal(GaussianRelevance(grid, tuple(n / 2 for n in grid), 3.0), GridToy(positive_input(grid)),
                    ClassLogit(0), ExtremalConfig(areas=(0.1, 0.2), iterations=5))
    expl.plot().savefig(tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 0


def test_early_stopping_and_perturbation_override():
    grid = (48,)
    modality = GridToy(positive_input(grid))
    config = ExtremalConfig(areas=(0.2,), iterations=400, patience=10, tolerance=0.05, perturbation="pyramid-time:4")
    expl = extremal(GaussianRelevance(grid, (20,), 4.0), modality, ClassLogit(0), config)
    run = expl.metadata["iterations_run"]
    assert run == expl.metadata["stopped_early_at"] < 400
    assert expl.history["area"].shape[0] == run
    assert "BlurPyramid" in expl.metadata["perturbation"]
    assert not isinstance(modality.perturbation, BlurPyramid)  # the modality itself is left as it was


def test_growth_only_areas_are_optimised_but_not_returned_as_masks():
    grid = (48,)
    config = ExtremalConfig(areas=(0.2,), growth_areas=(0.05, 0.2, 0.5), iterations=60)
    expl = extremal(GaussianRelevance(grid, (20,), 4.0), GridToy(positive_input(grid)), ClassLogit(0), config)
    assert expl.masks.shape == (1, 1, 48) and expl.scores["area_growth"].shape == (1, 3)
    growth = expl.scores["area_growth"][0]
    assert growth[0] < growth[1] < growth[2]
    torch.testing.assert_close(growth[1], expl.scores["preserved"][0, 0] / expl.scores["unmasked"][0])


# -- localisation metric ----------------------------------------------------------------------------------
def test_mass_in_segments():
    times = torch.arange(10) * 0.1 + 0.05  # frame centres 0.05 .. 0.95 s
    segments = [{"start_s": 0.2, "end_s": 0.5, "label": "A"}, {"start_s": 0.7, "end_s": 1.0, "label": "B"}]
    mask = torch.zeros(10)
    mask[2:5] = 1.0
    assert mass_in_segments(mask, times, segments, label="A").item() == pytest.approx(1.0)
    # a 2-D mask is one (freq, time) mask by default: a uniform one scores the fraction of frames inside
    assert mass_in_segments(torch.ones(3, 10), times, segments, label="B").item() == pytest.approx(0.3)
    assert mass_in_segments(torch.ones(3, 10), times, segments, grid_dims=1).tolist() == pytest.approx([0.6] * 3)
    batch = torch.ones(2, 4, 3, 10)
    assert mass_in_segments(batch, times, segments, grid_dims=2).shape == (2, 4)
    with pytest.raises(ValueError, match="grid_dims"):
        mass_in_segments(batch, times, segments)
    with pytest.raises(ValueError, match="frame times"):
        mass_in_segments(torch.ones(9), times, segments)

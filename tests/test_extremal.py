"""Extremal perturbation: toy models with a known relevant region in 1-D, 2-D (spectrogram) and 3-D grids.

Tolerances: at an area equal to the region's area at least 90% of the mask mass lies inside the region
(the smooth masks spill a little over the region's edges: sigma <= 1 cell here); final mask areas within
0.03 of the requested areas.
"""

from __future__ import annotations

import math

import pytest
import torch

from avxai import ClassLogit, Explanation, Spectrogram
from avxai.methods import METHODS
from avxai.methods.extremal import (AreaConstraint, Extremal, ExtremalConfig, _kth_smallest, area_regulariser, extremal,
                                    ramp)
from avxai.methods.optimisers import SGD, Adam
from avxai.methods.smooth_mask import SmoothMaskGenerator
from avxai.metrics import mass_in_segments
from avxai.perturbations import BlurPyramid
from toy_extremal import BandFrames, GaussianRelevance, GridToy, RegionSum, positive_input, region_area, region_fraction


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The CPU is shared: one intra-op thread is faster for these tiny tensors (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


# -- smooth masks -------------------------------------------------------------------------------------
@pytest.mark.parametrize("grid, step, sigma", [((50,), 4, 8.0), ((33, 40), (2, 5), (4.0, 10.0)),
                                               ((6, 20, 24), (1, 4, 4), (1.0, 8.0, 8.0))])
@pytest.mark.parametrize("separable", [True, False])
def test_smooth_mask_shapes_and_range(grid, step, sigma, separable):
    gen = SmoothMaskGenerator(grid, step, sigma, oversample=2, separable=separable)
    steps = (step,) * len(grid) if isinstance(step, int) else step
    assert gen.param_shape == tuple(math.ceil((n - 1) / s) + 1 for n, s in zip(grid, steps))
    assert all(o <= n for o, n in zip(gen.out_shape, grid))
    params = torch.rand(3, *gen.param_shape, generator=torch.Generator().manual_seed(0), requires_grad=True)
    masks = gen(params)
    assert masks.shape == (3, *gen.out_shape)
    assert masks.min() >= 0 and masks.max() <= 1
    masks.sum().backward()
    assert params.grad is not None and torch.isfinite(params.grad).all() and params.grad.abs().sum() > 0


def test_smooth_mask_single_point_is_the_kernel():
    """One parameter at 1 among zeros: the mask is k(d) = exp(-(d / sigma)^2) around it (up to the smooth max)."""
    gen = SmoothMaskGenerator((41,), step=4, sigma=6.0, temperature=0.01, oversample=4)
    params = torch.zeros(1, *gen.param_shape)
    params[0, 5] = 1.0  # at cell 20
    mask = gen(params)[0]
    d = torch.arange(41.0) - 20.0
    expected = torch.exp(-((d / 6.0) ** 2))
    near = d.abs() <= 9  # where the bump stands well above the zeros it competes with
    assert mask.argmax().item() == 20 and mask[20] == pytest.approx(1.0, abs=1e-4)
    torch.testing.assert_close(mask[near], expected[near], atol=0.02, rtol=0)


def test_separable_smooth_max_matches_full_neighbourhood_at_low_temperature():
    """The kernel factorises over axes, so a per-axis hard max equals the max over the product neighbourhood."""
    kw = dict(grid_shape=(20, 30), step=(2, 3), sigma=(3.0, 5.0), temperature=0.002)
    a, b = SmoothMaskGenerator(separable=True, **kw), SmoothMaskGenerator(separable=False, **kw)
    params = torch.rand(2, *a.param_shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a(params), b(params), atol=5e-3, rtol=0)


def softmax_smooth_max(gen: SmoothMaskGenerator, params: torch.Tensor) -> torch.Tensor:
    """The separable smooth max written as the formula, with plain autograd: per axis, in the generator's pass
    order, ``sum_i g_i softmax(g / T)_i`` over the neighbour table of that axis."""
    out = params
    for a in gen.pass_order:
        index = gen._axis_index[a].view(gen.out_shape[a], -1)  # (cells, neighbours)
        g = out.movedim(a + 1, -1)[..., index] * gen._axis_weight[a]
        out = (g * torch.softmax(g / gen.temperature + gen._axis_bias[a], dim=-1)).sum(-1).movedim(-1, a + 1)
    return out


# no exponent shift (parameters in [0, 1]) / one shift for all cells (some negative) / a shift per cell
@pytest.mark.parametrize("temperature, offset", [(0.05, 0.0), (0.05, -0.5), (0.004, 0.0)])
@pytest.mark.parametrize("grid, step, sigma", [((50,), 4, 8.0), ((33, 40), (2, 5), (4.0, 10.0)),
                                               ((6, 20, 24), (1, 4, 4), (1.0, 8.0, 8.0))])
def test_separable_smooth_mask_and_its_gradient_follow_the_formula(grid, step, sigma, temperature, offset):
    gen = SmoothMaskGenerator(grid, step, sigma, temperature=temperature, oversample=2, dtype=torch.float64)
    params = (torch.rand(3, *gen.param_shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
              + offset).requires_grad_(True)
    weights = torch.randn(3, *gen.out_shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    masks, expected = gen(params), softmax_smooth_max(gen, params)
    torch.testing.assert_close(masks, expected, atol=1e-12, rtol=0)
    grad, = torch.autograd.grad((masks * weights).sum(), params)
    expected_grad, = torch.autograd.grad((expected * weights).sum(), params)
    torch.testing.assert_close(grad, expected_grad, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])  # a sparse product / index_add for the gradient
def test_smooth_mask_gradient_in_lower_precision_follows_float64(dtype):
    kw = dict(grid_shape=(20, 30), step=(2, 3), sigma=(4.0, 6.0))
    low, exact = SmoothMaskGenerator(dtype=dtype, **kw), SmoothMaskGenerator(dtype=torch.float64, **kw)
    params = torch.rand(2, *exact.param_shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    weights = torch.randn(2, *exact.out_shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    grads = []
    for gen, p in ((low, params.to(dtype)), (exact, params)):
        leaf = p.clone().requires_grad_(True)
        (gen(leaf) * weights.to(dtype)).sum().backward()
        grads.append(leaf.grad.double())
    scale = grads[1].abs().max()
    assert (grads[0] - grads[1]).abs().max() <= (1e-5 if dtype == torch.float32 else 0.02) * scale


def test_separable_smooth_mask_gradient_passes_gradcheck():
    gen = SmoothMaskGenerator((12, 30), (2, 5), (3.0, 8.0), oversample=2, dtype=torch.float64)
    params = torch.rand(2, *gen.param_shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    assert torch.autograd.gradcheck(gen, (params.requires_grad_(True),))


def test_by_hand_gradients_equal_autograd_and_upsampling_has_its_transpose():
    gen = SmoothMaskGenerator((20, 61), (2, 6), (4.0, 12.0), oversample=2, dtype=torch.float64)
    params = torch.rand(3, *gen.param_shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    grid_weights = torch.randn(3, 20, 61, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    masks, state = gen.forward_with_state(params)
    assert not masks.requires_grad
    torch.testing.assert_close(gen.forward_with_state(params, value_range=(0.0, 1.0))[0], masks)  # bounds given
    by_hand = gen.vjp(state, gen.upsample_vjp(grid_weights))
    leaf = params.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad((gen.upsample(gen(leaf)) * grid_weights).sum(), leaf)
    torch.testing.assert_close(masks, gen(params))
    torch.testing.assert_close(by_hand, expected)
    coarse = torch.randn(3, *gen.out_shape, dtype=torch.float64)  # <U c, w> = <c, U^T w>
    torch.testing.assert_close((gen.upsample(coarse) * grid_weights).sum(), (coarse * gen.upsample_vjp(grid_weights)).sum())
    with pytest.raises(ValueError, match="separable"):
        SmoothMaskGenerator((20, 61), (2, 6), (4.0, 12.0), separable=False).forward_with_state(params.float())


def test_separable_passes_take_the_axis_that_grows_least_first():
    """Mel step 1 (no growth) before time step 9 (oversampled twice): fewer (neighbour, cell) terms."""
    assert SmoothMaskGenerator((40, 301), (1, 9), (2.0, 18.0), oversample=2).pass_order == (0, 1)
    assert SmoothMaskGenerator((301, 40), (9, 1), (18.0, 2.0), oversample=2).pass_order == (1, 0)
    assert SmoothMaskGenerator((6, 20, 24), (1, 4, 4), (1.0, 8.0, 8.0), oversample=2).pass_order[0] == 0


def test_area_constraint_gradient_is_the_gradient_of_the_sorted_distance():
    gen = torch.Generator().manual_seed(5)
    masks = torch.rand(5, 7, 9, generator=gen, dtype=torch.float64)  # distinct values: R is differentiable
    ones = [6, 30, 0, 6, 63]  # rows in any order, no ones, all ones
    value, grad = AreaConstraint(ones, 63, torch.float64)(masks, weight=2.5)
    reference = masks.clone().requires_grad_(True)
    ramps = torch.stack([(torch.arange(63) >= 63 - k).double() for k in ones])
    expected = (reference.reshape(5, -1).sort(dim=1).values - ramps).pow(2).mean(dim=1)
    expected_grad, = torch.autograd.grad(expected.sum() * 2.5, reference)
    torch.testing.assert_close(value, expected.detach())
    torch.testing.assert_close(grad, expected_grad)
    # the differentiable form agrees, and a wrong shape is refused
    differentiable = masks.clone().requires_grad_(True)
    area_regulariser(differentiable, ones).sum().mul(2.5).backward()
    torch.testing.assert_close(differentiable.grad, expected_grad)
    with pytest.raises(ValueError, match="masks"):
        AreaConstraint(ones, 63)(torch.rand(4, 63))


def test_kth_smallest_through_numpy_equals_kthvalue():
    x = torch.rand(5, 300, generator=torch.Generator().manual_seed(3))
    x[2, :40] = 0.5  # ties
    for k in (1, 17, 150, 300):
        expected = x.kthvalue(k, dim=1, keepdim=True).values
        assert torch.equal(_kth_smallest(x, k), expected)  # NumPy's introselect
        assert torch.equal(_kth_smallest(x.clone().requires_grad_(True), k), expected)  # torch's kthvalue


@pytest.mark.parametrize("kind", ["adam", "adam-unfused", "sgd", "sgd-momentum"])
def test_mask_optimisers_take_the_steps_of_torch_optim(kind):
    target = torch.linspace(-1, 1, 24).view(2, 3, 4)
    mine, theirs = torch.zeros(2, 3, 4), torch.zeros(2, 3, 4, requires_grad=True)
    if kind.startswith("adam"):
        step = Adam(mine, lr=0.05, betas=(0.8, 0.99), fused=None if kind == "adam" else False)
        assert step.fused == (kind == "adam")  # the fused kernel exists for float32 on the CPU
        reference = torch.optim.Adam([theirs], lr=0.05, betas=(0.8, 0.99))
    else:
        momentum = 0.9 if kind == "sgd-momentum" else 0.0
        step, reference = SGD(mine, lr=0.1, momentum=momentum), torch.optim.SGD([theirs], lr=0.1, momentum=momentum)
    for _ in range(25):
        step.step(2 * (mine - target) + mine.pow(3))
        reference.zero_grad()
        ((theirs - target).pow(2) + theirs.pow(4) / 4).sum().backward()
        reference.step()
    torch.testing.assert_close(mine, theirs.detach())
    assert not torch.equal(mine, torch.zeros_like(mine))


def test_area_regulariser_is_the_sorted_distance_to_the_ramp():
    areas = torch.tensor([0.25, 0.5], dtype=torch.float64)
    ref = ramp(areas, 8, torch.float32)
    assert ref.sum(dim=1).tolist() == [2.0, 4.0]
    masks = torch.tensor([[1.0, 0, 0, 0, 1, 0, 0, 0], [0, 1, 1, 0, 1, 0, 1, 0]])
    assert area_regulariser(masks, [2, 4]).tolist() == [0.0, 0.0]
    assert area_regulariser(torch.full((2, 8), 0.5), [2, 4]).tolist() == [0.25, 0.25]
    # the top-k form equals the paper's mean((sort(m) - r_a)^2), ties included
    gen = torch.Generator().manual_seed(0)
    masks = torch.cat([torch.rand(4, 500, generator=gen), torch.zeros(1, 500), torch.ones(1, 500)])
    areas = torch.tensor([0.05, 0.3, 0.05, 0.9, 0.2, 0.2], dtype=torch.float64)
    expected = (masks.sort(dim=1).values - ramp(areas, 500, torch.float32)).pow(2).mean(dim=1)
    torch.testing.assert_close(area_regulariser(masks, (areas * 500).round().long()), expected)


def test_generator_upsample_equals_linear_interpolation():
    for grid, step in [((50,), 4), ((40, 301), (1, 9)), ((6, 20, 24), (1, 4, 4))]:
        gen = SmoothMaskGenerator(grid, step, 8.0, oversample=2)
        coarse = torch.rand(3, *gen.out_shape, generator=torch.Generator().manual_seed(0))
        expected = GridToy(torch.ones(1, 1, *grid)).upsample(coarse)  # the default Modality.upsample
        torch.testing.assert_close(gen.upsample(coarse), expected, atol=1e-5, rtol=0)


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

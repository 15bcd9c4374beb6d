"""The compiled CPU kernels (avxai.methods.cpu_kernels) against the tensor operations they stand in for."""

import importlib

import numba
import numpy as np
import pytest
import torch

from avxai import ClassLogit, ExtremalConfig, TensorModality, extremal
from avxai.methods import cpu_kernels
from avxai.methods.extremal import AreaConstraint
from avxai.methods.smooth_mask import SmoothMaskGenerator

extremal_module = importlib.import_module("avxai.methods.extremal")  # avxai.methods.extremal is also the method
smooth_mask_module = importlib.import_module("avxai.methods.smooth_mask")
GRIDS = [((300,), (10,), (20.0,)), ((40, 301), (1, 9), (2.0, 18.0)), ((6, 20, 24), (2, 4, 4), (4.0, 8.0, 8.0)),
         ((5, 7), (1, 2), (2.0, 4.0)), ((1, 50), (1, 5), (2.0, 10.0))]


class RegionLogits(torch.nn.Module):
    """Logits ``(n, 2)`` of a ``(n, 1, 12, 40)`` input: the sum over a known region, and a small total."""

    def __init__(self):
        super().__init__()
        weight = torch.zeros(12, 40)
        weight[3:7, 10:25] = 1.0
        self.register_buffer("weight", weight)

    def forward(self, x):
        return torch.stack([(x[:, 0] * self.weight).sum(dim=(1, 2)), x[:, 0].sum(dim=(1, 2)) * 0.01], dim=1)


def generators(grid, step, sigma, **kw):
    return (SmoothMaskGenerator(grid, step, sigma, oversample=2, **kw),
            SmoothMaskGenerator(grid, step, sigma, oversample=2, cpu_kernels=False, **kw))


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("grid, step, sigma", GRIDS)
def test_compiled_smooth_masks_and_gradients_equal_the_tensor_operations(grid, step, sigma, n):
    compiled, tensors = generators(grid, step, sigma)
    rng = torch.Generator().manual_seed(0)
    params = torch.rand(n, *compiled.param_shape, generator=rng)
    grad_grid = torch.randn(n, *grid, generator=rng)
    grad_smooth = torch.randn(n, *compiled.out_shape, generator=rng)

    smooth, masks, state = compiled.masks_with_state(params)
    assert state.compiled
    smooth_ref, masks_ref, state_ref = tensors.masks_with_state(params)
    assert not state_ref.compiled
    torch.testing.assert_close(smooth, smooth_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(masks, masks_ref, atol=1e-6, rtol=0)
    for args in ((grad_grid, grad_smooth), (grad_grid,)):
        expected = tensors.masks_vjp(state_ref, *args)
        assert (compiled.masks_vjp(state, *args) - expected).abs().max() <= 1e-5 * expected.abs().max()

    alone, state_alone = compiled.forward_with_state(params)  # the smooth mask without upsampling
    torch.testing.assert_close(alone, smooth)
    expected = tensors.vjp(state_ref, grad_smooth)
    assert (compiled.vjp(state_alone, grad_smooth) - expected).abs().max() <= 1e-5 * expected.abs().max()

    leaf = params.clone().requires_grad_(True)  # under autograd, through the generator's autograd function
    (compiled(leaf) * grad_smooth).sum().backward()
    assert (leaf.grad - expected).abs().max() <= 1e-5 * expected.abs().max()


def test_parameters_outside_zero_to_25_temperatures_take_the_tensor_operations():
    compiled, tensors = generators((20, 30), (2, 3), (4.0, 6.0))
    for shift in (-0.3, 1.5, float("nan")):  # negative, beyond 25 T = 1.25, NaN: exponents would need a shift
        params = torch.rand(2, *compiled.param_shape, generator=torch.Generator().manual_seed(1))
        params[0, 0, 0] = shift
        smooth, masks, state = compiled.masks_with_state(params)
        assert not state.compiled
        torch.testing.assert_close(masks, tensors.masks_with_state(params)[1], equal_nan=True)


def test_only_float32_on_the_cpu_is_compiled():
    assert SmoothMaskGenerator((20, 30), (2, 3), (4.0, 6.0))._compiled is not None
    assert SmoothMaskGenerator((20, 30), (2, 3), (4.0, 6.0), dtype=torch.float64)._compiled is None
    assert SmoothMaskGenerator((20, 30), (2, 3), (4.0, 6.0), separable=False)._compiled is None
    assert SmoothMaskGenerator((20, 30), (2, 3), (4.0, 6.0), cpu_kernels=False)._compiled is None


def test_vectorisable_exp_is_within_two_ulp_of_exp():
    @numba.njit
    def exp_all(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = cpu_kernels._exp_nonnegative(x[i])
        return out

    x = np.concatenate([np.linspace(0, cpu_kernels.EXP_MAX, 100_001), np.random.default_rng(0).random(1000) * 25])
    x = x.astype(np.float32)
    exact = np.exp(x.astype(np.float64))
    got = exp_all(x).astype(np.float64)
    assert np.max(np.abs(got - exact) / exact) < 2.5e-7  # float32 epsilon is 1.2e-7
    assert exp_all(np.array([-3.0, 50.0], dtype=np.float32)).tolist() == [1.0, np.float32(np.exp(40.0))]  # clamped


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_area_constraint_equals_the_tensor_operations_and_the_sorted_distance(dtype):
    rng = torch.Generator().manual_seed(2)
    masks = torch.cat([torch.rand(3, 500, generator=rng, dtype=dtype),
                       (torch.rand(2, 500, generator=rng, dtype=dtype) * 4).round() / 4,  # many ties
                       torch.zeros(1, 500, dtype=dtype), torch.ones(1, 500, dtype=dtype)])
    ones = [25, 0, 500, 150, 151, 100, 100]
    compiled, tensors = AreaConstraint(ones, 500, dtype), AreaConstraint(ones, 500, dtype, cpu_kernels=False)
    assert compiled._kernels is not None and tensors._kernels is None
    value, grad = compiled(masks, weight=0.7)
    value_ref, grad_ref = tensors(masks, weight=0.7)
    torch.testing.assert_close(value, value_ref)
    torch.testing.assert_close(grad, grad_ref)
    ramps = torch.stack([(torch.arange(500) >= 500 - k).to(dtype) for k in ones])
    torch.testing.assert_close(value, (masks.sort(dim=1).values - ramps).pow(2).mean(dim=1))


def test_extremal_takes_the_same_steps_with_and_without_the_compiled_kernels(monkeypatch):
    """Float rounding apart, the compiled mask side is the tensor one: after 8 steps the masks agree closely (over
    hundreds of steps such differences grow, as any float-level change does in this optimisation)."""
    image = torch.rand(1, 1, 12, 40, generator=torch.Generator().manual_seed(4))
    model = RegionLogits()

    def run():
        modality = TensorModality(image, ("freq", "time"), "zero", nonnegative=True)
        return extremal(model, modality, ClassLogit(0), ExtremalConfig(areas=(0.1, 0.3), iterations=8))

    compiled = run()
    monkeypatch.setattr(smooth_mask_module, "load_cpu_kernels", lambda: None)
    monkeypatch.setattr(extremal_module, "load_cpu_kernels", lambda: None)
    tensors = run()
    torch.testing.assert_close(compiled.masks, tensors.masks, atol=1e-4, rtol=0)
    torch.testing.assert_close(compiled.history["regulariser"], tensors.history["regulariser"], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("fault", ["raises", "wrong"])
def test_kernels_that_fail_to_compile_or_disagree_are_left_out_with_a_warning(monkeypatch, fault):
    real = cpu_kernels.smooth_masks

    def broken(*args):
        if fault == "raises":
            raise numba.core.errors.TypingError("no implementation for this platform")
        ok, smooth, grid = real(*args)
        return ok, smooth * 1.01, grid

    monkeypatch.setattr(cpu_kernels, "smooth_masks", broken)
    smooth_mask_module.load_cpu_kernels.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="compiled CPU kernels are unavailable"):
            assert smooth_mask_module.load_cpu_kernels() is None
        assert SmoothMaskGenerator((20, 30), (2, 3), (4.0, 6.0))._compiled is None  # the tensor operations run
        assert AreaConstraint([3], 10)._kernels is None
    finally:
        smooth_mask_module.load_cpu_kernels.cache_clear()
    monkeypatch.undo()
    assert smooth_mask_module.load_cpu_kernels() is cpu_kernels

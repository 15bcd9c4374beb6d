"""Extremal perturbation's mask side: the smooth mask, the area constraint and the optimisers, each against a plain
reference computation (the formula written out in float64, or torch's own implementation).

Tolerances: float64 against the float64 reference 1e-12 (values) and 1e-10 (gradients); float32 1e-6.
"""

from __future__ import annotations

import math

import pytest
import torch

from avxai.methods.area import AreaConstraint, _kth_smallest, area_regulariser, ramp
from avxai.methods.optimisers import SGD, Adam
from avxai.methods.smooth_mask import SmoothMaskGenerator
from toys.extremal import GridToy

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py: tiny tensors, a shared CPU
F64 = torch.float64
GRIDS = [((50,), 4, 8.0), ((33, 40), (2, 5), (4.0, 10.0)), ((6, 20, 24), (1, 4, 4), (1.0, 8.0, 8.0))]


def reference_smooth_mask(params, grid, step, sigma, temperature, oversample=2, radius=2.0, order=None):
    """The smooth mask from its definition, axis by axis, dense and in float64: along axis ``a`` the output cell at
    ``u`` (cell centres of ``min(grid, points * oversample)`` cells spread over the grid) takes
    ``sum_i g_i softmax(g / T)_i`` with ``g_i = exp(-((u - i step) / sigma) ** 2) p_i`` over the parameter points
    ``i`` within ``max(1, ceil(radius sigma / step))`` points of its nearest one."""
    x = params.to(F64)
    nd = len(grid)
    steps, sigmas = (step,) * nd if isinstance(step, (int, float)) else step, \
        (sigma,) * nd if isinstance(sigma, (int, float)) else sigma
    for a in order or range(nd):
        n, points, st, sg = grid[a], x.shape[1 + a], float(steps[a]), float(sigmas[a])
        cells = min(n, points * oversample)
        u = (torch.arange(cells, dtype=F64) + 0.5) * n / cells - 0.5
        i = torch.arange(points, dtype=F64)
        reach = max(1, math.ceil(radius * sg / st))
        near = (torch.round(u / st)[:, None] - i[None, :]).abs() <= reach  # (cells, points)
        kernel = torch.exp(-(((u[:, None] - i[None, :] * st) / sg) ** 2))
        g = x.movedim(a + 1, -1).unsqueeze(-2) * kernel  # (..., cells, points)
        weights = torch.softmax((g / temperature).masked_fill(~near, -math.inf), dim=-1)
        x = (g * weights).sum(dim=-1).movedim(-1, a + 1)
    return x


# -- the smooth mask --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("grid, step, sigma", GRIDS)
def test_smooth_mask_shapes_and_range(grid, step, sigma):
    gen = SmoothMaskGenerator(grid, step, sigma, oversample=2)
    steps = (step,) * len(grid) if isinstance(step, int) else step
    assert gen.param_shape == tuple(math.ceil((n - 1) / s) + 1 for n, s in zip(grid, steps))
    assert all(o <= n for o, n in zip(gen.out_shape, grid))
    params = torch.rand(3, *gen.param_shape, generator=torch.Generator().manual_seed(0), requires_grad=True)
    masks = gen(params)
    assert masks.shape == (3, *gen.out_shape)
    assert masks.min() >= 0 and masks.max() <= 1
    masks.sum().backward()
    assert params.grad is not None and torch.isfinite(params.grad).all() and params.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="parameters must have shape"):
        gen(params[:, :1])


# parameters in [0, 1] (extremal's), some negative, and a temperature small enough to overflow exp without a shift
@pytest.mark.parametrize("temperature, offset", [(0.05, 0.0), (0.05, -0.5), (0.004, 0.0)])
@pytest.mark.parametrize("grid, step, sigma", GRIDS)
def test_smooth_mask_and_its_gradient_equal_the_reference(grid, step, sigma, temperature, offset):
    gen = SmoothMaskGenerator(grid, step, sigma, temperature=temperature, oversample=2, dtype=F64)
    params = (torch.rand(3, *gen.param_shape, generator=torch.Generator().manual_seed(2), dtype=F64)
              + offset).requires_grad_(True)
    weights = torch.randn(3, *gen.out_shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    masks = gen(params)
    expected = reference_smooth_mask(params, grid, step, sigma, temperature, order=gen.pass_order)
    torch.testing.assert_close(masks, expected, atol=1e-12, rtol=0)
    (grad,) = torch.autograd.grad((masks * weights).sum(), params)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), params)
    torch.testing.assert_close(grad, expected_grad, atol=1e-10, rtol=1e-8)
    # float32, as extremal runs on float32 inputs: the reference to float rounding
    low = SmoothMaskGenerator(grid, step, sigma, temperature=temperature, oversample=2)
    if offset == 0.0:
        torch.testing.assert_close(low(params.detach().float()).double(), expected.detach(), atol=1e-6, rtol=0)


def test_smooth_mask_at_low_temperature_is_the_papers_max_over_the_product_neighbourhood():
    """The kernel factorises over axes, so per-axis hard maxima equal the max over the product neighbourhood."""
    grid, step, sigma = (20, 30), (2, 3), (3.0, 5.0)
    gen = SmoothMaskGenerator(grid, step, sigma, temperature=0.002, oversample=4)
    params = torch.rand(2, *gen.param_shape, generator=torch.Generator().manual_seed(1))
    axes = []
    for n, o, p, st, sg in zip(grid, gen.out_shape, gen.param_shape, step, sigma):
        u = (torch.arange(o, dtype=F64) + 0.5) * n / o - 0.5
        i = torch.arange(p, dtype=F64)
        near = (torch.round(u / st)[:, None] - i[None, :]).abs() <= max(1, math.ceil(2.0 * sg / st))
        axes.append(torch.exp(-(((u[:, None] - i[None, :] * st) / sg) ** 2)) * near)  # (o, p), 0 outside
    g = params.double()[:, None, None] * axes[0][None, :, None, :, None] * axes[1][None, None, :, None, :]
    expected = g.flatten(3).amax(dim=3)  # (n, o0, o1): hard max over every (i, j) in the product neighbourhood
    torch.testing.assert_close(gen(params).double(), expected, atol=5e-3, rtol=0)


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_smooth_mask_gradient_in_lower_precision_follows_float64(dtype):
    kw = dict(grid_shape=(20, 30), step=(2, 3), sigma=(4.0, 6.0))
    low, exact = SmoothMaskGenerator(dtype=dtype, **kw), SmoothMaskGenerator(dtype=F64, **kw)
    params = torch.rand(2, *exact.param_shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    weights = torch.randn(2, *exact.out_shape, generator=torch.Generator().manual_seed(6), dtype=F64)
    grads = []
    for gen, p in ((low, params.to(dtype)), (exact, params)):
        leaf = p.clone().requires_grad_(True)
        (gen(leaf) * weights.to(dtype)).sum().backward()
        grads.append(leaf.grad.double())
    scale = grads[1].abs().max()
    assert (grads[0] - grads[1]).abs().max() <= (1e-5 if dtype == torch.float32 else 0.02) * scale


def test_smooth_mask_gradient_passes_gradcheck():
    gen = SmoothMaskGenerator((12, 30), (2, 5), (3.0, 8.0), oversample=2, dtype=F64)
    params = torch.rand(2, *gen.param_shape, generator=torch.Generator().manual_seed(4), dtype=F64)
    assert torch.autograd.gradcheck(gen, (params.requires_grad_(True),))


def test_passes_take_the_axis_that_grows_least_first():
    """Mel step 1 (no growth) before time step 9 (oversampled twice): fewer (neighbour, cell) terms."""
    assert SmoothMaskGenerator((40, 301), (1, 9), (2.0, 18.0), oversample=2).pass_order == (0, 1)
    assert SmoothMaskGenerator((301, 40), (9, 1), (18.0, 2.0), oversample=2).pass_order == (1, 0)
    assert SmoothMaskGenerator((6, 20, 24), (1, 4, 4), (1.0, 8.0, 8.0), oversample=2).pass_order[0] == 0


def test_generator_upsample_equals_linear_interpolation():
    for grid, step in [((50,), 4), ((40, 301), (1, 9)), ((6, 20, 24), (1, 4, 4))]:
        gen = SmoothMaskGenerator(grid, step, 8.0, oversample=2)
        coarse = torch.rand(3, *gen.out_shape, generator=torch.Generator().manual_seed(0))
        expected = GridToy(torch.ones(1, 1, *grid)).upsample(coarse)  # the default Modality.upsample
        torch.testing.assert_close(gen.upsample(coarse), expected, atol=1e-5, rtol=0)



@pytest.mark.parametrize("grid, step", [((257, 376), (8, 12)), ((12, 64, 48), (2, 8, 8))])
def test_blocked_upsample_and_its_gradient_equal_the_dense_products(grid, step):
    # a spectrogram-sized grid (and a 3-D one): every axis but the last interpolated in row blocks
    gen = SmoothMaskGenerator(grid, step, [2.0 * s for s in step], oversample=4, dtype=F64)
    assert all(b is not None for b, m in zip(gen._blocks[:-1], gen._interp[:-1]) if m is not None)
    assert any(b is not None for b in gen._blocks)
    coarse = torch.rand(3, *gen.out_shape, generator=torch.Generator().manual_seed(0), dtype=F64,
                        requires_grad=True)
    dense = coarse
    for a, matrix in enumerate(gen._interp):
        if matrix is not None:
            dense = torch.movedim(torch.movedim(dense, a + 1, -1) @ matrix.T, -1, a + 1)
    out = gen.upsample(coarse)
    assert out.shape == (3, *grid) and out.is_contiguous()
    torch.testing.assert_close(out, dense, atol=1e-12, rtol=0)
    weights = torch.randn(3, *grid, generator=torch.Generator().manual_seed(1), dtype=F64)
    (got,) = torch.autograd.grad(out, coarse, weights)
    (expected,) = torch.autograd.grad(dense, coarse, weights)
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)

# -- the area constraint -----------------------------------------------------------------------------------------
def test_area_constraint_gradient_is_the_gradient_of_the_sorted_distance():
    gen = torch.Generator().manual_seed(5)
    masks = torch.rand(5, 7, 9, generator=gen, dtype=F64)  # distinct values: R is differentiable
    ones = [6, 30, 0, 6, 63]  # rows in any order, no ones, all ones
    value, grad = AreaConstraint(ones, 63, F64)(masks, weight=2.5)
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


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_area_constraint_with_ties_equals_the_sorted_distance(dtype):
    masks = torch.rand(4, 500, generator=torch.Generator().manual_seed(1), dtype=dtype)
    masks[0, :100] = 0.5  # ties at the threshold
    masks[1] = torch.round(masks[1] * 4) / 4  # ties everywhere
    ones = [25, 100, 250, 490]
    value, grad = AreaConstraint(ones, 500, dtype)(masks, weight=3.0)
    ramps = torch.stack([(torch.arange(500) >= 500 - k).to(dtype) for k in ones])
    torch.testing.assert_close(value, (masks.sort(dim=1).values - ramps).pow(2).mean(dim=1))
    assert torch.isfinite(grad).all() and grad.shape == masks.shape


def test_kth_smallest_through_numpy_equals_kthvalue():
    x = torch.rand(5, 300, generator=torch.Generator().manual_seed(3))
    x[2, :40] = 0.5  # ties
    for k in (1, 17, 150, 300):
        expected = x.kthvalue(k, dim=1, keepdim=True).values
        assert torch.equal(_kth_smallest(x, k), expected)  # NumPy's introselect
        assert torch.equal(_kth_smallest(x.clone().requires_grad_(True), k), expected)  # torch's kthvalue


def test_area_regulariser_is_the_sorted_distance_to_the_ramp():
    areas = torch.tensor([0.25, 0.5], dtype=F64)
    ref = ramp(areas, 8, torch.float32)
    assert ref.sum(dim=1).tolist() == [2.0, 4.0]
    masks = torch.tensor([[1.0, 0, 0, 0, 1, 0, 0, 0], [0, 1, 1, 0, 1, 0, 1, 0]])
    assert area_regulariser(masks, [2, 4]).tolist() == [0.0, 0.0]
    assert area_regulariser(torch.full((2, 8), 0.5), [2, 4]).tolist() == [0.25, 0.25]
    # the top-k form equals the paper's mean((sort(m) - r_a)^2), ties included
    gen = torch.Generator().manual_seed(0)
    masks = torch.cat([torch.rand(4, 500, generator=gen), torch.zeros(1, 500), torch.ones(1, 500)])
    areas = torch.tensor([0.05, 0.3, 0.05, 0.9, 0.2, 0.2], dtype=F64)
    expected = (masks.sort(dim=1).values - ramp(areas, 500, torch.float32)).pow(2).mean(dim=1)
    torch.testing.assert_close(area_regulariser(masks, (areas * 500).round().long()), expected)


# -- the optimisers ----------------------------------------------------------------------------------------------
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

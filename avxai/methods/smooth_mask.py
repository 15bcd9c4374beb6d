"""Smooth masks (Fong, Patrick & Vedaldi 2019): a coarse parameter grid through a smooth max-convolution.

A mask is parametrised by values ``p_i`` in [0, 1] on a coarse grid of points ``u_i`` spaced ``step``
cells apart along each axis. Along one axis, the mask at a position ``u`` is the smooth maximum over the
points within ``radius * sigma`` of ``u`` of the kernel-weighted parameters ``g_i(u) = k(u - u_i) p_i``::

    smax_i g_i(u) = sum_i g_i softmax(g / T)_i,    k(d) = exp(-(d / sigma) ** 2).

``k(0) = 1``, so a single point set to 1 makes a bump of height ~1 and width ~``sigma``; the smooth max
(temperature ``T``) makes overlapping bumps merge like a max rather than add up. The masks are smooth by
construction (no blob smaller than ``sigma``) with no extra regulariser to tune.

On grids of 2 or 3 axes the smooth max is taken one axis at a time (separable), with a step and a sigma
per axis (time and frequency resolutions differ). The Gaussian kernel factorises over axes, so for a hard
max (``T -> 0``) this equals the paper's max over the product neighbourhood:
``max_ij k0_i k1_j p_ij = max_i k0_i max_j k1_j p_ij``; for ``T > 0`` it is a close variant whose value
depends a little on the order of the axes (:attr:`SmoothMaskGenerator.pass_order`: the order with the
least work), at the cost of the sum instead of the product of the neighbourhood sizes.

The smooth mask is computed on an intermediate grid of at most ``oversample`` cells per step along each
axis (never finer than the target grid); :meth:`SmoothMaskGenerator.upsample` (linear interpolation) or a
modality's own ``upsample`` brings it to the full grid. Everything is tensor operations under autograd, on
any device and in any floating dtype.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


def per_axis(value: "float | Sequence[float]", ndim: int, name: str) -> tuple[float, ...]:
    """A scalar or a per-axis sequence as a tuple of ``ndim`` floats; ``ValueError`` on a length mismatch."""
    if isinstance(value, (int, float)):
        return (float(value),) * ndim
    values = tuple(float(v) for v in value)
    if len(values) != ndim:
        raise ValueError(f"{name} has {len(values)} values {values} but the grid has {ndim} axes; give one "
                         f"value per axis or a single number")
    return values


def default_step(grid_shape: Sequence[int], cells: int = 32) -> tuple[int, ...]:
    """A step per axis giving about ``cells`` parameter points along each axis (at least 1 cell)."""
    return tuple(max(1, int(round(n / cells))) for n in grid_shape)


#: ``sigma / step`` by the number of grid axes. On 1- and 2-D grids (audio) ``2``: a run of ones dips by at most
#: ``1 - exp(-1/16) = 6 %`` between two points. On 3-D grids (video: time x height x width) the optimiser keeps
#: alternate points on inside a blob, and a point ``step`` from the nearest one then gets only
#: ``exp(-(step / sigma) ** 2)`` = 0.78 per axis at ``2`` (a dot lattice inside the face masks); ``3`` (Fong et
#: al.'s and TorchRay's ratio, step 7 / sigma 21) gives 0.89 and halved the ripple inside kept blobs on the
#: bundled AV model, with no loss of mouth mass (docs/results/av_enhancement.md, "Smooth video masks"). On the
#: speaker A-B-A spectrogram ``3`` was no better (mass on the target's frames as often down as up, by up to 8
#: points), so audio keeps ``2``.
SIGMA_PER_STEP = {1: 2.0, 2: 2.0, 3: 3.0}


def default_sigma(step: Sequence[float]) -> tuple[float, ...]:
    """The kernel width per axis for a grid with these steps: ``SIGMA_PER_STEP[len(step)] * step``."""
    ratio = SIGMA_PER_STEP[len(step)]
    return tuple(ratio * float(s) for s in step)


class _AxisPass(NamedTuple):
    """One pass of the smooth max along an axis of ``points`` parameter points to ``o`` cells, ``k`` neighbours
    each; the pass works on a tensor with its axis first."""

    source: int  # where the axis is in the working tensor before the pass (it is moved to the front)
    points: int
    index: Tensor  # (k * o,) long: each (neighbour, cell) term's parameter point, k-major (clamped into the grid)
    scaled_weight: Tensor  # (k, o, 1): kernel over temperature k(u - u_i) / T, 0 where the neighbour lies outside
    bias: Tensor  # (k, o, 1): 0, or -inf where the neighbour lies outside (left out of the smooth max)


class SmoothMaskGenerator:
    """Smooth max-convolution masks on a 1-, 2- or 3-D grid (see the module docstring).

    Parameters
    ----------
    grid_shape : the target grid, cells per axis (e.g. ``(mel, time)``).
    step : spacing of the parameter points in grid cells, per axis (>= 1).
    sigma : kernel width in grid cells, per axis (> 0); the smallest feature a mask can have.
    temperature : smooth-max temperature ``T`` (> 0); small = close to a hard max.
    oversample : cells of the generated mask per step along each axis (>= 1), capped at the grid size.
    radius : neighbourhood half-width in units of sigma (points farther than ``radius * sigma`` along an
        axis are left out of the smooth max).

    Attributes
    ----------
    param_shape : shape of one mask's parameters, ``ceil((grid - 1) / step) + 1`` per axis.
    out_shape : shape of the generated masks (before upsampling to the grid).
    pass_order : the axes in the order the passes take them.

    Shape: params ``(n, *param_shape)`` in [0, 1] -> masks ``(n, *out_shape)`` in [0, 1];
    :meth:`upsample` ``(n, *out_shape)`` -> ``(n, *grid_shape)``.
    """

    def __init__(self, grid_shape: Sequence[int], step: "float | Sequence[float]",
                 sigma: "float | Sequence[float]", temperature: float = 0.05, oversample: int = 4,
                 radius: float = 2.0, dtype: torch.dtype = torch.float32, device: "torch.device | str" = "cpu"):
        grid_shape = tuple(int(n) for n in grid_shape)
        nd = len(grid_shape)
        if not 1 <= nd <= 3:
            raise ValueError(f"smooth masks need a grid of 1 to 3 axes, got grid shape {grid_shape}")
        if any(n < 1 for n in grid_shape):
            raise ValueError(f"every grid axis needs at least one cell, got grid shape {grid_shape}")
        self.grid_shape = grid_shape
        self.step = per_axis(step, nd, "step")
        self.sigma = per_axis(sigma, nd, "sigma")
        if any(s < 1 for s in self.step):
            raise ValueError(f"step must be >= 1 grid cell on every axis, got {self.step}")
        if any(s <= 0 for s in self.sigma):
            raise ValueError(f"sigma must be > 0 grid cells on every axis, got {self.sigma}")
        if temperature <= 0:
            raise ValueError(f"the smooth-max temperature must be > 0, got {temperature}")
        if int(oversample) < 1:
            raise ValueError(f"oversample must be >= 1, got {oversample}")
        if radius <= 0:
            raise ValueError(f"radius must be > 0 (in units of sigma), got {radius}")
        self.temperature = float(temperature)
        self.dtype, self.device = dtype, torch.device(device)
        self.param_shape = tuple(int(math.ceil((n - 1) / s)) + 1 for n, s in zip(grid_shape, self.step))
        self.out_shape = tuple(min(n, p * int(oversample)) for n, p in zip(grid_shape, self.param_shape))

        # Per axis: the position of every output cell in grid-cell units (cell centres, as F.interpolate with
        # align_corners=False places them), its nearest parameter point and that point's neighbours.
        tables = [_axis_table(*args, radius) for args in zip(grid_shape, self.out_shape, self.param_shape,
                                                              self.step, self.sigma)]
        self.neighbours = sum(index.shape[0] for index, _ in tables)  # (neighbour, cell) terms per cell, all passes
        self.pass_order = _pass_order(self.param_shape, self.out_shape, [index.shape[0] for index, _ in tables])
        self._passes: list[_AxisPass] = []
        layout = [-1, *range(nd)]  # -1: the masks' batch axis
        for a in self.pass_order:
            index, weight = tables[a]  # (k, o) each
            outside = weight == 0.0
            self._passes.append(_AxisPass(
                layout.index(a), self.param_shape[a], index.reshape(-1).to(self.device),
                (weight / self.temperature).unsqueeze(-1).to(device=self.device, dtype=dtype),
                torch.where(outside, -math.inf, 0.0).unsqueeze(-1).to(device=self.device, dtype=dtype)))
            layout = [a] + [d for d in layout if d != a]
        self._final_permutation = tuple(layout.index(d) for d in [-1, *range(nd)])
        # Linear interpolation from out_shape to grid_shape, one matrix per axis (None where equal); along every
        # axis but the last also in row blocks (two non-zeros a row: a dense product wastes most of its terms)
        matrices = [None if o == n else _linear_matrix(o, n) for o, n in zip(self.out_shape, grid_shape)]
        self._interp = [None if m is None else m.to(device=self.device, dtype=dtype) for m in matrices]
        self._blocks = [None if m is None or a == nd - 1 else _row_blocks(m, self.device, dtype)
                        for a, m in enumerate(matrices)]

    def init_params(self, n: int, value: float = 0.5, jitter: float = 0.0, seed: int = 0) -> Tensor:
        """Initial parameters ``(n, *param_shape)``: ``value`` plus uniform noise of half-width ``jitter``, clamped
        to [0, 1]."""
        params = torch.full((n, *self.param_shape), float(value), dtype=self.dtype)
        if jitter > 0:
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            noise = torch.rand((n, *self.param_shape), generator=gen, dtype=self.dtype) * 2.0 - 1.0
            params = params + jitter * noise
        return params.clamp(0.0, 1.0).to(self.device)

    def __call__(self, params: Tensor) -> Tensor:
        """Masks ``(n, *out_shape)`` from parameters ``(n, *param_shape)`` (differentiable).

        Each pass moves its axis to the front of the working tensor, ``(points, rest)``, and leaves it there at
        the output resolution: gathering the neighbours is then a copy of contiguous rows and the smooth max a
        reduction over the leading dimension; a last permutation gives ``(n, *out_shape)``. The exponents
        ``s = g / T`` come from the kernel over the temperature, and ``smax = T sum_i s_i softmax(s)_i``.
        """
        if params.dim() != 1 + len(self.param_shape) or tuple(params.shape[1:]) != self.param_shape:
            raise ValueError(f"parameters must have shape (n, {', '.join(map(str, self.param_shape))}), got "
                             f"{tuple(params.shape)}")
        x = params
        for axis in self._passes:
            x = x.movedim(axis.source, 0)
            rest = x.shape[1:]
            x = _SmoothMax.apply(x.reshape(axis.points, -1), axis, self.temperature).view(-1, *rest)
        return x.permute(self._final_permutation)

    def upsample(self, masks: Tensor) -> Tensor:
        """Linear interpolation of masks ``(n, *out_shape)`` to ``(n, *grid_shape)``.

        The same values as ``F.interpolate(..., mode="(bi|tri)linear", align_corners=False)`` (the default
        :meth:`avxai.modalities.base.Modality.upsample`), as small matrix products per axis.

        The last axis goes first, one dense product while the others are at the smooth mask's resolution; every
        other axis (rows of the rest) in row blocks when that is cheaper: each block of output rows is the
        product of a small matrix and the few input rows it reads (:func:`_row_blocks`), about a fifth of the
        terms of the dense product on a spectrogram. The same sums but for their zero terms.
        """
        nd = len(self._interp)
        out = masks if self._interp[-1] is None else masks @ self._interp[-1].T
        for a in reversed(range(nd - 1)):
            matrix, blocks = self._interp[a], self._blocks[a]
            if matrix is None:
                continue
            if blocks is None:
                out = (out.movedim(a + 1, -1) @ matrix.T).movedim(-1, a + 1)
                continue
            shape = out.shape  # (n, *sizes): axis a + 1 is interpolated, the rest rides along as rows
            rows = out.reshape(math.prod(shape[:a + 1]), shape[a + 1], -1)
            picked = rows.index_select(1, blocks.index).view(rows.shape[0], blocks.weight.shape[0], -1,
                                                              rows.shape[-1])
            moved = (blocks.weight @ picked).view(rows.shape[0], -1, rows.shape[-1])[:, :matrix.shape[0]]
            out = moved.reshape(*shape[:a + 1], matrix.shape[0], *shape[a + 2:])
        return out.contiguous()

    def describe(self) -> dict:
        """JSON-serialisable description (for an explanation's metadata)."""
        return {"grid_shape": list(self.grid_shape), "param_shape": list(self.param_shape),
                "out_shape": list(self.out_shape), "step": list(self.step), "sigma": list(self.sigma),
                "temperature": self.temperature, "neighbours": self.neighbours, "pass_order": list(self.pass_order)}


class _SmoothMax(torch.autograd.Function):
    """One pass: ``y = T sum_i s_i softmax(s + bias)_i`` over the ``k`` neighbours, ``s`` the gathered points times the
    scaled kernel. The backward is written out, ``dy/ds_i = T p_i (1 + s_i - y / T)`` with ``p = softmax(s + bias)``
    (a few passes over ``(k, o, rest)`` where autograd's chain of mul, softmax and sum takes about twice as many).

    Shape: ``(points, rest)`` -> ``(o, rest)``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, axis: _AxisPass, temperature: float) -> Tensor:
        k, o = axis.scaled_weight.shape[:2]
        s = x.index_select(0, axis.index).view(k, o, -1).mul_(axis.scaled_weight)
        p = torch.softmax(s + axis.bias, dim=0)
        y = (s * p).sum(dim=0).mul_(temperature)
        ctx.save_for_backward(s, p, y)
        ctx.axis, ctx.temperature, ctx.points = axis, temperature, x.shape[0]
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        s, p, y = ctx.saved_tensors
        axis, t = ctx.axis, ctx.temperature
        grad_s = (s - y / t).add_(1.0).mul_(p).mul_(grad * t).mul_(axis.scaled_weight)
        grad_x = grad.new_zeros(ctx.points, grad.shape[-1]).index_add_(0, axis.index, grad_s.view(-1, grad.shape[-1]))
        return grad_x, None, None


def _axis_table(cells: int, out: int, points: int, step: float, sigma: float, radius: float) -> tuple[Tensor, Tensor]:
    """For ``out`` cells spread over an axis of ``cells`` grid cells, with parameter points every ``step`` cells:
    the index of each cell's neighbouring points (clamped into ``[0, points)``) and their kernel weights
    ``exp(-(d / sigma) ** 2)`` (0 for neighbours outside the parameter grid), float64.

    Shape: ``(k, out)`` each, ``k = 2 ceil(radius * sigma / step) + 1`` neighbours.
    """
    pos = (torch.arange(out, dtype=torch.float64) + 0.5) * (cells / out) - 0.5
    centre = torch.round(pos / step).long()
    r = max(1, int(math.ceil(radius * sigma / step)))
    idx = centre[None, :] + torch.arange(-r, r + 1)[:, None]  # (k, out)
    weight = torch.exp(-(((pos[None, :] - idx.double() * step) / sigma) ** 2))
    inside = (idx >= 0) & (idx < points)
    return idx.clamp(0, points - 1), torch.where(inside, weight, 0.0)


def _pass_order(points: Sequence[int], cells: Sequence[int], neighbours: Sequence[int]) -> tuple[int, ...]:
    """The order of the passes with the fewest (neighbour, cell) terms in all.

    The pass along axis ``a`` handles ``neighbours[a] * cells[a]`` terms for every position of the other
    axes, which are at their output size ``cells`` once passed and at ``points`` before: an axis that
    grows little (``cells / points`` small) is cheapest first. Exact for a hard max, where the order of
    per-axis maxima does not matter.
    """
    def cost(order: tuple[int, ...]) -> int:
        sizes, total = list(points), 0
        for a in order:
            sizes[a] = cells[a]
            total += neighbours[a] * math.prod(sizes)
        return total

    return min(itertools.permutations(range(len(points))), key=cost)


def _linear_matrix(size_in: int, size_out: int) -> Tensor:
    """1-D linear interpolation with ``align_corners=False`` (as F.interpolate) as a ``(size_out, size_in)``
    float64 matrix: output ``i`` is ``(1 - frac) x[low] + frac x[high]``."""
    src = ((torch.arange(size_out, dtype=torch.float64) + 0.5) * (size_in / size_out) - 0.5).clamp_min(0.0)
    low = src.floor().long().clamp(max=size_in - 1)
    high = (low + 1).clamp(max=size_in - 1)
    frac = src - low
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    rows = torch.arange(size_out)
    matrix.index_put_((rows, low), 1.0 - frac, accumulate=True)
    matrix.index_put_((rows, high), frac, accumulate=True)
    return matrix


class _RowBlocks(NamedTuple):
    """An interpolation matrix ``(out, in)`` cut into ``B`` blocks of ``ob`` output rows: block ``b`` reads the
    ``w`` input rows ``index[b * w:(b + 1) * w]`` and weighs them by ``weight[b]`` (rows past ``out`` are zero)."""
    index: Tensor  # (B * w,) long
    weight: Tensor  # (B, ob, w)


def _row_blocks(matrix: Tensor, device: torch.device, dtype: torch.dtype) -> _RowBlocks | None:
    """The block form of a banded ``(out, in)`` float64 matrix with the fewest terms (a few per block added for
    its overhead), or ``None`` where it does not save half of the dense product's ``out * in`` terms."""
    size_out, size_in = matrix.shape
    nonzero = (matrix != 0).nonzero()
    first = torch.full((size_out,), size_in).scatter_reduce(0, nonzero[:, 0], nonzero[:, 1], "amin")
    last = torch.full((size_out,), -1).scatter_reduce(0, nonzero[:, 0], nonzero[:, 1], "amax")
    best = None
    for count in range(2, min(32, size_out) + 1):
        rows = -(-size_out // count)
        lo = [int(first[b * rows:(b + 1) * rows].min()) for b in range(count) if b * rows < size_out]
        hi = [int(last[b * rows:(b + 1) * rows].max()) + 1 for b in range(count) if b * rows < size_out]
        width = max(h - l for l, h in zip(lo, hi))
        cost = len(lo) * rows * (width + 4)
        if best is None or cost < best[0]:
            best = (cost, rows, width, lo)
    if best is None or 2 * best[0] > size_out * size_in:
        return None
    _, rows, width, lo = best
    starts = [max(0, min(s, size_in - width)) for s in lo]
    weight = torch.zeros(len(starts), rows, width, dtype=torch.float64)
    for b, s in enumerate(starts):
        part = matrix[b * rows:(b + 1) * rows, s:s + width]
        weight[b, :part.shape[0], :part.shape[1]] = part
    index = (torch.tensor(starts)[:, None] + torch.arange(width)).clamp(max=size_in - 1).reshape(-1)
    return _RowBlocks(index.to(device), weight.to(device=device, dtype=dtype))


__all__ = ["SmoothMaskGenerator", "SIGMA_PER_STEP", "default_sigma", "default_step", "per_axis"]

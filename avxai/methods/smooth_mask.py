"""Smooth masks (Fong, Patrick & Vedaldi 2019): a coarse parameter grid through a smooth max-convolution.

A mask is parametrised by values ``p_i`` in [0, 1] on a coarse grid of points ``u_i`` spaced ``step``
cells apart along each axis. The mask at a position ``u`` is the smooth maximum, over the points of a
neighbourhood of ``u``, of the kernel-weighted parameters ``g_i(u) = k(u - u_i) p_i``::

    m(u) = smax_i g_i(u) = sum_i g_i exp(g_i / T) / sum_i exp(g_i / T),
    k(d) = exp(-sum_axes (d_axis / sigma_axis) ** 2).

``k(0) = 1``, so a single point set to 1 makes a bump of height ~1 and width ~``sigma``; the smooth
max (temperature ``T``) makes overlapping bumps merge like a max rather than add up. The masks are
smooth by construction (no blob smaller than ``sigma``) with no extra regulariser to tune.
Works on grids of 1, 2 or 3 axes with a step and a sigma per axis (time and frequency resolutions differ).

The smooth mask is computed on an intermediate grid of at most ``oversample`` cells per step along each
axis (never finer than the target grid); a modality's ``upsample`` brings it to the full grid.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import math
import warnings
from types import ModuleType
from typing import Any, NamedTuple, Sequence

import numpy as np
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


class SmoothMaskGenerator:
    """Smooth max-convolution masks on a 1-, 2- or 3-D grid.

    Parameters
    ----------
    grid_shape : the target grid, cells per axis (e.g. ``(mel, time)``).
    step : spacing of the parameter points in grid cells, per axis (>= 1).
    sigma : kernel width in grid cells, per axis (> 0); the smallest feature a mask can have.
    temperature : smooth-max temperature ``T`` (> 0); small = close to a hard max.
    oversample : cells of the generated mask per step along each axis (>= 1), capped at the grid size.
    radius : neighbourhood half-width in units of sigma (points farther than ``radius * sigma`` along an
        axis are left out of the smooth max).
    separable : take the smooth max one axis at a time (cost ``sum`` instead of ``product`` of the
        neighbourhood sizes). The Gaussian kernel factorises over axes, so for a hard max
        (``T -> 0``) this is exact: ``max_ij k0_i k1_j p_ij = max_i k0_i max_j k1_j p_ij``; for ``T > 0``
        it is a close variant of the paper's operator, whose value depends a little on the order of the
        axes (``pass_order``: the one with the least work). ``False``: the product neighbourhood, as in the
        paper.
    cpu_kernels : on the CPU in float32, with parameters in [0, 1] (or up to ``25 T``), run the separable
        smooth max, and its upsampling in :meth:`masks_with_state`, as one compiled call forward and one
        backward (:mod:`avxai.methods.cpu_kernels`; the same values as the tensor operations to float
        rounding). ``False``: tensor operations only.

    Attributes
    ----------
    param_shape : shape of one mask's parameters, ``ceil((grid - 1) / step) + 1`` per axis.
    out_shape : shape of the generated masks (before upsampling to the grid).
    pass_order : the axes in the order the separable passes take them.

    Shape: params ``(n, *param_shape)`` in [0, 1] -> masks ``(n, *out_shape)`` in [0, 1].
    """

    def __init__(self, grid_shape: Sequence[int], step: "float | Sequence[float]",
                 sigma: "float | Sequence[float]", temperature: float = 0.05, oversample: int = 4,
                 radius: float = 2.0, separable: bool = True, dtype: torch.dtype = torch.float32,
                 device: "torch.device | str" = "cpu", cpu_kernels: bool = True):
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
        self.param_shape = tuple(int(math.ceil((n - 1) / s)) + 1 for n, s in zip(grid_shape, self.step))
        self.out_shape = tuple(min(n, p * int(oversample)) for n, p in zip(grid_shape, self.param_shape))

        self.separable = bool(separable)
        # Per axis: position of every output cell in grid-cell units (cell centres, as F.interpolate with
        # align_corners=False places them), its nearest parameter point and that point's neighbours.
        self._axis_index, self._axis_index_ko, self._axis_weight, self._axis_bias = [], [], [], []
        axes_dist, axes_valid = [], []
        for n, o, p, st, sg in zip(grid_shape, self.out_shape, self.param_shape, self.step, self.sigma):
            pos = (torch.arange(o, dtype=torch.float64) + 0.5) * (n / o) - 0.5
            centre = torch.round(pos / st).long()
            r = max(1, int(math.ceil(radius * sg / st)))
            idx = centre[:, None] + torch.arange(-r, r + 1)[None, :]  # (o, 2r+1)
            valid = (idx >= 0) & (idx < p)
            dist = ((pos[:, None] - idx.double() * st) / sg) ** 2  # squared distance in sigmas
            axes_dist.append(dist)
            axes_valid.append(valid)
            self._axis_index.append(idx.clamp(0, p - 1).reshape(-1).to(device))  # (o * k), o-major
            self._axis_index_ko.append(idx.clamp(0, p - 1).T.reshape(-1).to(device))  # (k * o), k-major
            self._axis_weight.append(torch.exp(-dist).to(device=device, dtype=dtype))
            self._axis_bias.append(_bias(valid).to(device=device, dtype=dtype))
        if not self.separable:
            # Every output cell x every neighbour of the product neighbourhood, into the flat parameters.
            strides = [int(math.prod(self.param_shape[a + 1:])) for a in range(nd)]
            index = torch.zeros((), dtype=torch.long)
            dist = torch.zeros((), dtype=torch.float64)
            valid = torch.ones((), dtype=torch.bool)
            for a in range(nd):
                # axis a's (o_a, k_a) table broadcast into (o_0, ..., o_{nd-1}, k_0, ..., k_{nd-1})
                shape = [1] * (2 * nd)
                shape[a], shape[nd + a] = self.out_shape[a], axes_dist[a].shape[1]
                index = index + (self._axis_index[a].view(self.out_shape[a], -1).cpu() * strides[a]).view(shape)
                dist = dist + axes_dist[a].view(shape)
                valid = valid & axes_valid[a].view(shape)
            cells = int(math.prod(self.out_shape))
            self.index = index.reshape(cells, -1).to(device)  # (cells, neighbours)
            self.weight = torch.exp(-dist).reshape(cells, -1).to(device=device, dtype=dtype)  # k(u - u_i)
            self.bias = _bias(valid.reshape(cells, -1)).to(device=device, dtype=dtype)
        # Separable passes, in the cheapest order (see _pass_order): for each, the position of its axis in the
        # working tensor's layout, the index of each (neighbour, out cell) into the parameter axis (k-major),
        # kernel weights and biases (0 / -inf) as (k, o, 1); then the permutation back to (n, *out_shape).
        self._passes = []
        layout = [-1, *range(nd)]  # -1: the masks' batch axis
        self.pass_order = _pass_order(self.param_shape, self.out_shape, [w.shape[1] for w in self._axis_weight])
        for a in self.pass_order:
            k, o = self._axis_weight[a].shape[1], self._axis_weight[a].shape[0]
            outside = torch.isinf(self._axis_bias[a].T.reshape(k, o, 1))
            weight = self._axis_weight[a].T.reshape(k, o, 1).masked_fill(outside, 0.0).contiguous()
            self._passes.append(_AxisPass(layout.index(a), self.param_shape[a], self._axis_index_ko[a], weight,
                                          weight / self.temperature, torch.where(outside, -math.inf, 0.0).to(weight),
                                          torch.where(outside, -_OUTSIDE, 0.0).to(weight),
                                          outside.sum(dim=0).to(weight),
                                          _kernel_transpose(self._axis_index_ko[a], weight, self.param_shape[a])
                                          if dtype in _SPARSE_DTYPES and torch.device(device).type in ("cpu", "cuda")
                                          else None))
            layout = [a] + [d for d in layout if d != a]
        self._final_permutation = tuple(layout.index(d) for d in [-1, *range(nd)])
        self.dtype, self.device = dtype, torch.device(device)
        # Linear interpolation from out_shape to grid_shape, one matrix per axis (None where equal).
        self._interp = [None if o == n else _linear_matrix(o, n).to(device=device, dtype=dtype)
                        for o, n in zip(self.out_shape, grid_shape)]
        kernels = load_cpu_kernels() if cpu_kernels and self.separable and dtype == torch.float32 else None
        self._compiled = _CompiledPlan(self, kernels) if kernels is not None and self.device.type == "cpu" else None

    @property
    def neighbours(self) -> int:
        """Parameter points entering each output cell's smooth max (per pass when separable)."""
        if self.separable:
            return sum(w.shape[1] for w in self._axis_weight)
        return self.index.shape[1]

    def init_params(self, n: int, value: float = 0.5, jitter: float = 0.0, seed: int = 0) -> Tensor:
        """Initial parameters ``(n, *param_shape)``: ``value`` plus uniform noise of half-width ``jitter``, in [0, 1]."""
        params = torch.full((n, *self.param_shape), float(value), dtype=self.dtype)
        if jitter > 0:
            gen = torch.Generator(device="cpu").manual_seed(int(seed))
            noise = torch.rand((n, *self.param_shape), generator=gen, dtype=self.dtype) * 2.0 - 1.0
            params = params + jitter * noise
        return params.clamp(0.0, 1.0).to(self.device)

    def __call__(self, params: Tensor) -> Tensor:
        """Masks ``(n, *out_shape)`` from parameters ``(n, *param_shape)`` (differentiable)."""
        if params.dim() != 1 + len(self.param_shape) or tuple(params.shape[1:]) != self.param_shape:
            raise ValueError(f"parameters must have shape (n, {', '.join(map(str, self.param_shape))}), got "
                             f"{tuple(params.shape)}")
        n = params.shape[0]
        if not self.separable:
            g = params.reshape(n, -1)[:, self.index] * self.weight  # (n, cells, neighbours)
            return self._smax(g, self.bias, dim=-1).reshape(n, *self.out_shape)
        return _SeparableSmoothMax.apply(params, self)

    def forward_with_state(self, params: Tensor, value_range: tuple[float, float] | None = None
                           ) -> tuple[Tensor, list[Tensor]]:
        """Masks ``(n, *out_shape)`` without autograd, and what :meth:`vjp` needs (separable only).

        For a loop that records only the model in autograd: the masks' gradient comes back through
        :meth:`upsample_vjp` and :meth:`vjp`, without the cost of an autograd node. ``value_range``: bounds
        the caller guarantees for the parameters (e.g. ``(0, 1)`` after clamping), which spares the tensor
        operations a pass over them; ``None``: taken from the parameters. (The compiled CPU kernels check the
        range themselves in the same loop, and hand over to the tensor operations outside ``[0, 25 T]``.)
        """
        if not self.separable:
            raise ValueError("forward_with_state needs separable=True; call the generator under autograd instead")
        params = params.detach()
        if self._compiled is not None:
            result = self._compiled.forward(params, upsample=False)
            if result is not None:
                return result[0], result[2]
        masks, saved = _smooth_max(params, self._passes, self._final_permutation, self.temperature, value_range)
        return masks, SmoothMaxState(False, saved)

    def vjp(self, state: "SmoothMaxState", grad: Tensor) -> Tensor:
        """Gradient ``(n, *param_shape)`` of a loss with respect to the parameters, from its gradient with respect
        to the masks ``(n, *out_shape)`` of :meth:`forward_with_state` (``state``)."""
        if state.compiled:
            return self._compiled.backward(state, None, grad)
        return _smooth_max_backward(state.saved, self._passes, self._final_permutation, self.temperature, grad)

    def masks_with_state(self, params: Tensor, value_range: tuple[float, float] | None = None
                         ) -> tuple[Tensor, Tensor, "SmoothMaxState"]:
        """:meth:`forward_with_state` and :meth:`upsample` together: the masks ``(n, *out_shape)``, the masks on
        the grid ``(n, *grid_shape)`` and the state for :meth:`masks_vjp` (one compiled call on the CPU)."""
        if self._compiled is not None:
            result = self._compiled.forward(params.detach(), upsample=True)
            if result is not None:
                return result
        masks, state = self.forward_with_state(params, value_range)
        return masks, self.upsample(masks), state

    def masks_vjp(self, state: "SmoothMaxState", grad_grid: Tensor, grad_masks: Tensor | None = None) -> Tensor:
        """Gradient ``(n, *param_shape)`` w.r.t. the parameters of :meth:`masks_with_state`, from the gradients
        w.r.t. its masks on the grid ``(n, *grid_shape)`` and, optionally, its masks ``(n, *out_shape)``."""
        if state.compiled:
            return self._compiled.backward(state, grad_grid, grad_masks)
        grad = self.upsample_vjp(grad_grid)
        if grad_masks is not None:  # in place into the upsampling's output, never into the caller's gradient
            grad = grad + grad_masks if grad is grad_grid else grad.add_(grad_masks)
        return self.vjp(state, grad)

    def upsample(self, masks: Tensor) -> Tensor:
        """Linear interpolation of masks ``(n, *out_shape)`` to ``(n, *grid_shape)``.

        The same values as ``F.interpolate(..., mode="(bi|tri)linear", align_corners=False)`` (the default
        :meth:`avxai.modalities.base.Modality.upsample`), as one small matrix product per axis.
        """
        out = masks
        for a, matrix in enumerate(self._interp):
            if matrix is not None:
                out = (out.movedim(a + 1, -1) @ matrix.T).movedim(-1, a + 1)
        return out

    def upsample_vjp(self, grad: Tensor) -> Tensor:
        """The transpose of :meth:`upsample`: a gradient on the grid ``(n, *grid_shape)`` to ``(n, *out_shape)``."""
        out = grad
        for a, matrix in enumerate(self._interp):
            if matrix is not None:
                out = (out.movedim(a + 1, -1) @ matrix).movedim(-1, a + 1)
        return out

    def _smax(self, g: Tensor, bias: Tensor, dim: int) -> Tensor:
        """Smooth max over ``dim``: ``sum g softmax(g / T)`` (``bias`` -inf drops a neighbour)."""
        return (g * torch.softmax(g / self.temperature + bias, dim=dim)).sum(dim=dim)

    def describe(self) -> dict:
        """JSON-serialisable description (for an explanation's metadata)."""
        return {"grid_shape": list(self.grid_shape), "param_shape": list(self.param_shape),
                "out_shape": list(self.out_shape), "step": list(self.step), "sigma": list(self.sigma),
                "temperature": self.temperature, "separable": self.separable, "neighbours": self.neighbours,
                **({"pass_order": list(self.pass_order)} if self.separable else {})}


class _AxisPass(NamedTuple):
    """One separable pass along an axis of ``points`` parameter points to ``o`` cells, ``k`` neighbours each."""

    source: int  # where the axis is in the working tensor before the pass (it is moved to the front)
    points: int
    index: Tensor  # (k * o,) long: the neighbour's parameter point, k-major
    weight: Tensor  # (k, o, 1): kernel k(u - u_i), 0 where the neighbour lies outside the parameter grid
    scaled_weight: Tensor  # (k, o, 1): the kernel over the temperature, k(u - u_i) / T
    bias: Tensor  # (k, o, 1): 0, or -inf outside the grid
    outside_bias: Tensor  # (k, o, 1): 0, or -_OUTSIDE outside the grid (with one shift for all cells)
    outside: Tensor  # (o, 1): how many of the cell's neighbours lie outside the grid (without a shift)
    scatter: Tensor | None  # sparse (points, k * o): the kernel from each (neighbour, cell) back to its parameter
    # point; None where sparse products are missing (half precision, devices other than CPU and CUDA), which take
    # the kernel and an index_add


class SmoothMaxState(NamedTuple):
    """What :meth:`SmoothMaskGenerator.vjp` needs from :meth:`SmoothMaskGenerator.forward_with_state`."""

    compiled: bool  # from the compiled CPU kernels: ``saved`` is their work array (each pass's input, output, total)
    saved: Any  # a NumPy array (compiled), else tensors (four per pass, see _smooth_max)


class _CompiledPlan:
    """A generator's separable smooth max and upsampling as :mod:`avxai.methods.cpu_kernels` calls.

    The kernels work on 4-D arrays: ``3 - nd`` axes of size 1, the masks, then the grid's ``nd`` axes (so that
    the last axis of every array they permute has more than one cell), and move each pass's axis to the front
    as :func:`_smooth_max` does; this holds the generator's tables in the kernels' flat form.
    """

    def __init__(self, generator: "SmoothMaskGenerator", kernels: ModuleType):
        self.kernels = kernels
        self.generator = generator
        nd = len(generator.param_shape)
        self.pad = (1,) * (3 - nd)
        standard = [f"pad{i}" for i in range(3 - nd)] + ["masks", *range(nd)]
        layout, passes, offset, outside_offset = list(standard), [], 0, 0
        for a, axis in zip(generator.pass_order, generator._passes):
            k, cells = axis.weight.shape[:2]
            passes.append((layout.index(a), k, cells, offset, outside_offset))
            offset, outside_offset = offset + k * cells, outside_offset + cells
            layout = [a] + [d for d in layout if d != a]
        self.passes = np.asarray(passes, dtype=np.int64)
        self.index = np.concatenate([axis.index.numpy() for axis in generator._passes])
        self.scaled_weight = np.concatenate([axis.scaled_weight.reshape(-1).numpy() for axis in generator._passes])
        self.weight = np.concatenate([axis.weight.reshape(-1).numpy() for axis in generator._passes])
        self.outside = np.concatenate([axis.outside.reshape(-1).numpy() for axis in generator._passes])
        self.to_standard = np.asarray([layout.index(d) for d in standard], dtype=np.int64)
        upsampling, taps, offset = np.zeros((3, 3), dtype=np.int64), [], 0
        for a in range(nd):
            if generator.out_shape[a] != generator.grid_shape[a]:
                taps.append(_linear_taps(generator.out_shape[a], generator.grid_shape[a], torch.float32))
                upsampling[a] = (offset, generator.grid_shape[a], layout.index(a))
                offset += generator.grid_shape[a]
        self.upsampling, self.no_upsampling = upsampling, np.zeros((3, 3), dtype=np.int64)
        self.taps = tuple(np.concatenate([t[i].numpy() for t in taps]) if taps else
                          np.zeros(0, dtype=np.float32 if i == 2 else np.int64) for i in range(3))
        self.temperature = np.float32(generator.temperature)
        self.limit = _SPAN * generator.temperature  # parameters in [0, limit]: exponents need no shift
        self._work: dict[int, tuple[np.ndarray, tuple[int, ...]]] = {}

    def work_layout(self, n: int) -> tuple[np.ndarray, tuple[int, ...]]:
        """For ``n`` masks: the offsets of each pass's buffers in the work array (and its size, last), and the
        smooth masks' 4-D shape in the working layout."""
        if n not in self._work:
            shape, offsets = [*self.pad, n, *self.generator.param_shape], [0]
            for source, _, cells, *_ in self.passes:
                rest = math.prod(shape) // shape[source]
                offsets.append(offsets[-1] + (shape[source] + 2 * cells) * rest)
                shape = [cells] + [d for i, d in enumerate(shape) if i != source]
            self._work[n] = (np.asarray(offsets, dtype=np.int64), tuple(shape))
        return self._work[n]

    def forward(self, params: Tensor, upsample: bool) -> "tuple[Tensor, Tensor | None, SmoothMaxState] | None":
        """(masks, masks on the grid or None, state), or None where the kernels do not apply (device, dtype,
        parameters outside [0, limit])."""
        n = params.shape[0]
        if params.device.type != "cpu" or params.dtype != torch.float32 or n == 0:
            return None
        offsets, _ = self.work_layout(n)
        work = np.empty(offsets[-1], dtype=np.float32)
        ok, smooth, grid = self.kernels.smooth_masks(
            _as_array(params, (*self.pad, n, *self.generator.param_shape)), self.limit, self.temperature,
            self.passes, self.index, self.scaled_weight, self.weight, self.outside, work, offsets, self.to_standard,
            self.upsampling if upsample else self.no_upsampling, *self.taps)
        if not ok:
            return None
        masks = torch.from_numpy(smooth).view(n, *self.generator.out_shape)
        on_grid = torch.from_numpy(grid).view(n, *self.generator.grid_shape) if upsample else None
        return masks, on_grid, SmoothMaxState(True, work)

    def backward(self, state: SmoothMaxState, grad_grid: Tensor | None, grad_masks: Tensor | None) -> Tensor:
        """Gradient w.r.t. the parameters from gradients w.r.t. the masks on the grid and/or the masks."""
        n = grad_grid.shape[0] if grad_grid is not None else grad_masks.shape[0]
        offsets, smooth_shape = self.work_layout(n)
        empty = np.zeros((0, 0, 0, 0), dtype=np.float32)
        grad = self.kernels.smooth_masks_backward(
            empty if grad_grid is None else _as_array(grad_grid, (*self.pad, n, *self.generator.grid_shape)),
            empty if grad_masks is None else _as_array(grad_masks, (*self.pad, n, *self.generator.out_shape)),
            self.temperature, self.passes, self.index, self.scaled_weight, self.weight, self.outside, state.saved,
            offsets, self.to_standard, self.upsampling if grad_grid is not None else self.no_upsampling, *self.taps,
            np.asarray(smooth_shape, dtype=np.int64))
        return torch.from_numpy(grad).view(n, *self.generator.param_shape)


def _as_array(t: Tensor, shape: tuple[int, ...]) -> np.ndarray:
    """A tensor as a C-contiguous float32 NumPy array of ``shape`` (a view of a contiguous float32 CPU tensor)."""
    t = t.detach()
    if t.dtype != torch.float32 or t.device.type != "cpu":
        t = t.to(device="cpu", dtype=torch.float32)
    return np.ascontiguousarray(t.numpy()).reshape(shape)


class _SeparableSmoothMax(torch.autograd.Function):
    """The separable smooth max-convolution (:func:`_smooth_max`) with a hand-written backward.

    Each pass moves its axis to the front of the working tensor, ``(p, rest)``, and leaves it there at the
    output resolution: gathering neighbours is then a copy of contiguous rows and the smooth max a
    reduction over the leading dimension (both an order of magnitude faster on CPU than along an inner
    axis); a last permutation gives ``(n, *out_shape)``.

    With ``e = exp(g / T - c)``: ``m = sum(g e) / sum(e)`` and ``dm / dg_i = (e_i / sum(e)) (1 + (g_i - m) / T)``.
    The shift ``c`` keeps ``exp`` in range, three ways (exp of -inf, or producing subnormal floats, is tens of
    times slower on CPU):

    * parameters in ``[0, _SPAN T]`` (extremal perturbation's lie in [0, 1] and ``T`` is 0.05): no shift; every
      exponent is in ``[0, _SPAN]``. Neighbours outside the parameter grid have kernel 0, so ``e = 1`` exactly,
      and their count is taken off ``sum(e)`` (at least 1 from the centre alone).
    * parameters spanning at most ``_SPAN`` temperatures (counting 0): one shift for every cell, ``c = max(p, 0) / T``
      (the kernel is at most 1); no weight falls below ``exp(-_SPAN)`` of another, and neighbours outside the
      grid get ``exp(-_OUTSIDE)`` of that, still a normal float.
    * otherwise, and always in half precision (whose range is too short for the two above), each cell's own
      maximum is the shift, neighbours outside get ``exp(-inf) = 0`` and exponents are clamped at ``-_FLOOR``.

    The backward needs no graph of small ops.
    """

    @staticmethod
    def forward(ctx, params: Tensor, generator: "SmoothMaskGenerator") -> Tensor:
        out, state = generator.forward_with_state(params)
        ctx.generator = generator
        if state.compiled:  # NumPy arrays, which no later operation can change in place
            ctx.compiled_state = state
        else:
            ctx.compiled_state = None
            ctx.save_for_backward(*state.saved)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        state = ctx.compiled_state or SmoothMaxState(False, list(ctx.saved_tensors))
        return ctx.generator.vjp(state, grad), None


def _smooth_max(params: Tensor, passes: list, final: tuple[int, ...], temperature: float,
                value_range: tuple[float, float] | None = None) -> tuple[Tensor, list[Tensor]]:
    """The separable passes (see :class:`_SeparableSmoothMax`): masks ``(n, *out_shape)`` and the saved tensors.

    ``value_range``: bounds of the parameters, when the caller knows them."""
    x = params
    low, high = (float(v) for v in (x.aminmax() if value_range is None else value_range))
    wide = x.dtype in (torch.float32, torch.float64)  # exp(+-(_SPAN + _OUTSIDE)) is a normal float
    if wide and low >= 0.0 and high / temperature <= _SPAN:
        shift = 0.0  # no shift, neighbours outside the grid counted off the sums
    else:
        low, high = min(low, 0.0), max(high, 0.0)
        shift = high / temperature if wide and (high - low) / temperature <= _SPAN else None  # None: per cell
    saved = []
    for axis in passes:
        x = x.movedim(axis.source, 0).contiguous()  # (p, rest...)
        rest = x.shape[1:]
        k, o = axis.weight.shape[:2]
        # exponents g / T, g = kernel * parameter, from the neighbours' parameters, in place (fewer large
        # allocations); a bias, where there is one, is added after (addcmul with two broadcast operands is three
        # times slower on CPU)
        scaled = x.view(axis.points, -1).index_select(0, axis.index).view(k, o, -1).mul_(axis.scaled_weight)
        if shift is None:
            e = scaled + axis.bias
            e.sub_(e.amax(dim=0)).clamp_min_(-_FLOOR).exp_()
            total = e.sum(dim=0)  # (o, rest)
        elif shift == 0.0:
            e = scaled.exp()
            total = e.sum(dim=0).sub_(axis.outside)  # outside the grid: e = exp(0) = 1, counted off
        else:
            e = scaled.add(axis.outside_bias - shift).exp_()
            total = e.sum(dim=0)
        weighted = scaled.mul_(e)  # g e / T
        out = weighted.sum(dim=0).mul_(temperature).div_(total)  # m = sum(g e) / sum(e), (o, rest)
        saved += [weighted, e, total, out]
        x = out.view(o, *rest)
    return x.permute(final).contiguous(), saved


def _smooth_max_backward(saved: list[Tensor], passes: list, final: tuple[int, ...], temperature: float,
                         grad_out: Tensor) -> Tensor:
    """Gradient with respect to the parameters of :func:`_smooth_max`, from the gradient of its output."""
    grad = grad_out.permute(_inverse(final))  # the layout after the last pass
    for i in reversed(range(len(passes))):
        axis = passes[i]
        weighted, e, total, out = saved[4 * i: 4 * i + 4]
        rest = grad.shape[1:]
        k, o = axis.weight.shape[:2]
        # d loss / d parameter = kernel * (e (1 - m / T) + e g / T) * grad / sum(e), summed over the (neighbour,
        # cell) terms of each parameter point: the kernel and that sum are one sparse product
        terms = e * torch.rsub(out, 1.0, alpha=1.0 / temperature)
        terms.add_(weighted).mul_(grad.reshape(o, -1).div(total))
        if axis.scatter is not None:
            grad_x = torch.sparse.mm(axis.scatter, terms.view(k * o, -1))  # (points, rest)
        else:
            grad_x = terms.new_zeros(axis.points, terms.shape[-1])
            grad_x.index_add_(0, axis.index, terms.mul_(axis.weight).view(k * o, -1))
        grad = grad_x.view(axis.points, *rest).movedim(0, axis.source)  # the layout before this pass
    return grad.contiguous()


_SPARSE_DTYPES = (torch.float32, torch.float64)  # sparse (CSR) matrix products exist for these on CPU and CUDA
_SPAN = 25.0  # parameters in [0, _SPAN T] need no exponent shift; spanning at most _SPAN T, they share one ...
_OUTSIDE = 60.0  # ... and neighbours outside the grid sit this far below: exp(-85) is still a normal float
_FLOOR = 60.0  # with a shift per cell, exponents below -_FLOOR are clamped there


def _inverse(permutation: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted(range(len(permutation)), key=lambda i: permutation[i]))


def _pass_order(points: Sequence[int], cells: Sequence[int], neighbours: Sequence[int]) -> tuple[int, ...]:
    """The order of the separable passes with the fewest (neighbour, cell) terms in all.

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


def _linear_taps(size_in: int, size_out: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    """1-D linear interpolation with ``align_corners=False`` (as F.interpolate): output ``i`` is
    ``(1 - frac[i]) x[low[i]] + frac[i] x[high[i]]``. Shapes: ``(size_out,)`` each, long, long, ``dtype``."""
    scale = size_in / size_out
    src = ((torch.arange(size_out, dtype=torch.float64) + 0.5) * scale - 0.5).clamp_min(0.0)
    i0 = src.floor().long().clamp(max=size_in - 1)
    i1 = (i0 + 1).clamp(max=size_in - 1)
    return i0, i1, (src - i0).to(dtype)


def _linear_matrix(size_in: int, size_out: int) -> Tensor:
    """``(size_out, size_in)`` weights of :func:`_linear_taps` as a matrix."""
    i0, i1, frac = _linear_taps(size_in, size_out)
    matrix = torch.zeros(size_out, size_in, dtype=torch.float64)
    rows = torch.arange(size_out)
    matrix.index_put_((rows, i0), 1.0 - frac, accumulate=True)
    matrix.index_put_((rows, i1), frac, accumulate=True)
    return matrix


def _kernel_transpose(index: Tensor, weight: Tensor, points: int) -> Tensor:
    """Sparse CSR ``(points, k * o)``: column ``j`` holds ``weight[j]`` in row ``index[j]`` (the kernel from the
    ``j``-th (neighbour, cell) term to its parameter point); neighbours outside the grid (weight 0) are left out.

    Shape: index ``(k * o,)`` long, weight ``(k, o, 1)``.
    """
    values = weight.reshape(-1)
    columns = torch.nonzero(values).squeeze(1)
    rows = index[columns]
    order = torch.argsort(rows, stable=True)
    rows, columns = rows[order], columns[order]
    crow = torch.zeros(points + 1, dtype=torch.long, device=index.device)
    crow[1:] = torch.bincount(rows, minlength=points).cumsum(0)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": matrix products with it are stable
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, columns, values[columns], (points, values.numel()),
                                       check_invariants=True)


@functools.cache
def load_cpu_kernels() -> ModuleType | None:
    """:mod:`avxai.methods.cpu_kernels`, imported and checked on first use; ``None`` without numba, or (with a
    warning) where its kernels fail to compile or disagree with the tensor operations on a small problem."""
    try:
        kernels = importlib.import_module("avxai.methods.cpu_kernels")
    except ImportError:
        return None
    try:
        _check_cpu_kernels(kernels)
    except Exception as err:  # numba cannot compile here, or compiles something wrong: the tensor operations stay
        warnings.warn(f"avxai's compiled CPU kernels are unavailable ({type(err).__name__}: {err}); smooth masks and "
                      "the area constraint run as tensor operations", RuntimeWarning, stacklevel=2)
        return None
    return kernels


def _check_cpu_kernels(kernels: ModuleType) -> None:
    """Run every kernel once (compiling it, or loading it from numba's cache) on a small problem and hold it to the
    tensor operations and the area regulariser's formula; ``RuntimeError`` where they disagree."""
    generator = SmoothMaskGenerator((5, 9), (1, 2), (2.0, 4.0), oversample=2, cpu_kernels=False)
    plan = _CompiledPlan(generator, kernels)
    params = torch.linspace(0.0, 1.0, 2 * math.prod(generator.param_shape)).view(2, *generator.param_shape)
    grad = torch.linspace(-1.0, 1.0, 2 * math.prod(generator.grid_shape)).view(2, *generator.grid_shape)
    smooth, masks, state = plan.forward(params, upsample=True)
    expected_smooth, expected_masks, expected_state = generator.masks_with_state(params)
    checks = {"smooth masks": (smooth, expected_smooth), "upsampled masks": (masks, expected_masks),
              "gradient": (plan.backward(state, grad, smooth), generator.masks_vjp(expected_state, grad, smooth))}
    rows = smooth.view(2, -1).double().requires_grad_(True)  # R_a by its formula, mean((sort(m) - r_a) ** 2)
    ones = [3, 20]
    ramps = torch.stack([(torch.arange(rows.shape[1]) >= rows.shape[1] - k).double() for k in ones])
    value = (rows.sort(dim=1).values - ramps).pow(2).mean(dim=1)
    (expected_grad,) = torch.autograd.grad(value.sum(), rows)
    x = np.ascontiguousarray(smooth.view(2, -1).numpy())
    thresholds = np.asarray([np.sort(row)[-k] for row, k in zip(x, ones)], dtype=np.float32)
    values, grads = kernels.area_constraint(x, thresholds, np.asarray(ones, dtype=np.int64), 1.0)
    checks["area constraint"] = (torch.from_numpy(values).double(), value.detach())
    checks["area gradient"] = (torch.from_numpy(grads).double(), expected_grad)
    for name, (got, reference) in checks.items():
        if not torch.allclose(got.double(), reference.double(), rtol=1e-4,
                              atol=1e-5 * max(1.0, float(reference.abs().max()))):
            raise RuntimeError(f"the compiled {name} differ from the reference by "
                               f"{float((got.double() - reference.double()).abs().max()):.3g}")


def _bias(valid: Tensor) -> Tensor:
    """0 where a neighbour exists, -inf where it falls outside the parameter grid (left out of the smooth max)."""
    return torch.where(valid, 0.0, float("-inf"))


def default_step(grid_shape: Sequence[int], cells: int = 32) -> tuple[int, ...]:
    """A step per axis giving about ``cells`` parameter points along each axis (at least 1 cell)."""
    return tuple(max(1, int(round(n / cells))) for n in grid_shape)


__all__ = ["SmoothMaskGenerator", "SmoothMaxState", "default_step", "load_cpu_kernels", "per_axis"]

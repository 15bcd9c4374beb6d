"""Extremal perturbation (Fong, Patrick & Vedaldi, ICCV 2019) on any modality's grid.

For each requested area ``a`` a smooth mask ``m`` (1 = keep) is optimised so that

* ``preserve``: the score of the input that keeps only ``m`` is as high as possible,
* ``delete``: the score of the input with ``m`` removed (``1 - m`` kept) is as low as possible,
* ``dual``: both, reward = preserved score - deleted score,

under the area constraint of the paper: the sorted mask values are pulled towards the ramp ``r_a``
(a fraction ``1 - a`` of zeros then ``a`` of ones), ``R_a(m) = mean((sort(m) - r_a) ** 2)``, with a
weight ``lambda`` that grows geometrically from ``lambda0`` to ``lambda0 * growth`` over the run.
``R_a`` is evaluated on the smooth mask at the generator's resolution (at most ``oversample`` cells per
parameter step), whose linear upsampling to the grid keeps its mean; the reported areas are those of the
masks on the grid.
The masks are smooth max-convolutions of a coarse parameter grid
(:class:`avxai.methods.smooth_mask.SmoothMaskGenerator`), upsampled to the modality's grid; what a
removed cell becomes is the modality's perturbation, or ``config.perturbation`` (e.g. the blur pyramid
``"pyramid-tf"``). All areas and all inputs are optimised as one batch of ``K * B`` masks, row ``i``
for input ``i % B`` (area ``i // B``): one forward and one backward pass of the model per iteration, and
no backward after the last forward pass, which scores the final masks. The mask side (smooth mask,
area constraint, optimiser) is written out by hand, and on the CPU the smooth mask with its upsampling and
the area constraint are compiled loops (:mod:`avxai.methods.cpu_kernels`), so that its cost stays small
next to the model's passes even for a small model (``bench/extremal_overhead.py``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from tqdm.auto import tqdm

from avxai.explanation import Explanation
from avxai.engine import mask_media, score_and_output, score_inputs
from avxai.methods.base import Method, MethodConfig, new_explanation
from avxai.methods.optimisers import SGD, Adam
from avxai.methods.parts import PartsMaskGenerator, modality_parts
from avxai.methods.smooth_mask import SmoothMaskGenerator, default_step, load_cpu_kernels, per_axis
from avxai.modalities.base import Modality
from avxai.perturbations import parse_perturbation
from avxai.scorers.base import Scorer, as_tensor_output
from avxai.scorers.classification import ClassLogit

VARIANTS = ("preserve", "delete", "dual")
OPTIMISERS = ("adam", "sgd")
REWARD_SCALES = ("range", "unmasked", "none")


def _areas(value: Any, name: str) -> tuple[float, ...]:
    if isinstance(value, (int, float)):
        value = (value,)
    try:
        areas = tuple(float(a) for a in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of fractions such as (0.05, 0.1, 0.2), got {value!r}") from None
    if not areas:
        raise ValueError(f"{name} must hold at least one area, e.g. (0.1,)")
    bad = [a for a in areas if not (0.0 < a < 1.0) or not math.isfinite(a)]
    if bad:
        raise ValueError(f"{name} must be fractions of the grid strictly between 0 and 1 (exclusive), got {bad}; "
                         "an area of 0 keeps nothing and 1 keeps everything, so there is nothing to optimise")
    if len(set(areas)) != len(areas):
        raise ValueError(f"{name} holds duplicates {areas}; list each area once")
    return areas


@dataclass(frozen=True)
class ExtremalConfig(MethodConfig):
    """Extremal perturbation hyper-parameters.

    areas : fractions of the grid kept by the masks, each in (0, 1); one mask per area.
    variant : ``"preserve"``, ``"delete"`` or ``"dual"`` (see the module docstring).
    iterations : forward passes of ``K * B`` perturbed inputs (``dual``: ``2 * K * B``); each but the last
        is followed by a backward pass and a step of the masks, and the last one scores the final masks
        (so the final scores are the last entries of the history).
    optimiser : ``"adam"`` (betas ``betas``) or ``"sgd"`` (momentum ``momentum``); ``learning_rate`` for both.
        The mask parameters are projected back onto [0, 1] after every step.
    lambda0, growth : the area regulariser weight grows geometrically from ``lambda0`` to
        ``lambda0 * growth`` over ``iterations`` steps.
    reward_scale : the reward is the score divided, per input, by ``"range"``: ``|score(x) - score(all
        removed)|`` (one extra forward at the start; makes ``lambda0`` independent of the scorer's units),
        ``"unmasked"``: ``|score(x)|``, or ``"none"``.
    step : spacing of the mask parameters in grid cells, one int for every axis or one per axis
        (e.g. ``(mel, time)``); ``None``: about 32 parameters per axis.
    sigma : smooth-mask kernel width in grid cells, per axis (the smallest feature a mask can have);
        ``None``: twice ``step`` (below ``2 * step`` a run of ones dips between parameter points).
    temperature : smooth-max temperature (0.05: close to a max over the neighbourhood).
    oversample : smooth-mask cells per step before linear upsampling to the grid (cost vs. sharpness).
    separable : smooth max one axis at a time (exact for a hard max, much cheaper on 2-D/3-D grids);
        ``False``: over the whole product neighbourhood as in the paper.
    radius : the smooth max covers parameter points within ``radius * sigma`` along each axis.
    perturbation : override of the modality's perturbation (a name for ``parse_perturbation``, e.g.
        ``"pyramid-tf:8"``, ``"zero"``, ``"noise:10"``); ``None`` keeps the modality's own.
    init, init_jitter, seed : parameters start at ``init`` plus uniform noise of half-width ``init_jitter``
        drawn from a generator seeded with ``seed``.
    patience, tolerance : stop early once, over the last ``patience`` iterations, every row's reward
        (scaled, see ``reward_scale``) and area have changed by less than ``tolerance``; ``None`` = never.
    growth_areas : areas whose preserved score, as a fraction of the unmasked score, forms the
        area-growth curve (the paper's Fig. 5); areas not in ``areas`` are optimised alongside them.
        ``None``: the requested areas.
    media_area : the area whose mask makes the saved ``preserved`` / ``deleted`` media; ``None`` = the
        middle of the sorted areas (0.2 for the defaults).
    progress : show a tqdm progress bar.
    """

    areas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    variant: str = "preserve"
    iterations: int = 300
    optimiser: str = "adam"
    learning_rate: float = 0.05
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    lambda0: float = 0.05
    growth: float = 6000.0
    reward_scale: str = "range"
    step: "int | tuple[int, ...] | None" = None
    sigma: "float | tuple[float, ...] | None" = None
    temperature: float = 0.05
    oversample: int = 2
    separable: bool = True
    radius: float = 2.0
    perturbation: str | None = None
    init: float = 0.5
    init_jitter: float = 0.01
    seed: int = 0
    patience: int | None = None
    tolerance: float = 1e-3
    growth_areas: tuple[float, ...] | None = None
    media_area: float | None = None
    progress: bool = False

    def __post_init__(self):
        object.__setattr__(self, "areas", _areas(self.areas, "areas"))
        if self.growth_areas is not None:
            object.__setattr__(self, "growth_areas", _areas(self.growth_areas, "growth_areas"))
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 1:
            raise ValueError(f"iterations must be an int >= 1, got {self.iterations!r}")
        if self.optimiser not in OPTIMISERS:
            raise ValueError(f"optimiser must be one of {OPTIMISERS}, got {self.optimiser!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        betas = tuple(float(b) for b in self.betas)
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), e.g. (0.9, 0.999), got {self.betas}")
        object.__setattr__(self, "betas", betas)
        if not self.lambda0 > 0:
            raise ValueError(f"lambda0 (the area regulariser weight) must be > 0, got {self.lambda0}")
        if not self.growth >= 1:
            raise ValueError(f"growth must be >= 1 (the regulariser weight grows from lambda0 to lambda0 * growth), "
                             f"got {self.growth}")
        if self.reward_scale not in REWARD_SCALES:
            raise ValueError(f"reward_scale must be one of {REWARD_SCALES}, got {self.reward_scale!r}")
        if self.step is not None:
            steps = (self.step,) if isinstance(self.step, (int, float)) else tuple(self.step)
            if not steps or any(float(s) < 1 or float(s) != int(s) for s in steps):
                raise ValueError(f"step must be a whole number of grid cells >= 1 (one, or one per axis), "
                                 f"got {self.step}")
            object.__setattr__(self, "step", int(self.step) if isinstance(self.step, (int, float))
                               else tuple(int(s) for s in steps))
        if self.sigma is not None:
            sigmas = (self.sigma,) if isinstance(self.sigma, (int, float)) else tuple(self.sigma)
            if not sigmas or any(not float(s) > 0 for s in sigmas):
                raise ValueError(f"sigma must be > 0 grid cells (one, or one per axis), got {self.sigma}")
            if not isinstance(self.sigma, (int, float)):
                object.__setattr__(self, "sigma", tuple(float(s) for s in sigmas))
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if isinstance(self.oversample, bool) or not isinstance(self.oversample, int) or self.oversample < 1:
            raise ValueError(f"oversample must be an int >= 1, got {self.oversample!r}")
        if not self.radius > 0:
            raise ValueError(f"radius must be > 0 (in units of sigma), got {self.radius}")
        if self.perturbation is not None:
            parse_perturbation(self.perturbation)  # raises ValueError naming the choices
        if not 0.0 <= self.init <= 1.0:
            raise ValueError(f"init must be in [0, 1], got {self.init}")
        if not 0.0 <= self.init_jitter <= 0.5:
            raise ValueError(f"init_jitter must be in [0, 0.5], got {self.init_jitter}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if self.patience is not None and (isinstance(self.patience, bool) or not isinstance(self.patience, int)
                                          or self.patience < 1):
            raise ValueError(f"patience must be an int >= 1 or None (no early stopping), got {self.patience!r}")
        if not self.tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance}")
        if self.media_area is not None and float(self.media_area) not in self.areas:
            raise ValueError(f"media_area {self.media_area} is not one of the areas {self.areas}; pick one of them "
                             "or None")

    # -- derived ----------------------------------------------------------------------------------
    def resolve(self, grid_shape: tuple[int, ...]) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Step and sigma per axis for a grid ``grid_shape`` (in grid cells)."""
        nd = len(grid_shape)
        step = per_axis(self.step, nd, "step") if self.step is not None else default_step(grid_shape)
        sigma = per_axis(self.sigma, nd, "sigma") if self.sigma is not None else tuple(2.0 * s for s in step)
        return tuple(float(s) for s in step), sigma

    def optimised_areas(self) -> tuple[float, ...]:
        """The requested areas followed by the growth-curve areas not among them."""
        extra = tuple(a for a in (self.growth_areas or ()) if a not in self.areas)
        return self.areas + extra

    def media_mask_area(self) -> float:
        return float(self.media_area) if self.media_area is not None else sorted(self.areas)[len(self.areas) // 2]

    def lambda_at(self, iteration: int) -> float:
        """Regulariser weight at ``iteration`` (0-based): ``lambda0 * growth ** (iteration / (iterations - 1))``."""
        frac = iteration / max(1, self.iterations - 1)
        return self.lambda0 * self.growth ** frac


class _Perturbed:
    """A modality seen through another perturbation: same grid, same model input, different baseline.

    Everything but :meth:`apply_mask` / :meth:`perturb` is the wrapped modality's, so it can be handed to
    :func:`score_inputs` and :func:`mask_media` in place of the modality.
    """

    def __init__(self, modality: Modality, perturbation: str):
        self._modality = modality
        self.perturbation = parse_perturbation(perturbation)
        self._prepared = self.perturbation.prepare(modality.representation, modality.info)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._modality, name)

    def apply_mask(self, mask: Tensor) -> Tensor:
        self._modality.check_mask(mask)
        return self._prepared.apply(self._modality.expand_mask(mask))

    def perturb(self, mask: Tensor) -> Any:
        return self._modality.to_model_input(self.apply_mask(mask))


def ramp(areas: Tensor, cells: int, dtype: torch.dtype) -> Tensor:
    """The paper's reference vectors ``r_a``: ``(n, cells)``, zeros then ``round(a * cells)`` ones per row."""
    ones = ones_of(areas, cells)
    pos = torch.arange(cells)
    return (pos.unsqueeze(0) >= (cells - ones).unsqueeze(1)).to(dtype)


def ones_of(areas: Tensor, cells: int) -> Tensor:
    """Number of ones in ``r_a`` per row: ``round(a * cells)``, at least 1. Shape: ``(n,)`` long."""
    return torch.round(areas * cells).long().clamp(1, cells)


def area_regulariser(masks: Tensor, ones: "Tensor | Sequence[int]") -> Tensor:
    """``R_a(m) = mean((sort(m) - r_a) ** 2)`` per row, ``r_a`` with ``ones[i]`` ones (see :func:`ramp`);
    differentiable, with the gradient of :class:`AreaConstraint`.

    Shape: masks ``(n, *grid)``, ones ``(n,)`` -> ``(n,)``.
    """
    return _AreaRegulariser.apply(masks, ones)


class AreaConstraint:
    """The paper's area regulariser ``R_a(m) = mean((sort(m) - r_a) ** 2)`` and its gradient, for rows
    whose ramps ``r_a`` have ``ones[i]`` ones (see :func:`ramp`); set up once, evaluated every step.

    Computed without a full sort: the ``k`` largest values face the ones and the rest the zeros, so with
    ``t`` the ``k``-th largest value, ``R = mean((m - o) ** 2 + o - o ** 2)`` where ``o`` is 1 above ``t``,
    0 below it, and the values tied at ``t`` share the ones left (exact, ties included); the gradient is
    ``2 (m - o) / N``. Every row's ``t`` comes from one selection: row ``i`` is padded with
    ``max(k) - k_i`` values above any mask value (and the other rows with values below), so that its
    ``max(k)``-th largest value is its own ``k_i``-th. On the CPU in float32/64 the rest is one compiled call
    (:func:`avxai.methods.cpu_kernels.area_constraint`).

    Shape: masks ``(n, *grid)`` with ``N`` cells per row -> values ``(n,)`` and gradients ``(n, *grid)``.
    """

    def __init__(self, ones: "Tensor | Sequence[int]", cells: int, dtype: torch.dtype = torch.float32,
                 device: "torch.device | str" = "cpu", cpu_kernels: bool = True):
        ones = [int(v) for v in (ones if isinstance(ones, (tuple, list)) else torch.as_tensor(ones).reshape(-1).tolist())]
        if not ones or min(ones) < 0 or max(ones) > cells:
            raise ValueError(f"ones must give, for each mask, a count in [0, {cells}]; got {ones}")
        self.ones, self.cells = tuple(ones), int(cells)
        # on the CPU in float32/64, one compiled call (avxai.methods.cpu_kernels.area_constraint) after the threshold
        self._kernels = load_cpu_kernels() if cpu_kernels and torch.device(device).type == "cpu" else None
        self._ones_array = np.asarray(ones, dtype=np.int64)
        self.total_ones = sum(ones)
        most = max(ones)
        self.rank = None if most == 0 else cells - min(ones) + 1  # kthvalue's k (ascending) in a padded row
        above = torch.arange(most - min(ones)).unsqueeze(0) < torch.tensor([most - k for k in ones]).unsqueeze(1)
        self.padding = torch.where(above, math.inf, -math.inf).to(device=device, dtype=dtype)  # (n, pad)

    def __call__(self, masks: Tensor, weight: float = 1.0) -> tuple[Tensor, Tensor]:
        """``R_a`` per row ``(n,)`` and ``weight`` times its gradient ``(n, *grid)`` (no autograd)."""
        x = masks.detach().reshape(masks.shape[0], -1)
        if x.shape != (len(self.ones), self.cells):
            raise ValueError(f"this area constraint is for {len(self.ones)} masks of {self.cells} cells, got masks "
                             f"of shape {tuple(masks.shape)}")
        if self.rank is None:  # no ones anywhere: every value faces a zero
            return x.square().mean(dim=1), x.mul(2.0 * weight / self.cells).view_as(masks)
        padded = torch.cat([x, self.padding], dim=1) if self.padding.shape[1] else x
        threshold = _kth_smallest(padded, self.rank)  # each row's k-th largest value
        if self._kernels is not None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64):
            values, grads = self._kernels.area_constraint(np.ascontiguousarray(x.numpy()),
                                                          np.ascontiguousarray(threshold.numpy()[:, 0]),
                                                          self._ones_array, float(weight))
            return torch.from_numpy(values), torch.from_numpy(grads).view_as(masks)
        top = x >= threshold
        faces = top.to(x.dtype)  # o, when no other value ties with the k-th largest
        if int(top.count_nonzero()) == self.total_ones:
            diff = x - faces
            value = torch.linalg.vecdot(diff, diff, dim=1).div_(self.cells)
        else:  # ties at the threshold: those values share the ones left
            tied = (x == threshold).to(x.dtype)
            excess = faces.sum(dim=1) - torch.tensor(self.ones, dtype=x.dtype, device=x.device)
            faces = faces - tied * (excess / tied.sum(dim=1).clamp_min(1.0)).unsqueeze(1)  # no ties: no share
            diff = x - faces
            value = (diff.square() + faces - faces.square()).mean(dim=1)
        return value, diff.mul_(2.0 * weight / self.cells).view_as(masks)


def _kth_smallest(x: Tensor, k: int) -> Tensor:
    """The ``k``-th smallest value of each row of ``x`` ``(n, cells)`` -> ``(n, 1)`` (exact, as ``kthvalue``).

    On the CPU through NumPy's introselect, about four times faster than ``Tensor.kthvalue`` on rows of a
    few thousand values.
    """
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and not x.requires_grad:
        return torch.from_numpy(np.partition(x.numpy(), k - 1, axis=1)[:, k - 1:k])
    return x.kthvalue(k, dim=1, keepdim=True).values


class _AreaRegulariser(torch.autograd.Function):
    @staticmethod
    def forward(ctx, masks: Tensor, ones: "Tensor | Sequence[int]") -> Tensor:
        cells = masks[0].numel() if masks.shape[0] else 0
        value, grad = AreaConstraint(ones, cells, masks.dtype, masks.device)(masks)
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_value: Tensor):
        (grad,) = ctx.saved_tensors
        return grad * grad_value.view(-1, *[1] * (grad.dim() - 1)), None


class Extremal(Method):
    """Extremal perturbation with smooth masks (Fong, Patrick & Vedaldi, ICCV 2019), any 1-3-D grid.

    The explanation holds ``masks (B, K, *grid)`` (one per area, 1 = keep), ``attribution`` = the mean
    mask over the areas ``(B, *grid)``, ``history`` ``score`` / ``area`` / ``reward`` / ``regulariser``
    ``(iterations, B, K)`` (``dual`` adds ``deleted_score``), scores ``preserved`` and ``deleted``
    ``(B, K)`` (of the final masks and their complements), ``unmasked (B,)``, ``area_growth (B, G)``
    (preserved score over unmasked score at ``growth_areas``) and, for class scorers, ``max_class``,
    ``max_score``, ``target``, ``target_score`` ``(B, K)`` of the model on the preserved inputs.
    Media: ``original``, ``preserved`` and ``deleted`` with the mask of ``media_area``.

    Shape: masks ``(batch, areas, *grid)`` in [0, 1].
    """

    name = "extremal"
    config_class = ExtremalConfig

    def explain(self, model: nn.Module, modality: Modality, scorer: Scorer, config: ExtremalConfig,
                unmasked: Tensor) -> Explanation:
        grid = modality.grid_shape
        if not 1 <= len(grid) <= 3:
            raise ValueError(f"extremal perturbation works on grids of 1 to 3 axes; this {modality.kind} grid "
                             f"has axes {modality.axes}")
        view = modality if config.perturbation is None else _Perturbed(modality, config.perturbation)
        batch = modality.batch_size
        dtype = modality.representation.dtype
        device = modality.representation.device
        areas_all = config.optimised_areas()
        k_all, k = len(areas_all), len(config.areas)
        n = k_all * batch
        if modality_parts(modality) is None:
            step, sigma = config.resolve(grid)
            generator = SmoothMaskGenerator(grid, step, sigma, temperature=config.temperature,
                                            oversample=config.oversample, radius=config.radius,
                                            separable=config.separable, dtype=dtype, device=device)
        else:  # a composite modality (audio-visual): one smooth mask per part, joined (avxai.methods.parts)
            generator = PartsMaskGenerator(modality, config, dtype=dtype, device=device)
            step, sigma = generator.step, generator.sigma
        row_areas = torch.tensor(areas_all, dtype=torch.float64).repeat_interleave(batch)  # row i: area i // B
        # The area constraint acts on the smooth mask at the generator's resolution (linear upsampling keeps
        # its mean; sorting fewer cells is cheaper): ones of the ramp r_a of each row there.
        cells = math.prod(generator.out_shape)
        area_constraint = AreaConstraint(ones_of(row_areas, cells).tolist(), cells, dtype, device)
        scale = self._reward_scale(model, view, scorer, config, unmasked, grid).to(dtype).repeat(k_all)

        # The default Modality.upsample is linear interpolation: the generator does the same with one small
        # matrix product per axis (faster); a modality with its own upsample keeps it.
        fast_upsample = type(modality).upsample is Modality.upsample or isinstance(generator, PartsMaskGenerator)

        # With a separable smooth mask and linear upsampling, autograd records the model only: the gradient of
        # the masks goes back through the generator by hand (an autograd node for it costs as much as its passes)
        by_hand = isinstance(generator, SmoothMaskGenerator) and generator.separable and fast_upsample

        def masks_of(p: Tensor) -> tuple[Tensor, Tensor, Any]:
            """(smooth masks at the generator's resolution, masks on the grid, state for by-hand gradients)."""
            if by_hand:
                coarse, masks, state = generator.masks_with_state(p, value_range=(0.0, 1.0))  # p is in [0, 1]
                return coarse, masks.requires_grad_(True), state
            coarse = generator(p)
            return coarse, generator.upsample(coarse) if fast_upsample else modality.upsample(coarse), None

        def param_grad(scores: Tensor, smooth: Tensor, masks: Tensor, state: Any, regul_grad: Tensor) -> Tensor:
            """d(loss)/d(params): the score's gradient (autograd through the model) plus lambda * dR/d(smooth)."""
            if by_hand:
                (grad_masks,) = torch.autograd.grad(scores, masks, score_grad.to(scores.dtype))
                return generator.masks_vjp(state, grad_masks, regul_grad)
            return torch.autograd.grad([scores, smooth], params, [score_grad.to(scores.dtype), regul_grad])[0]

        # One draw per area, shared by the inputs: row i (area i // B) starts the same whatever the batch size.
        params = generator.init_params(k_all, config.init, config.init_jitter, config.seed)
        params = params.repeat_interleave(batch, dim=0).requires_grad_(True)
        if config.optimiser == "adam":
            optimiser = Adam(params, lr=config.learning_rate, betas=config.betas)
        else:
            optimiser = SGD(params, lr=config.learning_rate, momentum=config.momentum)
        # per step: the scores of all rows (K*B, dual 2*K*B), areas and R_a (K*B); the rest is derived at the end
        hist: dict[str, list[Tensor]] = {"scores": [], "area": [], "regulariser": []}
        stopped_at = None
        bar = tqdm(total=config.iterations, desc="extremal", unit="it", disable=not config.progress)
        # d(loss)/d(score) of the scored rows, loss = lambda * R - reward: the same every step
        signs = {"preserve": [-1.0], "delete": [1.0], "dual": [-1.0, 1.0]}[config.variant]
        score_grad = torch.cat([sign / scale for sign in signs])
        with torch.enable_grad():
            for it in range(config.iterations):
                smooth, masks, state = masks_of(params)
                # R_a and its gradient are written out (only the score goes through autograd), and taken with the
                # areas while the masks are fresh in the caches, before the model's pass
                regul, regul_grad = area_constraint(smooth, weight=config.lambda_at(it))
                hist["area"].append(masks.detach().reshape(n, -1).mean(dim=1))
                hist["regulariser"].append(regul)
                if config.variant == "preserve":
                    rows = masks
                else:
                    rows = 1.0 - masks if config.variant == "delete" else torch.cat([masks, 1.0 - masks])
                scores, output = score_and_output(model, view, scorer, rows)
                last = scores.detach()
                hist["scores"].append(last)
                bar.update(1)
                converged = (config.patience is not None and it + 1 > config.patience
                             and self._converged(hist, score_grad, n, config))
                if converged or it + 1 == config.iterations:
                    # these masks are the result: no step after the last forward pass, whose scores are final
                    stopped_at = it + 1 if converged and it + 1 < config.iterations else None
                    break
                if not scores.requires_grad:
                    raise ValueError("the score does not depend on the mask through autograd (the model or the "
                                     "scorer detaches its output, or runs outside torch); extremal perturbation "
                                     "needs gradients: fix the model, or use occlusion, which does not")
                optimiser.step(param_grad(scores, smooth, masks, state, regul_grad))
                with torch.no_grad():
                    params.clamp_(0.0, 1.0)
        bar.close()

        final = masks.detach().clamp(0.0, 1.0)
        output = output.detach() if isinstance(output, Tensor) else output
        all_scores = self._final_scores(model, view, scorer, final, batch, k_all, config.variant, last,
                                        output)  # name -> (B, K_all)
        scores = {name: value[:, :k].contiguous() for name, value in all_scores.items()}
        growth_areas = config.growth_areas or config.areas
        growth_idx = [areas_all.index(a) for a in growth_areas]
        ratio = all_scores["preserved"] / unmasked.to(dtype).view(batch, 1)
        scores["area_growth"] = ratio[:, growth_idx].contiguous()
        final = final.view(k_all, batch, *grid)[:k].transpose(0, 1).contiguous()  # (B, K, *grid)
        scores_run = torch.stack(hist.pop("scores"))  # (steps, rows)
        hist["score"] = scores_run[:, :n].to(dtype)
        hist["reward"] = _reward(scores_run, score_grad, n).to(dtype)
        if config.variant == "dual":
            hist["deleted_score"] = scores_run[:, n:].to(dtype)
        history = {name: (values if isinstance(values, Tensor) else torch.stack(values))
                   .view(len(values), k_all, batch)[:, :k].transpose(1, 2).contiguous() for name, values in hist.items()}
        media_k = config.areas.index(config.media_mask_area())
        keep = final[:, media_k]
        return new_explanation(
            self.name, modality, final.mean(dim=1),
            masks=final, areas=list(config.areas), scores=scores, history=history,
            media=mask_media(view, {"preserved": keep, "deleted": 1.0 - keep}),
            metadata={"variant": config.variant, "step": list(step), "sigma": list(sigma),
                      "smooth_mask": generator.describe(), "perturbation": repr(view.perturbation),
                      "iterations_run": scores_run.shape[0], "stopped_early_at": stopped_at,
                      "lambda": [config.lambda_at(0), config.lambda_at(config.iterations - 1)],
                      "reward_scale": scale.view(k_all, batch)[0].tolist(),
                      "growth_areas": list(growth_areas), "media_area": config.media_mask_area()},
        )

    # -- pieces -------------------------------------------------------------------------------------
    @staticmethod
    def _reward_scale(model: nn.Module, view: Any, scorer: Scorer, config: ExtremalConfig, unmasked: Tensor,
                      grid: tuple[int, ...]) -> Tensor:
        """Per-input divisor of the reward ``(B,)`` (see ``ExtremalConfig.reward_scale``)."""
        if config.reward_scale == "none":
            return torch.ones_like(unmasked)
        if config.reward_scale == "unmasked":
            scale = unmasked.abs()
        else:
            with torch.inference_mode():
                empty = torch.zeros(view.batch_size, *grid, dtype=view.representation.dtype,
                                    device=view.representation.device)
                removed = score_inputs(model, view, scorer, empty)
            scale = (unmasked - removed).abs().clone()
        floor = 1e-6 * max(1.0, float(unmasked.abs().max()))
        if (scale <= floor).any():
            warnings.warn(
                f"the score barely changes when the whole input is perturbed (scale {scale.tolist()}); the "
                "model may ignore this perturbation: try another one (config.perturbation)", stacklevel=3)
        return scale.clamp_min(floor)

    @staticmethod
    def _converged(hist: dict[str, list[Tensor]], score_grad: Tensor, n: int, config: ExtremalConfig) -> bool:
        """Whether every row's reward and area changed by less than the tolerance over the last ``patience`` steps."""
        window = config.patience + 1
        for recent in (_reward(torch.stack(hist["scores"][-window:]), score_grad, n),
                       torch.stack(hist["area"][-window:])):
            if (recent.amax(dim=0) - recent.amin(dim=0)).max() >= config.tolerance:
                return False
        return True

    @staticmethod
    @torch.inference_mode()
    def _final_scores(model: nn.Module, view: Any, scorer: Scorer, masks: Tensor, batch: int, k_all: int,
                      variant: str, last: Tensor, last_output: Any) -> dict[str, Tensor]:
        """Scores ``(B, K_all)`` of the final masks and their complements; class statistics on the preserved
        inputs. ``last`` and ``last_output`` are the scores and output of the last step, which scored the
        final masks (``preserve``), their complements (``delete``) or both (``dual``); one more forward pass
        gives the other side."""
        n = masks.shape[0]
        if variant == "preserve":
            preserved, out = last, last_output
            deleted = score_inputs(model, view, scorer, 1.0 - masks)
        elif variant == "delete":
            deleted = last
            preserved, out = score_and_output(model, view, scorer, masks)
        else:
            preserved, deleted, out = last[:n], last[n:], last_output

        def per_input(t: Tensor) -> Tensor:  # rows (K_all * B,) -> (B, K_all)
            return t.detach().reshape(k_all, batch).T.clone()

        scores = {"preserved": per_input(preserved), "deleted": per_input(deleted)}
        if isinstance(scorer, ClassLogit) and scorer.target is not None:
            logits = as_tensor_output(out, "extremal")[:n]
            if logits.dim() == 2:
                top = logits.max(dim=1)
                target = scorer.target.to(logits.device).repeat(n // scorer.target.numel())
                scores["max_class"] = per_input(top.indices)
                scores["max_score"] = per_input(top.values)
                scores["target"] = per_input(target)
                scores["target_score"] = per_input(logits.gather(1, target.unsqueeze(1)).squeeze(1))
        return scores


def _reward(scores: Tensor, score_grad: Tensor, n: int) -> Tensor:
    """Rewards ``(steps, n)`` from the scores of all scored rows ``(steps, rows)``: ``-score_grad`` weighs them
    (``1 / scale`` kept, ``-1 / scale`` removed) and a row's kept and removed parts add up."""
    return (scores * score_grad.to(scores.dtype)).neg_().view(scores.shape[0], -1, n).sum(dim=1)


extremal = Extremal()

__all__ = ["Extremal", "ExtremalConfig", "extremal", "area_regulariser", "AreaConstraint", "ramp"]

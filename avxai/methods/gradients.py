"""Gradient baselines on the modality's mask grid: Saliency, SmoothGrad, Integrated Gradients.

Every gradient is taken with respect to the *mask* ``m`` of ``score_inputs(model, modality, scorer, m)``,
not with respect to the raw model input, so the same code explains a magnitude grid, a mel grid spread
over linear bins, and a waveform model behind an inverse STFT. For a fixed-baseline perturbation
(``x_m = b + m * (x - b)``) the chain rule gives ``d score / d m = (d score / d x) * (x - b)``: the mask
gradient at ``m = 1`` *is* the "gradient x (input - baseline)" attribution of the modality's baseline.

Memory: every row keeps the activations of the whole input for its backward pass. SmoothGrad and integrated
gradients run as many rows per pass as the memory budget holds (``batch_size=None``, :func:`gradient_batch_size`)
and sum the gradients pass by pass (:func:`gradient_sum`); ``avxai explain`` explains an input whose one row does
not fit the budget in segments (:mod:`avxai.methods.plan`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn

from avxai.checks import check_positive_int
from avxai.engine import (
    check_output,
    chunk_rows,
    evaluate_masks,
    mask_media,
    modality_device,
    score_inputs,
    top_fraction_mask,
)
from avxai.explanation import Explanation
from avxai.memory import batch_for_budget, current_budget, row_need
from avxai.methods.base import (
    Method,
    MethodConfig,
    check_finite,
    new_explanation,
    report_warnings,
)
from avxai.methods.path_checks import check_path_gradients
from avxai.modalities.base import Modality
from avxai.scorers.base import Scorer

NoiseTarget = Literal["mask", "representation"]
Rule = Literal["trapezoid", "riemann_left", "riemann_right", "riemann_middle"]
RULES = ("trapezoid", "riemann_left", "riemann_right", "riemann_middle")
#: the most perturbed inputs per backward pass that the memory budget picks (the previous fixed default)
MAX_GRADIENT_BATCH = 32
#: a relative completeness gap |sum IG - (f(x) - f(baseline))| / |f(x) - f(baseline)| above this is warned about
COMPLETENESS_TOLERANCE = 0.1


def _check_common(batch_size: int | None, listen_fraction: float) -> None:
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size", "perturbed inputs per backward pass (or None: from the budget)")
    if not 0.0 < listen_fraction < 1.0:
        raise ValueError(f"listen_fraction must be in (0, 1) (fraction of cells kept in the saved media), "
                         f"got {listen_fraction}")


def gradient_batch_size(model: nn.Module, modality: Modality, budget: int | None = None, *, warm_time: bool = False,
                        check: Any = None) -> tuple[int, int, float]:
    """``(batch, bytes per row, seconds per row)``: the perturbed inputs per backward pass whose activations fit in
    ``budget`` (default :func:`avxai.memory.current_budget` of the input's device), a multiple of the modality's
    batch, at most :data:`MAX_GRADIENT_BATCH`; the row's need is :func:`avxai.memory.row_need` with gradients (one
    measured forward pass of the unmasked input). A row that alone exceeds the budget still gets one row per
    input (the plan says so; ``avxai explain`` then explains a long input in segments). ``check``: called on the
    measured output; without it a model that fails on its input gets the fixed cap (its first pass reports it)."""
    rows = modality.batch_size
    budget = current_budget(modality_device(modality)) if budget is None else budget
    try:
        per_row, seconds = row_need(model, modality, grad=True, warm_time=warm_time, check=check)
    except Exception:
        if check is not None:
            raise
        return max(rows, MAX_GRADIENT_BATCH // rows * rows), 0, 0.0
    return batch_for_budget(per_row, budget, cap=max(rows, MAX_GRADIENT_BATCH), multiple=rows), per_row, seconds


def _batch(config: Any, model: nn.Module, modality: Modality) -> int:
    """The config's ``batch_size``, or (``None``) the one the memory budget gives (:func:`gradient_batch_size`)."""
    return config.batch_size if config.batch_size is not None else gradient_batch_size(model, modality)[0]


def _score_representation(model: nn.Module, modality: Modality, scorer: Scorer, representation: Tensor) -> Tensor:
    """Scores ``(n,)`` of the model on perturbed representations ``(n, channels, *rep_grid)`` (differentiable)."""
    scores = scorer(check_output(model(modality.to_model_input(representation))))
    if scores.dim() != 1 or scores.shape[0] != representation.shape[0]:
        raise ValueError(
            f"the scorer returned shape {tuple(scores.shape)} for {representation.shape[0]} perturbed inputs; a "
            "scorer must return one score per row of the model output"
        )
    return scores


def _no_gradient_error(what: str) -> ValueError:
    return ValueError(
        f"the score does not depend differentiably on the {what}: the model or the scorer cuts the graph "
        "(numpy, .detach(), torch.no_grad or inference_mode inside forward, an integer cast); gradient methods "
        "need a differentiable model, use 'occlusion' or 'extremal' for this one"
    )


def mask_gradients(model: nn.Module, modality: Modality, scorer: Scorer, masks: Tensor, *, batch_size: int = 32,
                   noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Gradients ``d score_i / d masks_i`` and scores for masks ``(n, *grid)``, ``batch_size`` rows per pass.

    Rows are independent (row ``i`` belongs to input ``i % batch``), so the gradient of the summed scores
    gives every row its own gradient. ``noise`` ``(n, channels, *rep_grid)`` is added to the perturbed
    representation before the model sees it (clamped at 0 for a magnitude grid): SmoothGrad on the input.

    Shape: masks ``(n, *grid)`` -> gradients ``(n, *grid)``, scores ``(n,)``.
    """
    grads, scores_out = [], []
    device = modality_device(modality)  # the passes run where the input is; results come back where the masks are
    with torch.enable_grad():
        for rows in chunk_rows(masks.shape[0], batch_size, modality.batch_size):
            m = masks[rows].detach().to(device).clone().requires_grad_(True)
            if noise is None:
                scores = score_inputs(model, modality, scorer, m)
            else:
                rep = modality.apply_mask(m) + noise[rows].to(m.device, m.dtype)
                if modality.info.nonnegative:
                    rep = rep.clamp_min(0.0)
                scores = _score_representation(model, modality, scorer, rep)
            if not scores.requires_grad:
                raise _no_gradient_error("mask")
            (g,) = torch.autograd.grad(scores.sum(), m, allow_unused=True)
            if g is None:
                raise _no_gradient_error("mask")
            grads.append(g.detach().to(masks.device))
            scores_out.append(scores.detach().to(masks.device))
    return torch.cat(grads), torch.cat(scores_out)


def gradient_sum(model: nn.Module, modality: Modality, scorer: Scorer, count: int,
                 rows_of: Callable[[int, int], tuple[Tensor, Tensor | None]], weights: Tensor, *, batch_size: int,
                 absolute: bool = False) -> tuple[Tensor, Tensor]:
    """``sum_j weights[j] * g_j`` per input over ``count`` draws, without keeping every gradient: draw ``j``'s
    masks (and noise) are made by ``rows_of(j0, j1)`` for draws ``j0 <= j < j1`` when their pass comes, so the
    memory holds one pass's masks, noise and gradients (SmoothGrad's 16 copies or integrated gradients' 33 path
    points of a long input are never all alive). ``absolute``: ``|g_j|`` is summed. Also returns whether each
    draw's gradients are all finite.

    Shape: rows_of -> masks ``((j1 - j0) * batch, *grid)``, noise ``((j1 - j0) * batch, channels, *rep_grid)`` or
    ``None``; weights ``(count,)`` -> sum ``(batch, *grid)`` float64, finite ``(count,)`` bool.
    """
    b = modality.batch_size
    per_pass = max(1, batch_size // b)
    total, finite = None, []
    for j0 in range(0, count, per_pass):
        j1 = min(count, j0 + per_pass)
        masks, noise = rows_of(j0, j1)
        grads, _ = mask_gradients(model, modality, scorer, masks, batch_size=(j1 - j0) * b, noise=noise)
        grads = grads.view(j1 - j0, b, *grads.shape[1:])
        finite.append(torch.isfinite(grads).flatten(2).all(dim=2).all(dim=1))
        grads = grads.abs() if absolute else grads
        w = weights[j0:j1].to(torch.float64).view(-1, *[1] * (grads.dim() - 1))
        part = (w * grads.to(torch.float64)).sum(dim=0)
        total = part if total is None else total + part
        del grads, masks, noise
    return total, torch.cat(finite)


def _finish(method: str, modality: Modality, attribution: Tensor, listen_fraction: float, metadata: dict,
            scores: dict | None = None) -> Explanation:
    keep = top_fraction_mask(attribution, listen_fraction)
    return new_explanation(method, modality, attribution,
                           media=mask_media(modality, {"preserved": keep, "deleted": 1.0 - keep}),
                           scores=scores or {}, metadata=metadata)


# -- Saliency -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SaliencyConfig(MethodConfig):
    """Saliency hyper-parameters.

    absolute : ``|d score / d mask|`` (Simonyan et al. 2014); ``False`` keeps the sign, i.e. the
        gradient x (input - baseline) attribution of the modality's perturbation (red = the cell supports
        the result, blue = it argues against it).
    listen_fraction : fraction of cells kept in the saved ``preserved`` / removed in ``deleted`` media.
    """

    absolute: bool = True
    listen_fraction: float = 0.2

    def __post_init__(self):
        _check_common(1, self.listen_fraction)


class Saliency(Method):
    """Saliency: the gradient of the score with respect to the mask at ``mask = 1`` (nothing removed).

    One forward and one backward pass per batch. Shape: attribution ``(batch, *grid)`` in score units per
    unit of mask (for a fixed baseline: the first-order score change when a cell goes to its baseline).
    """

    name = "saliency"
    config_class = SaliencyConfig

    def explain(self, model: nn.Module, modality: Modality, scorer: Scorer, config: SaliencyConfig,
                unmasked: Tensor) -> Explanation:
        ones = torch.ones(modality.batch_size, *modality.grid_shape, dtype=modality.representation.dtype)
        grads, _ = mask_gradients(model, modality, scorer, ones, batch_size=modality.batch_size)
        check_finite(self.name, "gradient of the score at the input (mask = 1)", grads,
                     "the model is singular at this input itself: check the input (silence, level, NaN samples) "
                     "and the model (a sqrt, log or norm of 0 inside it)")
        attribution = grads.abs() if config.absolute else grads
        return _finish(self.name, modality, attribution, config.listen_fraction,
                       {"gradient_of": "mask at 1", "absolute": config.absolute})


# -- SmoothGrad -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SmoothGradConfig(MethodConfig):
    """SmoothGrad hyper-parameters (Smilkov et al. 2017).

    samples : noisy copies whose gradients are averaged.
    noise : noise standard deviation as a fraction of the range (max - min): of the mask (range 1) with
        ``noise_on="mask"``, of each input's representation (e.g. its STFT magnitude) with
        ``noise_on="representation"`` (the paper's setting; magnitudes are clamped at 0).
    noise_on : ``"representation"`` or ``"mask"``.
    absolute : average ``|gradient|`` (the usual SmoothGrad map) instead of the signed gradient.
    seed : seed of the noise; every input of a batch gets the same noise draws (in units of its own range),
        so a map does not depend on which other inputs share the batch.
    batch_size : perturbed inputs per backward pass; ``None``: as many as the memory budget holds with their
        activations (:func:`gradient_batch_size`, ``avxai explain --max-memory``), at most 32.
    listen_fraction : fraction of cells kept in the saved ``preserved`` / removed in ``deleted`` media.
    """

    samples: int = 16
    noise: float = 0.15
    noise_on: NoiseTarget = "representation"
    absolute: bool = True
    seed: int = 0
    batch_size: int | None = None
    listen_fraction: float = 0.2

    def __post_init__(self):
        _check_common(self.batch_size, self.listen_fraction)
        check_positive_int(self.samples, "samples", "noisy copies to average")
        if not self.noise >= 0.0:
            raise ValueError(f"noise must be >= 0 (std as a fraction of the range, e.g. 0.15), got {self.noise}")
        if self.noise_on not in ("mask", "representation"):
            raise ValueError(f"noise_on must be 'mask' or 'representation', got {self.noise_on!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")


class SmoothGrad(Method):
    """SmoothGrad: the mask gradient averaged over ``samples`` noisy copies of the input (or of the mask).

    Shape: attribution ``(batch, *grid)``, score units per unit of mask.
    """

    name = "smoothgrad"
    config_class = SmoothGradConfig

    def explain(self, model: nn.Module, modality: Modality, scorer: Scorer, config: SmoothGradConfig,
                unmasked: Tensor) -> Explanation:
        b, grid = modality.batch_size, modality.grid_shape
        rep = modality.representation
        dtype = rep.dtype
        gen = torch.Generator(device="cpu").manual_seed(config.seed)
        k = config.samples
        span = None
        if config.noise_on == "representation":
            if not isinstance(rep, Tensor):  # an audio-visual input: one representation per stream
                raise ValueError(f"SmoothGrad's noise_on='representation' adds noise to one input tensor, but this "
                                 f"{type(modality).__name__} input has one per stream; use noise_on='mask' "
                                 "(--set noise_on=mask), which perturbs the joint mask instead")
            flat = rep.reshape(b, -1)
            span = (flat.max(dim=1).values - flat.min(dim=1).values).view(1, b, *([1] * (rep.dim() - 1)))

        def rows_of(j0: int, j1: int) -> tuple[Tensor, Tensor | None]:
            """Copies ``j0 <= j < j1``: their noise drawn now, one copy after another (the same draws whatever
            the batch, one per copy shared by every input)."""
            n = j1 - j0
            shape = (1, 1, *grid) if config.noise_on == "mask" else (1, 1, *rep.shape[1:])
            draws = torch.cat([torch.randn(shape, generator=gen, dtype=dtype) for _ in range(n)])
            if config.noise_on == "mask":
                return (1.0 + config.noise * draws).expand(n, b, *grid).reshape(n * b, *grid), None
            masks = torch.ones(n * b, *grid, dtype=dtype)
            return masks, (config.noise * span * draws).reshape(n * b, *rep.shape[1:])

        batch = _batch(config, model, modality)
        total, _ = gradient_sum(model, modality, scorer, k, rows_of, torch.full((k,), 1.0 / k), batch_size=batch,
                                absolute=config.absolute)
        attribution = total.to(dtype)
        check_finite(self.name, "gradient of the score at the noisy copies", attribution,
                     "the model is singular at some noisy copies (a sqrt, log or norm of 0 inside it, e.g. on "
                     "magnitudes clamped to 0): lower noise or use noise_on='mask'")
        return _finish(self.name, modality, attribution, config.listen_fraction,
                       {"gradient_of": "mask at 1 + noise" if config.noise_on == "mask" else
                        "mask at 1, noisy representation", "samples": k, "batch_size": batch})


# -- Integrated Gradients ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IntegratedGradientsConfig(MethodConfig):
    """Integrated Gradients hyper-parameters (Sundararajan et al. 2017) on the mask path 0 -> 1.

    steps : intervals of the path (``trapezoid`` evaluates ``steps + 1`` points, the Riemann rules ``steps``).
    rule : ``"trapezoid"``, ``"riemann_left"``, ``"riemann_right"`` or ``"riemann_middle"``.
    batch_size : perturbed inputs per backward pass; ``None``: as many as the memory budget holds with their
        activations (:func:`gradient_batch_size`, ``avxai explain --max-memory``), at most 32.
    listen_fraction : fraction of cells kept in the saved ``preserved`` / removed in ``deleted`` media.
    """

    steps: int = 32
    rule: Rule = "trapezoid"
    batch_size: int | None = None
    listen_fraction: float = 0.2

    def __post_init__(self):
        _check_common(self.batch_size, self.listen_fraction)
        check_positive_int(self.steps, "steps", "intervals of the 0 -> 1 mask path")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {self.rule!r}")

    def nodes(self) -> tuple[Tensor, Tensor]:
        """Path positions ``alpha (k,)`` in [0, 1] and quadrature weights ``(k,)`` summing to 1."""
        n = self.steps
        if self.rule == "trapezoid":
            alphas = torch.linspace(0.0, 1.0, n + 1, dtype=torch.float64)
            weights = torch.full((n + 1,), 1.0 / n, dtype=torch.float64)
            weights[0] = weights[-1] = 0.5 / n
            return alphas, weights
        offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[self.rule]
        return (torch.arange(n, dtype=torch.float64) + offset) / n, torch.full((n,), 1.0 / n, dtype=torch.float64)


class IntegratedGradients(Method):
    """Integrated Gradients on the mask: ``IG_c = integral_0^1 d score / d m_c (alpha * 1) d alpha``.

    The path runs from mask 0 (every cell at the modality's baseline) to mask 1 (the input). Completeness:
    ``sum_c IG_c = score(1) - score(0)`` up to the quadrature error; the gap is stored in
    ``metadata["completeness"]`` (per input: ``score_1``, ``score_0``, ``sum_attribution``, ``gap``,
    ``relative_gap`` = gap / |score_1 - score_0|) and ``scores["baseline"]`` holds ``score(0)``.

    Shape: attribution ``(batch, *grid)`` in score units.
    """

    name = "integrated-gradients"
    config_class = IntegratedGradientsConfig

    def explain(self, model: nn.Module, modality: Modality, scorer: Scorer, config: IntegratedGradientsConfig,
                unmasked: Tensor) -> Explanation:
        b, grid = modality.batch_size, modality.grid_shape
        dtype = modality.representation.dtype
        alphas, weights = config.nodes()
        k = alphas.shape[0]
        def rows_of(j0: int, j1: int) -> tuple[Tensor, None]:
            """The path points ``j0 <= j < j1``: mask ``alpha_j * 1`` for every input."""
            n = j1 - j0
            return alphas[j0:j1].to(dtype).view(n, 1, *([1] * len(grid))).expand(n, b, *grid).reshape(n * b, *grid), None

        batch = _batch(config, model, modality)
        total, finite = gradient_sum(model, modality, scorer, k, rows_of, weights, batch_size=batch)
        check_path_gradients(finite, alphas, modality)
        attribution = total.to(dtype)
        ends = torch.stack([torch.zeros(b, *grid, dtype=dtype), torch.ones(b, *grid, dtype=dtype)]).reshape(2 * b, *grid)
        end_scores = evaluate_masks(model, modality, scorer, ends, batch_size=batch).view(2, b)
        score_0, score_1 = end_scores[0].double(), end_scores[1].double()
        total = attribution.reshape(b, -1).double().sum(dim=1)
        gap = total - (score_1 - score_0)
        relative = gap / (score_1 - score_0).abs().clamp_min(1e-12)
        completeness = {"score_1": score_1.tolist(), "score_0": score_0.tolist(), "sum_attribution": total.tolist(),
                        "gap": gap.tolist(), "relative_gap": relative.tolist()}
        problems = []
        far = (relative.abs() > COMPLETENESS_TOLERANCE).nonzero().flatten().tolist()
        if far:
            problems.append(f"integrated-gradients: the attributions of input(s) {far} do not add up to score(input) - "
                            f"score(baseline) (relative completeness gap {[round(relative[i].item(), 3) for i in far]}, "
                            f"above {COMPLETENESS_TOLERANCE}): the path integral is coarse; raise steps (now "
                            f"{config.steps}) or check the model for sharp steps along the path")
        report_warnings(problems)
        return _finish(self.name, modality, attribution, config.listen_fraction,
                       {"path": "mask alpha * 1, alpha 0 -> 1", "rule": config.rule, "evaluations": k,
                        "batch_size": batch,
                        "completeness": completeness, "warnings": problems},
                       scores={"baseline": end_scores[0].detach().clone()})


saliency = Saliency()
smoothgrad = SmoothGrad()
integrated_gradients = IntegratedGradients()

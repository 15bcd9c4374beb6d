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
no backward after the last forward pass, which scores the final masks. Autograd goes from the score through
the model, the masks' upsampling and the smooth mask to the parameters; the area constraint's gradient
(:mod:`avxai.methods.area`) is written out and joins it at the smooth mask. The hyper-parameters are
:class:`avxai.methods.extremal_config.ExtremalConfig`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from avxai.engine import mask_media, score_and_output, score_inputs
from avxai.explanation import Explanation
from avxai.memory import FootprintRecorder, rows_within_budget
from avxai.methods.area import AreaConstraint, area_regulariser, ones_of, ramp
from avxai.methods.base import Method, new_explanation, report_warnings
from avxai.methods.extremal_config import ExtremalConfig
from avxai.methods.extremal_warnings import gradient_problems, score_problems
from avxai.methods.optimisers import SGD, Adam
from avxai.methods.parts import PartsMaskGenerator, mask_area, modality_parts, part_areas
from avxai.methods.smooth_mask import SmoothMaskGenerator
from avxai.modalities.base import Modality
from avxai.perturbations import parse_perturbation
from avxai.scorers.base import Scorer, as_tensor_output
from avxai.scorers.classification import ClassLogit


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
        # the score with every cell removed (B,), one forward pass, which also measures the memory of a row: a long
        # input whose rows (and their activations) exceed the memory budget has the perturbation and the model run
        # them in chunks, recomputed in the backward pass (avxai.memory.RowChunks); else model and view as they are
        with FootprintRecorder(model, rows=batch) as seen:
            removed = self._removed_score(model, view, scorer, grid)
        model, view = rows_within_budget(model, view, n * (2 if config.variant == "dual" else 1),
                                         per_row=seen.row_need() if seen.input_bytes else None)
        if modality_parts(modality) is None:
            mask_dims = _mask_dims(modality, config.mask_axes)  # the grid dims the mask varies along
            mask_grid = tuple(grid[d] for d in mask_dims)
            step, sigma = config.resolve(mask_grid)
            generator = SmoothMaskGenerator(mask_grid, step, sigma, temperature=config.temperature,
                                            oversample=config.oversample, radius=config.radius, dtype=dtype,
                                            device=device)
        else:  # a composite modality (audio-visual): one smooth mask per part, joined (avxai.methods.parts)
            if config.mask_axes is not None:
                raise ValueError(f"mask_axes applies to one grid; this {modality.kind} input has one grid per part "
                                 "(audio-visual): leave mask_axes at None")
            mask_dims = tuple(range(len(grid)))
            generator = PartsMaskGenerator(modality, config, dtype=dtype, device=device)
            step, sigma = generator.step, generator.sigma
        row_areas = torch.tensor(areas_all, dtype=torch.float64).repeat_interleave(batch)  # row i: area i // B
        # The area constraint acts on the smooth mask at the generator's resolution (linear upsampling keeps
        # its mean; sorting fewer cells is cheaper): ones of the ramp r_a of each row there.
        cells = math.prod(generator.out_shape)
        area_constraint = AreaConstraint(ones_of(row_areas, cells).tolist(), cells, dtype, device)
        scale = self._reward_scale(config, unmasked, removed).to(dtype).repeat(k_all)

        # The default Modality.upsample is linear interpolation: the generator does the same with one small
        # matrix product per axis (faster); a modality with its own upsample keeps it.
        own = type(modality).upsample is not Modality.upsample and not isinstance(generator, PartsMaskGenerator)
        upsample = modality.upsample if own else generator.upsample
        if len(mask_dims) < len(grid):  # constant along the other axes: broadcast (its mean is the same)
            upsample = _broadcast(generator.upsample, mask_dims, grid)

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
        # the reward saturates: a preserved score above, or a deleted score below, these bounds earns nothing more
        low, high = _saturation_bounds(config, signs, unmasked.to(dtype), removed.to(dtype), k_all)
        bad_grads = torch.zeros((), dtype=torch.long, device=device)  # gradient cells that were NaN or infinite
        first_bad = torch.full((), -1, dtype=torch.long, device=device)
        with torch.enable_grad():
            for it in range(config.iterations):
                smooth = generator(params)
                masks = upsample(smooth)
                # R_a and its gradient are written out (they join the score's gradient at the smooth mask), and taken
                # with the areas while the masks are fresh in the caches, before the model's pass
                regul, regul_grad = area_constraint(smooth, weight=config.lambda_at(it))
                hist["area"].append(mask_area(modality, masks.detach()))  # as the constraint counts it
                hist["regulariser"].append(regul)
                if config.variant == "preserve":
                    rows = masks
                else:
                    rows = 1.0 - masks if config.variant == "delete" else torch.cat([masks, 1.0 - masks])
                # the last step's pass only scores the final masks: no graph through the model for it (as the bare
                # model's last pass)
                scores, output = score_and_output(model, view, scorer, rows, check_finite=False,
                                                  graph=it + 1 < config.iterations)
                last = scores.detach()
                hist["scores"].append(last)
                bar.update(1)
                converged = (config.patience is not None and it + 1 > config.patience
                             and self._converged(hist, score_grad, n, config, low, high))
                if converged or it + 1 == config.iterations:
                    # these masks are the result: no step after the last forward pass, whose scores are final
                    stopped_at = it + 1 if converged and it + 1 < config.iterations else None
                    break
                if not scores.requires_grad:
                    raise ValueError("the score does not depend on the mask through autograd (the model or the "
                                     "scorer detaches its output, or runs outside torch); extremal perturbation "
                                     "needs gradients: fix the model, or use occlusion, which does not")
                # d(loss)/d(params): the score's gradient through the model and the masks, plus lambda * dR/d(smooth)
                if low is not None:  # saturation: no gradient from a score beyond its bound
                    scores = torch.maximum(torch.minimum(scores, high.to(scores.dtype)), low.to(scores.dtype))
                (grad,) = torch.autograd.grad([scores, smooth], params, [score_grad.to(scores.dtype), regul_grad])
                # a NaN or infinite gradient (a model singular at the perturbed input, e.g. sqrt(0) on a silent
                # chunk) would turn the masks into NaN: those cells do not move this step, and the run reports it
                # at the end (counted on the device, no host synchronisation here)
                finite = torch.isfinite(grad)
                n_bad = finite.numel() - finite.sum()
                first_bad = torch.where((first_bad < 0) & (n_bad > 0), it, first_bad)
                bad_grads += n_bad
                optimiser.step(torch.where(finite, grad, torch.zeros((), dtype=grad.dtype, device=grad.device)))
                with torch.no_grad():
                    params.clamp_(0.0, 1.0)
        bar.close()

        final = masks.detach().clamp(0.0, 1.0)
        output = output.detach() if isinstance(output, Tensor) else output
        # the one host synchronisation of the run's diagnostics: gradient cells that were NaN or infinite
        problems = gradient_problems(int(bad_grads), int(first_bad), params.numel() * max(1, len(hist["scores"]) - 1))
        if not bool(torch.isfinite(final).all()):
            raise ValueError("extremal perturbation produced NaN or infinite masks: the mask's parameters left the "
                             "finite range (a NaN learning rate or initial value?); nothing was saved")
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
        hist["reward"] = _reward(_clamp(scores_run, low, high), score_grad, n).to(dtype)
        if config.variant == "dual":
            hist["deleted_score"] = scores_run[:, n:].to(dtype)
        history = {name: (values if isinstance(values, Tensor) else torch.stack(values))
                   .view(len(values), k_all, batch)[:, :k].transpose(1, 2).contiguous() for name, values in hist.items()}
        problems += score_problems(scores["preserved"], unmasked.to(dtype), removed.to(dtype), config, final,
                                   areas=mask_area(modality, final.flatten(0, 1)).view(final.shape[:2]))
        per_part = part_areas(modality, final.flatten(2))  # (B, K, parts) of a composite input, else None
        report_warnings(problems)
        media_k = config.areas.index(config.media_mask_area())
        keep = final[:, media_k]
        return new_explanation(
            self.name, modality, final.mean(dim=1),
            masks=final, areas=list(config.areas), scores=scores, history=history,
            media=mask_media(view, {"preserved": keep, "deleted": 1.0 - keep}),
            metadata={"variant": config.variant, "step": list(step), "sigma": list(sigma),
                      "smooth_mask": generator.describe(), "perturbation": repr(view.perturbation),
                      "mask_axes": [modality.axes[d] for d in mask_dims],
                      "iterations_run": scores_run.shape[0], "stopped_early_at": stopped_at,
                      "lambda": [config.lambda_at(0), config.lambda_at(config.iterations - 1)],
                      "reward_scale": scale.view(k_all, batch)[0].tolist(),
                      "growth_areas": list(growth_areas), "media_area": config.media_mask_area(),
                      "removed_score": removed.tolist(), "saturation": config.saturation,
                      "part_areas": None if per_part is None else per_part.tolist(),
                      "nonfinite_gradient_cells": int(bad_grads), "warnings": problems},
        )

    # -- pieces -------------------------------------------------------------------------------------
    @staticmethod
    @torch.inference_mode()
    def _removed_score(model: nn.Module, view: Any, scorer: Scorer, grid: tuple[int, ...]) -> Tensor:
        """The score of every input with all of its cells removed ``(B,)`` (one forward pass)."""
        empty = torch.zeros(view.batch_size, *grid, dtype=view.representation.dtype,
                            device=view.representation.device)
        return score_inputs(model, view, scorer, empty).detach().clone()

    @staticmethod
    def _reward_scale(config: ExtremalConfig, unmasked: Tensor, removed: Tensor) -> Tensor:
        """Per-input divisor of the reward ``(B,)`` (see ``ExtremalConfig.reward_scale``)."""
        if config.reward_scale == "none":
            return torch.ones_like(unmasked)
        scale = unmasked.abs() if config.reward_scale == "unmasked" else (unmasked - removed).abs()
        floor = 1e-6 * max(1.0, float(unmasked.abs().max()))
        return scale.clamp_min(floor)

    @staticmethod
    def _converged(hist: dict[str, list[Tensor]], score_grad: Tensor, n: int, config: ExtremalConfig,
                   low: Tensor | None, high: Tensor | None) -> bool:
        """Whether every row's reward and area changed by less than the tolerance over the last ``patience`` steps
        (one host synchronisation per step: early stopping is off by default)."""
        window = config.patience + 1
        for recent in (_reward(_clamp(torch.stack(hist["scores"][-window:]), low, high), score_grad, n),
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


def _mask_dims(modality: Modality, mask_axes: "tuple[str, ...] | None") -> tuple[int, ...]:
    """The grid dims (0-based, in grid order) the masks vary along: all, or those of ``mask_axes``."""
    axes = tuple(modality.axes)
    if mask_axes is None:
        return tuple(range(len(axes)))
    unknown = [a for a in mask_axes if a not in axes]
    if unknown:
        raise ValueError(f"mask_axes {list(mask_axes)} names {unknown}, not axes of this {modality.kind} grid "
                         f"{list(axes)}; e.g. mask_axes=('time',) for masks constant across frequency")
    return tuple(sorted(axes.index(a) for a in mask_axes))


def _broadcast(upsample: Any, dims: tuple[int, ...], grid: tuple[int, ...]) -> Any:
    """``upsample`` to the mask axes ``dims`` of ``grid``, then the masks repeated along the other axes.

    Shape: ``(n, *mask_out_shape)`` -> ``(n, *grid)``.
    """
    def full(smooth: Tensor) -> Tensor:
        masks = upsample(smooth)  # (n, *[grid[d] for d in dims])
        shape = [masks.shape[0]] + [grid[d] if d in dims else 1 for d in range(len(grid))]
        return masks.reshape(shape).expand(masks.shape[0], *grid).contiguous()

    return full


def _saturation_bounds(config: ExtremalConfig, signs: list[float], unmasked: Tensor, removed: Tensor,
                       k_all: int) -> tuple[Tensor | None, Tensor | None]:
    """Per scored row, the bounds ``(low, high)`` that the scores are clamped to before the reward (``None``, ``None``
    without saturation). With ``s1`` the unmasked and ``s0`` the removed score of the row's input and ``c =
    config.saturation``: a preserved row earns nothing above ``s1 + (c - 1) |s1 - s0|``, a deleted row nothing below
    ``s0 - (c - 1) |s1 - s0|`` (c = 1: nothing beyond the unmasked / the fully removed input's score).

    Shape: ``(rows,)`` each, rows = ``K_all * B`` per scored side, preserved side first.
    """
    if config.saturation is None:
        return None, None
    span = (unmasked - removed).abs() * (config.saturation - 1.0)
    inf = torch.full_like(unmasked, math.inf)
    lows, highs = [], []
    for sign in signs:  # -1: the preserved side (maximised), +1: the deleted side (minimised)
        lows.append(-inf if sign < 0 else removed - span)
        highs.append(unmasked + span if sign < 0 else inf)
    return torch.cat(lows).repeat(k_all), torch.cat(highs).repeat(k_all)


def _clamp(scores: Tensor, low: Tensor | None, high: Tensor | None) -> Tensor:
    """Scores ``(..., rows)`` clamped to the saturation bounds (unchanged without)."""
    if low is None:
        return scores
    return torch.maximum(torch.minimum(scores, high.to(scores.dtype)), low.to(scores.dtype))


def _reward(scores: Tensor, score_grad: Tensor, n: int) -> Tensor:
    """Rewards ``(steps, n)`` from the scores of all scored rows ``(steps, rows)``: ``-score_grad`` weighs them
    (``1 / scale`` kept, ``-1 / scale`` removed) and a row's kept and removed parts add up."""
    return (scores * score_grad.to(scores.dtype)).neg_().view(scores.shape[0], -1, n).sum(dim=1)


extremal = Extremal()

__all__ = ["Extremal", "ExtremalConfig", "extremal", "area_regulariser", "AreaConstraint", "ones_of", "ramp"]

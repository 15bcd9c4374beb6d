"""What a run will do, said before it starts: the work, the batches, the memory and a rough time.

    with avxai.memory.memory_budget("2G"):
        config, plan = plan_run(get_method("occlusion"), model, modality, OcclusionConfig())
        print(plan.line())      # plan: occlusion, 1024 windows in 32 forward passes of up to 32 ...
        explanation = occlusion(model, modality, scorer, config)

:func:`plan_run` measures one forward pass of the unmasked input (:func:`avxai.memory.measure_forward`) and
returns the config the run should use (occlusion, SmoothGrad, integrated gradients: ``batch_size`` filled in from
the budget) with an :class:`avxai.memory.Plan`; methods without a planner here get ``None`` (they run as
configured). The gradient methods (saliency, SmoothGrad, integrated gradients, Grad-CAM) and extremal keep one
row's activations of the whole input: their plans are :class:`RowPlan` s, whose ``row_bytes`` tell
:func:`auto_segment_seconds` when a long input must be explained in segments. The time is
the measured forward pass times the passes (a backward pass counted as two forward passes): a rough guide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from avxai.engine import check_output
from avxai.memory import (
    Plan,
    RowChunks,
    current_budget,
    format_size,
    row_need,
    rows_within_budget,
)
from avxai.methods.base import Method, MethodConfig
from avxai.methods.extremal_config import ExtremalConfig
from avxai.methods.gradients import MAX_GRADIENT_BATCH, gradient_batch_size
from avxai.methods.occlusion import (
    MAX_AUTO_BATCH,
    OcclusionConfig,
    auto_batch_size,
    occlusion_windows,
)
from avxai.methods.parts import modality_parts
from avxai.modalities.base import Modality
from avxai.scorers.base import Scorer

__all__ = ["PLANNERS", "SEGMENT_CHOICES", "RowPlan", "auto_segment_seconds", "default_context", "plan_run"]

#: the segment lengths (seconds) :func:`auto_segment_seconds` chooses from
SEGMENT_CHOICES = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 40, 60, 90, 120, 180, 240, 300, 600)
#: below this many seconds a segment's rows run one at a time rather than the segment get shorter
MIN_BATCHED_SEGMENT_S = 2.0


@dataclass
class RowPlan(Plan):
    """A :class:`~avxai.memory.Plan` of a method whose rows keep their activations (extremal), with the bytes of
    one row of the whole input (``row_bytes``, a lower bound): what :func:`auto_segment_seconds` reads."""

    row_bytes: int = 0


def _plan_occlusion(model: nn.Module, modality: Modality, config: OcclusionConfig, budget: int,
                    check: Callable[[Any], Any]) -> tuple[OcclusionConfig, Plan]:
    windows, _ = occlusion_windows(modality, config)
    rows = modality.batch_size
    batch, per_input, seconds = auto_batch_size(model, modality, budget, warm_time=True, check=check)
    if config.batch_size is not None:
        batch = config.batch_size
    per_forward = max(1, batch // rows)
    passes = -(-len(windows) // per_forward)
    notes = [] if per_forward * rows >= min(MAX_AUTO_BATCH, len(windows) * rows) else [
        f"batch sized from the budget ({per_input / (1 << 20):.0f} MiB per perturbed input)"]
    if config.window is None and config.stride is None:  # the modality's own windows: say when they grew
        pieces = modality_parts(modality) or (modality,)
        notes += list(dict.fromkeys(n for p in pieces if (n := getattr(p, "occlusion_note", lambda: None)())))
    plan = Plan("occlusion", f"{len(windows)} windows", passes, per_forward * rows, per_forward * rows * per_input,
                budget, seconds * len(windows) * rows, notes)
    return replace(config, batch_size=per_forward * rows), plan


def _plan_extremal(model: nn.Module, modality: Modality, config: ExtremalConfig, budget: int,
                   check: Callable[[Any], Any]) -> tuple[ExtremalConfig, Plan]:
    rows = len(config.optimised_areas()) * modality.batch_size * (2 if config.variant == "dual" else 1)
    per_row, seconds = row_need(model, modality, grad=True, warm_time=True, check=check)
    chosen, _ = rows_within_budget(model, modality, rows, budget=budget, per_row=per_row)  # no second measuring pass
    notes = [chosen.plan_note] if isinstance(chosen, RowChunks) else []
    slower = 4.0 / 3.0 if notes else 1.0  # one more forward pass per backward pass
    plan = RowPlan("extremal", f"{config.iterations} iterations x {rows} masks", config.iterations + 1, rows,
                   rows * per_row if not notes else min(rows, chosen.chunk) * per_row, budget,
                   seconds * rows * config.iterations * slower, notes, row_bytes=per_row)
    return config, plan


def _plan_gradients(model: nn.Module, modality: Modality, config: Any, budget: int,
                    check: Callable[[Any], Any], *, method: str) -> tuple[Any, RowPlan]:
    """Saliency, SmoothGrad, integrated gradients and Grad-CAM: ``rows`` masked inputs, each with a backward pass
    through the whole input; SmoothGrad's and integrated gradients' ``batch_size`` from the budget (unless given)."""
    b = modality.batch_size
    batch, per_row, seconds = gradient_batch_size(model, modality, budget, warm_time=True, check=check)
    notes = []
    if method == "smoothgrad":
        rows, work = config.samples * b, f"{config.samples} noisy copies with gradients"
    elif method == "integrated-gradients":
        rows, work = len(config.nodes()[0]) * b, f"{len(config.nodes()[0])} path points with gradients"
    else:  # one gradient per input (saliency; Grad-CAM's layer gradients)
        rows, work, batch = b, f"{b} gradient{'s' if b > 1 else ''} of the input", b
    given = getattr(config, "batch_size", None)
    batch = max(b, min(batch if given is None else given, rows) // b * b)
    if batch * per_row > budget:
        notes.append(f"{batch} row{'s' if batch > 1 else ''} of the whole input need >= "
                     f"{format_size(batch * per_row)} with their activations, over the budget")
    elif given is None and batch < min(MAX_GRADIENT_BATCH, rows):
        notes.append(f"batch sized from the budget ({format_size(per_row)} per row with its activations)")
    if hasattr(config, "batch_size") and given is None:
        config = replace(config, batch_size=batch)
    passes = -(-rows // batch)
    extra = 2 * b if method == "integrated-gradients" else 0  # the path's two ends, scored without gradients
    plan = RowPlan(method, work, passes + (-(-extra // batch)), batch, batch * per_row, budget,
                   seconds * rows + seconds / 3.0 * extra, notes, row_bytes=per_row)
    return config, plan


def _plan_pca_rgb(model: nn.Module, modality: Modality, config: Any, budget: int,
                  check: Callable[[Any], Any]) -> tuple[Any, Plan]:
    """PCA-RGB: one forward pass of the inputs without gradients, the chosen layers' features hooked (fitted on a
    sample and projected in chunks, so they add little beyond the pass itself)."""
    per_input, seconds = row_need(model, modality, grad=False, warm_time=True, check=check)
    b = modality.batch_size
    return config, Plan("pca-rgb", "the layers' features of the unmasked input", 1, b, b * per_input, budget,
                        seconds * b, [])


def _gradient_planner(name: str) -> Callable[..., tuple[Any, RowPlan]]:
    def planner(model, modality, config, budget, check):
        return _plan_gradients(model, modality, config, budget, check, method=name)
    return planner


#: method name -> ``planner(model, modality, config, budget, check) -> (config, Plan)``
PLANNERS: dict[str, Callable[..., tuple[Any, Plan]]] = {
    "occlusion": _plan_occlusion, "extremal": _plan_extremal, "pca-rgb": _plan_pca_rgb,
    **{name: _gradient_planner(name) for name in ("saliency", "smoothgrad", "integrated-gradients", "gradcam")}}


def plan_run(method: Method, model: nn.Module, modality: Modality, config: MethodConfig,
             budget: int | None = None, scorer: Scorer | None = None) -> tuple[MethodConfig, Plan | None]:
    """The config to run with and the :class:`~avxai.memory.Plan` of ``method`` on ``modality``
    (``budget``: bytes, default :func:`avxai.memory.current_budget`); ``(config, None)`` for a method without a
    planner or a model that fails on its input or returns no usable output (the method's own first pass reports
    that, in one line, with no plan printed before it). ``scorer``: also checked on the measured output, so a
    model whose output the scorer cannot read gets no plan either."""
    planner = PLANNERS.get(method.name)
    if planner is None:
        return config, None
    budget = current_budget(modality.representation.device) if budget is None else budget
    def check(output: Any) -> None:
        check_output(output)
        if scorer is not None:
            scorer.prepare(output)(output)

    try:
        return planner(model, modality, config, budget, check)
    except Exception:  # noqa: BLE001 - a plan never stops a run: the method reports a failing model itself
        return config, None


def auto_segment_seconds(plan: Plan | None, duration_s: float | None) -> float | None:
    """The segment length (seconds, from :data:`SEGMENT_CHOICES`) for an input of ``duration_s`` whose one row
    of the whole input does not fit the plan's budget; ``None`` when it fits (or the plan does not say).

    The need of a row is taken as proportional to the input's length: a segment with its context on each side
    (:func:`default_context`) is as long as lets the plan's batch of rows fit the budget at once, or, when that is
    under :data:`MIN_BATCHED_SEGMENT_S`, one row at a time (extremal's rows then run in chunks,
    :class:`~avxai.memory.RowChunks`; a gradient method's batch is sized again on the segment); at least 1 s.
    """
    row = getattr(plan, "row_bytes", 0)
    if not row or not duration_s or row <= plan.budget:
        return None
    per_second = row / duration_s
    fits = plan.budget / (max(1, plan.batch) * per_second)
    if fits < MIN_BATCHED_SEGMENT_S:
        fits = plan.budget / per_second
    chosen = [s for s in SEGMENT_CHOICES if s + 2 * default_context(s) <= fits] or [SEGMENT_CHOICES[0]]
    return float(chosen[-1]) if chosen[-1] < duration_s else None


def default_context(seconds: float) -> float:
    """Context on each side of a segment of ``seconds``: a tenth of it, at most 0.5 s (its cells are cut away)."""
    return min(0.5, seconds / 10)

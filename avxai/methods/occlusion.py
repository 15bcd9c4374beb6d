"""Occlusion: slide a window over the grid, replace it with the baseline, record the score drop.

The windows go through the model in batches sized from the memory budget (:func:`avxai.memory.current_budget`,
``avxai explain --max-memory``) unless ``batch_size`` is given: a long recording is explained in bounded memory,
a few windows (each a whole perturbed input) at a time, with a progress bar and its ETA.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from avxai.explanation import Explanation
from avxai.engine import mask_media, score_inputs, top_fraction_mask
from avxai.memory import batch_for_budget, current_budget, measure_forward, tensor_bytes
from avxai.methods.base import Method, MethodConfig, new_explanation
from avxai.methods.parts import modality_parts, split_per_part
from avxai.modalities.base import Modality
from avxai.scorers.base import Scorer


@dataclass(frozen=True)
class OcclusionConfig(MethodConfig):
    """Occlusion hyper-parameters.

    window : cells per grid axis (an int for every axis, or one per axis); ``None`` = the modality's
        ``occlusion_window()`` suggestion (window, stride) when it has one and ``stride`` is ``None`` too,
        else 1/16 of each axis.
    stride : cells per step per axis; ``None`` = half the window.
    batch_size : perturbed inputs per forward pass; ``None``: as many as fit in the memory budget
        (:func:`auto_batch_size`), at most :data:`MAX_AUTO_BATCH`.
    listen_fraction : fraction of cells kept in the saved ``preserved`` / removed in ``deleted`` media.
    progress : show a tqdm progress bar.
    """

    window: tuple[int, ...] | int | None = field(default=None, metadata={"note": "one per grid axis"})
    stride: tuple[int, ...] | int | None = field(default=None, metadata={"note": "one per grid axis"})
    batch_size: int | None = None
    listen_fraction: float = 0.2
    progress: bool = False

    def __post_init__(self):
        for name in ("window", "stride"):
            value = getattr(self, name)
            values = (value,) if isinstance(value, int) else (value or ())
            if any(int(v) < 1 for v in values):
                raise ValueError(f"occlusion {name} must be >= 1 cell on every axis, got {value}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0.0 < self.listen_fraction < 1.0:
            raise ValueError(f"listen_fraction must be in (0, 1), got {self.listen_fraction}")

    def resolve(self, grid_shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Window and stride per axis for a grid ``grid_shape``; raises if they do not fit."""
        nd = len(grid_shape)

        def per_axis(value, default):
            if value is None:
                return tuple(default)
            if isinstance(value, int):
                return (value,) * nd
            if len(value) != nd:
                raise ValueError(f"got {len(value)} values {tuple(value)} for a grid with {nd} axes {grid_shape}")
            return tuple(int(v) for v in value)

        window = per_axis(self.window, [max(1, round(n / 16)) for n in grid_shape])
        stride = per_axis(self.stride, [max(1, w // 2) for w in window])
        for w, n in zip(window, grid_shape):
            if w > n:
                raise ValueError(f"occlusion window {window} does not fit in the grid {grid_shape}")
        return window, stride


#: the most perturbed inputs per forward pass that the memory budget picks (larger batches gain little on a CPU)
MAX_AUTO_BATCH = 32
#: the measured need of one perturbed input over its lower bound (:meth:`avxai.memory.Footprint.per_input` plus
#: its model input, representation and mask): 45 MB against 31 MB for 60 s on the bundled speaker model; the
#: masks' bookkeeping and the re-synthesis add what the bound does not see
MEMORY_MARGIN = 1.5


def auto_batch_size(model: nn.Module, modality: Modality, budget: int | None = None, *,
                    warm_time: bool = False, check=None) -> tuple[int, int, float]:
    """``(batch, bytes per perturbed input, seconds per perturbed input)``: the perturbed inputs per forward pass
    that fit in ``budget`` (default :func:`avxai.memory.current_budget`), a multiple of the modality's batch, at
    most :data:`MAX_AUTO_BATCH` (measured with one forward pass of the unmasked input)."""
    rows = modality.batch_size
    budget = current_budget(modality.representation.device) if budget is None else budget
    model_input = modality.model_input()
    try:
        foot = measure_forward(model, model_input, rows=rows, warm_time=warm_time, check=check)
    except Exception:  # noqa: BLE001 - a model that fails on its input: the first scored batch reports it
        if check is not None:  # the caller (a plan) wants to know
            raise
        return min(MAX_AUTO_BATCH, max(rows, MAX_AUTO_BATCH // rows * rows)), 0, 0.0
    # the model input, the perturbed representation, and the mask with its bookkeeping (about one representation)
    per_input = foot.per_input(grad=False) + (tensor_bytes(model_input)
                                              + 2 * tensor_bytes(modality.representation)) // rows
    per_input = int(MEMORY_MARGIN * per_input)
    return batch_for_budget(per_input, budget, cap=max(rows, MAX_AUTO_BATCH), multiple=rows), per_input, foot.seconds


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start cells of the windows along one axis: every ``stride`` cells until the axis is covered.

    The last window may reach past the end and is then cut there (Captum's convention), so every cell
    is covered.
    """
    count = -(-(size - window) // stride) + 1  # ceil((size - window) / stride) + 1
    return [k * stride for k in range(count)]


def occlusion_windows(modality: Modality, config: OcclusionConfig) -> tuple[list, list]:
    """Every window ``(part, region of that part's grid)`` and each part's ``(window, stride)``.

    A composite modality (audio-visual) slides the windows within each of its parts (see
    :mod:`avxai.methods.parts`); a plain modality is its own single part.
    """
    parts = modality_parts(modality)
    pieces = parts if parts is not None else (modality,)
    windows_cfg = split_per_part(config.window, pieces, "window") if parts else [config.window]
    strides_cfg = split_per_part(config.stride, pieces, "stride") if parts else [config.stride]
    grids = [tuple(p.grid_shape) for p in pieces]
    # a part without a window of the user's takes the window its modality suggests, if any (a face video:
    # 0.2 s x a quarter of the crop; 1/16 of every axis of a 3-D grid would be tens of thousands of windows)
    suggested = [getattr(p, "occlusion_window", lambda: None)() if w is None and s is None else None
                 for p, w, s in zip(pieces, windows_cfg, strides_cfg)]
    windows_cfg = [w if hint is None else hint[0] for w, hint in zip(windows_cfg, suggested)]
    strides_cfg = [s if hint is None else hint[1] for s, hint in zip(strides_cfg, suggested)]
    resolved = [replace(config, window=w, stride=s).resolve(g) for w, s, g in zip(windows_cfg, strides_cfg, grids)]
    windows = [(p, tuple(slice(s, min(s + w, n)) for s, w, n in zip(start, window, grid)))
               for p, (grid, (window, stride)) in enumerate(zip(grids, resolved))
               for start in itertools.product(*[window_starts(n, w, s) for n, w, s in zip(grid, window, stride)])]
    return windows, resolved


class Occlusion(Method):
    """Occlusion (Zeiler & Fergus 2014) on any modality's grid (1-D, 2-D or 3-D).

    For every window position the window is replaced by the modality's perturbation (mask 0 there)
    and the score drop ``unmasked - occluded`` is added to the cells it covers; each cell's attribution
    is the mean drop over the windows that cover it (the definition Captum's ``Occlusion`` uses).
    Windows are evaluated ``batch_size`` perturbed inputs at a time under ``torch.inference_mode``.

    Shape: attribution ``(batch, *grid)`` in the scorer's units.
    """

    name = "occlusion"
    config_class = OcclusionConfig

    def explain(self, model: nn.Module, modality: Modality, scorer: Scorer, config: OcclusionConfig,
                unmasked: Tensor) -> Explanation:
        parts = modality_parts(modality)
        pieces = parts if parts is not None else (modality,)
        grids = [tuple(p.grid_shape) for p in pieces]
        batch = modality.batch_size
        windows, resolved = occlusion_windows(modality, config)
        dtype, device = modality.representation.dtype, modality.representation.device
        totals = [torch.zeros(batch, *g, dtype=dtype, device=device) for g in grids]
        counts = [torch.zeros(g, dtype=dtype, device=device) for g in grids]
        batch_size = config.batch_size if config.batch_size is not None else auto_batch_size(model, modality)[0]
        per_forward = max(1, batch_size // batch)
        bar = tqdm(total=len(windows), desc="occlusion", unit="window", disable=not config.progress)
        with torch.inference_mode():
            for first in range(0, len(windows), per_forward):
                chunk = windows[first:first + per_forward]
                masks = [torch.ones(len(chunk), batch, *g, dtype=dtype, device=device) for g in grids]
                for j, (p, region) in enumerate(chunk):
                    masks[p][(j, slice(None)) + region] = 0.0
                flat = [m.reshape(-1, *g) for m, g in zip(masks, grids)]
                joint = modality.join_masks(flat) if parts is not None else flat[0]
                scores = score_inputs(model, modality, scorer, joint).view(len(chunk), batch)
                drops = unmasked.to(dtype).unsqueeze(0) - scores.to(dtype)
                for j, (p, region) in enumerate(chunk):
                    totals[p][(slice(None),) + region] += drops[j].view(batch, *([1] * len(grids[p])))
                    counts[p][region] += 1
                bar.update(len(chunk))
        bar.close()
        maps = [t / c for t, c in zip(totals, counts)]
        attribution = modality.join_masks(maps) if parts is not None else maps[0]
        keep = top_fraction_mask(attribution, config.listen_fraction)
        window = [list(w) for w, _ in resolved] if parts is not None else list(resolved[0][0])
        stride = [list(s) for _, s in resolved] if parts is not None else list(resolved[0][1])
        return new_explanation(
            self.name, modality, attribution,
            media=mask_media(modality, {"preserved": keep, "deleted": 1.0 - keep}),
            metadata={"window": window, "stride": stride, "n_windows": len(windows), "batch_size": batch_size},
        )


occlusion = Occlusion()

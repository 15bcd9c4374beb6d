"""Masks over a modality made of parts (audio-visual): one grid per part, joined into one flat grid.

A :class:`~avxai.modalities.composite.CompositeModality` (e.g. :class:`avxai.modalities.audio_visual.AudioVisual`)
has a 1-D grid, the concatenation of its parts' flattened grids, and offers

* ``parts() -> tuple[Modality, ...]``: the sub-modalities, each with its own 1-3-D grid,
* ``join_masks([mask_p (n, *grid_p), ...]) -> (n, *grid_shape)`` and ``split_mask`` (the inverse),
* ``part_weights``: relative weight of each part in an area constraint (default equal).

Methods that need the N-D structure of a grid use it: occlusion slides its windows inside each part
(a window never straddles two parts), extremal perturbation builds one smooth-mask generator per part
(:class:`PartsMaskGenerator`). Everything else (apply_mask, perturb, batch_size, the engine) works on
the joint grid unchanged. Per-axis hyper-parameters (an occlusion window, an extremal step or sigma)
are given for the parts' axes in order, e.g. ``(freq, time, time, height, width)`` for audio + video,
or as one number for every axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from avxai.methods.smooth_mask import SmoothMaskGenerator
from avxai.modalities.base import Modality
from avxai.modalities.composite import CompositeModality

__all__ = ["PartsMaskGenerator", "mask_area", "modality_parts", "part_areas", "split_per_part"]


def modality_parts(modality: Modality) -> tuple | None:
    """The parts of a :class:`CompositeModality`, or ``None`` for a plain modality."""
    return tuple(modality.parts()) if isinstance(modality, CompositeModality) else None


def split_per_part(value: Any, parts: Sequence[Any], name: str) -> list[Any]:
    """A per-axis hyper-parameter over all parts' axes -> one value per part.

    ``None`` and single numbers apply to every part; a sequence must hold one value per axis of every
    part, in order (e.g. 5 values for a (freq, time) spectrogram and a (time, height, width) video).
    """
    if value is None or isinstance(value, (int, float)):
        return [value] * len(parts)
    values = tuple(value)
    dims = [len(p.grid_shape) for p in parts]
    if len(values) != sum(dims):
        axes = ", ".join(f"{'/'.join(p.axes)}" for p in parts)
        raise ValueError(f"{name} has {len(values)} values {values} but the parts have {sum(dims)} axes in all "
                         f"({axes}); give one value per axis, parts in order, or a single number")
    out, start = [], 0
    for d in dims:
        out.append(values[start:start + d])
        start += d
    return out


def part_areas(modality: Modality, masks: Tensor) -> Tensor | None:
    """The area (mean) of each part's mask, or ``None`` for a plain modality.

    Shape: masks ``(..., N)`` on the joint grid -> ``(..., parts)``.
    """
    if not isinstance(modality, CompositeModality):
        return None
    flat = masks.reshape(-1, masks.shape[-1])
    areas = torch.stack([m.flatten(1).mean(dim=1) for m in modality.split_mask(flat)], dim=1)
    return areas.reshape(*masks.shape[:-1], areas.shape[-1])


def mask_area(modality: Modality, masks: Tensor) -> Tensor:
    """The area of masks as the area constraint counts it: the mean over the grid for a plain modality; for a
    composite one the parts' areas weighed by ``part_weights`` (equal by default: the audio mask's area and the
    video mask's count alike, not by their cell counts, which differ eightfold on the bundled AV clip).

    Shape: masks ``(n, *grid)`` -> ``(n,)``.
    """
    areas = part_areas(modality, masks.reshape(masks.shape[0], -1))
    if areas is None:
        return masks.reshape(masks.shape[0], -1).mean(dim=1)
    weights = torch.tensor(modality.part_weights, dtype=areas.dtype, device=areas.device)
    return areas @ (weights / weights.sum())


class PartsMaskGenerator:
    """Smooth masks for a composite modality: one :class:`SmoothMaskGenerator` per part, joined.

    The parameters of all parts are one flat vector per mask; the generated masks are the parts' smooth
    masks flattened and concatenated. For the area constraint each part's flat mask is repeated
    ``repeats[p]`` times so that the parts weigh about ``part_weights`` of the whole (by default equally,
    whatever their cell counts): an area ``a`` then keeps about a fraction ``a`` of the total weight.
    :meth:`upsample` takes one copy per part to the part's grid and joins them on the modality's grid.

    Shape: params ``(n, sum of part parameters)`` -> masks ``(n, sum of repeats * part cells)``;
    ``upsample`` -> ``(n, *modality.grid_shape)``.
    """

    def __init__(self, modality: CompositeModality, config: Any, dtype: torch.dtype = torch.float32, device="cpu"):
        self.modality = modality
        self.parts = modality_parts(modality)
        if not self.parts:
            raise ValueError(f"{type(modality).__name__} is not a CompositeModality; use SmoothMaskGenerator")
        steps = split_per_part(config.step, self.parts, "step")
        sigmas = split_per_part(config.sigma, self.parts, "sigma")
        self.generators: list[SmoothMaskGenerator] = []
        step_all, sigma_all = [], []
        for part, st, sg in zip(self.parts, steps, sigmas):
            step, sigma = replace(config, step=st, sigma=sg).resolve(part.grid_shape)
            step_all += step
            sigma_all += sigma
            self.generators.append(SmoothMaskGenerator(
                part.grid_shape, step, sigma, temperature=config.temperature, oversample=config.oversample,
                radius=config.radius, dtype=dtype, device=device))
        self.step, self.sigma = tuple(step_all), tuple(sigma_all)
        self.param_sizes = [math.prod(g.param_shape) for g in self.generators]
        self.out_sizes = [math.prod(g.out_shape) for g in self.generators]
        weights = [float(w) for w in modality.part_weights]
        if len(weights) != len(self.parts) or any(not w > 0 for w in weights):
            raise ValueError(f"part_weights must hold one positive weight per part ({len(self.parts)}), got {weights}")
        self.repeats = part_repeats(self.out_sizes, weights)
        self.weights = weights
        self.param_shape = (sum(self.param_sizes),)
        self.out_shape = (sum(r * c for r, c in zip(self.repeats, self.out_sizes)),)
        self.grid_shape = tuple(modality.grid_shape)
        self.dtype, self.device = dtype, torch.device(device)

    def init_params(self, n: int, value: float = 0.5, jitter: float = 0.0, seed: int = 0) -> Tensor:
        """Initial parameters ``(n, sum of part parameters)`` (part ``p`` drawn with seed ``seed + p``)."""
        return torch.cat([g.init_params(n, value, jitter, seed + p).reshape(n, -1)
                          for p, g in enumerate(self.generators)], dim=1)

    def _split(self, flat: Tensor, sizes: Sequence[int]) -> list[Tensor]:
        return list(flat.split(list(sizes), dim=1))

    def __call__(self, params: Tensor) -> Tensor:
        if params.dim() != 2 or params.shape[1] != self.param_shape[0]:
            raise ValueError(f"parameters must have shape (n, {self.param_shape[0]}), got {tuple(params.shape)}")
        n = params.shape[0]
        out = []
        for g, p, r in zip(self.generators, self._split(params, self.param_sizes), self.repeats):
            m = g(p.reshape(n, *g.param_shape)).reshape(n, -1)
            out.append(m.repeat(1, r) if r > 1 else m)
        return torch.cat(out, dim=1)

    def upsample(self, masks: Tensor) -> Tensor:
        """Masks ``(n, *out_shape)`` -> ``(n, *modality.grid_shape)``: one copy per part, on its grid, joined."""
        n = masks.shape[0]
        pieces = self._split(masks, [r * c for r, c in zip(self.repeats, self.out_sizes)])
        per_part = []
        for g, part, piece, c in zip(self.generators, self.parts, pieces, self.out_sizes):
            coarse = piece[:, :c].reshape(n, *g.out_shape)
            own = type(part).upsample is not Modality.upsample
            per_part.append(part.upsample(coarse) if own else g.upsample(coarse))
        return self.modality.join_masks(per_part)

    def describe(self) -> dict:
        return {"parts": [g.describe() for g in self.generators], "repeats": list(self.repeats),
                "part_weights": list(self.weights), "out_shape": list(self.out_shape)}


def part_repeats(cells: Sequence[int], weights: Sequence[float], tolerance: float = 0.05,
                 max_factor: int = 8) -> list[int]:
    """How often each part's mask cells enter the area constraint so the parts weigh about ``weights``.

    Part ``p`` gets ``repeats[p] * cells[p]`` entries; the smallest integer multiple of the fewest repeats that
    brings every part's share within ``tolerance`` (relative) of its weight's share is used (at most
    ``max_factor`` times the fewest), so rounding does not skew the balance when the parts' cell counts are
    close (a ratio of 1.5 rounds to 1 : 1 without this, giving the smaller part 40 % instead of 50 %).
    """
    total_w = float(sum(weights))
    base = max(c / w for c, w in zip(cells, weights))
    best, best_err = None, float("inf")
    for factor in range(1, max_factor + 1):
        repeats = [max(1, int(round(factor * base * w / c))) for c, w in zip(cells, weights)]
        entries = [r * c for r, c in zip(repeats, cells)]
        err = max(abs(e / sum(entries) - w / total_w) / (w / total_w) for e, w in zip(entries, weights))
        if err < best_err:
            best, best_err = repeats, err
        if err <= tolerance:
            break
    return best


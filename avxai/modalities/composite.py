"""Composite modalities: several modalities (parts) of the same inputs masked on one joint grid.

A :class:`CompositeModality` holds its parts (each a :class:`~avxai.modalities.base.Modality` with its own
1-3-D grid, rate and perturbation) and exposes a **1-D joint grid** ``("joint",)``: the parts' flattened
grids one after another. A joint mask ``(n, N)`` is split into one mask per part (:meth:`split_mask`),
each part applies its own with its own perturbation, and the model gets the tuple of the parts' model
inputs. Everything that only needs ``grid_shape``, ``apply_mask`` / ``perturb`` and ``batch_size`` (the
engine, scorers, metrics) runs on the joint grid unchanged; methods that need each part's N-D structure
(occlusion windows, extremal smooth masks) use :meth:`parts`, :meth:`join_masks`, :meth:`split_mask` and
:attr:`part_weights` (the weight of each part in an area constraint, equal by default).

Coordinates and units of part ``p``'s axes are kept under ``"<p>/<axis>"``; the metadata names the parts,
their sizes and weights and holds each part's metadata, so that
:func:`avxai.explanation.split_explanation` can cut a saved explanation back into one per part.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from avxai.modalities.base import Modality

__all__ = ["CompositeModality", "PartsRepresentation"]


class PartsRepresentation(tuple):
    """The parts' representations, in part order; ``dtype`` and ``device`` are the first part's."""

    def __new__(cls, *representations: Any) -> "PartsRepresentation":
        return super().__new__(cls, representations)

    @property
    def dtype(self) -> torch.dtype:
        return self[0].dtype

    @property
    def device(self) -> torch.device:
        return self[0].device


class CompositeModality(Modality):
    """Parts of the same inputs on one joint grid (see the module docstring).

    Parameters
    ----------
    parts : the sub-modalities, each with the same batch size.
    names : one name per part (``("audio", "video")``); coordinates and metadata are keyed by them.
    part_weights : weight of each part in an area constraint (equal by default, whatever the cell counts).

    Subclasses may set :attr:`representation_class` (a callable ``(*part_representations) -> tuple``).

    Shape: grid ``(N,)`` with ``N`` the sum of the parts' cell counts; representation: one per part;
    model input: the tuple of the parts' model inputs.
    """

    kind = "composite"
    axes = ("joint",)
    #: builds the joint representation from the parts' representations, in part order
    representation_class: Any = PartsRepresentation

    def __init__(self, parts: Sequence[Modality], names: Sequence[str], *,
                 part_weights: Sequence[float] | None = None):
        parts, names = tuple(parts), tuple(str(n) for n in names)
        if len(parts) < 2 or len(names) != len(parts) or len(set(names)) != len(names):
            raise ValueError(f"a composite modality needs at least two parts with one distinct name each, got "
                             f"{len(parts)} parts named {names}")
        for name, part in zip(names, parts):
            if not isinstance(part, Modality) or isinstance(part, CompositeModality):
                raise TypeError(f"part {name!r} must be a plain avxai Modality (not a composite), got "
                                f"{type(part).__name__}")
        sizes = {p.batch_size for p in parts}
        if len(sizes) != 1:
            raise ValueError(f"the parts have different batch sizes {[p.batch_size for p in parts]}; give every part "
                             "the same inputs")
        weights = tuple(float(w) for w in (part_weights if part_weights is not None else [1.0] * len(parts)))
        if len(weights) != len(parts) or any(not w > 0 for w in weights):
            raise ValueError(f"part_weights must be {len(parts)} positive numbers ({', '.join(names)}), got "
                             f"{part_weights}")
        self._parts, self.part_names, self.part_weights = parts, names, weights
        self._sizes = [int(np.prod(p.grid_shape)) for p in parts]
        super().__init__(self.representation_class(*(p.representation for p in parts)), None)
        self.perturbation = tuple(p.perturbation for p in parts)

    # -- parts ------------------------------------------------------------------------------------
    def parts(self) -> tuple[Modality, ...]:
        """The sub-modalities, in order."""
        return self._parts

    @property
    def part_sizes(self) -> list[int]:
        """Cells of each part's grid, in order."""
        return list(self._sizes)

    @property
    def info(self):
        raise ValueError(f"a {self.kind} modality has one perturbation per part: set it on the parts (e.g. "
                         "Spectrogram(..., perturbation=...), FaceVideo(..., perturbation=...)) instead of "
                         "overriding it in the method's config")

    def split_mask(self, mask: Tensor) -> list[Tensor]:
        """Joint masks ``(n, N)`` -> one mask per part ``(n, *part.grid_shape)``."""
        if mask.dim() != 2 or mask.shape[1] != sum(self._sizes):
            raise ValueError(f"joint masks must be (n, {sum(self._sizes)}) for this {self.kind} grid, got "
                             f"{tuple(mask.shape)}")
        pieces = mask.split(self._sizes, dim=1)
        return [p.reshape(mask.shape[0], *part.grid_shape) for p, part in zip(pieces, self._parts)]

    def join_masks(self, masks: Sequence[Tensor]) -> Tensor:
        """One mask per part ``(n, *part.grid_shape)`` -> joint masks ``(n, N)``."""
        if len(masks) != len(self._parts):
            raise ValueError(f"give one mask per part ({', '.join(self.part_names)}), got {len(masks)}")
        n = masks[0].shape[0]
        for m, part, name in zip(masks, self._parts, self.part_names):
            if tuple(m.shape[1:]) != tuple(part.grid_shape) or m.shape[0] != n:
                raise ValueError(f"the {name} mask must be (n, {', '.join(map(str, part.grid_shape))}) with the same "
                                 f"n as the other parts, got {tuple(m.shape)}")
        return torch.cat([m.reshape(n, -1) for m in masks], dim=1)

    # -- grid ---------------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self._parts[0].batch_size

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return (sum(self._sizes),)

    def grid(self) -> Tensor:
        """Joint display values ``(batch, N)``: each part's :meth:`~Modality.grid`, flattened, in order."""
        return self.join_masks([p.grid() for p in self._parts])

    def upsample(self, coarse: "Tensor | Sequence[Tensor]") -> Tensor:
        """One coarse mask per part ``[(n, *coarse_p), ...]`` -> joint masks ``(n, N)`` (each part interpolated
        to its grid); a joint ``(n, N)`` mask is returned as is."""
        if isinstance(coarse, Tensor):
            if coarse.dim() == 2 and coarse.shape[1] == self.grid_shape[0]:
                return coarse
            raise ValueError(f"{type(self).__name__}.upsample takes one coarse mask per part "
                             f"({', '.join(self.part_names)}), or a joint (n, {self.grid_shape[0]}) mask; got a "
                             f"tensor {tuple(coarse.shape)}")
        return self.join_masks([part.upsample(c) for part, c in zip(self._parts, coarse)])

    def apply_mask(self, mask: Tensor) -> tuple:
        """Perturbed representations of every part from joint masks ``(n, N)`` (1 = keep)."""
        self.check_mask(mask)
        return self.representation_class(*(part.apply_mask(m) for part, m in zip(self._parts, self.split_mask(mask))))

    def to_model_input(self, representation: Sequence[Any]) -> tuple:
        """The tuple of the parts' model inputs."""
        return tuple(part.to_model_input(r) for part, r in zip(self._parts, representation))

    # -- description --------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int | None:
        """The first part's audio sample rate (Hz), or ``None`` when no part has audio."""
        return next((p.sample_rate for p in self._parts if p.sample_rate is not None), None)

    def coordinates(self) -> dict[str, np.ndarray]:
        coords = {"joint": np.arange(self.grid_shape[0], dtype=float)}
        for name, part in zip(self.part_names, self._parts):
            coords.update({f"{name}/{axis}": v for axis, v in part.coordinates().items()})
        return coords

    def units(self) -> dict[str, str]:
        units = {"joint": "cell"}
        for name, part in zip(self.part_names, self._parts):
            units.update({f"{name}/{axis}": u for axis, u in part.units().items()})
        return units

    def media(self, representation: Sequence[Any]) -> dict[str, Any]:
        media: dict[str, Any] = {}
        for part, r in zip(self._parts, representation):
            media.update(part.media(r))
        return media

    def metadata(self) -> dict[str, Any]:
        return {"kind": self.kind, "axes": list(self.axes), "grid_shape": list(self.grid_shape),
                "batch_size": self.batch_size, "part_names": list(self.part_names), "part_sizes": list(self._sizes),
                "part_weights": list(self.part_weights),
                "parts": {name: part.metadata() for name, part in zip(self.part_names, self._parts)}}

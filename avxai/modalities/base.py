"""The modality interface: a batch of raw inputs prepared for masking, and back to the model's input."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from avxai.perturbations import GridInfo, Perturbation, parse_perturbation


#: occlusion windows a modality suggests along time, at most: windows of a fixed length (0.2 s of a face video or
#: an AV spectrogram) grow with a clip longer than this many of them, so the windows stay bounded (their count,
#: and with it the forward passes, about 1,000 on the bundled AV model) and a long clip is explained at coarser
#: time resolution, stated in the plan, instead of in hours (a 60-s clip at 0.2 s: 9,616 windows)
MAX_OCCLUSION_STEPS = 32


def occlusion_time_cells(seconds: float, cells_per_second: float, cells: int) -> int:
    """Cells of a time window: ``seconds`` long, or ``1 / MAX_OCCLUSION_STEPS`` of the ``cells`` when more than
    ``MAX_OCCLUSION_STEPS + 1`` windows of ``seconds`` would cover them (the one slack window keeps the extra frame
    of a centred STFT from changing a clip of exactly that length), within ``[1, cells]``."""
    fixed = max(1, int(round(seconds * cells_per_second)))
    if -(-cells // fixed) > MAX_OCCLUSION_STEPS + 1:
        fixed = -(-cells // MAX_OCCLUSION_STEPS)
    return min(cells, fixed)


def occlusion_time_note(window_cells: int, cells_per_second: float, seconds: float) -> str | None:
    """The plan's note when the time windows grew past ``seconds`` (a long clip), else ``None``."""
    length = window_cells / cells_per_second
    if length <= seconds * 1.0001 + 0.5 / cells_per_second:
        return None
    return (f"time windows of {length:.2f} s (not {seconds:g} s: at most {MAX_OCCLUSION_STEPS} along a clip this long; "
            "--window sets them)")


class Modality(ABC):
    """A batch of inputs as a maskable grid.

    The modality holds a *representation* ``x`` of shape ``(batch, channels, *rep_grid)`` (for a
    spectrogram: the STFT magnitude ``(batch, channels, freq, frames)``) and exposes a *grid*
    ``(batch, *grid_shape)`` on which masks live (1 = keep). Most modalities mask the
    representation cell for cell; a mel grid maps its masks onto linear bins first.

    A batch of ``n`` masks ``(n, *grid_shape)`` is applied row by row, row ``i`` to input
    ``i % batch``: the model then sees ``n`` perturbed inputs, in the same order.

    Subclasses set ``axes`` and implement :meth:`to_model_input`; they may override
    :meth:`grid`, :meth:`expand_mask`, :meth:`coordinates`, :meth:`media` and :meth:`metadata`.
    A modality made of several parts derives from :class:`avxai.modalities.composite.CompositeModality`.
    """

    #: names of the grid axes, e.g. ``("freq", "time")``
    axes: tuple[str, ...] = ()
    #: short name used in saved explanations
    kind: str = "modality"

    def __init__(self, representation: Any, perturbation: "str | Perturbation | None", *, nonnegative: bool = False,
                 rep_axes: tuple[str, ...] | None = None):
        """``perturbation=None``: the modality has no perturbation of its own (a composite, whose parts
        each apply theirs); its representation is then the parts' representations."""
        if perturbation is None:
            self.representation = representation
            self.perturbation = None
            return
        if representation.dim() != 2 + len(rep_axes or self.axes):
            raise ValueError(
                f"{type(self).__name__} representation must be (batch, channels, *grid) with grid axes "
                f"{rep_axes or self.axes}, got shape {tuple(representation.shape)}"
            )
        self.representation = representation
        self.perturbation = parse_perturbation(perturbation)
        self.info = GridInfo(axes=rep_axes or self.axes, nonnegative=nonnegative)
        self._prepared = self.perturbation.prepare(representation, self.info)

    # -- shapes ---------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.representation.shape[0]

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Shape of one input's mask grid (no batch axis)."""
        return tuple(self.representation.shape[2:])

    def grid(self) -> Tensor:
        """The values shown under a mask, ``(batch, *grid_shape)`` (default: channel mean)."""
        return self.representation.mean(dim=1)

    # -- masks ----------------------------------------------------------------------------------
    def upsample(self, coarse: Tensor) -> Tensor:
        """Interpolate coarse masks ``(n, *coarse_shape)`` to the grid ``(n, *grid_shape)`` (linear)."""
        if coarse.dim() != 1 + len(self.grid_shape):
            raise ValueError(
                f"coarse masks must be (n, {', '.join(self.axes)}) with {len(self.grid_shape)} grid axes, "
                f"got shape {tuple(coarse.shape)}"
            )
        if tuple(coarse.shape[1:]) == self.grid_shape:
            return coarse
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(self.grid_shape)]
        return F.interpolate(coarse.unsqueeze(1), size=self.grid_shape, mode=mode, align_corners=False).squeeze(1)

    def expand_mask(self, mask: Tensor) -> Tensor:
        """Map grid masks ``(n, *grid_shape)`` onto the representation ``(n, *rep_grid)`` (identity here)."""
        return mask

    def check_mask(self, mask: Tensor) -> None:
        if mask.dim() != 1 + len(self.grid_shape) or tuple(mask.shape[1:]) != self.grid_shape:
            raise ValueError(
                f"masks must have shape (n, {', '.join(map(str, self.grid_shape))}) for this {self.kind} "
                f"grid ({', '.join(self.axes)}), got {tuple(mask.shape)}; use upsample() for coarse masks"
            )
        if mask.shape[0] % self.batch_size:
            raise ValueError(
                f"got {mask.shape[0]} masks for a batch of {self.batch_size} inputs; the number of masks "
                "must be a multiple of the batch size (row i belongs to input i % batch)"
            )

    @property
    def baseline(self) -> Tensor | None:
        """What a removed cell becomes when that does not depend on the mask ``(batch, channels, *rep_grid)``, or
        ``None`` (a mask-dependent perturbation: blur pyramids, freeze)."""
        return getattr(self._prepared, "baseline", None)

    def apply_mask(self, mask: Tensor) -> Tensor:
        """Perturbed representations ``(n, channels, *rep_grid)`` from masks ``(n, *grid_shape)``, 1 = keep."""
        self.check_mask(mask)
        return self._prepared.apply(self.expand_mask(mask))

    # -- to the model ---------------------------------------------------------------------------
    @abstractmethod
    def to_model_input(self, representation: Tensor) -> Any:
        """Turn (perturbed) representations ``(n, channels, *rep_grid)`` into what the model takes."""

    def model_input(self) -> Any:
        """The unperturbed model input for the whole batch."""
        return self.to_model_input(self.representation)

    def perturb(self, mask: Tensor) -> Any:
        """Model input for masks ``(n, *grid_shape)``: ``to_model_input(apply_mask(mask))``."""
        return self.to_model_input(self.apply_mask(mask))

    # -- description ----------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int | None:
        """Audio sample rate in Hz, or ``None`` for a modality without audio."""
        return None

    def coordinates(self) -> dict[str, np.ndarray]:
        """Coordinates of each grid axis in physical units (see :meth:`units`); default: cell index."""
        return {a: np.arange(n, dtype=float) for a, n in zip(self.axes, self.grid_shape)}

    def units(self) -> dict[str, str]:
        """Unit of each axis coordinate, e.g. ``{"time": "s", "freq": "Hz"}``."""
        return {a: "cell" for a in self.axes}

    def media(self, representation: Tensor) -> dict[str, Any]:
        """Listenable / viewable renderings of representations ``(n, channels, *rep_grid)`` for saving.

        Returns a dict of kind -> object, e.g. ``{"audio": (waveform (n, channels, time), sample_rate)}``.
        """
        return {}

    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable description of how the input was prepared."""
        return {"kind": self.kind, "axes": list(self.axes), "grid_shape": list(self.grid_shape),
                "batch_size": self.batch_size, "perturbation": repr(self.perturbation)}


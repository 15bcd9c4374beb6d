"""A tensor modality: any ``(batch, channels, *grid)`` tensor masked cell by cell and given to the model as is.

For models explained on their own features (frame-level embeddings, a precomputed log-mel, an image),
and for toy models in tests.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from avxai.checks import check_finite
from avxai.modalities.base import Modality
from avxai.perturbations import Perturbation


class TensorModality(Modality):
    """Mask a ``(batch, channels, *grid)`` tensor directly; the model takes the masked tensor.

    Parameters
    ----------
    x : ``(batch, channels, *grid)`` with 1 to 3 grid axes.
    axes : names of the grid axes, e.g. ``("time",)``, ``("freq", "time")``, ``("time", "height", "width")``.
    perturbation : what masked cells become (see :func:`avxai.perturbations.parse_perturbation`).
    nonnegative : the values are magnitudes (noise is then drawn as magnitudes).
    """

    kind = "tensor"

    def __init__(self, x: Tensor, axes: tuple[str, ...], perturbation: "str | Perturbation" = "zero", *,
                 nonnegative: bool = False):
        if not 1 <= len(axes) <= 3:
            raise ValueError(f"a tensor modality needs 1 to 3 grid axes, got {axes}")
        if x.dim() != 2 + len(axes):
            raise ValueError(f"x must be (batch, channels, {', '.join(axes)}), got shape {tuple(x.shape)}")
        check_finite("x", x)
        self.axes = tuple(axes)
        super().__init__(x, perturbation, nonnegative=nonnegative)

    def to_model_input(self, representation: Tensor) -> Any:
        return representation

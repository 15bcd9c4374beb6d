"""A named layer's output captured during a forward pass (gradients kept), and one unit's activation in it.

A layer is named by its dotted module path, resolved with :func:`avxai.methods.pca_rgb.get_layer` (the same
resolver and the same error as PCA-RGB). A *unit* is one channel of the layer's output: channel axis
``channel_dim`` (1 for convolutions ``(batch, C, *positions)``; 2 for an LSTM's ``(batch, frames, C)``, where a
module returning a tuple contributes its first element).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

from torch import Tensor, nn

from avxai.methods.pca_rgb import get_layer

__all__ = ["Capture", "capture", "unit_map", "unit_score", "default_channel_dim"]


@dataclass
class Capture:
    """What :func:`capture` saw: the layer's outputs, one per call of the layer during the forward pass."""

    layer: str
    outputs: list[Tensor] = field(default_factory=list)

    @property
    def output(self) -> Tensor:
        """The last output of the layer (with its graph, when the forward pass had gradients)."""
        if not self.outputs:
            raise ValueError(f"layer {self.layer!r} did not run in the model's forward pass; pick a layer on the path "
                             "from the input to the output")
        out = self.outputs[-1]
        if not isinstance(out, Tensor):
            raise ValueError(f"layer {self.layer!r} returned {type(out).__name__}, not a tensor")
        return out


@contextlib.contextmanager
def capture(model: nn.Module, layer: str) -> Iterator[Capture]:
    """Record the output of ``layer`` (dotted path) while the block runs; the hook is removed afterwards."""
    store = Capture(layer)

    def grab(_module, _inputs, output):
        store.outputs.append(output[0] if isinstance(output, (tuple, list)) else output)

    handle = get_layer(model, layer).register_forward_hook(grab)
    try:
        yield store
    finally:
        handle.remove()


def default_channel_dim(model: nn.Module, layer: str) -> int:
    """2 for recurrent layers created with ``batch_first=True`` (``(batch, frames, C)``), else 1."""
    module = get_layer(model, layer)
    return 2 if isinstance(module, nn.RNNBase) and module.batch_first else 1


def unit_map(activation: Tensor, unit: int, channel_dim: int = 1) -> Tensor:
    """Channel ``unit`` of ``activation``: ``(batch, C, *positions)`` -> ``(batch, *positions)``.

    A 2-D activation ``(batch, C)`` gives ``(batch, 1)`` (one position).
    """
    if activation.dim() < 2:
        raise ValueError(f"a layer's activation must be (batch, channels, ...), got shape {tuple(activation.shape)}")
    if not 1 <= channel_dim < activation.dim():
        raise ValueError(f"channel_dim={channel_dim} is not an axis of the activation {tuple(activation.shape)}")
    channels = activation.shape[channel_dim]
    if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < channels:
        raise ValueError(f"unit must be a channel index in [0, {channels}) of the layer's {channels} channels, "
                         f"got {unit!r}")
    out = activation.select(channel_dim, unit)
    return out.unsqueeze(1) if out.dim() == 1 else out


def unit_score(activation: Tensor, unit: int, channel_dim: int = 1) -> Tensor:
    """The mean over positions of channel ``unit``: ``(batch, C, *positions)`` -> ``(batch,)``."""
    m = unit_map(activation, unit, channel_dim)
    return m.reshape(m.shape[0], -1).mean(dim=1)

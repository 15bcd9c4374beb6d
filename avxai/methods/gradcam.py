"""Grad-CAM (Selvaraju et al. 2017) on a named layer with 1-D, 2-D or 3-D activations, resampled to the grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avxai.explanation import Explanation
from avxai.engine import score_inputs
from avxai.methods.base import Method, MethodConfig
from avxai.methods.gradients import _check_common, _finish, _no_gradient_error
from avxai.modalities.base import Modality
from avxai.scorers.base import Scorer

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass(frozen=True)
class GradCAMConfig(MethodConfig):
    """Grad-CAM hyper-parameters.

    layer : dotted module path resolved with ``model.get_submodule`` (``"tdnn.2"``, ``"tdnn.2.0"``,
        ``"encoder.conv"``); ``None`` = the last convolution registered in the model.
    axes : grid axis each non-channel activation axis maps to, in activation order, ``None`` for an
        axis to average out; e.g. ``("time",)`` for a TDNN ``(batch, channels, frames)``,
        ``("freq", "time")`` or ``("mel", "time")`` for a 2-D CNN, ``("time", "height", "width")``
        for a 3-D CNN, ``(None, "time")`` to keep only time. ``None`` (default): an activation with as many
        axes as the grid maps axis for axis; a 1-D activation maps to ``"time"``.
    channel_dim : the channel axis of the activation (1 for convolutions; 2 for ``(batch, time, channels)``).
    relu : keep only the positive part of ``sum_c w_c A_c`` (the original Grad-CAM).
    interpolation : ``"linear"`` (linear / bilinear / trilinear) or ``"nearest"`` resampling to the grid.
    listen_fraction : fraction of cells kept in the saved ``preserved`` / removed in ``deleted`` media.
    """

    layer: str | None = None
    axes: tuple[str | None, ...] | None = None
    channel_dim: int = 1
    relu: bool = True
    interpolation: Literal["linear", "nearest"] = "linear"
    listen_fraction: float = 0.2

    def __post_init__(self):
        _check_common(1, self.listen_fraction)
        if self.layer is not None and (not isinstance(self.layer, str) or not self.layer.strip()):
            raise ValueError(f"layer must be a dotted module name such as 'tdnn.2' (or None), got {self.layer!r}")
        if self.axes is not None:
            if isinstance(self.axes, str) or not 1 <= len(self.axes) <= 3:
                raise ValueError(f"axes must be a tuple of 1 to 3 grid axis names (or None entries), e.g. "
                                 f"('time',) or ('freq', 'time'), got {self.axes!r}")
            named = [a for a in self.axes if a is not None]
            if len(set(named)) != len(named):
                raise ValueError(f"axes names each grid axis at most once, got {self.axes}")
            if not named:
                raise ValueError(f"axes must map at least one activation axis to a grid axis, got {self.axes}")
        if isinstance(self.channel_dim, bool) or not isinstance(self.channel_dim, int) or self.channel_dim < 1:
            raise ValueError(f"channel_dim must be an int >= 1 (axis 0 is the batch), got {self.channel_dim!r}")
        if self.interpolation not in ("linear", "nearest"):
            raise ValueError(f"interpolation must be 'linear' or 'nearest', got {self.interpolation!r}")


def resolve_layer(model: nn.Module, name: str | None) -> tuple[str, nn.Module]:
    """The module called ``name`` (``None``: the last convolution), with a readable error when it is missing."""
    if name is None:
        convs = [(n, m) for n, m in model.named_modules() if isinstance(m, _CONV)]
        if not convs:
            raise ValueError(f"{type(model).__name__} has no convolution layer; name the layer to explain with "
                             "GradCAMConfig(layer='...')")
        return convs[-1]
    try:
        return name, model.get_submodule(name)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise ValueError(f"{type(model).__name__} has no layer {name!r}; layers include: {shown}") from None


def activation_axes(config_axes, n_axes: int, grid_axes: tuple[str, ...]) -> tuple[str | None, ...]:
    """Grid axis (or ``None``) of each of the ``n_axes`` non-channel activation axes."""
    if config_axes is not None:
        if len(config_axes) != n_axes:
            raise ValueError(f"GradCAMConfig.axes={tuple(config_axes)} names {len(config_axes)} axes but the layer's "
                             f"activation has {n_axes} non-channel axes")
        axes = tuple(config_axes)
    elif n_axes == len(grid_axes):
        axes = tuple(grid_axes)
    elif n_axes == 1 and "time" in grid_axes:
        axes = ("time",)
    else:
        raise ValueError(f"cannot tell which grid axes {grid_axes} the layer's {n_axes} activation axes are; "
                         "pass GradCAMConfig(axes=(...)), e.g. ('time',) or (None, 'time')")
    unknown = [a for a in axes if a is not None and a not in grid_axes]
    if unknown:
        raise ValueError(f"activation axes {axes} name {unknown}, which the grid does not have (grid axes "
                         f"{grid_axes}); fix GradCAMConfig.axes")
    return axes


def cam_to_grid(cam: Tensor, axes: tuple[str | None, ...], grid_axes: tuple[str, ...], grid_shape: tuple[int, ...],
                mode: str = "linear") -> Tensor:
    """Resample class activation maps ``(n, *act_axes)`` onto the grid ``(n, *grid_shape)``.

    Activation axes mapped to ``None`` are averaged out; the rest are permuted to grid order, interpolated
    to the grid's size along them (the activation is assumed to span the same extent as the grid) and
    broadcast along the grid axes they do not cover.
    """
    drop = [1 + i for i, a in enumerate(axes) if a is None]
    if drop:
        cam = cam.mean(dim=drop)
    kept = [a for a in axes if a is not None]
    order = sorted(range(len(kept)), key=lambda i: grid_axes.index(kept[i]))
    cam = cam.permute(0, *[1 + i for i in order])
    kept = [kept[i] for i in order]
    size = [grid_shape[grid_axes.index(a)] for a in kept]
    if list(cam.shape[1:]) != size:
        interp = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)] if mode == "linear" else "nearest"
        extra = {"align_corners": False} if mode == "linear" else {}
        cam = F.interpolate(cam.unsqueeze(1), size=size, mode=interp, **extra).squeeze(1)
    view = [cam.shape[0]] + [grid_shape[i] if a in kept else 1 for i, a in enumerate(grid_axes)]
    return cam.reshape(view).expand(cam.shape[0], *grid_shape).contiguous()


class GradCAM(Method):
    """Grad-CAM on any layer whose output is ``(batch, channels, *axes)`` with 1 to 3 axes.

    Channel weights ``w_c`` = the score's gradient with respect to the activation ``A_c``, averaged over every
    non-channel axis; the map is ``ReLU(sum_c w_c A_c)``, resampled to the modality's grid (see
    :class:`GradCAMConfig` for how activation axes map to grid axes). A forward hook on the layer records
    its output; the hook is removed when the explanation ends (and again by ``evaluation_mode``).

    Shape: attribution ``(batch, *grid)``, in activation units x score units per activation unit.
    """

    name = "gradcam"
    config_class = GradCAMConfig

    def explain(self, model: nn.Module, modality: Modality, scorer: Scorer, config: GradCAMConfig,
                unmasked: Tensor) -> Explanation:
        layer_name, layer = resolve_layer(model, config.layer)
        captured: list[Tensor] = []

        def hook(module, inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            if not isinstance(out, Tensor):
                raise TypeError(f"layer {layer_name!r} returned {type(output).__name__}; Grad-CAM needs a tensor "
                                "output (or a tuple whose first element is one)")
            captured.append(out)

        b, grid = modality.batch_size, modality.grid_shape
        ones = torch.ones(b, *grid, dtype=modality.representation.dtype, requires_grad=True)
        handle = layer.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                scores = score_inputs(model, modality, scorer, ones)
                if not captured:
                    raise ValueError(f"layer {layer_name!r} was not called in the model's forward pass; choose a "
                                     "layer that the model uses")
                if len(captured) > 1:
                    raise ValueError(f"layer {layer_name!r} is called {len(captured)} times per forward pass; "
                                     "Grad-CAM needs a layer that runs once (pick one of its callers or a copy)")
                act = captured[0]
                if not act.requires_grad or not scores.requires_grad:
                    raise _no_gradient_error(f"activation of layer {layer_name!r}")
                (grad,) = torch.autograd.grad(scores.sum(), act, allow_unused=True)
                if grad is None:
                    raise _no_gradient_error(f"activation of layer {layer_name!r}")
        finally:
            handle.remove()
        act, grad = act.detach(), grad.detach()
        if act.dim() < 3 or act.dim() > 5 or act.shape[0] != b:
            raise ValueError(f"layer {layer_name!r} outputs shape {tuple(act.shape)}; Grad-CAM needs (batch={b}, "
                             "channels, *axes) with 1 to 3 axes after the channels")
        if config.channel_dim >= act.dim():
            raise ValueError(f"channel_dim={config.channel_dim} does not exist in the activation of shape "
                             f"{tuple(act.shape)}")
        act, grad = act.movedim(config.channel_dim, 1), grad.movedim(config.channel_dim, 1)
        spatial = tuple(range(2, act.dim()))
        weights = grad.mean(dim=spatial, keepdim=True)
        cam = (weights * act).sum(dim=1)
        if config.relu:
            cam = cam.clamp_min(0.0)
        axes = activation_axes(config.axes, act.dim() - 2, tuple(modality.axes))
        attribution = cam_to_grid(cam, axes, tuple(modality.axes), grid, config.interpolation)
        attribution = attribution.to(modality.representation.dtype)
        return _finish(self.name, modality, attribution, config.listen_fraction,
                       {"layer": layer_name, "activation_shape": list(act.shape), "activation_axes": list(axes)})


gradcam = GradCAM()

"""Grad-CAM (Selvaraju et al. 2017) on a named layer with 1-D, 2-D or 3-D activations, resampled to the grid.

On a composite (audio-visual) modality Grad-CAM runs on one layer per part (:mod:`avxai.methods.gradcam_parts`):
each part's map lies on its own grid (spectrogram: freq x frames; face video: frames x h x w, from per-frame
feature maps ``(batch * frames, C, h, w)`` or clip maps ``(batch, C, frames, h, w)``) and the maps are joined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avxai.explanation import Explanation
from avxai.methods.base import Method, MethodConfig
from avxai.methods.gradcam_layers import (
    activation_axes,
    choose_layers,
    convolutions,
    per_input,
    record_gradients,
    resolve_layer,
)
from avxai.methods.gradients import _check_common, _finish
from avxai.modalities.base import Modality
from avxai.modalities.composite import CompositeModality
from avxai.scorers.base import Scorer


@dataclass(frozen=True)
class GradCAMConfig(MethodConfig):
    """Grad-CAM hyper-parameters.

    layer : dotted module path resolved with ``model.get_submodule`` (``"tdnn.2"``, ``"tdnn.2.0"``,
        ``"encoder.conv"``); ``None`` = the last convolution registered in the model. On a composite
        (audio-visual) modality: a mapping part name -> layer (``{"audio": "audio.front.2", "video":
        "visual.trunk.3"}``; ``--set 'layer={audio: audio.front.2, video: visual.trunk.3}'``), parts left out
        getting their default; one name: that layer's part only (the others 0); ``None``: for every part the
        last convolution that reads only that part's input and keeps the most of its grid's axes.
    axes : grid axis each non-channel activation axis maps to, in activation order, ``None`` for an
        axis to average out; e.g. ``("time",)`` for a TDNN ``(batch, channels, frames)``,
        ``("freq", "time")`` or ``("mel", "time")`` for a 2-D CNN, ``("time", "height", "width")``
        for a 3-D CNN, ``(None, "time")`` to keep only time. ``None`` (default): an activation with as many
        axes as the grid maps axis for axis; a 1-D activation maps to ``"time"``. On a composite modality: a
        mapping part name -> axes (per-frame video maps count their frames as the first axis).
    channel_dim : the channel axis of the activation (1 for convolutions; 2 for ``(batch, time, channels)``).
    relu : keep only the positive part of ``sum_c w_c A_c`` (the original Grad-CAM).
    interpolation : ``"linear"`` (linear / bilinear / trilinear) or ``"nearest"`` resampling to the grid.
    listen_fraction : fraction of cells kept in the saved ``preserved`` / removed in ``deleted`` media.
    """

    layer: str | dict[str, str] | None = None
    axes: tuple[str | None, ...] | dict[str, tuple[str | None, ...]] | None = None
    channel_dim: int = 1
    relu: bool = True
    interpolation: Literal["linear", "nearest"] = "linear"
    listen_fraction: float = 0.2

    def __post_init__(self):
        _check_common(1, self.listen_fraction)
        layers = self.layer.values() if isinstance(self.layer, dict) else [self.layer]
        if self.layer is not None and (not layers or not all(isinstance(v, str) and v.strip() for v in layers)):
            raise ValueError(f"layer must be a dotted module name such as 'tdnn.2', a mapping part -> name such as "
                             f"{{'audio': 'audio.front.2', 'video': 'visual.trunk.3'}}, or None; got {self.layer!r}")
        if isinstance(self.axes, dict):
            object.__setattr__(self, "axes", {str(k): _check_axes(v) for k, v in self.axes.items()})
        elif self.axes is not None:
            object.__setattr__(self, "axes", _check_axes(self.axes))
        if isinstance(self.channel_dim, bool) or not isinstance(self.channel_dim, int) or self.channel_dim < 1:
            raise ValueError(f"channel_dim must be an int >= 1 (axis 0 is the batch), got {self.channel_dim!r}")
        if self.interpolation not in ("linear", "nearest"):
            raise ValueError(f"interpolation must be 'linear' or 'nearest', got {self.interpolation!r}")


def _check_axes(axes) -> tuple[str | None, ...]:
    if isinstance(axes, str) or not isinstance(axes, (tuple, list)) or not 1 <= len(axes) <= 3:
        raise ValueError(f"axes must be a tuple of 1 to 3 grid axis names (or None entries), e.g. "
                         f"('time',) or ('freq', 'time'), got {axes!r}")
    named = [a for a in axes if a is not None]
    if len(set(named)) != len(named):
        raise ValueError(f"axes names each grid axis at most once, got {tuple(axes)}")
    if not named:
        raise ValueError(f"axes must map at least one activation axis to a grid axis, got {tuple(axes)}")
    return tuple(axes)


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


def part_map(act: Tensor, grad: Tensor, part: Modality, axes, relu: bool, mode: str) -> tuple[Tensor, tuple]:
    """Grad-CAM of one layer on one (part's) grid: ``ReLU(sum_c w_c A_c)`` with ``w_c`` the gradient averaged over
    every non-channel axis, resampled onto ``part``'s grid. Shape: ``(batch, C, *axes)`` x2 -> ``(batch, *grid)``."""
    weights = grad.mean(dim=tuple(range(2, act.dim())), keepdim=True)
    cam = (weights * act).sum(dim=1)
    if relu:
        cam = cam.clamp_min(0.0)
    axes = activation_axes(axes, act.dim() - 2, tuple(part.axes))
    return cam_to_grid(cam, axes, tuple(part.axes), part.grid_shape, mode), axes


class GradCAM(Method):
    """Grad-CAM on any layer whose output is ``(batch, channels, *axes)`` with 1 to 3 axes, or per-frame maps
    ``(batch * frames, channels, h, w)`` of a grid with a time axis (a 2-D CNN run on every video frame).

    Channel weights ``w_c`` = the score's gradient with respect to the activation ``A_c``, averaged over every
    non-channel axis; the map is ``ReLU(sum_c w_c A_c)``, resampled to the modality's grid (see
    :class:`GradCAMConfig` for how activation axes map to grid axes). Forward hooks record the layers' outputs;
    they are removed when the explanation ends (and again by ``evaluation_mode``).

    Without a named layer: the last convolution (in call order) whose output depends on the input and keeps the most
    of the grid's axes (:func:`~avxai.methods.gradcam_layers.choose_layers`). On a composite (audio-visual) modality:
    one layer per part, by default per part the last convolution that reads only that part's input (the bundled AV
    enhancer's ``audio.front.2``, freq x frames, and ``visual.trunk.3.block.2.0``, 8 x 8 per frame); each part's map
    is resampled onto the part's grid and divided by its largest absolute value per input (the layers' units differ;
    the values are in ``metadata["part_max"]``), then joined.

    Shape: attribution ``(batch, *grid)``, in activation units x score units per activation unit (composite:
    each part in [-1, 1]).
    """

    name = "gradcam"
    config_class = GradCAMConfig

    def explain(self, model: nn.Module, modality: Modality, scorer: Scorer, config: GradCAMConfig,
                unmasked: Tensor) -> Explanation:
        composite = isinstance(modality, CompositeModality)
        names = tuple(modality.part_names) if composite else ("input",)
        parts = tuple(modality.parts()) if composite else (modality,)
        b, dtype = modality.batch_size, modality.representation.dtype
        given, single, axes_of = self._check(modality, config, names, composite)
        hooked = {n: resolve_layer(model, n)[1] for n in ([single] if single else given.values())}
        if single is not None or set(given) != set(names):  # some part takes its default: hook every convolution
            hooked.update(convolutions(model, skip=list(hooked)))
        chosen: dict[str, str | None] = {}

        def choose(captured: dict[str, list[Tensor]], inputs: list[Tensor]) -> list[str]:
            chosen.update(choose_layers(model, modality.kind, names, parts, given, single, config.channel_dim,
                                        captured, inputs, composite))
            return sorted({n for n in chosen.values() if n is not None})

        ones = torch.ones(b, *modality.grid_shape, dtype=dtype, requires_grad=True)
        acts, grads, picked = record_gradients(model, modality, scorer, ones, hooked, choose)
        acts, grads = dict(zip(picked, acts)), dict(zip(picked, grads))
        maps, meta = [], {"layers": {}, "activation_shape": {}, "activation_axes": {}, "part_max": {}}
        for name, part in zip(names, parts):
            layer = chosen[name]
            if layer is None:  # one layer named on a composite input: the other parts get 0
                maps.append(torch.zeros(b, *part.grid_shape, dtype=dtype))
                continue
            act, grad = (per_input(x[layer], b, part, config.channel_dim) for x in (acts, grads))
            if act is None:
                raise ValueError(f"layer {layer!r} outputs shape {tuple(acts[layer].shape)}; Grad-CAM needs (batch={b}, "
                                 "channels, *axes) with 1 to 3 axes after the channels, or per-frame maps (batch * "
                                 "frames, channels, h, w) of a video; name another layer")
            cam, axes = part_map(act, grad, part, axes_of.get(name), config.relu, config.interpolation)
            peak = cam.flatten(1).abs().amax(dim=1)
            if composite:
                cam = cam / peak.clamp_min(1e-30).view(-1, *[1] * (cam.dim() - 1))
            maps.append(cam.to(dtype))
            meta["layers"][name], meta["activation_shape"][name] = layer, list(act.shape)
            meta["activation_axes"][name], meta["part_max"][name] = list(axes), peak.tolist()
        if not composite:
            return _finish(self.name, modality, maps[0], config.listen_fraction,
                           {"layer": meta["layers"]["input"], "activation_shape": meta["activation_shape"]["input"],
                            "activation_axes": meta["activation_axes"]["input"]})
        meta["normalised"] = "each part's map divided by its largest absolute value per input"
        return _finish(self.name, modality, modality.join_masks(maps), config.listen_fraction, meta)

    @staticmethod
    def _check(modality: Modality, config: GradCAMConfig, names: tuple[str, ...], composite: bool):
        """``(given, single, axes_of)``: named layer per part, one layer named for a composite input, axes per part."""
        if not composite:
            if isinstance(config.layer, dict) or isinstance(config.axes, dict):
                raise ValueError(f"layer / axes as a mapping per part apply to a composite (audio-visual) modality; "
                                 f"this {modality.kind} input has one grid: give one layer name and one axes tuple")
            return ({"input": config.layer} if config.layer else {}), None, {"input": config.axes}
        given = dict(config.layer) if isinstance(config.layer, dict) else {}
        axes_of = dict(config.axes) if isinstance(config.axes, dict) else {}
        unknown = sorted(set(given) - set(names)) + sorted(set(axes_of) - set(names))
        if unknown:
            raise ValueError(f"layer / axes name part(s) {unknown}; this {modality.kind} input has parts {list(names)}")
        if config.axes is not None and not isinstance(config.axes, dict):
            raise ValueError(f"axes on a {modality.kind} input is a mapping part -> axes (e.g. {{'{names[-1]}': "
                             "('time', 'height', 'width')}), one tuple per part's layer")
        return given, (config.layer if isinstance(config.layer, str) else None), axes_of


gradcam = GradCAM()
__all__ = ["GradCAM", "GradCAMConfig", "activation_axes", "cam_to_grid", "gradcam", "part_map", "resolve_layer"]

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

from avxai.engine import score_inputs
from avxai.explanation import Explanation
from avxai.methods.base import Method, MethodConfig
from avxai.methods.gradients import _check_common, _finish, _no_gradient_error
from avxai.modalities.base import Modality
from avxai.modalities.composite import CompositeModality
from avxai.scorers.base import Scorer

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


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


def per_input(act: Tensor, batch: int, part: Modality, channel_dim: int = 1) -> Tensor | None:
    """An activation as ``(batch, channels, *axes)``, or ``None`` when its layout fits neither form below.

    ``(batch, C, *axes)`` (channels at ``channel_dim``) stays; per-frame maps of a grid with a ``"time"`` axis,
    ``(batch * frames, C, *axes)`` (a 2-D CNN run on every video frame), become ``(batch, C, frames, *axes)``.
    """
    if channel_dim >= act.dim():
        raise ValueError(f"channel_dim={channel_dim} does not exist in the activation of shape {tuple(act.shape)}")
    act = act.movedim(channel_dim, 1)
    frames = part.grid_shape[part.axes.index("time")] if "time" in part.axes else 0
    if act.shape[0] == batch and 3 <= act.dim() <= 5:
        return act
    if frames > 1 and act.shape[0] == batch * frames and 3 <= act.dim() <= 4:
        return act.reshape(batch, frames, *act.shape[1:]).movedim(2, 1)
    return None


def part_map(act: Tensor, grad: Tensor, part: Modality, axes, relu: bool, mode: str) -> tuple[Tensor, tuple]:
    """Grad-CAM of one layer on one (part's) grid: ``ReLU(sum_c w_c A_c)`` with ``w_c`` the gradient averaged over
    every non-channel axis, resampled onto ``part``'s grid. Shape: ``(batch, C, *axes)`` x2 -> ``(batch, *grid)``."""
    weights = grad.mean(dim=tuple(range(2, act.dim())), keepdim=True)
    cam = (weights * act).sum(dim=1)
    if relu:
        cam = cam.clamp_min(0.0)
    axes = activation_axes(axes, act.dim() - 2, tuple(part.axes))
    return cam_to_grid(cam, axes, tuple(part.axes), part.grid_shape, mode), axes


def _reached(tensor: Tensor, inputs: dict[int, int]) -> set[int]:
    """Which model inputs (``id(grad_fn) -> index``, their nodes kept alive by the caller) the tensor's autograd
    graph reaches."""
    found, seen, stack, alive = set(), set(), [tensor.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        alive.append(node)  # a node's Python object lives while referenced: its id is not reused meanwhile
        seen.add(id(node))
        if id(node) in inputs:
            found.add(inputs[id(node)])
            continue
        stack.extend(n for n, _ in node.next_functions)
    return found


def _flat_tensors(value) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _flat_tensors(v)]
    return []


class GradCAM(Method):
    """Grad-CAM on any layer whose output is ``(batch, channels, *axes)`` with 1 to 3 axes.

    Channel weights ``w_c`` = the score's gradient with respect to the activation ``A_c``, averaged over every
    non-channel axis; the map is ``ReLU(sum_c w_c A_c)``, resampled to the modality's grid (see
    :class:`GradCAMConfig` for how activation axes map to grid axes). A forward hook on the layer records
    its output; the hook is removed when the explanation ends (and again by ``evaluation_mode``).

    On a composite (audio-visual) modality: one layer per part (``config.layer``; by default, per part, the last
    convolution whose output depends on that part's input alone and keeps the most of the part's grid axes:
    the bundled AV enhancer's ``audio.front.2`` (freq x frames) and the last convolution of its MobileNetV3
    trunk (per frame, 8 x 8)); each part's map is resampled onto the part's grid and divided by its maximum
    per input (the layers' units differ; the maxima are in ``metadata["part_max"]``), then joined.

    Shape: attribution ``(batch, *grid)``, in activation units x score units per activation unit (composite:
    each part in [0, 1]).
    """

    name = "gradcam"
    config_class = GradCAMConfig

    def explain(self, model: nn.Module, modality: Modality, scorer: Scorer, config: GradCAMConfig,
                unmasked: Tensor) -> Explanation:
        if isinstance(modality, CompositeModality):
            return self._explain_parts(model, modality, scorer, config)
        if isinstance(config.layer, dict) or isinstance(config.axes, dict):
            raise ValueError(f"layer / axes as a mapping per part apply to a composite (audio-visual) modality; this "
                             f"{modality.kind} input has one grid: give one layer name and one axes tuple")
        layer_name, layer = resolve_layer(model, config.layer)
        b, grid = modality.batch_size, modality.grid_shape
        ones = torch.ones(b, *grid, dtype=modality.representation.dtype, requires_grad=True)
        (act,), (grad,), _ = _forward_backward(model, modality, scorer, ones, {layer_name: layer}, [layer_name])
        arranged = per_input(act, b, modality, config.channel_dim)
        if arranged is None:
            raise ValueError(f"layer {layer_name!r} outputs shape {tuple(act.shape)}; Grad-CAM needs (batch={b}, "
                             "channels, *axes) with 1 to 3 axes after the channels")
        grad = per_input(grad, b, modality, config.channel_dim)
        attribution, axes = part_map(arranged, grad, modality, config.axes, config.relu, config.interpolation)
        attribution = attribution.to(modality.representation.dtype)
        return _finish(self.name, modality, attribution, config.listen_fraction,
                       {"layer": layer_name, "activation_shape": list(arranged.shape), "activation_axes": list(axes)})

    def _explain_parts(self, model: nn.Module, modality: CompositeModality, scorer: Scorer,
                       config: GradCAMConfig) -> Explanation:
        names, parts, b = modality.part_names, modality.parts(), modality.batch_size
        given = config.layer if isinstance(config.layer, dict) else {}
        unknown = sorted(set(given) - set(names)) + sorted(set(config.axes or {}) - set(names)
                                                         if isinstance(config.axes, dict) else [])
        if unknown:
            raise ValueError(f"layer / axes name part(s) {unknown}; this {modality.kind} input has parts {list(names)}")
        if config.axes is not None and not isinstance(config.axes, dict):
            raise ValueError(f"axes on a {modality.kind} input is a mapping part -> axes (e.g. {{'{names[-1]}': "
                             "('time', 'height', 'width')}), one tuple per part's layer")
        # the layers to hook: the named ones, and every convolution when some part needs its default
        named = [config.layer] if isinstance(config.layer, str) else list(given.values())
        auto = config.layer is None or (isinstance(config.layer, dict) and set(given) != set(names))
        hooked = {n: resolve_layer(model, n)[1] for n in named}
        if auto:
            hooked.update({n: m for n, m in model.named_modules() if isinstance(m, _CONV) and n not in hooked})
        ones = torch.ones(b, *modality.grid_shape, dtype=modality.representation.dtype, requires_grad=True)
        chosen: dict[str, str | None] = {}

        def choose(captured: dict[str, list[Tensor]], inputs: list[Tensor]) -> list[str]:
            order = [n for n in captured if len(captured[n]) == 1]  # layers called once, in call order
            chosen.update(self._choose(model, modality, config, captured, inputs, order))
            return sorted({n for n in chosen.values() if n is not None})

        acts_l, grads_l, picked = _forward_backward(model, modality, scorer, ones, hooked, choose)
        acts, grads = dict(zip(picked, acts_l)), dict(zip(picked, grads_l))
        maps, meta = [], {"layers": {}, "activation_shape": {}, "activation_axes": {}, "part_max": {}}
        dtype = modality.representation.dtype
        for name, part in zip(names, parts):
            layer = chosen[name]
            if layer is None:  # one layer named: the other parts get 0
                maps.append(torch.zeros(b, *part.grid_shape, dtype=dtype))
                continue
            channel_dim = config.channel_dim
            act, grad = per_input(acts[layer], b, part, channel_dim), per_input(grads[layer], b, part, channel_dim)
            if act is None:
                raise ValueError(f"layer {layer!r} outputs shape {tuple(acts[layer].shape)}; Grad-CAM on the {name} "
                                 f"part needs (batch={b}, channels, *axes) or per-frame maps (batch * frames, "
                                 "channels, h, w); name another layer")
            part_axes = config.axes.get(name) if isinstance(config.axes, dict) else None
            cam, axes = part_map(act, grad, part, part_axes, config.relu, config.interpolation)
            peak = cam.flatten(1).abs().amax(dim=1)
            maps.append((cam / peak.clamp_min(1e-30).view(-1, *[1] * (cam.dim() - 1))).to(dtype))
            meta["layers"][name], meta["activation_shape"][name] = layer, list(act.shape)
            meta["activation_axes"][name], meta["part_max"][name] = list(axes), peak.tolist()
        meta["normalised"] = "each part's map divided by its largest absolute value per input"
        return _finish(self.name, modality, modality.join_masks(maps), config.listen_fraction, meta)

    @staticmethod
    def _choose(model: nn.Module, modality: CompositeModality, config: GradCAMConfig,
                captured: dict[str, list[Tensor]], inputs: list[Tensor], order: list[str]) -> dict[str, str | None]:
        """The layer of each part: the named one, or the last convolution (in call order) that reads only that part's
        input and keeps the most of its grid's axes (axes of one cell do not count)."""
        names, parts, b = modality.part_names, modality.parts(), modality.batch_size
        named = [config.layer] if isinstance(config.layer, str) else list((config.layer or {}).values())
        for n in named:
            _check_calls(n, captured.get(n, []))
        given = config.layer if isinstance(config.layer, dict) else {}
        if not isinstance(config.layer, str) and set(given) == set(names):
            return dict(given)
        input_nodes = [t.grad_fn for t in inputs]  # held, so that their ids stay theirs
        nodes = {id(g): i for i, g in enumerate(input_nodes) if g is not None}
        if len(inputs) != len(parts) or len(nodes) != len(parts):
            raise ValueError(f"cannot tell which input of {type(model).__name__} each part of the {modality.kind} "
                             f"input is (the model got {len(inputs)} tensors for {len(parts)} parts); name one layer "
                             f"per part: GradCAMConfig(layer={{{', '.join(repr(n) + ': ...' for n in names)}}})")
        reads = {n: _reached(captured[n][0], nodes) for n in order}
        if isinstance(config.layer, str):
            if len(reads[config.layer]) != 1:
                raise ValueError(f"layer {config.layer!r} reads {len(reads[config.layer])} of the parts' inputs; "
                                 "name one layer per part: GradCAMConfig(layer={" +
                                 ", ".join(f"'{n}': ..." for n in names) + "})")
            (p,) = reads[config.layer]
            return {n: (config.layer if i == p else None) for i, n in enumerate(names)}
        out = dict(given)
        for i, (name, part) in enumerate(zip(names, parts)):
            if name in out:
                continue
            best, best_rank = None, 0
            for n in order:
                if n in given.values() or reads[n] != {i}:
                    continue
                act = per_input(captured[n][0], b, part, config.channel_dim)
                try:
                    axes = activation_axes(None, act.dim() - 2, tuple(part.axes)) if act is not None else ()
                except ValueError:
                    continue
                rank = sum(1 for a, size in zip(axes, act.shape[2:]) if a is not None and size > 1) if axes else 0
                if rank and rank >= best_rank:
                    best, best_rank = n, rank
            if best is None:
                raise ValueError(f"{type(model).__name__} has no convolution that reads only the {name} input "
                                 f"(the {name} part of the {modality.kind} input); name the layer to explain it "
                                 f"with: GradCAMConfig(layer={{'{name}': 'dotted.module.path'}}) (--set "
                                 f"'layer={{{name}: dotted.module.path}}')")
            out[name] = best
        return out


def _check_calls(name: str, outputs: list[Tensor]) -> None:
    if not outputs:
        raise ValueError(f"layer {name!r} was not called in the model's forward pass; choose a layer that the model "
                         "uses")
    if len(outputs) > 1:
        raise ValueError(f"layer {name!r} is called {len(outputs)} times per forward pass; Grad-CAM needs a layer that "
                         "runs once (pick one of its callers or a copy)")


def _forward_backward(model, modality, scorer, ones, hooked: dict[str, nn.Module], pick):
    """One forward pass with ``hooked`` layers recording their outputs (and the model its inputs), then the
    score's gradient with respect to the outputs of the layers ``pick`` names (a list, or a function of the
    captured outputs and the model's input tensors). Returns the activations, gradients and the names."""
    captured: dict[str, list[Tensor]] = {}  # in the order the layers are first called
    inputs: list[Tensor] = []

    def hook_for(name):
        def hook(module, args, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(out, Tensor):
                captured.setdefault(name, []).append(out)
            elif name in (pick if isinstance(pick, list) else ()):
                raise TypeError(f"layer {name!r} returned {type(output).__name__}; Grad-CAM needs a tensor output "
                                "(or a tuple whose first element is one)")
        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in hooked.items()]
    handles.append(model.register_forward_pre_hook(lambda module, args: inputs.extend(_flat_tensors(args))))
    try:
        with torch.enable_grad():
            scores = score_inputs(model, modality, scorer, ones)
            names = pick(captured, inputs) if callable(pick) else pick
            for name in names:
                _check_calls(name, captured.get(name, []))
            acts = [captured[n][0] for n in names]
            if not scores.requires_grad or not all(a.requires_grad for a in acts):
                raise _no_gradient_error(f"activation of layer(s) {names}")
            grads = torch.autograd.grad(scores.sum(), acts, allow_unused=True)
            if any(g is None for g in grads):
                raise _no_gradient_error(f"activation of layer(s) {names}")
    finally:
        for h in handles:
            h.remove()
    return [a.detach() for a in acts], [g.detach() for g in grads], names


gradcam = GradCAM()

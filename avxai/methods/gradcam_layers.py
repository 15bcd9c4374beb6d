"""Which layer Grad-CAM explains, and its activation and gradient: a named layer, or, per input stream, the last
convolution that reads that stream and keeps the most of its grid's axes (found through the autograd graph: a layer
reads a stream when its output's graph reaches that stream's model input).

One forward pass records the hooked layers' outputs (in call order) and the model's input tensors; one backward
pass gives the score's gradient with respect to the chosen layers' outputs (:func:`record_gradients`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from avxai.engine import score_inputs
from avxai.methods.gradients import _no_gradient_error
from avxai.modalities.base import Modality

__all__ = ["activation_axes", "choose_layers", "convolutions", "per_input", "record_gradients", "resolve_layer"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)

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



def reached(tensor: Tensor, inputs: dict[int, int]) -> set[int]:
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


def flat_tensors(value) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in flat_tensors(v)]
    return []


def check_calls(name: str, outputs: list) -> None:
    """A layer Grad-CAM reads must have run once, returning a tensor."""
    if outputs and not isinstance(outputs[0], Tensor):
        raise TypeError(f"layer {name!r} returned {type(outputs[0]).__name__}; Grad-CAM needs a tensor output (or a "
                        "tuple whose first element is one)")
    if not outputs:
        raise ValueError(f"layer {name!r} was not called in the model's forward pass; choose a layer that the model "
                         "uses")
    if len(outputs) > 1:
        raise ValueError(f"layer {name!r} is called {len(outputs)} times per forward pass; Grad-CAM needs a layer that "
                         "runs once (pick one of its callers or a copy)")


def record_gradients(model: nn.Module, modality: Modality, scorer, ones: Tensor, hooked: dict[str, nn.Module],
                     pick: list[str] | Callable[[dict, list], list[str]]) -> tuple[list[Tensor], list[Tensor], list[str]]:
    """One forward pass with ``hooked`` layers recording their outputs (and the model its inputs), then the
    score's gradient with respect to the outputs of the layers ``pick`` names (a list, or a function of the
    captured outputs, in call order, and the model's input tensors). Returns the activations, gradients and names.

    Shape: ``ones`` ``(batch, *grid)`` (the unperturbed masks, requiring gradients)."""
    captured: dict[str, list[Tensor]] = {}  # in the order the layers are first called
    inputs: list[Tensor] = []

    def hook_for(name):
        def hook(module, args, output):
            out = output[0] if isinstance(output, (tuple, list)) and output else output
            captured.setdefault(name, []).append(out)  # a non-tensor output is refused if the layer is chosen
        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in hooked.items()]
    handles.append(model.register_forward_pre_hook(lambda module, args: inputs.extend(flat_tensors(args))))
    try:
        with torch.enable_grad():
            scores = score_inputs(model, modality, scorer, ones)
            names = pick(captured, inputs) if callable(pick) else pick
            for name in names:
                check_calls(name, captured.get(name, []))
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


def convolutions(model: nn.Module, skip: Sequence[str] = ()) -> dict[str, nn.Module]:
    """Every convolution of ``model`` by dotted name (but ``skip``)."""
    return {n: m for n, m in model.named_modules() if isinstance(m, _CONV) and n not in skip}


def choose_layers(model: nn.Module, kind: str, names: Sequence[str], parts: Sequence[Modality], given: dict[str, str],
                  single: str | None, channel_dim: int, captured: dict[str, list[Tensor]], inputs: list[Tensor],
                  composite: bool) -> dict[str, str | None]:
    """The layer of each part (``names``, ``parts``; a plain modality is one part): ``given[name]``, else the last
    convolution (in call order) that reads only that part's model input and keeps the most of its grid's axes (axes
    of one cell do not count); with ``single`` (one layer named on a composite input): that layer for the part it
    reads, ``None`` for the others. ``inputs``: the model's input tensors, one per part on a composite input."""
    for n in ([single] if single else list(given.values())):
        check_calls(n, captured.get(n, []))
    if single is None and set(given) == set(names):
        return dict(given)
    input_nodes = [t.grad_fn for t in inputs]  # held, so that their ids stay theirs while the graph is walked
    nodes = {id(g): (i if composite else 0) for i, g in enumerate(input_nodes) if g is not None}
    if composite and (len(inputs) != len(parts) or len(nodes) != len(parts)):
        raise ValueError(f"cannot tell which input of {type(model).__name__} each part of the {kind} input is (the "
                         f"model got {len(inputs)} tensors for {len(parts)} parts); name one layer per part: "
                         f"GradCAMConfig(layer={{{', '.join(repr(n) + ': ...' for n in names)}}})")
    # layers called once with a tensor output that has a graph, in call order
    order = [n for n in captured if len(captured[n]) == 1 and isinstance(captured[n][0], Tensor)
             and captured[n][0].grad_fn is not None]
    reads = {n: reached(captured[n][0], nodes) for n in order}
    if single is not None:
        if len(reads.get(single, ())) != 1:
            raise ValueError(f"layer {single!r} reads {len(reads.get(single, ()))} of the parts' inputs; name one layer per "
                             "part: GradCAMConfig(layer={" + ", ".join(f"'{n}': ..." for n in names) + "})")
        (p,) = reads[single]
        return {n: (single if i == p else None) for i, n in enumerate(names)}
    out = dict(given)
    b = parts[0].batch_size
    for i, (name, part) in enumerate(zip(names, parts)):
        if name in out:
            continue
        best, best_rank = None, 0
        for n in order:
            if n in given.values() or reads[n] != {i}:
                continue
            act = per_input(captured[n][0], b, part, channel_dim)
            if act is None:  # not (batch, C, *axes) nor per-frame maps of this part
                continue
            try:
                axes = activation_axes(None, act.dim() - 2, tuple(part.axes))
            except ValueError:
                continue
            rank = sum(1 for a, size in zip(axes, act.shape[2:]) if a is not None and size > 1)
            if rank and rank >= best_rank:
                best, best_rank = n, rank
        if best is None and composite:
            raise ValueError(f"{type(model).__name__} has no convolution that reads only the {name} input (the {name} "
                             f"part of the {kind} input); name the layer to explain it with: GradCAMConfig(layer="
                             f"{{'{name}': 'dotted.module.path'}}) (--set 'layer={{{name}: dotted.module.path}}')")
        if best is None:
            raise ValueError(f"{type(model).__name__} has no convolution whose output depends on the input and maps "
                             "onto its grid; name the layer to explain with GradCAMConfig(layer='dotted.module.path') "
                             "(--set layer=...)")
        out[name] = best
    return out

"""Model hygiene: evaluation mode, frozen parameters, and everything restored afterwards."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

_HOOK_DICTS = (
    "_forward_hooks",
    "_forward_pre_hooks",
    "_backward_hooks",
    "_backward_pre_hooks",
)


@contextlib.contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with frozen parameters for the duration of the block.

    On exit, whether the block succeeded or raised, every module's training flag,
    every parameter's ``requires_grad`` and every module's hook dictionaries are
    restored to what they were on entry: hooks registered inside the block are removed.
    Exceptions raised inside the block propagate unchanged.

    Example
    -------
    >>> with evaluation_mode(model):
    ...     scores = scorer(model(x))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"expected a torch.nn.Module, got {type(model).__name__}; wrap plain functions in an nn.Module "
            "so their mode and parameters can be managed"
        )
    modules = list(model.modules())
    training = [m.training for m in modules]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    hooks = [{name: dict(getattr(m, name, {}) or {}) for name in _HOOK_DICTS} for m in modules]
    try:
        model.eval()
        for p, _ in grads:
            p.requires_grad_(False)
        yield model
    finally:
        for m, flag in zip(modules, training):
            m.training = flag
        for p, flag in grads:
            p.requires_grad_(flag)
        for m, saved in zip(modules, hooks):
            for name, before in saved.items():
                current = getattr(m, name, None)
                if current is None:
                    continue
                for key in [k for k in current if k not in before]:
                    del current[key]


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a parameter-free module)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")

"""Memory up front: what a batch of perturbed inputs will need, checked before a long run instead of an
allocator error after a minute.

:func:`check_batch_memory` runs the model once on one unmasked input with forward hooks, and takes as the
need of one perturbed input its model input, its maskable representation and twice the largest output of any
module (a layer's input and output live together even without autograd). That is a lower bound: a method that
keeps activations for gradients needs more. When ``batch_size`` such inputs do not fit in the memory available
(``MemAvailable`` on Linux, the free memory of a CUDA device), it raises one sentence that names the need and
the ``--batch-size`` that fits. The measuring pass runs in :func:`avxai.hygiene.evaluation_mode` (no
BatchNorm statistics move), so it leaves the model as it found it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from avxai.hygiene import evaluation_mode

__all__ = ["tensor_bytes", "available_memory", "forward_footprint", "check_batch_memory"]


def tensor_bytes(value: Any) -> int:
    """Bytes of every tensor in ``value`` (a tensor, or tuples, lists and dicts of them)."""
    if isinstance(value, Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0


def available_memory(device: "torch.device | str" = "cpu") -> int | None:
    """Bytes that can still be allocated on ``device``: the free memory of a CUDA device, ``MemAvailable`` of
    ``/proc/meminfo`` for the CPU; ``None`` when unknown (then nothing is refused)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def forward_footprint(model: nn.Module, model_input: Any) -> int:
    """Bytes of the largest output of any module of ``model`` in one forward pass on ``model_input`` (run under
    ``torch.inference_mode`` in :func:`~avxai.hygiene.evaluation_mode`; hooks removed afterwards)."""
    largest = [0]

    def hook(module, inputs, output):
        largest[0] = max(largest[0], tensor_bytes(output))

    # TorchScript modules take no hooks: their outputs are seen by the nearest Python module around them
    handles = [m.register_forward_hook(hook) for m in model.modules() if not isinstance(m, torch.jit.ScriptModule)]
    try:
        with evaluation_mode(model), torch.inference_mode():
            model(model_input)
    finally:
        for h in handles:
            h.remove()
    return largest[0]


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 28 else f"{n / (1 << 20):.1f} MiB"


def check_batch_memory(model: nn.Module, model_input: Any, representation: Any, batch_size: int, *,
                       rows: int = 1, device: "torch.device | str" = "cpu", available: int | None = None,
                       flag: str = "--batch-size") -> dict[str, int]:
    """Raise ``ValueError`` when ``batch_size`` perturbed inputs cannot fit in memory; else return the estimate.

    ``model_input`` and ``representation``: the unmasked model input and maskable representation of ``rows``
    inputs (their bytes are divided by ``rows``). ``available``: bytes free (default :func:`available_memory`).
    Returns ``{"per_input", "batch", "available"}`` in bytes (``available`` -1 when unknown), or ``{}`` when
    the model fails on the input (the method will report that failure).
    """
    try:
        largest = forward_footprint(model, model_input)
    except Exception as err:  # noqa: BLE001
        text = str(err).lower()
        if "out of memory" in text or "can't allocate memory" in text or "cannot allocate memory" in text:
            raise ValueError("one forward pass of the model on the unmasked input already runs out of memory; "
                             "shorten the input (cut it into parts and explain each)") from None
        # a model that fails on its input: no estimate here; the method's first forward pass reports the failure
        # in its own words (the engine's one-line error naming the model and the input)
        return {}
    rows = max(1, int(rows))
    per_input = (tensor_bytes(model_input) + tensor_bytes(representation)) // rows + 2 * largest // rows
    need = batch_size * per_input
    free = available_memory(device) if available is None else available
    if free is not None and need > free:
        fits = free // per_input if per_input else batch_size
        fix = (f"lower {flag} to {fits} or less (or shorten the input)" if fits >= 1 else
               "even one perturbed input does not fit: shorten the input (cut it into parts and explain each)")
        raise ValueError(f"a batch of {batch_size} perturbed inputs needs at least {_gib(need)} ({_gib(per_input)} "
                         f"each) but {_gib(free)} of memory are available; {fix}")
    return {"per_input": per_input, "batch": need, "available": -1 if free is None else free}

"""Memory up front: what a batch of perturbed inputs will need, checked before a long run instead of an
allocator error after a minute.

:func:`check_batch_memory` runs the model once on one unmasked input with forward hooks, and takes as the
need of one perturbed input its model input, its maskable representation and twice the largest output of any
module (a layer's input and output live together even without autograd). That is a lower bound: a method that
keeps activations for gradients needs more. When ``batch_size`` such inputs do not fit in the memory available
(``MemAvailable`` on Linux, the free memory of a CUDA device), it raises one sentence that names the need and
the ``--batch-size`` that fits. The measuring pass runs in :func:`avxai.hygiene.evaluation_mode` (no
BatchNorm statistics move), so it leaves the model as it found it.

Memory-aware batching: a method sizes its batches from a budget instead of a fixed count.
:func:`memory_budget` sets the budget for a block (``avxai explain --max-memory``), :func:`current_budget` reads
it (default :func:`default_budget`: 1 GiB, at most half of what is available), :func:`measure_forward` measures
one forward pass (largest module output, all module outputs, seconds) and :func:`batch_for_budget` turns a
per-input need into a batch size. A method that keeps activations for gradients (extremal) runs its rows through
:class:`RowChunks`, which splits the batch into chunks that fit and recomputes each chunk's activations in the
backward pass (``torch.utils.checkpoint``), so the activations of one chunk at a time are alive.
:class:`Plan` is what a run will do (work, batches, memory, estimated time), printed before it starts.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from avxai.hygiene import evaluation_mode, model_device

__all__ = ["tensor_bytes", "available_memory", "check_batch_memory", "parse_size",
           "format_size", "default_budget", "memory_budget", "current_budget", "Footprint", "measure_forward",
           "batch_for_budget", "FootprintRecorder", "Plan", "RowChunks", "PerturbedModel", "MasksAsInput",
           "row_need", "rows_within_budget", "DEFAULT_BUDGET", "GRAD_MARGIN"]

#: the default budget for the batches of perturbed inputs, bytes (capped at half the memory available)
DEFAULT_BUDGET = 1 << 30


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
        largest = measure_forward(model, model_input).largest  # the largest module output, bytes
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


# -- memory-aware batching --------------------------------------------------------------------------------------

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: "str | int | float") -> int:
    """Bytes from ``"2G"``, ``"1.5GiB"``, ``"512M"``, ``"800MB"`` or a number of bytes (binary units: 1G = 2**30)."""
    if isinstance(text, bool):
        raise TypeError(f"a memory size must be a number of bytes or a string like 2G, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgtKMGT]?)(?:i?[bB])?\s*", str(text))
        if match is None:
            raise ValueError(f"a memory size is a number with a unit, like 2G, 1.5GB or 512M; got {text!r}")
        value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not math.isfinite(value) or value < 1 << 20:
        raise ValueError(f"a memory budget must be at least 1M, got {text!r}")
    return int(value)


def format_size(n: float) -> str:
    """``"1.50 GiB"`` / ``"12.0 MiB"``."""
    return _gib(n)


def default_budget(device: "torch.device | str" = "cpu") -> int:
    """The default budget: :data:`DEFAULT_BUDGET` (1 GiB), at most half of the memory available on ``device``."""
    free = available_memory(device)
    return DEFAULT_BUDGET if free is None else max(64 << 20, min(DEFAULT_BUDGET, free // 2))


_BUDGET: contextvars.ContextVar[int | None] = contextvars.ContextVar("avxai_memory_budget", default=None)


@contextlib.contextmanager
def memory_budget(size: "str | int | None") -> Iterator[int | None]:
    """Within the block, methods size their batches of perturbed inputs to ``size`` (``"2G"``, bytes; ``None``:
    the default). ``avxai explain --max-memory`` sets it around the whole run."""
    token = _BUDGET.set(None if size is None else parse_size(size))
    try:
        yield _BUDGET.get()
    finally:
        _BUDGET.reset(token)


def current_budget(device: "torch.device | str" = "cpu") -> int:
    """The budget set by :func:`memory_budget`, else :func:`default_budget` of ``device``, bytes."""
    value = _BUDGET.get()
    return default_budget(device) if value is None else value


@dataclass(frozen=True)
class Footprint:
    """One forward pass of a model on ``rows`` inputs: the largest module output, the sum of all module outputs
    (what autograd keeps, roughly, for a backward pass) and the wall time, per input (bytes, seconds)."""

    largest: int
    total: int
    seconds: float

    def per_input(self, *, grad: bool) -> int:
        """Bytes one more input adds to a batch: two module outputs at a time without gradients (a layer's input
        and output), every module output plus two without (the backward pass)."""
        return self.total + 2 * self.largest if grad else 2 * self.largest


class FootprintRecorder:
    """Forward hooks on every module of ``model`` during a ``with`` block: the bytes of every module output and of
    the model's input (its root's arguments; 0 for a TorchScript root, which takes no hooks) in the passes made
    inside it, so that a pass a method makes anyway (extremal's fully-removed score) measures the memory too.
    ``rows``: inputs in the recorded pass; :meth:`footprint` and :meth:`row_need` are per input."""

    def __init__(self, model: nn.Module, rows: int = 1):
        self.model, self.rows = model, max(1, int(rows))
        self.sizes: list[int] = []
        self.input_bytes = 0
        self._handles: list[Any] = []

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self.sizes.append(tensor_bytes(output))
        if module is self.model:
            self.input_bytes = tensor_bytes(inputs)

    def __enter__(self) -> "FootprintRecorder":
        self._handles = [m.register_forward_hook(self._hook) for m in self.model.modules()
                         if not isinstance(m, torch.jit.ScriptModule)]
        return self

    def __exit__(self, *exc: Any) -> None:
        while self._handles:
            self._handles.pop().remove()

    def footprint(self, seconds: float = 0.0) -> Footprint:
        """Per input: the largest module output, the sum of all module outputs and ``seconds / rows``."""
        # the root module's output is counted once; nested containers repeat their last child's output: a bound
        return Footprint(largest=max(self.sizes, default=0) // self.rows, total=sum(self.sizes) // self.rows,
                         seconds=seconds / self.rows)

    def row_need(self, *, grad: bool = True) -> int:
        """Bytes of one row of a forward (and backward, ``grad``) pass, as :func:`row_need` from this recording."""
        return _need(self.footprint(), self.input_bytes // self.rows, grad)


def measure_forward(model: nn.Module, model_input: Any, rows: int = 1, *, warm_time: bool = False,
                    check: Any = None) -> Footprint:
    """Run ``model`` once on ``model_input`` (``rows`` inputs) under ``torch.inference_mode`` in
    :func:`~avxai.hygiene.evaluation_mode` with forward hooks; per-input bytes and seconds (a lower bound:
    tensors made inside a module's forward that no module returns are not seen). ``warm_time``: a pass under
    half a second runs twice and the faster counts (the first call pays one-off set-up costs). ``check``: called on
    the model's output (e.g. :func:`avxai.engine.check_output`); what it raises propagates."""
    with FootprintRecorder(model, rows) as seen, evaluation_mode(model), torch.inference_mode():
        start = time.perf_counter()
        output = model(model_input)
        seconds = time.perf_counter() - start
        if check is not None:
            check(output)
        if warm_time and seconds < 0.5:
            del seen.sizes[:]
            start = time.perf_counter()
            model(model_input)
            seconds = min(seconds, time.perf_counter() - start)
    return seen.footprint(seconds)


def batch_for_budget(per_input: int, budget: int, *, cap: int | None = None, multiple: int = 1) -> int:
    """The most inputs of ``per_input`` bytes in ``budget`` bytes, at least ``multiple`` (one per input of the
    batch), at most ``cap``, and a multiple of ``multiple``."""
    multiple = max(1, int(multiple))
    fits = budget // max(1, per_input)
    if cap is not None:
        fits = min(fits, cap)
    return max(multiple, (fits // multiple) * multiple)


@dataclass
class Plan:
    """What a run will do, said before it starts (``avxai explain`` prints :meth:`line`).

    method : the method's name. work : what is iterated (``"1024 windows"``, ``"300 iterations x 4 rows"``).
    passes : forward passes of the model. batch : perturbed inputs per forward pass. memory : bytes the batches
    need (a lower bound). budget : bytes allowed. seconds : estimated wall time (from one timed forward pass;
    rough). notes : choices made for the memory (e.g. rows in chunks with recomputed activations).
    """

    method: str
    work: str
    passes: int
    batch: int
    memory: int
    budget: int
    seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        eta = "" if self.seconds is None else f", about {_duration(self.seconds)}"
        notes, passes = "".join(f"; {n}" for n in self.notes), f"{self.passes} forward pass{'es' * (self.passes != 1)}"
        return (f"plan: {self.method}, {self.work} in {passes} of up to {self.batch} input{'s' * (self.batch != 1)}; "
                f">= {_gib(self.memory)} of a {_gib(self.budget)} budget (--max-memory){eta}{notes}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _cat(outputs: list[Any]) -> Any:
    """Concatenate chunk outputs along rows: tensors, and tuples, lists and dicts of them."""
    first = outputs[0]
    if isinstance(first, Tensor):
        return torch.cat(outputs)
    if isinstance(first, dict):
        return type(first)((k, _cat([o[k] for o in outputs])) for k in first)
    if isinstance(first, (tuple, list)):
        return type(first)(_cat(list(parts)) for parts in zip(*outputs))
    if first is None:
        return None
    raise TypeError(f"cannot split the batch of a model that returns {type(first).__name__}")


class RowChunks(nn.Module):
    """``model`` run on ``chunk`` rows of its input at a time; with gradients, each chunk's activations are
    recomputed in the backward pass (``torch.utils.checkpoint``), so those of one chunk at a time are alive.

    The outputs (and gradients) equal the model's on the whole batch up to float summation order; it costs one
    more forward pass per backward pass. Parameters are the model's (not copied).

    Shape: input ``(n, ...)`` -> the model's output, concatenated along rows.
    """

    def __init__(self, model: nn.Module, chunk: int):
        super().__init__()
        self.model = model
        self.chunk = max(1, int(chunk))

    def forward(self, x: Tensor) -> Any:
        if x.shape[0] <= self.chunk and not torch.is_grad_enabled():
            return self.model(x)
        outs = []
        for start in range(0, x.shape[0], self.chunk):
            part = x[start:start + self.chunk]
            if torch.is_grad_enabled() and part.requires_grad:
                outs.append(checkpoint(self.model, part, use_reentrant=False))
            else:
                outs.append(self.model(part))
        return _cat(outs)


#: the measured need of one row of a gradient pass over :meth:`Footprint.per_input` plus its model input: 228 MB
#: against 114 MB for 60 s on the bundled speaker model (tensors made inside modules' forwards, the mask side)
GRAD_MARGIN = 2.0


def row_need(model: nn.Module, modality: Any, *, grad: bool = True, warm_time: bool = False,
             check: Any = None) -> tuple[int, float]:
    """``(bytes, seconds)`` of one row (one perturbed input) of a forward pass (and a backward pass when
    ``grad``, with :data:`GRAD_MARGIN`), from one measured forward pass of the unmasked input."""
    inputs = max(1, int(getattr(modality, "batch_size", 1)))
    model_input = modality.model_input()
    foot = measure_forward(model, model_input, rows=inputs, warm_time=warm_time, check=check)
    return _need(foot, tensor_bytes(model_input) // inputs, grad), foot.seconds * (3.0 if grad else 1.0)


def _need(foot: Footprint, input_bytes: int, grad: bool) -> int:
    """Bytes of one row from its footprint and its model input's bytes (with :data:`GRAD_MARGIN` when ``grad``)."""
    return int((foot.per_input(grad=grad) + input_bytes) * (GRAD_MARGIN if grad else 1.0))


class PerturbedModel(nn.Module):
    """``model(modality.perturb(masks))`` as one module: what :class:`RowChunks` splits when the perturbation's own
    intermediate tensors (an inverse STFT per row) must be recomputed per chunk too.

    Shape: masks ``(n, *grid)`` -> the model's output on the perturbed inputs.
    """

    def __init__(self, model: nn.Module, modality: Any):
        super().__init__()
        self.model = model
        self.modality = modality

    def forward(self, masks: Tensor) -> Any:
        return self.model(self.modality.perturb(masks))


class MasksAsInput:
    """A modality whose :meth:`perturb` hands the masks on unchanged (the model is a :class:`PerturbedModel`);
    everything else is the wrapped modality's."""

    def __init__(self, modality: Any):
        self._modality = modality

    def __getattr__(self, name: str) -> Any:
        return getattr(self._modality, name)

    def perturb(self, mask: Tensor) -> Tensor:
        return mask


def rows_within_budget(model: nn.Module, modality: Any, rows: int, *, grad: bool = True,
                       budget: int | None = None, per_row: int | None = None) -> tuple[nn.Module, Any]:
    """``(model, modality)`` as given, or, when ``rows`` perturbed inputs (with their activations kept for a
    backward pass when ``grad``) need more than ``budget`` (default :func:`current_budget` of the model's device),
    ``(RowChunks(PerturbedModel(model, modality)), MasksAsInput(modality))``: the perturbation and the model run on
    chunks of rows, both recomputed in the backward pass. The choice is on the returned model's ``plan_note``.

    ``modality``: gives the unmasked ``model_input()`` (``batch_size`` inputs) that is measured once, unless
    ``per_row`` (bytes, e.g. :meth:`FootprintRecorder.row_need` of a pass the method made anyway) is given.
    """
    budget = current_budget(model_device(model)) if budget is None else budget
    if per_row is None:
        try:
            per_row, _ = row_need(model, modality, grad=grad)
        except Exception:  # noqa: BLE001 - the method's own first pass reports a model that fails, in its words
            return model, modality
    if rows * per_row <= budget:
        return model, modality
    chunk = max(1, budget // max(1, per_row))
    wrapped = RowChunks(PerturbedModel(model, modality), chunk)
    over = "" if chunk * per_row <= budget else f", over the budget: one row alone needs >= {_gib(per_row)}"
    wrapped.plan_note = (f"{rows} rows need >= {_gib(rows * per_row)}: run {chunk} at a time with the perturbation "
                         f"and activations recomputed in the backward pass (about 1.3x the time){over}")
    return wrapped, MasksAsInput(modality)

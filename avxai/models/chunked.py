"""Chunked and stateful models (VADs, streaming models): fixed-size chunks in order, the state reset on every
call, the per-chunk outputs as a frame sequence.

>>> vad = Chunked(silero_jit, chunk=512, sample_rate=16000, forward_kwargs={"sr": 16000})
>>> probs = vad(waveform)          # (batch, frames), one speech probability per 512 samples (32 ms)

The state is reset (the model's ``reset_states()`` by default) *before* every call, in the autograd mode of
that call: a state left over from an earlier call (e.g. the unmasked run under ``torch.inference_mode``) would
otherwise enter the graph ("Inference tensors cannot be saved for backward") and make explanations depend on
the order of the calls. Nothing is cached between calls, so gradients reach every chunk of the waveform.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avxai.checks import check_sample_rate
from avxai.models.wrap import call_model, select_output

__all__ = ["Chunked", "PADS"]

#: what happens to the last incomplete chunk: padded with zeros, or dropped
PADS = ("zero", "drop")


class Chunked(nn.Module):
    """A model taking fixed-size chunks (and keeping state between them) as a waveform model of frames.

    model : called once per chunk, in order, as ``model(chunk, **forward_kwargs)``; the chunk is
        ``(batch, chunk)`` (``mono=True``, the channels' mean, as VADs take it) or ``(batch, channels, chunk)``.
    chunk : samples per chunk (Silero VAD: 512 at 16 kHz).
    sample_rate : Hz of the waveform the model takes.
    reset : the name of the model's method that clears its state (called with no argument before every call),
        a callable ``reset(model)``, or ``None`` for a stateless model.
    forward_kwargs : extra keyword arguments of every call (Silero VAD: ``{"sr": 16000}``).
    pad : ``"zero"`` pads the last incomplete chunk with zeros, ``"drop"`` drops it.
    output : what to keep of each chunk's output (see :func:`avxai.models.wrap.select_output`).
    squeeze : drop a trailing dimension of size 1 of the stacked frames (a VAD's ``(batch, 1)`` per chunk gives
        ``(batch, frames)``).

    ``frame_hop_s = chunk / sample_rate``: seconds between two output frames (frame ``i`` covers samples
    ``i * chunk`` to ``(i + 1) * chunk``).

    Shape: waveform ``(batch, channels, time)`` -> frames ``(batch, frames, ...)`` with
    ``frames = ceil(time / chunk)`` (``pad="zero"``) or ``time // chunk`` (``pad="drop"``).
    """

    def __init__(self, model: nn.Module, *, chunk: int, sample_rate: int,
                 reset: "str | Callable[[nn.Module], Any] | None" = "reset_states",
                 forward_kwargs: Mapping[str, Any] | None = None, pad: str = "zero", output: Any = None,
                 mono: bool = True, squeeze: bool = True):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"Chunked takes a torch.nn.Module, got {type(model).__name__}")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk <= 0:
            raise ValueError(f"chunk must be a positive number of samples, got {chunk!r}")
        if pad not in PADS:
            raise ValueError(f"pad must be one of {', '.join(PADS)}, got {pad!r}")
        if isinstance(reset, str) and not callable(getattr(model, reset, None)):
            raise ValueError(f"{type(model).__name__} has no {reset}() method to clear its state; pass reset= the "
                             "name of its reset method, a callable reset(model), or None for a stateless model")
        if reset is not None and not isinstance(reset, str) and not callable(reset):
            raise TypeError(f"reset must be a method name, a callable or None, got {type(reset).__name__}")
        self.model = model
        self.chunk = chunk
        self.sample_rate = check_sample_rate(sample_rate, "sample_rate")
        self.reset = reset
        self.forward_kwargs = dict(forward_kwargs or {})
        self.pad, self.output, self.mono, self.squeeze = pad, output, bool(mono), bool(squeeze)

    @property
    def frame_hop_s(self) -> float:
        """Seconds between two output frames: ``chunk / sample_rate``."""
        return self.chunk / self.sample_rate

    def reset_state(self) -> None:
        """Clear the model's state (the named reset hook or the callable); nothing for ``reset=None``."""
        if isinstance(self.reset, str):
            getattr(self.model, self.reset)()
        elif self.reset is not None:
            self.reset(self.model)

    def forward(self, waveform: Tensor) -> Tensor:
        if not isinstance(waveform, Tensor) or waveform.dim() != 3:
            shape = tuple(waveform.shape) if isinstance(waveform, Tensor) else type(waveform).__name__
            raise ValueError(f"Chunked takes a waveform (batch, channels, time), got {shape}")
        time = waveform.shape[-1]
        frames = -(-time // self.chunk) if self.pad == "zero" else time // self.chunk
        if frames == 0:
            raise ValueError(f"the waveform has {time} samples, less than one chunk of {self.chunk}; pass at least "
                             f"{self.chunk} samples ({self.frame_hop_s:g} s)")
        x = waveform.mean(dim=1) if self.mono else waveform
        x = F.pad(x, (0, frames * self.chunk - time)) if frames * self.chunk > time else x[..., :frames * self.chunk]
        self.reset_state()
        who = f"{type(self.model).__name__} (one chunk)"
        outs = [select_output(call_model(self.model, x[..., i * self.chunk:(i + 1) * self.chunk],
                                         **self.forward_kwargs), self.output, who) for i in range(frames)]
        out = torch.stack(outs, dim=1)
        return out.squeeze(-1) if self.squeeze and out.dim() > 2 and out.shape[-1] == 1 else out

    def extra_repr(self) -> str:
        return f"chunk={self.chunk}, sample_rate={self.sample_rate}, reset={self.reset!r}, pad={self.pad!r}"

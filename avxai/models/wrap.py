"""Any ``torch.nn.Module`` as a model avxai explains: its sample rate declared once, its output picked, and a
torch front end in front of a model on features.

>>> model = avxai.wrap(my_classifier, sample_rate=16000, output="logits")
>>> model = avxai.wrap(feature_model, sample_rate=16000, features=LogMel(16000, n_mels=40, hop_length=160))

The wrapped model takes a waveform ``(batch, channels, time)`` (``mono=True``: the channels' mean,
``(batch, time)``, is what the inner model gets), runs the front end if any, calls the model (with
``forward_kwargs``) and returns the one tensor avxai scores (``output``: an index or key into a tuple, dict or
HuggingFace ``ModelOutput``, or a callable). Everything is torch operations, so gradients reach the waveform.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable

import torch
from torch import Tensor, nn

from avxai.checks import check_sample_rate
from avxai.models.contract import agreed_sample_rate, num_sources_of, sample_rate_of
from avxai.models.features import build_front_end

__all__ = ["Wrapped", "wrap", "select_output", "call_model"]


def _describe(out: Any) -> str:
    if isinstance(out, Tensor):
        return f"a tensor {tuple(out.shape)}"
    if isinstance(out, Mapping):
        return f"a {type(out).__name__} with keys {list(out.keys())}"
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)}: " + ", ".join(_describe(o) for o in out)
    return f"a {type(out).__name__}"


def _not_scorable(out: Any, who: str) -> TypeError:
    return TypeError(f"{who} returned {_describe(out)}, which avxai cannot score; pass output= (an index or key "
                     "of the tensor to explain, or a callable that returns it)")


def select_output(out: Any, output: "int | str | Callable[[Any], Any] | None", who: str = "the model") -> Tensor:
    """The tensor avxai scores in a model's output ``out``.

    ``output=None``: ``out`` itself when it is a tensor, or the only tensor of a one-entry tuple or mapping;
    an ``int``: that entry of a tuple/list (or the i-th value of a mapping); a ``str``: that key of a mapping
    (or attribute, e.g. of a ``ModelOutput``); a callable: ``output(out)``. Anything else, or a result that is
    not a tensor, raises one ``TypeError`` naming what the model returned and what to pass.
    """
    if callable(output):
        picked = output(out)
    elif output is None:
        entries = list(out.values()) if isinstance(out, Mapping) else out if isinstance(out, (tuple, list)) else None
        if isinstance(out, Tensor):
            picked = out
        elif entries is not None and len(entries) == 1:
            picked = entries[0]
        else:
            raise _not_scorable(out, who)
    elif isinstance(output, bool) or not isinstance(output, (int, str)):
        raise TypeError(f"output must be an index, a key or a callable, got {type(output).__name__}")
    elif isinstance(output, int):
        entries = list(out.values()) if isinstance(out, Mapping) else out
        if not isinstance(entries, Sequence) or isinstance(entries, (Tensor, str)) or not \
                -len(entries) <= output < len(entries):
            raise TypeError(f"output={output} needs a tuple or mapping of at least {output + 1} entries, but {who} "
                            f"returned {_describe(out)}")
        picked = entries[output]
    elif isinstance(out, Mapping) and output in out:
        picked = out[output]
    elif not isinstance(out, (Tensor, Mapping, tuple, list)) and getattr(out, output, None) is not None:
        picked = getattr(out, output)
    else:
        raise TypeError(f"output={output!r} is not an entry of what {who} returned ({_describe(out)}); pass one of "
                        "its keys, an index, or a callable")
    if not isinstance(picked, Tensor):
        raise TypeError(f"output={output!r} picked {_describe(picked)} from what {who} returned, not a tensor; pick "
                        "a tensor entry")
    return picked


def call_model(model: nn.Module, *args: Any, hint: str = "", **kwargs: Any) -> Any:
    """``model(*args, **kwargs)``; an error raised inside a TorchScript model becomes one ``ValueError`` with its
    reason (the interpreter's last line, not its serialized traceback) and ``hint``."""
    try:
        return model(*args, **kwargs)
    except torch.jit.Error as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = (lines[-1] if lines else "unknown error").removeprefix("builtins.")
        name = getattr(model, "original_name", type(model).__name__)
        raise ValueError(f"the TorchScript model {name} failed on its input: {reason}"
                         f"{'; ' + hint if hint else ''}") from None


class Wrapped(nn.Module):
    """A module on waveforms (or features, behind ``features``) with the parts the avxai model contract asks.

    Attributes: ``sample_rate`` (Hz), ``model`` (the inner module), ``features`` (the front end or ``None``),
    ``frame_hop_s`` (seconds between output frames, for a model returning a frame sequence; ``None``
    otherwise), ``num_sources`` when the inner model states it.

    Shape: waveform ``(batch, channels, time)`` -> the picked output, e.g. ``(batch, classes)``,
    ``(batch, dim)`` or frames ``(batch, frames, ...)``.
    """

    def __init__(self, model: nn.Module, *, sample_rate: int, output: Any = None, features: nn.Module | None = None,
                 frame_hop_s: float | None = None, mono: bool = False, forward_kwargs: Mapping[str, Any] | None = None,
                 embedding: bool = False):
        super().__init__()
        self.model = model
        self.sample_rate = check_sample_rate(sample_rate, "sample_rate")
        self.features = features
        self.output = output
        self.frame_hop_s = None if frame_hop_s is None else float(frame_hop_s)
        self.mono = bool(mono)
        self.embedding = bool(embedding)
        self.forward_kwargs = dict(forward_kwargs or {})
        sources = num_sources_of(model)
        if sources is not None:
            self.num_sources = sources

    @property
    def embedder(self) -> "Callable[[], nn.Module] | None":
        """With ``embedding=True``: ``embedder()`` returns the model itself (its output is an embedding
        ``(batch, dim)``, what verification scorers and the audit compare); otherwise not stated (``None``)."""
        return (lambda: self) if self.embedding else None

    def forward(self, waveform: Tensor, *args: Any) -> Tensor:
        if not isinstance(waveform, Tensor) or waveform.dim() != 3:
            shape = tuple(waveform.shape) if isinstance(waveform, Tensor) else type(waveform).__name__
            raise ValueError(f"a wrapped model takes a waveform (batch, channels, time), got {shape}")
        x = self.features(waveform) if self.features is not None else waveform
        if self.mono and self.features is None:
            x = x.mean(dim=1)
        out = call_model(self.model, x, *args, **self.forward_kwargs,
                         hint="if it takes fixed-size chunks, pass chunk=SAMPLES (--model-arg chunk=SAMPLES)")
        return select_output(out, self.output, f"{type(self.model).__name__}")

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, output={self.output!r}, mono={self.mono}, embedding={self.embedding}"


def wrap(model: nn.Module, *, sample_rate: int | None = None, output: Any = None,
         features: "nn.Module | str | Mapping[str, Any] | None" = None,
         frame_hop_s: float | None = None, mono: bool = False, embedding: bool = False,
         forward_kwargs: Mapping[str, Any] | None = None) -> Wrapped:
    """Any ``torch.nn.Module`` as a model avxai explains (see the module docstring).

    sample_rate : Hz of the waveform the model takes; required unless the model states ``sample_rate`` itself
        (a different stated rate is an error: resample the audio instead).
    output : what avxai scores in the model's output (an index, a key, or a callable); ``None`` for a model
        returning one tensor.
    features : a front end (:mod:`avxai.models.features`) making a model on features a waveform model; its
        sample rate must be the model's. Also its name or ``{"kind": "logmel", "n_mels": 40, ...}`` (built at
        ``sample_rate``; what a model given on the command line passes).
    frame_hop_s : seconds between output frames, for a model returning a frame sequence ``(batch, frames, ...)``.
    mono : give the model ``(batch, time)`` (the channels' mean) instead of ``(batch, channels, time)``.
    embedding : the picked output is an embedding ``(batch, dim)``: the model states ``embedder()`` (itself), as
        speaker verification (``SpeakerCosine``, ``avxai audit``) asks.
    forward_kwargs : extra keyword arguments of every call (e.g. ``{"sr": 16000}``).

    Shape: waveform ``(batch, channels, time)`` -> the picked output tensor.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"wrap takes a torch.nn.Module, got {type(model).__name__}; build the model first")
    sample_rate = agreed_sample_rate(sample_rate_of(model), sample_rate, who=type(model).__name__,
                                     missing="pass wrap(model, sample_rate=...) (Hz) so that audio at another rate is "
                                             "refused")
    if isinstance(features, (str, Mapping)):
        features = build_front_end(features, sample_rate)
    if features is not None:
        if not isinstance(features, nn.Module):
            raise TypeError(f"features must be a torch front end (an nn.Module such as avxai.models.features.LogMel), "
                            f"got {type(features).__name__}")
        rate = sample_rate_of(features)
        if rate is not None and rate != sample_rate:
            raise ValueError(f"the front end works at {rate} Hz but the model at {sample_rate} Hz; build the front "
                             f"end with sample_rate={sample_rate}")
    return Wrapped(model, sample_rate=sample_rate, output=output, features=features, frame_hop_s=frame_hop_s,
                   mono=mono, forward_kwargs=forward_kwargs, embedding=embedding)

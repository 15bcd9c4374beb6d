"""Any model you built, with a local state dict and a stated sample rate; and the older loader names.

:func:`load_module` takes a ``torch.nn.Module`` you built (no registry row needed), loads a local state dict
with ``torch.load(..., weights_only=True)`` and a strict key/shape check, and states its ``sample_rate`` (Hz)
so that a method refuses audio at another rate. Registered architectures load with
:func:`avxai.models.registry.load_model`; :func:`load_convtasnet`, :func:`load_hdemucs` and
:func:`load_ecapa_tdnn` build them from keyword arguments (``None``: random weights, for tests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import Tensor, nn

from avxai.models.contract import agreed_sample_rate, sample_rate_of
from avxai.models.ecapa import EcapaEmbedder
from avxai.models.hdemucs import HDemucsSeparator
from avxai.models.registry import get_architecture
from avxai.models.separation import Separator
from avxai.models.state import load_state_dict_checked, read_state

__all__ = ["load_checkpoint", "with_sample_rate", "SampleRateWrapper", "load_module", "load_convtasnet",
           "HDemucsSeparator", "load_hdemucs", "EcapaEmbedder", "load_ecapa_tdnn"]


def load_checkpoint(model: nn.Module, path: "str | Path | Mapping[str, Tensor]", *, key: str | None = None,
                    strip_prefix: str | None = None) -> nn.Module:
    """Load a local state dict into ``model`` strictly (weights only); return ``model``.

    ``key`` picks an entry of a dict checkpoint (``"state_dict"`` and ``"model"`` are unwrapped automatically);
    ``strip_prefix`` removes a prefix from every key (e.g. ``"module."`` of a DataParallel checkpoint). A
    checkpoint that does not fit raises ``ValueError`` naming the missing, unexpected and mis-shaped keys.
    """
    where = None if isinstance(path, Mapping) else str(path)
    return load_state_dict_checked(model, read_state(path, where=where, key=key, strip_prefix=strip_prefix),
                                   where=where)


class SampleRateWrapper(nn.Module):
    """A module whose own ``sample_rate`` cannot be set, seen through a wrapper that states it.

    Shape: whatever ``module`` takes and returns.
    """

    def __init__(self, module: nn.Module, sample_rate: int):
        super().__init__()
        self.module = module
        self.sample_rate = int(sample_rate)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)


def with_sample_rate(model: nn.Module, sample_rate: int | None) -> nn.Module:
    """``model`` with a ``sample_rate`` attribute (Hz): set on the module, or a :class:`SampleRateWrapper`.

    ``None`` keeps the model's own ``sample_rate`` and raises when it has none. A model that already states a
    different rate raises: resample the audio instead of relabelling the model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    own = sample_rate_of(model)
    sample_rate = agreed_sample_rate(own, sample_rate, who=type(model).__name__,
                                     missing="pass sample_rate= (Hz) so that audio at another rate is refused instead "
                                             "of silently misread")
    if own is not None:
        return model
    try:
        model.sample_rate = sample_rate
    except (AttributeError, TypeError):  # a read-only property: state it on a wrapper
        return SampleRateWrapper(model, sample_rate)
    return model


def load_module(model: nn.Module, checkpoint: "str | Path | None" = None, *, sample_rate: int | None = None,
                key: str | None = None, strip_prefix: str | None = None) -> nn.Module:
    """Any ``torch.nn.Module`` you built: load ``checkpoint`` into it (if given), state its rate, eval mode.

    Example
    -------
    >>> model = load_module(MyEnhancer(hidden=64), "my_enhancer.pt", sample_rate=16000)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (build it, then pass it), got {type(model).__name__}")
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, key=key, strip_prefix=strip_prefix)
    return with_sample_rate(model, sample_rate).eval()


def _registered(name: str, checkpoint: "str | Path | Mapping[str, Tensor] | None", key: str | None,
                strip_prefix: str | None, kwargs: dict[str, Any]) -> nn.Module:
    arch = get_architecture(name)
    model = arch.create(**kwargs)
    if checkpoint is not None:
        load_checkpoint(arch.weights_of(model), checkpoint, key=key, strip_prefix=strip_prefix)
    return model.eval()


def load_convtasnet(checkpoint: "str | Path | None" = None, *, sample_rate: int = 8000, key: str | None = None,
                    strip_prefix: str | None = None, **convtasnet_kwargs: Any) -> Separator:
    """torchaudio's ``ConvTasNet(**convtasnet_kwargs)`` with a local state dict of its own keys (registry row
    ``"convtasnet"``). Shape: mixture ``(batch, 1, time)`` -> sources ``(batch, num_sources, time)``."""
    return _registered("convtasnet", checkpoint, key, strip_prefix, dict(sample_rate=sample_rate, **convtasnet_kwargs))


def load_hdemucs(checkpoint: "str | Path | None" = None, *, sample_rate: int = 44100, key: str | None = None,
                 strip_prefix: str | None = None, **hdemucs_kwargs: Any) -> HDemucsSeparator:
    """torchaudio's HDemucs with a local state dict (registry row ``"hdemucs"``; arguments as
    :func:`avxai.models.hdemucs.build_hdemucs`). Shape: see :class:`HDemucsSeparator`."""
    return _registered("hdemucs", checkpoint, key, strip_prefix, dict(sample_rate=sample_rate, **hdemucs_kwargs))


def load_ecapa_tdnn(checkpoint: "str | Path | None" = None, *, sample_rate: int = 16000, key: str | None = None,
                    strip_prefix: str | None = None, **ecapa_kwargs: Any) -> EcapaEmbedder:
    """SpeechBrain's ECAPA-TDNN with a local state dict (registry row ``"ecapa-tdnn"``; needs
    ``pip install avxai[speechbrain]``). Shape: waveform ``(batch, 1, time)`` -> embedding ``(batch, lin_neurons)``."""
    return _registered("ecapa-tdnn", checkpoint, key, strip_prefix, dict(sample_rate=sample_rate, **ecapa_kwargs))

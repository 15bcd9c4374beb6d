"""Loaders for real models from checkpoints the user already has (nothing is downloaded).

Each loader builds the architecture from keyword arguments, loads a local state dict with
``torch.load(..., weights_only=True)`` and a strict key/shape check (a mismatch raises ``ValueError``
listing the first mismatching keys), and returns a module in eval mode with a ``sample_rate``
attribute (Hz), so that a method refuses audio at another rate. Shapes follow avxai: waveforms
``(batch, channels, time)`` in, ``(batch, sources, time)`` out for separators and ``(batch, dim)``
for embedders.

=====================  ==========================================  ==================================
loader                 architecture                                returns
=====================  ==========================================  ==================================
:func:`load_convtasnet`  ``torchaudio.models.ConvTasNet(**kwargs)``   ``(batch, 1, t) -> (batch, S, t)``
:func:`load_hdemucs`     ``torchaudio.models.HDemucs(**kwargs)``      ``(batch, C, t) -> (batch, S, t)``
:func:`load_ecapa_tdnn`  SpeechBrain ``ECAPA_TDNN`` + its Fbank        ``(batch, 1, t) -> (batch, dim)``
:func:`load_module`      any ``torch.nn.Module`` you built            the module, with ``sample_rate``
=====================  ==========================================  ==================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from avxai.models.checkpoint import load_state_dict_checked
from avxai.models.separation import Separator

__all__ = ["load_checkpoint", "with_sample_rate", "SampleRateWrapper", "load_module", "load_convtasnet",
           "HDemucsSeparator", "load_hdemucs", "EcapaEmbedder", "load_ecapa_tdnn"]

# ---------------------------------------------------------------------------------------------
# checkpoints and sample rates
# ---------------------------------------------------------------------------------------------
def _rate(sample_rate) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int in Hz, got {sample_rate!r}")
    return sample_rate


def load_checkpoint(model: nn.Module, path: "str | Path | Mapping[str, Tensor]", *, key: str | None = None,
                    strip_prefix: str | None = None) -> nn.Module:
    """Load a local state dict into ``model`` strictly (weights only); return ``model``.

    ``key`` picks an entry of a dict checkpoint (e.g. ``"state_dict"``; ``"state_dict"`` and ``"model"``
    are unwrapped automatically); ``strip_prefix`` removes a prefix from every key (e.g. ``"module."``
    from a DataParallel checkpoint). A checkpoint that does not fit the architecture raises ``ValueError``
    naming the missing, unexpected and mis-shaped keys (:func:`avxai.models.checkpoint.load_state_dict_checked`).
    """
    if key is None and strip_prefix is None:
        return load_state_dict_checked(model, path)
    if isinstance(path, Mapping):
        state, where = path, "the given state dict"
    else:
        where = str(path)
        if not Path(path).is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # re-raised with the file name; the original is chained
            raise ValueError(f"could not read checkpoint {path} as a weights-only state dict: {err}") from err
    if key is not None:
        if not isinstance(state, Mapping) or key not in state:
            keys = sorted(state)[:10] if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"checkpoint {where} has no entry {key!r}; its top-level keys are {keys}")
        state = state[key]
    if strip_prefix:
        if not isinstance(state, Mapping):
            raise ValueError(f"checkpoint {where} is not a state dict; cannot strip the prefix {strip_prefix!r}")
        state = {(k[len(strip_prefix):] if k.startswith(strip_prefix) else k): v for k, v in state.items()}
    try:
        return load_state_dict_checked(model, state)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


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
    own = getattr(model, "sample_rate", None)
    if sample_rate is None:
        if own is None:
            raise ValueError(f"{type(model).__name__} has no sample_rate attribute; pass sample_rate= (Hz) so that "
                             "audio at another rate is refused instead of silently misread")
        return model
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive int in Hz, got {sample_rate!r}")
    if own is not None:
        if int(own) != sample_rate:
            raise ValueError(f"{type(model).__name__} says sample_rate={own} Hz but {sample_rate} Hz was given; "
                             "a model works at the rate it was trained at: resample the audio instead")
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


# ---------------------------------------------------------------------------------------------
# torchaudio separators
# ---------------------------------------------------------------------------------------------
def load_convtasnet(checkpoint: "str | Path | None" = None, *, sample_rate: int = 8000, key: str | None = None,
                    strip_prefix: str | None = None, **convtasnet_kwargs: Any) -> Separator:
    """torchaudio's ConvTasNet, ``ConvTasNet(**convtasnet_kwargs)``, with a local state dict.

    The checkpoint holds ConvTasNet's own keys (``encoder.weight``, ``mask_generator...``), e.g. a
    ``state_dict()`` of ``torchaudio.models.ConvTasNet`` or of :func:`avxai.models.separation.small_convtasnet`.
    ``None``: random weights (for tests). ``sample_rate`` is the rate the weights were trained at.

    Shape: mixture ``(batch, 1, time)`` -> sources ``(batch, num_sources, time)``.
    """
    from torchaudio.models import ConvTasNet

    try:
        network = ConvTasNet(**convtasnet_kwargs)
    except TypeError as err:
        raise ValueError(f"ConvTasNet does not take these arguments: {err}") from None
    if checkpoint is not None:
        load_checkpoint(network, checkpoint, key=key, strip_prefix=strip_prefix)
    num_sources = int(convtasnet_kwargs.get("num_sources", 2))
    return Separator(network, _rate(sample_rate), num_sources).eval()


class HDemucsSeparator(nn.Module):
    """torchaudio's HDemucs as a separator of avxai shapes.

    A mono input is repeated to the model's ``audio_channels``; each source's audio channels are averaged
    (``mono_output=True``) so that a reference scorer compares one signal per source. ``source_names``
    keeps HDemucs' order.

    Shape: ``(batch, 1 | audio_channels, time)`` -> ``(batch, sources, time)`` (or
    ``(batch, sources, audio_channels, time)`` with ``mono_output=False``).
    """

    def __init__(self, network: nn.Module, sample_rate: int, mono_output: bool = True):
        super().__init__()
        self.network = network
        self.sample_rate = _rate(sample_rate)
        self.source_names = list(network.sources)
        self.audio_channels = int(network.audio_channels)
        self.mono_output = mono_output

    def forward(self, mixture: Tensor) -> Tensor:
        if not isinstance(mixture, Tensor) or mixture.dim() != 3 or mixture.shape[1] not in (1, self.audio_channels):
            shape = tuple(mixture.shape) if isinstance(mixture, Tensor) else type(mixture).__name__
            raise ValueError(f"HDemucsSeparator takes (batch, 1 or {self.audio_channels}, time), got {shape}")
        if mixture.shape[1] != self.audio_channels:
            mixture = mixture.expand(-1, self.audio_channels, -1)
        out = self.network(mixture)  # (batch, sources, audio_channels, time)
        return out.mean(dim=2) if self.mono_output else out


def load_hdemucs(checkpoint: "str | Path | None" = None, *, sample_rate: int = 44100,
                 sources: Sequence[str] = ("drums", "bass", "other", "vocals"), mono_output: bool = True,
                 key: str | None = None, strip_prefix: str | None = None, **hdemucs_kwargs: Any) -> HDemucsSeparator:
    """torchaudio's HDemucs, ``HDemucs(sources, **hdemucs_kwargs)``, with a local state dict.

    For torchaudio's MUSDB-HQ weights use the defaults of ``torchaudio.models.hdemucs_high`` (``nfft=4096,
    depth=6``) and ``sample_rate=44100``; a small test model: ``sources=("a", "b"), audio_channels=1,
    channels=4, depth=3, nfft=256``. ``None``: random weights.

    Shape: see :class:`HDemucsSeparator`.
    """
    from torchaudio.models import HDemucs

    try:
        network = HDemucs(list(sources), **hdemucs_kwargs)
    except TypeError as err:
        raise ValueError(f"HDemucs does not take these arguments: {err}") from None
    if checkpoint is not None:
        load_checkpoint(network, checkpoint, key=key, strip_prefix=strip_prefix)
    return HDemucsSeparator(network, sample_rate, mono_output).eval()


# ---------------------------------------------------------------------------------------------
# SpeechBrain ECAPA-TDNN speaker embedder
# ---------------------------------------------------------------------------------------------
def _speechbrain(what: str):
    try:
        import speechbrain.lobes.features as features
        import speechbrain.lobes.models.ECAPA_TDNN as ecapa
    except ImportError as err:
        raise ImportError(f"{what} needs SpeechBrain, which is not installed: `pip install avxai[speechbrain]` "
                          f"(or `pip install speechbrain`); the import failed with: {err}") from err
    return features, ecapa


class EcapaEmbedder(nn.Module):
    """SpeechBrain's ECAPA-TDNN behind its own front end: waveform -> log-mel Fbank -> mean norm -> embedding.

    The front end is the one of SpeechBrain's ``spkrec-ecapa-voxceleb`` recipe: ``Fbank(n_mels)`` (25 ms
    windows, 10 ms hop) and sentence-level mean normalisation over time (no variance normalisation).

    Shape: waveform ``(batch, 1, time)`` -> embedding ``(batch, lin_neurons)``.
    """

    def __init__(self, embedding_model: nn.Module, fbank: nn.Module, sample_rate: int):
        super().__init__()
        self.embedding_model = embedding_model
        self.fbank = fbank
        self.sample_rate = _rate(sample_rate)

    def embedder(self) -> "EcapaEmbedder":
        """Itself: it already returns embeddings (the interface of :meth:`avxai.models.SpeakerNet.embedder`)."""
        return self

    def forward(self, waveform: Tensor) -> Tensor:
        if not isinstance(waveform, Tensor) or waveform.dim() != 3 or waveform.shape[1] != 1:
            shape = tuple(waveform.shape) if isinstance(waveform, Tensor) else type(waveform).__name__
            raise ValueError(f"EcapaEmbedder takes a mono waveform (batch, 1, time), got {shape}")
        feats = self.fbank(waveform[:, 0])  # (batch, frames, n_mels)
        feats = feats - feats.mean(dim=1, keepdim=True)
        return self.embedding_model(feats).reshape(waveform.shape[0], -1)


def load_ecapa_tdnn(checkpoint: "str | Path | None" = None, *, sample_rate: int = 16000, n_mels: int = 80,
                    key: str | None = None, strip_prefix: str | None = None, **ecapa_kwargs: Any) -> EcapaEmbedder:
    """SpeechBrain's ``ECAPA_TDNN(input_size=n_mels, **ecapa_kwargs)`` with a local state dict (optional dependency).

    ``checkpoint``: the embedding model's state dict, e.g. ``embedding_model.ckpt`` of a SpeechBrain
    ``spkrec-ecapa-voxceleb`` folder you already have (``lin_neurons=192``, the default). ``None``: random
    weights. Needs ``pip install avxai[speechbrain]``.

    Shape: waveform ``(batch, 1, time)`` at ``sample_rate`` -> embedding ``(batch, lin_neurons)``.
    """
    features, ecapa = _speechbrain("load_ecapa_tdnn")
    try:
        model = ecapa.ECAPA_TDNN(input_size=n_mels, **ecapa_kwargs)
    except TypeError as err:
        raise ValueError(f"ECAPA_TDNN does not take these arguments: {err}") from None
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, key=key, strip_prefix=strip_prefix)
    fbank = features.Fbank(n_mels=n_mels, sample_rate=_rate(sample_rate))
    return EcapaEmbedder(model, fbank, sample_rate).eval()

"""First-layer filters: what frequencies (or mel bands, or image patterns) the first layer of a model passes.

The kind of filter follows from the layer's weight, never from the model's class:

==================  =======================================  ===========================================
kind                layer                                    shown as
==================  =======================================  ===========================================
``waveform``        ``Conv1d`` with one input channel        magnitude frequency response (Hz, dB re the
                    (SincNet, LEAF, Conv-TasNet encoders)    bank's loudest filter), sorted by centre
``features``        ``Conv1d`` / ``Linear`` / LSTM / GRU     weights over the feature axis (summed over a
                    over F feature channels (mel bands,      convolution's taps: the response to a steady
                    fbanks, STFT bins)                       sound), the axis in Hz where the model says
``spectro-temporal`` ``Conv2d`` with one input channel       each kernel as a (freq, time) image
``image``           ``Conv2d`` / ``Conv3d`` with 3 inputs    each kernel as an RGB image (a 3-D kernel:
                    (a visual subnet)                        its middle frame)
==================  =======================================  ===========================================

Hz of a feature axis: a mel / filter-bank matrix among the model's buffers (torchaudio's ``MelScale.fb``
``(n_freq, n_mels)``, Resemblyzer's ``mel_filters`` ``(n_mels, n_freq)``, ...) with one side equal to F gives
each band's centre (the bin of its peak); F equal to ``n_fft // 2 + 1`` of the STFT the model states
(``model.n_fft``) gives linear bins; otherwise the axis stays in feature indices and the metadata says so.
A filter's *centre* is the frequency of its peak (``argmax`` of the response, or of the absolute weight).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from avxai.methods.pca_rgb import get_layer
from avxai.models.contract import sample_rate_of, stft_of

__all__ = ["Filters", "first_layer_filters", "first_weighted_layer", "feature_axis_hz", "frequency_response"]

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.RNNBase)


@dataclass
class Filters:
    """The filters of one layer.

    kind : ``"waveform"``, ``"features"``, ``"spectro-temporal"`` or ``"image"``.
    layer : dotted path of the layer.
    weights : the raw weights, ``(filters, ...)`` (a recurrent layer: its input-to-hidden rows).
    response : ``(filters, points)`` sorted by centre: dB (waveform) or weight (features); ``None`` for images.
    freqs_hz : ``(points,)`` Hz of the response's axis (``None``: feature indices, no Hz known).
    centres_hz : ``(filters,)`` centre of each sorted filter (Hz, or feature index when ``freqs_hz`` is None).
    order : ``(filters,)`` the original index of each sorted filter.
    images : ``(filters, h, w, 3)`` in [0, 1] (image) or ``(filters, freq, time)`` (spectro-temporal), else None.
    metadata : how the axis was found, the rate, the layer's class.
    """

    kind: str
    layer: str
    weights: np.ndarray
    response: np.ndarray | None
    freqs_hz: np.ndarray | None
    centres_hz: np.ndarray | None
    order: np.ndarray
    images: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays to save (``arrays.npz``)."""
        out = {"weights": self.weights, "order": self.order}
        for name in ("response", "freqs_hz", "centres_hz", "images"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def first_weighted_layer(model: nn.Module) -> str:
    """The dotted path of the first convolution, linear or recurrent layer registered in ``model``."""
    for name, module in model.named_modules():
        if name and isinstance(module, _WEIGHTED):
            return name
    raise ValueError(f"{type(model).__name__} has no convolution, linear or recurrent layer; name one with --layer")


def _weight(module: nn.Module, layer: str) -> torch.Tensor:
    if isinstance(module, nn.RNNBase):
        return module.weight_ih_l0.detach()  # (gates * hidden, input_size)
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
        return module.weight.detach()
    raise ValueError(f"layer {layer!r} is a {type(module).__name__}; filters are read from a Conv1d/2d/3d, Linear, "
                     "LSTM or GRU layer: name one with --layer")


def frequency_response(kernels: np.ndarray, sample_rate: int, n_points: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude responses of FIR ``kernels`` ``(filters, taps)`` in dB re the loudest, and their ``(freq,)`` Hz.

    Shape: ``(filters, taps)`` -> ``(filters, n_points // 2 + 1)``, ``(n_points // 2 + 1,)``.
    """
    n = max(n_points, int(2 ** np.ceil(np.log2(kernels.shape[-1]))))
    mag = np.abs(np.fft.rfft(kernels, n=n, axis=-1))
    db = 20 * np.log10(np.maximum(mag, 1e-12) / max(mag.max(), 1e-12))
    return np.maximum(db, -80.0), np.fft.rfftfreq(n, 1.0 / sample_rate)


def _bank_centres(model: nn.Module, n_features: int, sample_rate: int) -> tuple[np.ndarray, str] | None:
    """Hz of each band of a filter-bank buffer of ``model`` with ``n_features`` bands (its peak bin), or None."""
    for name, buf in model.named_buffers():
        if buf.dim() != 2 or not buf.is_floating_point() or (buf < 0).any():
            continue
        for bands_dim in (0, 1):
            n_freq = buf.shape[1 - bands_dim]
            if buf.shape[bands_dim] == n_features and n_freq > n_features and n_freq % 2 == 1:
                bank = buf if bands_dim == 0 else buf.T  # (bands, freq)
                if (bank.sum(dim=1) <= 0).any():
                    continue
                bins = bank.argmax(dim=1).double().numpy()
                return bins * sample_rate / (2.0 * (n_freq - 1)), f"peaks of the filter bank buffer {name!r}"
    return None


def feature_axis_hz(model: nn.Module, n_features: int) -> tuple[np.ndarray | None, str]:
    """Hz of each of the ``n_features`` input features of a first layer, and how they were found."""
    rate = sample_rate_of(model)
    if rate is None:
        return None, "feature index (the model states no sample_rate)"
    found = _bank_centres(model, n_features, rate)
    if found is not None:
        return found
    stft = stft_of(model)
    if stft is not None and stft[0] // 2 + 1 == n_features:
        return np.arange(n_features) * rate / stft[0], f"linear STFT bins (model.n_fft={stft[0]})"
    return None, "feature index (no filter bank buffer or stated STFT matches the layer's input size)"


def _sorted(centres: np.ndarray) -> np.ndarray:
    return np.argsort(centres, kind="stable")


def _image_filters(w: np.ndarray) -> np.ndarray:
    """``(K, 3, h, w)`` or ``(K, 3, t, h, w)`` -> ``(K, h, w, 3)`` in [0, 1], each kernel scaled on its own."""
    if w.ndim == 5:
        w = w[:, :, w.shape[2] // 2]
    img = np.moveaxis(w, 1, -1)
    low = img.min(axis=(1, 2, 3), keepdims=True)
    high = img.max(axis=(1, 2, 3), keepdims=True)
    return (img - low) / np.maximum(high - low, 1e-12)


def first_layer_filters(model: nn.Module, layer: str | None = None, *, n_points: int = 1024) -> Filters:
    """The filters of ``layer`` (default: the first weighted layer), sorted by centre frequency.

    Shape: see :class:`Filters`.
    """
    name = layer if layer is not None else first_weighted_layer(model)
    module = get_layer(model, name)
    w = _weight(module, name).float().cpu().numpy()
    meta: dict[str, Any] = {"layer": name, "layer_class": type(module).__name__, "filters": int(w.shape[0])}
    rate = sample_rate_of(model)
    meta["sample_rate"] = rate
    if isinstance(module, nn.Conv1d) and module.in_channels == 1:
        if rate is None:
            raise ValueError(f"layer {name!r} filters a waveform but {type(model).__name__} states no sample_rate; "
                             "set model.sample_rate (Hz) or pass --model-arg sample_rate=...")
        db, freqs = frequency_response(w[:, 0], rate, n_points)
        centres = freqs[db.argmax(axis=1)]
        order = _sorted(centres)
        meta.update(axis="Hz, magnitude response in dB re the loudest filter (FFT of each kernel)",
                    centre="frequency of the response's peak")
        return Filters("waveform", name, w, db[order], freqs, centres[order], order, metadata=meta)
    if isinstance(module, nn.Conv2d) and module.in_channels == 1:
        energy = (w[:, 0] ** 2).sum(axis=2)  # (K, kh): energy per kernel row (the frequency axis)
        centres = energy.argmax(axis=1).astype(float)
        order = _sorted(centres)
        meta.update(axis="kernel rows x columns = frequency x time cells of the layer's input",
                    centre="kernel row with the most energy")
        return Filters("spectro-temporal", name, w, None, None, centres[order], order, images=w[order, 0],
                       metadata=meta)
    if isinstance(module, (nn.Conv2d, nn.Conv3d)) and module.in_channels == 3:
        order = np.arange(w.shape[0])
        meta.update(axis="RGB kernels, each scaled to [0, 1] on its own", centre="none (images are not sorted)")
        return Filters("image", name, w, None, None, None, order, images=_image_filters(w), metadata=meta)
    if isinstance(module, (nn.Conv2d, nn.Conv3d)):
        raise ValueError(f"layer {name!r} is a {type(module).__name__} over {module.in_channels} input channels; "
                         "filters are shown for a first layer over a waveform, a spectrogram (1 channel), image "
                         "crops (3 channels) or feature channels (Conv1d/Linear/LSTM); name such a layer with --layer")
    profile = w.sum(axis=2) if w.ndim == 3 else w  # (K, F): a conv's response to a steady sound
    freqs, how = feature_axis_hz(model, profile.shape[1])
    axis = freqs if freqs is not None else np.arange(profile.shape[1], dtype=float)
    centres = axis[np.abs(profile).argmax(axis=1)]
    order = _sorted(centres)
    meta.update(axis=how, centre="feature (band) of the largest absolute weight",
                taps="summed over the kernel's taps" if w.ndim == 3 else "one tap")
    return Filters("features", name, w, profile[order], freqs, centres[order], order, metadata=meta)

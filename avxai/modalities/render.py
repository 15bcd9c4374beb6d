"""Media of masked inputs for saving (``preserved.wav``, ``deleted.wav``), rendered a few frames at a time.

``modality.media(modality.apply_mask(mask))`` builds the whole perturbed representation before its inverse
STFT: at 10 minutes of 16 kHz audio (512 / 128) one spectrum of 257 x 75,001 float32 cells, 77 MB per mask row,
and every saved mask's at once. For a :class:`Spectrogram` whose perturbation blends towards a fixed baseline
(``mask * x + (1 - mask) * baseline``: zero, constants, mean, floor, noise, shift and blur, along time too, since
the baseline is computed once over the whole input when the perturbation is prepared), frames ``a:b`` of the
perturbed spectrum need only frames ``a:b`` of the mask, the input, the baseline and the phase, so
:func:`render_masked` hands them to :func:`avxai.modalities.synthesis.chunked_inverse_stft` chunk by chunk: the
peak is the output waveform and a few MB. A perturbation that depends on the mask itself (a blur pyramid, a
temporal freeze: ``baseline is None``, the freeze looks back along time through the mask), another modality, or
a view that applies masks its own way takes the whole-representation path, as before.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from avxai.modalities.composite import CompositeModality
from avxai.modalities.spectrogram import Spectrogram
from avxai.modalities.synthesis import chunked_inverse_stft

__all__ = ["render_masked"]


def _inner(view: Any) -> Any:
    """The modality behind views that only delegate (e.g. :class:`avxai.memory.MasksAsInput`: ``_modality`` and
    no ``apply_mask`` of their own); a view that applies masks its own way is returned as it is."""
    while "_modality" in vars(view) and not any("apply_mask" in vars(k) for k in type(view).__mro__[:-1]):
        view = vars(view)["_modality"]
    return view


def render_masked(modality: Any, mask: Tensor) -> dict[str, Any]:
    """Media of the masks ``mask`` applied to ``modality``'s input, as ``modality.media(modality.apply_mask(mask))``
    gives them (``{"audio": (waveform, sample_rate)}``, ``{"video": ...}``, both for an audio-visual input) and
    equal to it to float precision, without the whole perturbed spectrum where the perturbation allows.

    Shape: mask ``(n, *grid)`` (row ``i`` masks input ``i % batch``) -> waveforms ``(n, channels, samples)``.
    """
    inner = _inner(modality)
    if isinstance(inner, CompositeModality):
        media: dict[str, Any] = {}
        inner.check_mask(mask)
        for part, part_mask in zip(inner.parts(), inner.split_mask(mask)):
            media.update(render_masked(part, part_mask))
        return media
    if isinstance(inner, Spectrogram) and inner.baseline is not None:
        return {"audio": (_spectrogram_waveforms(inner, mask), inner.sample_rate)}
    return modality.media(modality.apply_mask(mask))  # needs the whole input: the representation, then its media


@torch.inference_mode()
def _spectrogram_waveforms(spec: Spectrogram, mask: Tensor) -> Tensor:
    """Waveforms ``(n, channels, samples)`` of ``baseline + keep (x - baseline)`` with the input's phase, ``keep``
    the mask spread onto linear bins (:meth:`Spectrogram.expand_mask`), frames made chunk by chunk."""
    spec.check_mask(mask)
    x, baseline = spec.representation, spec.baseline  # (batch, channels, freq, frames) each
    b, c, f, t = x.shape
    n = mask.shape[0]

    def spectrum_of(lo: int, hi: int) -> Tensor:
        keep = spec.expand_mask(mask[..., lo:hi]).to(x.dtype).reshape(n // b, b, 1, f, hi - lo)
        base = baseline[..., lo:hi].unsqueeze(0)
        magnitude = torch.addcmul(base, keep, x[..., lo:hi].unsqueeze(0) - base)
        phase = spec.phase[..., lo:hi].unsqueeze(0).expand_as(magnitude)
        return torch.polar(magnitude, phase).reshape(n, c, f, hi - lo)

    left = (spec.n_fft - spec.win_length) // 2  # the window centred in n_fft samples, as torch.istft pads it
    window = F.pad(spec.window, (left, spec.n_fft - spec.win_length - left)).to(x.dtype)
    return chunked_inverse_stft(spectrum_of, t, window, spec.hop_length, spec.waveform.shape[-1], rows=n * c)

"""The analysis STFT of a long waveform as magnitude and phase, a few frames at a time.

``torch.stft`` of a 10-minute waveform holds the complex spectrum (154 MB at 512 / 128, 16 kHz, float32) and
its framed copy at once, and the magnitude and phase are then two more spectra: about 0.5 GB at the peak for
77 MB of magnitude and 77 MB of phase kept. Computed chunk by chunk into the two outputs, the peak is the
outputs plus a few MB.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CHUNK_FRAMES_ELEMENTS", "stft_magnitude_phase"]

#: elements of one chunk's framed signal (rows x frames x n_fft): about 16 MB of float32
CHUNK_FRAMES_ELEMENTS = 1 << 22


def stft_magnitude_phase(waveform: Tensor, n_fft: int, hop_length: int, window: Tensor, *,
                         chunk_elements: int | None = None) -> tuple[Tensor, Tensor]:
    """Magnitude and phase of ``torch.stft(..., center=True, pad_mode="reflect")``, computed a few frames at a
    time (equal to it to float precision: the same FFT of the same frames).

    ``window`` is the analysis window of ``win_length <= n_fft`` samples (centred in ``n_fft`` as ``torch.stft``
    does).

    Shape: waveform ``(batch, channels, time)`` -> magnitude, phase ``(batch, channels, n_fft // 2 + 1, frames)``,
    ``frames = 1 + time // hop_length``; the magnitude laid out frame by frame in memory (a transposed view), as
    ``torch.stft(...).abs()`` is.
    """
    b, c, t = waveform.shape
    rows = b * c
    half = n_fft // 2
    padded = F.pad(waveform.reshape(rows, 1, t), (half, half), mode="reflect").reshape(rows, t + 2 * half)
    frames = 1 + (padded.shape[-1] - n_fft) // hop_length
    freqs = n_fft // 2 + 1
    # the layouts torch.stft's abs() and angle() give: the magnitude frame by frame (bins contiguous, the
    # layout of the re-synthesis' FFTs), the phase bin by bin
    magnitude = waveform.new_empty(rows, frames, freqs).transpose(1, 2)
    phase = waveform.new_empty(rows, freqs, frames)
    chunk_elements = CHUNK_FRAMES_ELEMENTS if chunk_elements is None else chunk_elements
    span = max(1, int(chunk_elements) // max(1, rows * n_fft))
    for a in range(0, frames, span):
        z = min(frames, a + span)
        piece = padded[:, a * hop_length:(z - 1) * hop_length + n_fft]
        spec = torch.stft(piece, n_fft=n_fft, hop_length=hop_length, win_length=window.numel(), window=window,
                          center=False, return_complex=True)
        magnitude[..., a:z] = spec.abs()
        phase[..., a:z] = spec.angle()
    return magnitude.unflatten(0, (b, c)), phase.view(b, c, freqs, frames)

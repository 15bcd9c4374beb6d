"""Inverse STFT of fixed complex coefficients weighted by real T-F values, with a hand-written backward.

Explaining a waveform model on the T-F plane puts an inverse STFT between every perturbed magnitude
and the model. With the phase held fixed that map is linear: ``wave = istft(a * C)`` for real weights
``a`` (the perturbed magnitude, with ``C = exp(i phase)``; or a mask, with ``C = (x - baseline) exp(i phase)``
when the perturbation blends towards a fixed baseline) and its gradient is its adjoint: frames of the
(envelope-scaled) gradient, windowed, through an ``rfft``, times ``conj(C)``. Written out this way one
forward and backward cost about a quarter of ``torch.polar`` + ``torch.istft`` under autograd (whose
backward runs complex-to-complex FFTs and the polar form's ``abs`` / ``sgn``), most of what extremal
perturbation added to a waveform model beyond its own passes (``bench/extremal_overhead.py``).

The forward equals ``torch.istft(a * C, center=True, length=...)`` to float precision.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


class WeightedSynthesis:
    """Waveforms ``istft(a * C)`` of real T-F weights ``a``, for fixed complex coefficients ``C``.

    Parameters
    ----------
    coefficients : complex ``(batch, channels, freq, frames)``, ``freq = n_fft // 2 + 1``.
    window : the synthesis window, ``(n_fft,)`` (zero-padded to ``n_fft`` when shorter).
    hop_length : samples between frames.
    length : samples of the output (the input's length).
    offset : a waveform ``(batch, channels, length)`` added to every output (e.g. the baseline's).

    Shape: weights ``(n, channels, freq, frames)``, ``n`` a multiple of ``batch`` (row ``i`` takes the
    coefficients of input ``i % batch``) -> waveforms ``(n, channels, length)``; differentiable.
    """

    def __init__(self, coefficients: Tensor, window: Tensor, hop_length: int, length: int,
                 offset: Tensor | None = None):
        b, c, f, t = coefficients.shape
        n_fft = window.numel()
        if f != n_fft // 2 + 1:
            raise ValueError(f"the coefficients have {f} frequency bins but a window of {n_fft} samples needs "
                             f"{n_fft // 2 + 1}")
        self.batch, self.channels, self.freqs, self.frames = b, c, f, t
        self.n_fft, self.hop_length, self.length = n_fft, int(hop_length), int(length)
        self.window = window
        # laid out (batch, channels, frames, freq): the FFTs run over the last, contiguous axis
        self.coefficients = coefficients.transpose(-1, -2).contiguous()
        # the adjoint of irfft (norm "backward") along the bins: rfft times 1 / n_fft, doubled for the bins that
        # stand for a conjugate pair (all but DC and, for an even n_fft, Nyquist)
        pair = torch.full((f,), 2.0 / n_fft, dtype=window.dtype, device=window.device)
        pair[0] = 1.0 / n_fft
        if n_fft % 2 == 0:
            pair[-1] = 1.0 / n_fft
        adjoint = self.coefficients.conj() * pair
        self.adjoint_real, self.adjoint_imag_negated = adjoint.real.contiguous(), adjoint.imag.neg().contiguous()
        self.padded_length = n_fft + self.hop_length * (t - 1)
        envelope = _overlap_add(window.expand(1, t, n_fft), self.hop_length, window)[0]
        self.start = n_fft // 2  # centred frames: sample 0 is the middle of frame 0
        self.kept = max(0, min(self.length, self.padded_length - self.start))
        kept_envelope = envelope[self.start:self.start + self.kept]
        if self.kept and float(kept_envelope.abs().min()) < 1e-11:
            raise ValueError("the window's overlap-added square vanishes somewhere (window or hop length too short): "
                             "the inverse STFT is not defined there; use a longer window or a shorter hop")
        self.inverse_envelope = 1.0 / kept_envelope
        if offset is not None and tuple(offset.shape) != (b, c, self.length):
            raise ValueError(f"the offset waveform must be ({b}, {c}, {self.length}), got {tuple(offset.shape)}")
        self.offset = None if offset is None else offset[..., :self.kept]  # past the frames it is added as is
        self.offset_tail = None if offset is None else offset[..., self.kept:]

    def __call__(self, weights: Tensor) -> Tensor:
        n, c, f, t = weights.shape
        if (c, f, t) != (self.channels, self.freqs, self.frames) or n % self.batch:
            raise ValueError(f"weights must be (n, {self.channels}, {self.freqs}, {self.frames}) with n a multiple of "
                             f"{self.batch}, got {tuple(weights.shape)}")
        return _Synthesis.apply(weights, self)


class _Synthesis(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weights: Tensor, plan: WeightedSynthesis) -> Tensor:
        n, c, f, t = weights.shape
        a = weights.detach().reshape(n // plan.batch, plan.batch, c, f, t).transpose(-1, -2)
        # the coefficients first: the product takes their (frames, freq) layout whatever the weights' strides,
        # so the inverse FFTs run over contiguous rows (on rows strided by the frames they cost twice as much)
        frames = torch.fft.irfft(plan.coefficients * a, n=plan.n_fft, dim=-1)  # (., ., c, t, n_fft)
        wave = _overlap_add(frames.reshape(n * c, t, plan.n_fft), plan.hop_length, plan.window)
        kept = wave[:, plan.start:plan.start + plan.kept].view(n // plan.batch, plan.batch, c, plan.kept)
        if plan.offset is None:
            out = kept * plan.inverse_envelope
        else:
            out = torch.addcmul(plan.offset, kept, plan.inverse_envelope)
        if plan.kept < plan.length:  # torch.istft pads with zeros past the last frame
            tail = (torch.zeros_like(out[..., :1]).expand(*out.shape[:-1], plan.length - plan.kept)
                    if plan.offset is None else plan.offset_tail.expand(*out.shape[:-1], -1))
            out = torch.cat([out, tail], dim=-1)
        ctx.plan, ctx.shape = plan, weights.shape
        return out.reshape(n, c, plan.length)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        plan = ctx.plan
        n, c, f, t = ctx.shape
        padded = grad.new_zeros(n * c, plan.padded_length)
        padded[:, plan.start:plan.start + plan.kept] = grad.reshape(n * c, plan.length)[:, :plan.kept] * plan.inverse_envelope
        frames = padded.unfold(-1, plan.n_fft, plan.hop_length) * plan.window  # (n * c, t, n_fft)
        spec = torch.view_as_real(torch.fft.rfft(frames, dim=-1)).view(n // plan.batch, plan.batch, c, t, f, 2)
        # Re(spec * adjoint) in real arithmetic, laid out (frames, freq) like the spectra: returned as a
        # transposed view, without a copy into the weights' (freq, frames) layout
        grad_tf = torch.mul(spec[..., 0], plan.adjoint_real).addcmul_(spec[..., 1], plan.adjoint_imag_negated)
        return grad_tf.view(n, c, t, f).transpose(-1, -2), None


def _overlap_add(frames: Tensor, hop: int, window: Tensor) -> Tensor:
    """Sum of windowed frames ``(rows, frames, size)`` placed ``hop`` samples apart -> ``(rows, size + hop * (frames - 1))``.

    One strided multiply-add per ``hop``-long piece of a frame (``ceil(size / hop)`` of them) instead of a
    scatter of every sample.
    """
    rows, t, size = frames.shape
    pieces = math.ceil(size / hop)
    out = frames.new_zeros(rows, (t + pieces) * hop)
    slots = out.view(rows, t + pieces, hop)
    for j in range(pieces):
        piece = frames[:, :, j * hop:(j + 1) * hop]
        slots[:, j:j + t, :piece.shape[-1]].addcmul_(piece, window[j * hop:(j + 1) * hop])
    return out[:, :size + hop * (t - 1)]


def window_envelope(window: Tensor, hop_length: int, frames: int) -> Tensor:
    """The overlap-added squared window of ``frames`` frames (the inverse STFT's normaliser), over the padded
    signal. Shape: ``(n_fft + hop_length * (frames - 1),)``."""
    return _overlap_add(window.expand(1, frames, window.numel()), hop_length, window)[0]


#: elements of one chunk's intermediates in :func:`chunked_inverse_stft` (frames x n_fft x rows): about 16 MB
#: of float32, whatever the input's length
CHUNK_ELEMENTS = 1 << 22


def fits_one_chunk(elements: int) -> bool:
    """Whether ``elements`` are at most :data:`CHUNK_ELEMENTS` (read at call time: tests make chunks small)."""
    return elements <= CHUNK_ELEMENTS


def chunked_inverse_stft(spectrum_of: Callable[[int, int], Tensor], frames: int, window: Tensor, hop_length: int,
                         length: int, *, rows: int = 1, chunk_elements: int | None = None) -> Tensor:
    """``torch.istft(spec, center=True, length=length)`` computed a few frames at a time, without autograd.

    ``spectrum_of(a, b)`` returns the complex frames ``a:b`` of the spectrum, ``(n, channels, freq, b - a)``;
    only one chunk of them (and of their inverse FFTs) exists at a time, about ``chunk_elements`` samples of
    frames, so a 10-minute input costs its output waveform and a few MB instead of several copies of the
    whole spectrum. ``rows`` is the expected ``n * channels`` (it sizes the chunks). Equal to ``torch.istft``
    to float precision (the same sums in another order).

    Shape: spectrum ``(n, channels, freq = n_fft // 2 + 1, frames)`` -> waveforms ``(n, channels, length)``.
    """
    n_fft = window.numel()
    start = n_fft // 2  # centred frames: sample 0 is the middle of frame 0
    chunk_elements = CHUNK_ELEMENTS if chunk_elements is None else chunk_elements
    span = max(1, int(chunk_elements) // max(1, rows * n_fft))
    out: Tensor | None = None
    envelope = window.new_zeros(length)
    square = window.square()
    ones = torch.ones_like(window)
    for a in range(0, frames, span):
        b = min(frames, a + span)
        spec = spectrum_of(a, b)
        n, c, f, t = spec.shape
        if f != n_fft // 2 + 1 or t != b - a:
            raise ValueError(f"spectrum_of({a}, {b}) must give (n, channels, {n_fft // 2 + 1}, {b - a}) frames, "
                             f"got {tuple(spec.shape)}")
        pieces = torch.fft.irfft(spec.transpose(-1, -2), n=n_fft, dim=-1).reshape(n * c, t, n_fft)
        del spec
        if out is None:
            out = pieces.new_zeros(n * c, length)
        wave = _overlap_add(pieces, hop_length, window)  # (n * c, n_fft + hop * (t - 1))
        env = _overlap_add(square.expand(1, t, n_fft), hop_length, ones)[0]
        first = a * hop_length - start  # output sample of the chunk's first padded sample
        lo, hi = max(0, first), min(length, first + wave.shape[-1])
        if hi > lo:
            out[:, lo:hi] += wave[:, lo - first:hi - first]
            envelope[lo:hi] += env[lo - first:hi - first]
    covered = min(length, max(0, (frames - 1) * hop_length + n_fft - start))  # torch.istft: zeros past the frames
    if covered and float(envelope[:covered].min()) < 1e-11:
        raise ValueError("the window's overlap-added square vanishes somewhere (window or hop length too short): "
                         "the inverse STFT is not defined there; use a longer window or a shorter hop")
    out[:, :covered] /= envelope[:covered]
    return out.view(n, c, length)


__all__ = ["WeightedSynthesis", "chunked_inverse_stft", "fits_one_chunk", "window_envelope"]

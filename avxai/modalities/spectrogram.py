"""Spectrogram modality: waveforms explained on the time-frequency plane (mask on magnitude, phase kept)."""

from __future__ import annotations

from typing import Any, Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor

from avxai.checks import check_waveform
from avxai.io.audio import resample
from avxai.modalities.base import Modality
from avxai.modalities.stft import stft_magnitude_phase
from avxai.modalities.synthesis import WeightedSynthesis, chunked_inverse_stft, fits_one_chunk, window_envelope
from avxai.perturbations import Perturbation

ModelInput = Literal["waveform", "magnitude", "complex"]


def _frames(z: Tensor, index: Tensor, frames: Tensor) -> Tensor:
    """Frames ``frames (n, span)`` of rows ``index (n, 1)`` of ``z (batch, channels, freq, time)`` ->
    ``(n, channels, freq, span)``."""
    return z[index, :, :, frames].permute(0, 2, 3, 1)


class Spectrogram(Modality):
    """Waveforms ``(batch, channels, time)`` as STFT magnitudes; masks over ``(freq, time)`` frames.

    The mask scales the magnitude, the phase of the input is kept, and the inverse STFT gives back a
    waveform of the original length, so a model that takes waveforms (enhancement, separation,
    a speaker embedder with its own log-mel front end) is explained on the T-F plane.
    With ``n_mels`` the grid is ``(mel, time)``: a mask over mel bands is spread over linear bins
    with the (normalised) mel filter bank before it scales the magnitude.

    Parameters
    ----------
    waveform : Tensor ``(batch, channels, time)``, float.
    sample_rate : int, Hz.
    n_fft, hop_length, win_length : STFT in samples (Hann window, centred frames).
    n_mels : mask on this many mel bands instead of ``n_fft // 2 + 1`` linear bins.
    perturbation : what masked cells become (``"zero"``, ``"mean"``, ``"noise:10"``, ``"time-blur:8"``, ...).
    model_input : ``"waveform"`` (inverse STFT), ``"magnitude"`` or ``"complex"`` STFT.
    resample_to : resample the input to this rate (Hz) first; without it a model whose
        ``sample_rate`` differs raises an error at explanation time.

    Shape: grid ``(freq, time)`` with ``freq = n_fft // 2 + 1`` (or ``n_mels``) and ``time`` STFT frames.
    """

    kind = "spectrogram"

    def __init__(self, waveform: Tensor, sample_rate: int, *, n_fft: int = 512, hop_length: int = 128,
                 win_length: int | None = None, n_mels: int | None = None, f_min: float = 0.0,
                 f_max: float | None = None, perturbation: "str | Perturbation" = "zero",
                 model_input: ModelInput = "waveform", resample_to: int | None = None, min_rms: float = 1e-5):
        if n_fft < 8 or hop_length < 1 or hop_length > n_fft:
            raise ValueError(f"need n_fft >= 8 and 1 <= hop_length <= n_fft, got n_fft={n_fft}, hop_length={hop_length}")
        if n_mels is not None and (isinstance(n_mels, bool) or not isinstance(n_mels, int) or n_mels < 1):
            raise ValueError(f"n_mels must be a positive int (mel bands), or None for linear bins; got {n_mels!r}")
        if model_input not in ("waveform", "magnitude", "complex"):
            raise ValueError(f"model_input must be 'waveform', 'magnitude' or 'complex', got {model_input!r}")
        check_waveform(waveform, sample_rate, min_samples=n_fft, min_rms=min_rms)
        self.input_sample_rate = sample_rate
        if resample_to is not None and resample_to != sample_rate:
            waveform = resample(waveform, sample_rate, int(resample_to))
            sample_rate = int(resample_to)
        self.waveform = waveform
        self._sample_rate = sample_rate
        self.n_fft, self.hop_length = n_fft, hop_length
        self.win_length = win_length or n_fft
        self.model_input_kind = model_input
        self.window = torch.hann_window(self.win_length, dtype=waveform.dtype, device=waveform.device)
        # magnitude and phase only (the phasor, the re-synthesis and its caches are built when first needed)
        magnitude, self.phase = stft_magnitude_phase(waveform, n_fft, hop_length, self.window)
        self.n_mels = n_mels
        self.f_min, self.f_max = f_min, (f_max or sample_rate / 2)
        if n_mels is not None:
            n_freqs = n_fft // 2 + 1
            fb = torchaudio.functional.melscale_fbanks(n_freqs, self.f_min, self.f_max, n_mels, sample_rate,
                                                       norm=None, mel_scale="htk").to(waveform.dtype)
            self.mel_fbank = fb  # (freq, mel)
            self.mel_to_linear = _spread_matrix(fb)  # (freq, mel), rows sum to 1
        self.axes = ("mel", "time") if n_mels else ("freq", "time")
        super().__init__(magnitude, perturbation, nonnegative=True, rep_axes=("freq", "time"))

    # -- grid -----------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def grid_shape(self) -> tuple[int, ...]:
        frames = self.representation.shape[-1]
        return (self.n_mels, frames) if self.n_mels else (self.representation.shape[-2], frames)

    def grid(self) -> Tensor:
        """Magnitude on the mask grid, ``(batch, freq|mel, time)`` (mel: sqrt of mel power)."""
        mag = self.representation.mean(dim=1)
        if self.n_mels:
            return torch.einsum("fm,bft->bmt", self.mel_fbank, mag**2).clamp_min(0).sqrt()
        return mag

    def expand_mask(self, mask: Tensor) -> Tensor:
        if self.n_mels:
            return torch.einsum("fm,nmt->nft", self.mel_to_linear.to(mask.dtype), mask)
        return mask

    def _expand_mask_frames_major(self, mask: Tensor) -> Tensor:
        """:meth:`expand_mask` laid out in memory as ``(n, frames, freq)``, the layout of the synthesis' FFTs
        (returned as a transposed view, shape ``(n, freq, frames)``)."""
        if self.n_mels:
            return (mask.transpose(1, 2) @ self.mel_to_linear.T.to(mask.dtype)).transpose(1, 2)
        return mask

    # -- model input ----------------------------------------------------------------------------
    def to_model_input(self, representation: Tensor) -> Tensor:
        """``(n, channels, freq, time)`` magnitudes -> waveform ``(n, channels, samples)`` (or magnitude / complex)."""
        if self.model_input_kind == "magnitude":
            return representation
        if self.model_input_kind == "waveform":
            if (representation.requires_grad and torch.is_grad_enabled()) or self._plans_fit():
                return self._synthesis(representation.dtype)(representation)
            return self._chunked_waveforms(representation)
        n, c, f, t = representation.shape
        b = self.batch_size
        phase = self.phase.unsqueeze(0)
        spec = torch.polar(representation.reshape(n // b, b, c, f, t), phase.expand(n // b, -1, -1, -1, -1))
        spec = spec.reshape(n, c, f, t)
        return spec

    def perturb(self, mask: Tensor) -> Tensor:
        """Model input for masks ``(n, *grid)``; frames a mask leaves at 1 are not re-synthesised.

        With ``model_input="waveform"``, the inverse STFT is linear: the perturbed waveform is the
        unperturbed one plus the inverse STFT of the change, which is non-zero only around the frames
        the mask touches. Masks that touch few frames (occlusion windows, deletion steps) are thus
        re-synthesised locally; the result equals the full inverse STFT to float precision. A mask
        that requires grad always goes through the full inverse STFT: with a fixed baseline, the inverse
        STFT of the mask itself (the waveform is linear in the mask; the baseline's waveform is added),
        with a hand-written backward (:class:`avxai.modalities.synthesis.WeightedSynthesis`).
        """
        if self.model_input_kind != "waveform" or (mask.requires_grad and torch.is_grad_enabled()):
            # gradients must reach every cell, also those at 1: the full inverse STFT keeps them all
            if self.model_input_kind == "waveform" and self._prepared.baseline is not None:
                return self._blend_waveforms(mask)
            return self.to_model_input(self.apply_mask(mask))
        self.check_mask(mask)
        linear = self.expand_mask(mask)  # (n, freq, frames)
        changed = (linear != 1).any(dim=1)  # (n, frames)
        baseline = self._prepared.baseline
        if baseline is None:  # the perturbation depends on the mask: perturb the whole grid, then pick frames
            representation = self.apply_mask(mask)

            def change(rows: Tensor, inputs: Tensor, frames: Tensor) -> Tensor:
                return _frames(representation, rows, frames) - _frames(self.representation, inputs, frames)
        else:  # a fixed baseline: the change is (1 - mask) * (baseline - x), needed only in the touched frames

            def change(rows: Tensor, inputs: Tensor, frames: Tensor) -> Tensor:
                keep = linear[rows, :, frames].permute(0, 2, 1).unsqueeze(1).to(self.representation.dtype)
                return (1 - keep) * (_frames(baseline, inputs, frames) - _frames(self.representation, inputs, frames))
        local = self._local_inverse(mask.shape[0], change, changed)
        if local is None:
            if baseline is not None and (self._plans_fit() or "_blend_plan" in self.__dict__):
                return self._blend_waveforms(mask)  # the plan at hand (or cheap to build): faster than chunks
            return self.to_model_input(self.apply_mask(mask))
        return local

    def _blend_waveforms(self, mask: Tensor) -> Tensor:
        """Waveforms ``(n, channels, samples)`` of masks ``(n, *grid)`` blended towards the fixed baseline:
        ``baseline + mask (x - baseline)`` is linear in the mask, and so is the inverse STFT with the phase kept:
        one synthesis of the mask, plus the baseline's waveform (differentiable)."""
        self.check_mask(mask)
        linear = self._expand_mask_frames_major(mask).to(self.representation.dtype)  # (n, freq, frames)
        channels = self.representation.shape[1]
        return self._blend_synthesis()(linear.unsqueeze(1).expand(-1, channels, -1, -1))

    def _plans_fit(self) -> bool:
        """Whether the spectrum is small enough (at most ``synthesis.CHUNK_ELEMENTS`` cells, about two minutes at
        16 kHz with 512 / 128) that the re-synthesis plans (about four spectra) are built for passes without
        gradients too: they are several times faster than the chunked inverse STFT, whose point is long inputs."""
        return fits_one_chunk(self.representation.numel())

    def _local_inverse(self, n: int, change: Callable[[Tensor, Tensor, Tensor], Tensor],
                       changed: Tensor) -> Tensor | None:
        """Waveforms ``(n, channels, samples)``: the unperturbed one plus the inverse STFT of the change.

        ``change(rows (n, 1), inputs (n, 1), frames (n, span))`` gives the change of the magnitude in those
        frames, ``(n, channels, freq, span)``; ``changed (n, frames)`` says which frames each mask touches.
        ``None`` when the changed spans are too long to gain.
        """
        c, f, t = self.representation.shape[1:]
        b = self.batch_size
        frame_idx = torch.arange(t, device=changed.device)
        first = torch.where(changed, frame_idx, t).min(dim=1).values
        last = torch.where(changed, frame_idx, -1).max(dim=1).values
        span = int((last - first + 1).clamp(min=0).max())
        base = self._unperturbed_waveform()
        out = base.unsqueeze(0).expand(n // b, -1, -1, -1).reshape(n, c, -1).clone()
        if span == 0:
            return out
        if span > t // 2:
            return None
        start = torch.where(last >= 0, first.clamp(max=t - span), torch.zeros_like(first))
        frames = start.unsqueeze(1) + torch.arange(span, device=start.device)  # (n, span)
        rows = torch.arange(n, device=start.device).unsqueeze(1)
        inputs = rows % b  # row i perturbs input i mod batch; index the (batch, ...) tensors without expanding
        delta = change(rows, inputs, frames) * _unit_phasor(_frames(self.phase, inputs, frames))
        dtype = self.representation.dtype
        window = self._full_window(dtype)
        segments = torch.fft.irfft(delta, n=self.n_fft, dim=2) * window.view(1, 1, -1, 1)
        length = (span - 1) * self.hop_length + self.n_fft
        ola = F.fold(segments.reshape(n * c, self.n_fft, span), output_size=(1, length),
                     kernel_size=(1, self.n_fft), stride=(1, self.hop_length)).reshape(n, c, length)
        padded_pos = start.unsqueeze(1) * self.hop_length + torch.arange(length, device=start.device)  # (n, length)
        envelope = self._envelope(dtype)
        ola = ola / envelope[padded_pos.clamp(max=envelope.numel() - 1)].unsqueeze(1)
        pos = padded_pos - self.n_fft // 2
        valid = (pos >= 0) & (pos < out.shape[-1])
        ola = ola * valid.unsqueeze(1)
        out.scatter_add_(2, pos.clamp(0, out.shape[-1] - 1).unsqueeze(1).expand(-1, c, -1), ola)
        return out

    def _chunked_waveforms(self, representation: Tensor) -> Tensor:
        """Waveforms ``(n, channels, samples)`` of magnitudes ``(n, channels, freq, frames)`` with this input's
        phase (row ``i``: input ``i % batch``), without autograd, a few frames at a time: no copy of the whole
        spectrum, phasor or inverse FFTs (:func:`avxai.modalities.synthesis.chunked_inverse_stft`)."""
        n, c, f, t = representation.shape
        b = self.batch_size
        rows = representation.detach().reshape(n // b, b, c, f, t)

        def spectrum_of(lo: int, hi: int) -> Tensor:
            phase = self.phase[..., lo:hi].unsqueeze(0)
            return torch.polar(rows[..., lo:hi], phase.expand(n // b, -1, -1, -1, -1)).reshape(n, c, f, hi - lo)

        return chunked_inverse_stft(spectrum_of, t, self._full_window(representation.dtype), self.hop_length,
                                    self.waveform.shape[-1], rows=n * c)

    def _synthesis(self, dtype: torch.dtype) -> WeightedSynthesis:
        """The inverse STFT of magnitudes with this input's phase, differentiable (built once per dtype, when a
        gradient is first needed: it holds the phasor and its adjoint, about three spectra)."""
        plans = self.__dict__.setdefault("_synthesis_plans", {})
        if dtype not in plans:
            plans[dtype] = WeightedSynthesis(self._phasor(torch.promote_types(dtype, torch.complex64)),
                                             self._full_window(dtype), self.hop_length, self.waveform.shape[-1])
        return plans[dtype]

    def _blend_synthesis(self) -> WeightedSynthesis:
        """For the perturbation's fixed baseline: waveforms of masks, ``istft(mask (x - baseline) e^(i phase))``
        plus the baseline's waveform, which is the waveform of the blend (built once)."""
        if "_blend_plan" not in self.__dict__:
            baseline = self._prepared.baseline
            dtype = self.representation.dtype
            # (x - baseline) e^(i phase) built in the plan's (frames, freq) layout (no second, transposed copy)
            coefficients = torch.polar((self.representation - baseline).transpose(-1, -2).contiguous(),
                                       self.phase.transpose(-1, -2).contiguous()).transpose(-1, -2)
            self._blend_plan = WeightedSynthesis(
                coefficients, self._full_window(dtype), self.hop_length, self.waveform.shape[-1],
                offset=self._chunked_waveforms(baseline))
        return self._blend_plan

    def _unperturbed_waveform(self) -> Tensor:
        """The inverse STFT of the unmasked spectrum, ``(batch, channels, samples)`` (kept: every local
        re-synthesis starts from it)."""
        if not hasattr(self, "_base_wave"):
            self._base_wave = self._chunked_waveforms(self.representation)
        return self._base_wave

    def _phasor(self, dtype: torch.dtype = torch.complex64) -> Tensor:
        """``exp(i phase)``, ``(batch, channels, freq, frames)``, laid out ``(frames, freq)`` in memory (the
        synthesis' layout; a transposed view). Not kept: only a plan that needs it holds it."""
        real = torch.float64 if dtype == torch.complex128 else torch.float32
        phase = self.phase.transpose(-1, -2).contiguous().to(real)
        return _unit_phasor(phase).transpose(-1, -2)

    def _full_window(self, dtype: torch.dtype) -> Tensor:
        """The analysis window zero-padded (centred) to ``n_fft``, as ``torch.istft`` uses it."""
        left = (self.n_fft - self.win_length) // 2
        return F.pad(self.window, (left, self.n_fft - self.win_length - left)).to(dtype)

    def _envelope(self, dtype: torch.dtype) -> Tensor:
        """Overlap-added squared window over the centre-padded signal (the iSTFT's normaliser)."""
        if not hasattr(self, "_window_envelope"):
            env = window_envelope(self._full_window(dtype), self.hop_length, self.representation.shape[-1])
            self._window_envelope = env.clamp_min(1e-11)
        return self._window_envelope

    def inverse_stft(self, spec: Tensor) -> Tensor:
        """Complex STFT ``(n, channels, freq, time)`` -> waveform ``(n, channels, samples)`` of the input's length
        (without autograd: a few frames at a time)."""
        n, c, f, t = spec.shape
        if not (spec.requires_grad and torch.is_grad_enabled()):
            window = self._full_window(spec.real.dtype)
            return chunked_inverse_stft(lambda lo, hi: spec[..., lo:hi], t, window, self.hop_length,
                                        self.waveform.shape[-1], rows=n * c)
        wav = torch.istft(spec.reshape(n * c, f, t), n_fft=self.n_fft, hop_length=self.hop_length,
                          win_length=self.win_length, window=self.window.to(spec.real.dtype), center=True,
                          length=self.waveform.shape[-1])
        return wav.reshape(n, c, -1)

    # -- description ----------------------------------------------------------------------------
    def frame_times(self) -> np.ndarray:
        """Centre time of every STFT frame, seconds."""
        return np.arange(self.representation.shape[-1]) * self.hop_length / self.sample_rate

    def coordinates(self) -> dict[str, np.ndarray]:
        if self.n_mels:
            mels = np.linspace(_hz_to_mel(self.f_min), _hz_to_mel(self.f_max), self.n_mels + 2)[1:-1]
            freqs = _mel_to_hz(mels)
            return {"mel": freqs, "time": self.frame_times()}
        return {"freq": np.fft.rfftfreq(self.n_fft, 1.0 / self.sample_rate), "time": self.frame_times()}

    def units(self) -> dict[str, str]:
        return {self.axes[0]: "Hz", "time": "s"}

    def media(self, representation: Tensor) -> dict[str, Any]:
        kind, self.model_input_kind = self.model_input_kind, "waveform"
        try:
            wav = self.to_model_input(representation)
        finally:
            self.model_input_kind = kind
        return {"audio": (wav, self.sample_rate)}

    def metadata(self) -> dict[str, Any]:
        meta = super().metadata()
        meta.update(sample_rate=self.sample_rate, input_sample_rate=self.input_sample_rate, n_fft=self.n_fft,
                    hop_length=self.hop_length, win_length=self.win_length, n_mels=self.n_mels,
                    model_input=self.model_input_kind, duration_s=self.waveform.shape[-1] / self.sample_rate)
        return meta


def _unit_phasor(phase: Tensor) -> Tensor:
    """``exp(i phase)`` (complex, the phase's shape)."""
    return torch.polar(torch.ones_like(phase), phase)


def _hz_to_mel(f: float | np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)


def _spread_matrix(fbank: Tensor) -> Tensor:
    """``(freq, mel)`` weights mapping a mel-band mask onto linear bins; each row sums to 1.

    A linear bin takes the filter-bank-weighted average of the bands that cover it; a bin no band
    covers (below ``f_min`` or above ``f_max``) takes the nearest band.
    """
    weights = fbank.clone()
    total = weights.sum(dim=1, keepdim=True)
    empty = (total.squeeze(1) <= 0).nonzero().flatten()
    if len(empty):
        peak = fbank.argmax(dim=0).float()  # bin index of each band's peak
        for f in empty.tolist():
            weights[f, (peak - f).abs().argmin()] = 1.0
        total = weights.sum(dim=1, keepdim=True)
    return weights / total

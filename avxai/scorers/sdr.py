"""Signal-to-distortion scorers: SDR (BSS-eval v3, via fast_bss_eval) and SI-SDR (Le Roux et al. 2019)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from avxai.scorers.base import Scorer, as_tensor_output, finite_scores, rows_for


def si_sdr(estimate: Tensor, reference: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant SDR in dB (Le Roux et al., ICASSP 2019), zero-mean, over the last axis.

    Shape: ``(..., time), (..., time) -> (...)``.
    """
    est = estimate - estimate.mean(dim=-1, keepdim=True)
    ref = reference - reference.mean(dim=-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))


def bss_sdr(estimate: Tensor, reference: Tensor, filter_length: int = 512, clamp_db: float | None = None) -> Tensor:
    """BSS-eval v3 SDR in dB (distortion filter of ``filter_length`` taps), via ``fast_bss_eval``.

    One estimate per reference, no permutation. Shape: ``(n, time), (n, time) -> (n,)``.
    """
    import fast_bss_eval

    return fast_bss_eval.sdr(reference.unsqueeze(1), estimate.unsqueeze(1), filter_length=filter_length,
                             clamp_db=clamp_db).squeeze(1)


class ReferenceScorer(Scorer):
    """Base of scorers that compare one output signal per row with a reference waveform.

    Parameters
    ----------
    reference : ``(batch, time)``, ``(batch, 1, time)`` or, for several sources, ``(batch, sources, time)``;
        ``None`` scores against the model's own output on the unperturbed input (no clean reference needed).
    source : which reference source to score (separation); the output channel scored is the one that
        matches it best on the unperturbed input (``match_source=True``) or channel ``source`` itself.
        The choice is fixed once, so masking cannot flip the permutation.

    Shape: model output ``(n, time)`` or ``(n, channels, time)`` -> scores ``(n,)``.
    """

    units = "dB"

    def __init__(self, reference: Tensor | None = None, *, source: int = 0, match_source: bool = True,
                 min_rms: float = 1e-6):
        self.source = int(source)
        self.match_source = match_source
        self.min_rms = min_rms
        self.channel: int | None = None
        self.reference = None if reference is None else self._check_reference(reference)

    def _check_reference(self, reference: Tensor) -> Tensor:
        if reference.dim() == 2:
            reference = reference.unsqueeze(1)
        if reference.dim() != 3:
            raise ValueError(
                f"reference must be (batch, time) or (batch, sources, time), got shape {tuple(reference.shape)}"
            )
        if not 0 <= self.source < reference.shape[1]:
            raise ValueError(f"source {self.source} does not exist: the reference has {reference.shape[1]} sources")
        if not torch.isfinite(reference).all():
            raise ValueError("the reference contains NaN or infinite values")
        rms = reference[:, self.source].pow(2).mean(-1).sqrt()
        if (rms < self.min_rms).any():
            raise ValueError(
                f"the reference for source {self.source} is silent (RMS {rms.min().item():.2e}); SDR against "
                "silence is undefined: check the reference file, or score against the model's own output"
            )
        return reference

    def _signals(self, output: Any) -> Tensor:
        out = as_tensor_output(output, type(self).__name__)
        if out.dim() == 2:
            out = out.unsqueeze(1)
        if out.dim() != 3:
            raise ValueError(
                f"{type(self).__name__} expects a waveform output (n, time) or (n, channels, time), got "
                f"shape {tuple(out.shape)}"
            )
        if not torch.isfinite(out).all():
            raise ValueError(
                f"the model returned NaN or infinite samples; {type(self).__name__} cannot score them. "
                "Check the model and its input (sample rate, level)"
            )
        return out

    def prepare(self, unmasked_output: Any) -> "ReferenceScorer":
        out = self._signals(unmasked_output).detach()
        prepared = object.__new__(type(self))
        prepared.__dict__.update(self.__dict__)
        if self.reference is None:
            channel = self.source if self.source < out.shape[1] else 0
            prepared.reference = prepared._check_reference(out[:, channel:channel + 1].clone())
            prepared.source, prepared.channel = 0, channel
            return prepared
        if out.shape[-1] != self.reference.shape[-1]:
            raise ValueError(
                f"the model output has {out.shape[-1]} samples but the reference has {self.reference.shape[-1]}; "
                "trim or pad the reference to the input's length (same sample rate)"
            )
        if out.shape[0] != self.reference.shape[0]:
            raise ValueError(f"{out.shape[0]} inputs but {self.reference.shape[0]} references")
        if out.shape[1] == 1:
            prepared.channel = 0
        elif self.match_source:
            ref = self.reference[:, self.source:self.source + 1].expand(-1, out.shape[1], -1)
            prepared.channel = int(si_sdr(out, ref).mean(0).argmax().item())
        else:
            if self.source >= out.shape[1]:
                raise ValueError(f"source {self.source} does not exist: the model returns {out.shape[1]} channels")
            prepared.channel = self.source
        return prepared

    def metric(self, estimate: Tensor, reference: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, output: Any) -> Tensor:
        if self.channel is None or self.reference is None:
            raise ValueError(f"{type(self).__name__} must be prepared on the unmasked output before scoring")
        out = self._signals(output)
        est = out[:, self.channel]
        ref = rows_for(self.reference[:, self.source].to(est.dtype), est.shape[0])
        return finite_scores(self.metric(est, ref), type(self).__name__)

    def describe(self) -> dict:
        return {**super().describe(), "source": self.source, "output_channel": self.channel}


class SISDR(ReferenceScorer):
    """Scale-invariant SDR (dB) of the output against the reference; see :class:`ReferenceScorer`."""

    def metric(self, estimate: Tensor, reference: Tensor) -> Tensor:
        return si_sdr(estimate, reference)


class SDR(ReferenceScorer):
    """BSS-eval v3 SDR (dB) via fast_bss_eval (``filter_length`` taps); see :class:`ReferenceScorer`."""

    def __init__(self, reference: Tensor | None = None, *, source: int = 0, match_source: bool = True,
                 filter_length: int = 512, clamp_db: float | None = 100.0):
        super().__init__(reference, source=source, match_source=match_source)
        self.filter_length, self.clamp_db = filter_length, clamp_db

    def metric(self, estimate: Tensor, reference: Tensor) -> Tensor:
        return bss_sdr(estimate, reference, self.filter_length, self.clamp_db)

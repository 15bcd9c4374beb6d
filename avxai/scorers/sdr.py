"""Signal-to-distortion scorers: SDR (BSS-eval v3, via fast_bss_eval) and SI-SDR (Le Roux et al. 2019)."""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import Tensor

from avxai.scorers.base import Scorer, as_tensor_output, finite_scores, rows_for


def si_sdr(estimate: Tensor, reference: Tensor, eps: float = 1e-8, floor_db: float = -100.0) -> Tensor:
    """Scale-invariant SDR in dB (Le Roux et al., ICASSP 2019), zero-mean, over the last axis.

    ``10 log10(|a s|^2 / (|e|^2 + eps) + 10^(floor_db / 10))``: a silent estimate (no projection on the
    reference) scores ``floor_db`` rather than the 0 dB of ``(0 + eps) / (0 + eps)``; a deletion curve
    that ends in silence would otherwise climb back to 0 dB at its last step. The floor changes ordinary
    values by less than 1e-4 dB above -60 dB.

    Shape: ``(..., time), (..., time) -> (...)``.
    """
    est = estimate - estimate.mean(dim=-1, keepdim=True)
    ref = reference - reference.mean(dim=-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return 10 * torch.log10(target.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps) + 10 ** (floor_db / 10))


def bss_sdr(estimate: Tensor, reference: Tensor, filter_length: int = 512, clamp_db: float | None = None) -> Tensor:
    """BSS-eval v3 SDR in dB (distortion filter of ``filter_length`` taps), via ``fast_bss_eval``.

    One estimate per reference, no permutation; computed in float64, returned in the estimate's dtype.
    Shape: ``(n, time), (n, time) -> (n,)``.
    """
    import fast_bss_eval

    def sdr(est: Tensor, ref: Tensor) -> Tensor:
        # sdr_loss (= -SDR) pairs estimate i with reference i; fast_bss_eval.sdr would also solve a permutation,
        # which fails on an estimate identical to its reference (infinite SDR), e.g. a self-reference
        return -fast_bss_eval.sdr_loss(est.unsqueeze(1), ref.unsqueeze(1), filter_length=filter_length,
                                       clamp_db=clamp_db).squeeze(1)

    dtype = estimate.dtype
    # float64: at clamp_db=100 fast_bss_eval clamps the coherence to 1 - 1e-10, which float32 rounds to 1 (-> inf dB)
    estimate, reference = estimate.double(), reference.double()
    # One row at a time: with torch 2.11 + MKL, a *batched* torch.linalg.solve (fast_bss_eval solves one 512x512
    # system per row) fails or spins forever printing "DLASWP" errors once torch.set_num_threads has been called
    # in the process, which every recipe does; a single system is unaffected and costs the same per row.
    return torch.cat([sdr(estimate[i:i + 1], reference[i:i + 1]) for i in range(estimate.shape[0])]).to(dtype)


def match_channels(output: Tensor, reference: Tensor, source: int) -> Tensor:
    """Per input, the output channel that carries reference source ``source`` (by SI-SDR).

    When the reference holds as many sources as the output has channels (and at most 6), the
    permutation of all sources with the largest total SI-SDR is chosen, so two sources never share a
    channel; otherwise each source takes its best-matching channel.

    Shape: output ``(batch, channels, time)``, reference ``(batch, sources, time)`` -> ``(batch,)`` long.
    """
    batch, channels, _ = output.shape
    sources = reference.shape[1]
    # pairwise[b, s, c] = SI-SDR of output channel c against reference source s
    pairwise = si_sdr(output.unsqueeze(1), reference.unsqueeze(2))
    if sources == channels and channels <= 6:
        perms = torch.tensor(list(itertools.permutations(range(channels))), device=output.device)  # (P, channels)
        totals = pairwise[:, torch.arange(sources), perms].sum(-1)  # (batch, P)
        return perms[totals.argmax(dim=1), source].long()
    return pairwise[:, source].argmax(dim=1).long()


class ReferenceScorer(Scorer):
    """Base of scorers that compare one output signal per row with a reference waveform.

    Parameters
    ----------
    reference : ``(batch, time)``, ``(batch, 1, time)`` or, for several sources, ``(batch, sources, time)``;
        ``None`` scores against the model's own output on the unperturbed input (no clean reference needed).
    source : which reference source to score (separation); the output channel scored is the one that
        matches it best on the unperturbed input (``match_source=True``, see :func:`match_channels`; chosen
        per input of the batch) or channel ``source`` itself. The choice is fixed once, in :meth:`prepare`,
        so masking cannot flip the permutation.

    Shape: model output ``(n, time)`` or ``(n, channels, time)`` -> scores ``(n,)``.
    """

    units = "dB"

    def __init__(self, reference: Tensor | None = None, *, source: int = 0, match_source: bool = True,
                 min_rms: float = 1e-6):
        self.source = int(source)
        self.match_source = match_source
        self.min_rms = min_rms
        self.channel: Tensor | None = None  # (batch,) output channel scored for each input, set by prepare
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
        batch, channels = out.shape[0], out.shape[1]
        if self.reference is None:
            if self.source >= channels:
                raise ValueError(f"source {self.source} does not exist: the model returns {channels} channels")
            prepared.source = 0  # the reference is the one scored channel
            prepared.reference = prepared._check_reference(out[:, self.source:self.source + 1].clone())
            prepared.channel = torch.full((batch,), self.source, dtype=torch.long)
            return prepared
        if out.shape[-1] != self.reference.shape[-1]:
            raise ValueError(
                f"the model output has {out.shape[-1]} samples but the reference has {self.reference.shape[-1]}; "
                "trim or pad the reference to the input's length (same sample rate)"
            )
        if batch != self.reference.shape[0]:
            raise ValueError(f"{batch} inputs but {self.reference.shape[0]} references")
        if channels == 1:
            prepared.channel = torch.zeros(batch, dtype=torch.long)
        elif self.match_source:
            prepared.channel = match_channels(out, self.reference.to(out.dtype), self.source)
        else:
            if self.source >= channels:
                raise ValueError(f"source {self.source} does not exist: the model returns {channels} channels")
            prepared.channel = torch.full((batch,), self.source, dtype=torch.long)
        return prepared

    def metric(self, estimate: Tensor, reference: Tensor) -> Tensor:
        raise NotImplementedError

    def __call__(self, output: Any) -> Tensor:
        if self.channel is None or self.reference is None:
            raise ValueError(f"{type(self).__name__} must be prepared on the unmasked output before scoring")
        out = self._signals(output)
        rows = torch.arange(out.shape[0], device=out.device)
        est = out[rows, rows_for(self.channel.to(out.device), out.shape[0])]
        ref = rows_for(self.reference[:, self.source].to(est.dtype), est.shape[0])
        return finite_scores(self.metric(est, ref), type(self).__name__)

    def describe(self) -> dict:
        channel = None if self.channel is None else self.channel.tolist()
        return {**super().describe(), "source": self.source, "output_channel": channel}


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

"""Level-aware SDR and SI-SDR: both ignore the output's scale, so an extremal mask that keeps the whole input at
1-3 % gain (the model's output scaled down with it) keeps the score and wins while explaining nothing. These
scores subtract every dB by which the output's RMS falls more than :data:`LEVEL_TOLERANCE_DB` below the
unmasked output's (issue 22).
"""

from __future__ import annotations

import torch
from torch import Tensor

from avxai.scorers.base import rows_for
from avxai.scorers.sdr import SDR, SISDR

__all__ = ["LEVEL_TOLERANCE_DB", "MAX_DROP_DB", "LevelSDR", "LevelSISDR"]

#: output level drop (dB) below which the level-aware scores add no penalty (a mask that removes the noise
#: lowers the level a little)
LEVEL_TOLERANCE_DB = 3.0
#: the largest level drop (dB) counted: the SDR's own floor is -100 dB, and a silent output (an input with every
#: cell removed, integrated gradients' baseline) must keep a finite score and gradient
MAX_DROP_DB = 100.0


class _LevelAware:
    """SDR / SI-SDR less the output's level drop: both ignore the output's scale, so a mask that keeps the whole
    input at 1-3 % gain (the model's output scaled down with it) keeps the score and wins an extremal search
    while explaining nothing. Here every dB the output's RMS falls below the unmasked output's, beyond
    :data:`LEVEL_TOLERANCE_DB`, costs one dB of score."""

    level: Tensor | None = None

    def prepare(self, unmasked_output):
        prepared = super().prepare(unmasked_output)
        out = prepared._signals(unmasked_output).detach()
        rows = torch.arange(out.shape[0])
        prepared.level = out[rows, prepared.channel].pow(2).mean(-1).sqrt().clamp_min(1e-12)  # (batch,)
        return prepared

    def metric(self, estimate: Tensor, reference: Tensor) -> Tensor:
        base = super().metric(estimate, reference)
        level = rows_for(self.level.to(estimate.dtype), estimate.shape[0])
        # the mean square floored (before the root) at MAX_DROP_DB below the unmasked level: a silent output costs
        # MAX_DROP_DB, not hundreds of dB, and its gradient stays finite (sqrt(0) has none: NaN through autograd)
        floor = (level * 10.0 ** (-MAX_DROP_DB / 20.0)).pow(2)
        rms = torch.maximum(estimate.pow(2).mean(-1), floor).sqrt()
        drop = 20.0 * torch.log10(level / rms)
        return base - (drop - LEVEL_TOLERANCE_DB).clamp_min(0.0)

    def describe(self) -> dict:
        return {**super().describe(), "level_penalty": f"minus the dB by which the output's RMS falls more than "
                                                       f"{LEVEL_TOLERANCE_DB:g} dB below the unmasked output's"}


class LevelSDR(_LevelAware, SDR):
    """BSS-eval SDR less the output's level drop (see :class:`_LevelAware`)."""


class LevelSISDR(_LevelAware, SISDR):
    """SI-SDR less the output's level drop (see :class:`_LevelAware`)."""

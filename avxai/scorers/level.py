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

__all__ = ["LEVEL_TOLERANCE_DB", "LevelSDR", "LevelSISDR"]

#: output level drop (dB) below which the level-aware scores add no penalty (a mask that removes the noise
#: lowers the level a little)
LEVEL_TOLERANCE_DB = 3.0


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
        drop = 20.0 * torch.log10(level / estimate.pow(2).mean(-1).sqrt().clamp_min(1e-12))
        return base - (drop - LEVEL_TOLERANCE_DB).clamp_min(0.0)

    def describe(self) -> dict:
        return {**super().describe(), "level_penalty": f"minus the dB by which the output's RMS falls more than "
                                                       f"{LEVEL_TOLERANCE_DB:g} dB below the unmasked output's"}


class LevelSDR(_LevelAware, SDR):
    """BSS-eval SDR less the output's level drop (see :class:`_LevelAware`)."""


class LevelSISDR(_LevelAware, SISDR):
    """SI-SDR less the output's level drop (see :class:`_LevelAware`)."""

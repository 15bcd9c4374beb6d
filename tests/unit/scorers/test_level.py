"""Level-aware SDR / SI-SDR: the plain score less every dB the output's RMS falls more than 3 dB below the
unmasked output's, capped at 100 dB, with a finite gradient at a silent output."""

import math

import pytest
import torch

from avxai.scorers.level import LEVEL_TOLERANCE_DB, MAX_DROP_DB, LevelSDR, LevelSISDR
from avxai.scorers.sdr import SDR, SISDR


def _signals(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    reference = torch.randn(1, 1, 800, generator=g)
    output = reference + 0.3 * torch.randn(1, 1, 800, generator=g)  # the unmasked output: a noisy estimate
    return reference, output


@pytest.mark.parametrize("level_cls, plain_cls", [(LevelSDR, SDR), (LevelSISDR, SISDR)])
def test_level_penalty_follows_the_formula(level_cls, plain_cls):
    reference, output = _signals()
    level, plain = level_cls(reference).prepare(output), plain_cls(reference).prepare(output)
    # within the tolerance (a 2 dB drop): the plain score
    quieter = output * 10 ** (-2 / 20)
    assert float(level(quieter)) == pytest.approx(float(plain(quieter)), abs=1e-4)
    # the whole output at 2 % gain: the plain score ignores it, the level-aware one loses 20 log10(50) - 3 dB
    tiny = output * 0.02
    expected = float(plain(tiny)) - (20 * math.log10(50) - LEVEL_TOLERANCE_DB)
    assert float(level(tiny)) == pytest.approx(expected, abs=1e-3)
    assert float(plain(tiny)) == pytest.approx(float(plain(output)), abs=1e-3)


@pytest.mark.parametrize("level_cls", [LevelSDR, LevelSISDR])
def test_a_silent_output_has_a_capped_score_and_a_finite_gradient(level_cls):
    reference, output = _signals(1)
    scorer = level_cls(reference).prepare(output)
    silent = torch.zeros_like(output, requires_grad=True)
    score = scorer(silent)
    score.sum().backward()
    assert torch.isfinite(silent.grad).all()  # integrated gradients' all-removed baseline (was NaN)
    assert float(score.detach()) >= -100.0 - (MAX_DROP_DB - LEVEL_TOLERANCE_DB) - 1e-3  # SDR floor, then the capped drop
    nearly = output * 1e-7  # 140 dB down: beyond the cap, the same score as silence
    assert float(scorer(nearly)) <= float(scorer(output * 1e-4)) - 1.0

"""Generated mixtures for enhancement and separation: references at the asked ratio, band-limited noise, batch
shapes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from avxai.data.speech_mixtures import (
    UtterancePool, band_limited_noise, enhancement_batch, noisy_utterance, separation_batch, two_speaker_mixture
)
from avxai.data.synthetic import SyntheticSpeaker
from toys.separation import SR


# ---------------------------------------------------------------------------------------------
def test_generated_mixtures_keep_references_at_the_asked_ratio():
    spk_a, spk_b = SyntheticSpeaker(100, 0), SyntheticSpeaker(101, 0)
    m = two_speaker_mixture(spk_a, spk_b, 0.5, SR, sir_db=3.0, seed=1)
    assert torch.allclose(m.sources.sum(0, keepdim=True), m.mixture, atol=1e-6)
    p = m.sources.double().pow(2).mean(-1)
    assert 10 * math.log10(p[0] / p[1]) == pytest.approx(3.0, abs=1e-3)
    again = two_speaker_mixture(spk_a, spk_b, 0.5, SR, sir_db=3.0, seed=1)
    assert torch.equal(again.mixture, m.mixture)
    for kind in ("white", "babble", "band"):
        n = noisy_utterance(spk_a, 0.5, SR, snr_db=5.0, kind=kind, seed=2)
        ratio = n.clean.double().pow(2).mean() / n.noise.double().pow(2).mean()
        assert 10 * math.log10(ratio) == pytest.approx(5.0, abs=1e-3)


def test_band_limited_noise_stays_in_its_band():
    x = band_limited_noise(8000, SR, seed=0, low_hz=500.0, high_hz=1000.0)[0].double()
    power = torch.fft.rfft(x).abs().pow(2)
    f = torch.fft.rfftfreq(x.numel(), 1 / SR)
    inside = power[(f > 450) & (f < 1100)].sum() / power.sum()
    assert inside > 0.99
    with pytest.raises(ValueError, match="Nyquist"):
        band_limited_noise(100, SR, 0, 500.0, 6000.0)


def test_training_batches_have_the_documented_shapes():
    pool = UtterancePool([0, 1, 2], SR, utterances=1, utterance_s=1.0, seed=0)
    rng = np.random.default_rng(0)
    noisy, clean = enhancement_batch(pool, 3, 2000, rng)
    assert noisy.shape == clean.shape == (3, 1, 2000)
    mix, src = separation_batch(pool, 2, 2000, rng)
    assert mix.shape == (2, 1, 2000) and src.shape == (2, 2, 2000)
    assert torch.allclose(src.sum(1, keepdim=True), mix, atol=1e-6)

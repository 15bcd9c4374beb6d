"""SDR and SI-SDR on signals whose answer is known: the reference formulas and library, the silent-output floor, the
fixed source order, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from avxai.methods import OcclusionConfig, get_method
from avxai.metrics.masks import ideal_binary_mask, mask_iou
from avxai.modalities import Spectrogram
from avxai.scorers import SDR, SISDR, si_sdr
from toys.separation import CUTOFF_HZ, HOP, N_FFT, SR, BandSplit, low_high_mixture, orthogonal, tones


@pytest.mark.parametrize("snr_db", [-3.0, 6.0])
def test_si_sdr_is_the_power_ratio_for_orthogonal_noise(snr_db):
    s, n = orthogonal()
    n = n * (s.pow(2).sum() / n.pow(2).sum() / 10 ** (snr_db / 10)).sqrt()  # known noise power
    expected = 10 * math.log10(s.pow(2).sum() / n.pow(2).sum())
    assert expected == pytest.approx(snr_db, abs=1e-4)
    scorer = SISDR(s.view(1, 1, -1)).prepare(s.view(1, 1, -1))
    for gain in (1.0, 0.25):
        assert scorer((gain * (s + n)).view(1, 1, -1)).item() == pytest.approx(expected, abs=1e-3)


def test_sdr_scorer_matches_fast_bss_eval_directly():
    fast_bss_eval = pytest.importorskip("fast_bss_eval")
    s, n = orthogonal(6000, seed=3)
    est = torch.stack([s + 0.5 * n, s + 0.1 * n, 0.3 * s + n]).unsqueeze(1)
    ref = s.view(1, 1, -1)
    # one row at a time: a batched solve hangs in torch 2.11 + MKL once torch.set_num_threads ran (see bss_sdr)
    expected = torch.cat([fast_bss_eval.sdr(ref, est[i:i + 1], filter_length=512, clamp_db=100.0).squeeze(1)
                          for i in range(3)])
    scorer = SDR(ref).prepare(s.view(1, 1, -1))
    assert torch.allclose(scorer(est), expected, atol=1e-3)


def test_sdr_survives_torch_set_num_threads():
    """torch 2.11 + MKL: batched linalg.solve fails or hangs after set_num_threads; bss_sdr solves row by row.

    Runs in a subprocess: once set, the broken thread state cannot be undone in this process.
    """
    pytest.importorskip("fast_bss_eval")
    code = (
        "import torch, fast_bss_eval\n"
        "from avxai.scorers import bss_sdr\n"
        "g = torch.Generator().manual_seed(0)\n"
        "ref = torch.randn(3, 4000, generator=g, dtype=torch.float64)\n"
        "est = ref + torch.tensor([[0.5], [0.2], [1.0]], dtype=torch.float64) * torch.randn(3, 4000, generator=g,"
        " dtype=torch.float64)\n"
        "torch.set_num_threads(2)\n"
        "got = bss_sdr(est, ref)\n"
        "rows = torch.cat([-fast_bss_eval.sdr_loss(est[i:i+1, None], ref[i:i+1, None]).squeeze(1) for i in range(3)])\n"
        "assert torch.allclose(got, rows, atol=1e-6), (got, rows)\n"
        "print('ok')\n"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


@pytest.mark.parametrize("cls", [SDR, SISDR])
def test_a_silent_output_scores_the_floor_not_zero_db(cls):
    """A deletion curve ends with the whole input removed: the silent output must score lowest (-100 dB),
    not the 0 dB of 0/0, or the curve climbs back at its last step."""
    s, n = orthogonal(4000, seed=5)
    scorer = cls(s.view(1, 1, -1)).prepare(s.view(1, 1, -1))
    silent, noisy = scorer(torch.zeros(1, 1, 4000)).item(), scorer((s + 3.0 * n).view(1, 1, -1)).item()
    assert silent == pytest.approx(-100.0, abs=1e-3) and noisy > silent + 80


def test_self_reference_sdr_scores_the_unmasked_output_at_the_clamp():
    x = tones([(440, 0.3), (1200, 0.1)]).view(1, 1, -1)
    scorer = SDR(None).prepare(x)
    assert scorer(x).item() == pytest.approx(100.0, abs=0.5)  # identical output: the clamp, not inf
    noisy = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert 0 < scorer(noisy).item() < 60


# ---------------------------------------------------------------------------------------------
# separation: the source order is fixed from the unperturbed run
# ---------------------------------------------------------------------------------------------
def test_source_order_is_fixed_under_masking_that_would_swap_the_outputs():
    mixture, sources = low_high_mixture(low_amp=0.5, high_amp=0.2)
    model = BandSplit(sort_by_energy=True)
    unmasked = model(mixture)
    scorer = SISDR(sources, source=0).prepare(unmasked)  # source 0 = the (louder) low band -> channel 0
    assert scorer.channel.tolist() == [0]
    modality = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP)
    freqs = torch.as_tensor(modality.coordinates()["freq"])
    remove_low = torch.ones(1, *modality.grid_shape)
    remove_low[:, freqs < CUTOFF_HZ] = 0.0
    out = model(modality.perturb(remove_low))
    # the perturbed low band is now the quieter one, so the toy swapped its outputs ...
    assert out[0, 0].pow(2).sum() > 10 * out[0, 1].pow(2).sum()
    # ... and the scorer still reads channel 0 (now the high band): a very low score, not a re-matched one
    score = scorer(out).item()
    assert score == pytest.approx(si_sdr(out[0, 0], sources[0, 0]).item(), abs=1e-4)
    assert score < -20 and si_sdr(out[0, 1], sources[0, 0]).item() > score + 20


def test_source_order_is_matched_per_input_of_a_batch():
    m0, s0 = low_high_mixture(low_amp=0.5, high_amp=0.2, seed=0)   # low louder: low band on channel 0
    m1, s1 = low_high_mixture(low_amp=0.1, high_amp=0.4, seed=2)   # high louder: low band on channel 1
    model = BandSplit(sort_by_energy=True)
    mixtures, refs = torch.cat([m0, m1]), torch.cat([s0, s1])
    scorer = SDR(refs, source=0).prepare(model(mixtures))
    assert scorer.channel.tolist() == [0, 1]
    scores = scorer(model(mixtures))
    assert (scores > 20).all()  # each input is scored on its own low-band channel
    assert scorer.describe()["output_channel"] == [0, 1]




# ---------------------------------------------------------------------------------------------
# bad inputs raise clear errors
# ---------------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_value_errors():
    mixture, sources = low_high_mixture()
    modality = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP)
    occ = get_method("occlusion")
    cfg = OcclusionConfig(window=(64, 16))
    with pytest.raises(ValueError, match="samples but the reference has"):
        occ(BandSplit(), modality, SDR(sources[..., :-100], source=0), cfg)
    with pytest.raises(ValueError, match="silent"):
        SDR(torch.zeros_like(sources), source=1)
    with pytest.raises(ValueError, match="expects audio at 16000 Hz but the input is at 8000 Hz"):
        occ(BandSplit(sample_rate=16000), modality, SDR(sources), cfg)

    class NaNModel(nn.Module):
        sample_rate = SR

        def forward(self, x):
            return x * float("nan")

    with pytest.raises(ValueError, match="NaN"):
        occ(NaNModel(), modality, SDR(None), cfg)
    with pytest.raises(ValueError, match="source 3 does not exist"):
        occ(BandSplit(), modality, SDR(None, source=3), cfg)
    with pytest.raises(ValueError, match="same shape"):
        ideal_binary_mask(sources[0, 0], sources[0, 1, :-1], N_FFT, HOP)
    with pytest.raises(ValueError, match="same grid"):
        mask_iou(torch.rand(3, 4), torch.ones(4, 3))

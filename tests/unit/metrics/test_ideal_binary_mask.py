"""Ideal binary masks, IoU and the scores of masks on the spectrogram grid."""

from __future__ import annotations

import pytest
import torch

from avxai.methods import OcclusionConfig, get_method
from avxai.metrics.masks import energy_share, ibm_on_grid, ideal_binary_mask, mask_iou, mask_scores
from avxai.modalities import Spectrogram
from avxai.scorers import SISDR
from toys.separation import HOP, N_FFT, SR, BandSplit, low_high_mixture


# ---------------------------------------------------------------------------------------------
# masks metrics
# ---------------------------------------------------------------------------------------------
def test_ideal_binary_mask_follows_the_louder_source_on_the_spectrogram_grid():
    mixture, sources = low_high_mixture(low_amp=0.3, high_amp=0.3)
    ibm = ideal_binary_mask(sources[:, 0:1], sources[:, 1:2], N_FFT, HOP)  # (1, 1, t) inputs
    modality = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP)
    assert ibm.shape == modality.grid_shape
    freqs = torch.as_tensor(modality.coordinates()["freq"])
    for f_hz in (300, 600):
        assert ibm[(freqs - f_hz).abs().argmin()].mean() == 1.0
    for f_hz in (2000, 2600):
        assert ibm[(freqs - f_hz).abs().argmin()].mean() == 0.0
    # a high threshold keeps fewer cells
    assert ideal_binary_mask(sources[0, 0], sources[0, 1], N_FFT, HOP, threshold_db=20).sum() < ibm.sum()


def test_ibm_on_the_modality_grid_linear_and_mel():
    mixture, sources = low_high_mixture(low_amp=0.3, high_amp=0.3)
    lin = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP)
    direct = ideal_binary_mask(sources[0, 0], sources[0, 1], N_FFT, HOP)
    assert (ibm_on_grid(lin, sources[0, 0]) == direct).float().mean() > 0.99  # interferer = mixture - target
    mel = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP, n_mels=40)
    ibm = ibm_on_grid(mel, sources[0, 0])
    assert ibm.shape == mel.grid_shape
    centres = torch.as_tensor(mel.coordinates()["mel"])
    for f_hz, expected in ((300, 1.0), (600, 1.0), (2000, 0.0), (2600, 0.0)):
        assert ibm[(centres - f_hz).abs().argmin()].mean() == expected
    with pytest.raises(ValueError, match="same recording"):
        ibm_on_grid(lin, sources[0, 0, :-5])


def test_mask_scores_of_an_attribution_keep_its_positive_cells():
    mixture, sources = low_high_mixture(low_amp=0.3, high_amp=0.3, noise=0.01)
    modality = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP)
    scorer = SISDR(sources, source=0)
    expl = get_method("occlusion")(BandSplit(), modality, scorer, OcclusionConfig(window=(8, 32), stride=(8, 32)))
    got = mask_scores(BandSplit(), modality, scorer, expl)
    assert got["area"] == pytest.approx(float((expl.attribution[0] > 0).float().mean()))
    assert got["unmasked"] == pytest.approx(float(expl.scores["unmasked"][0]), abs=1e-4)
    assert got["preserved"] > got["deleted"] + 20  # the positive cells are the low band's


def test_mask_iou_definitions():
    truth = torch.zeros(10, 10, dtype=torch.bool)
    truth[:3] = True  # area 0.3
    ramp = torch.arange(100, 0, -1).float().view(10, 10)  # descending in grid order: top cells = first rows
    assert mask_iou(ramp, truth).item() == pytest.approx(1.0)
    assert mask_iou(-ramp, truth).item() == pytest.approx(0.0)
    assert mask_iou(ramp, truth, area=0.6).item() == pytest.approx(0.5)  # 30 of 60 kept cells are in the truth
    batch = mask_iou(torch.stack([ramp, -ramp]), truth)
    assert batch.tolist() == pytest.approx([1.0, 0.0])
    assert energy_share(torch.ones(10), 3 * torch.ones(10)) == pytest.approx(0.1)

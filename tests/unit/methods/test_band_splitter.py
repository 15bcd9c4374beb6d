"""Occlusion and extremal perturbation of a toy separator whose answer is known (each source is one frequency band)."""

from __future__ import annotations

import pytest
import torch

from avxai.methods import METHODS, OcclusionConfig, get_method
from avxai.metrics.masks import energy_share, ideal_binary_mask, mask_iou, preserve_delete_scores
from avxai.modalities import Spectrogram
from avxai.scorers import SISDR
from toys.separation import CUTOFF_HZ, HOP, N_FFT, SR, BandSplit, low_high_mixture


def test_occlusion_on_a_band_splitter_finds_the_source_band_and_its_ibm():
    mixture, sources = low_high_mixture(low_amp=0.3, high_amp=0.3, noise=0.01)
    model = BandSplit()
    modality = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP)
    freqs = torch.as_tensor(modality.coordinates()["freq"])
    for k in (0, 1):
        scorer = SISDR(sources, source=k)
        expl = get_method("occlusion")(model, modality, scorer, OcclusionConfig(window=(4, 8), stride=(2, 8)))
        assert expl.metadata["scorer"]["output_channel"] == [k]
        attr = expl.attribution[0]
        in_band = (freqs < CUTOFF_HZ) if k == 0 else (freqs >= CUTOFF_HZ)
        positive = attr.clamp_min(0)
        assert positive[in_band].sum() / positive.sum() > 0.9  # the evidence is in the source's band
        # the truth: cells where source k is louder than everything else in the mixture (the tones' bins)
        ibm = ideal_binary_mask(sources[0, k], mixture[0, 0] - sources[0, k], N_FFT, HOP)
        assert ibm.shape == modality.grid_shape
        area = float(ibm.mean())
        assert mask_iou(attr, ibm).item() > 0.4 > 4 * area / (2 - area)  # a random map's expected IoU: a / (2 - a)
        scores = preserve_delete_scores(model, modality, scorer, ibm.unsqueeze(0))
        assert scores["preserved"].item() > scores["deleted"].item() + 20


@pytest.mark.skipif("extremal" not in METHODS, reason="extremal perturbation is not registered yet")
def test_extremal_goes_through_the_same_path_on_the_band_splitter():
    mixture, sources = low_high_mixture(low_amp=0.3, high_amp=0.3)
    modality = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP)
    ibm = ideal_binary_mask(sources[0, 0], sources[0, 1], N_FFT, HOP)
    share = energy_share(sources[0, 0], sources[0, 1])
    method = get_method("extremal")
    config = method.config_class(areas=(round(share, 3),), iterations=40, learning_rate=0.1)
    expl = method(BandSplit(), modality, SISDR(sources, source=0), config)
    assert expl.masks.shape == (1, 1, *modality.grid_shape)
    assert mask_iou(expl.masks[0, 0], ibm, area=expl.areas[0]).item() > 0.3

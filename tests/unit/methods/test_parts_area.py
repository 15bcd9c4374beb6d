"""The area of a mask over an audio-visual grid is counted as the area constraint counts it: each stream's area
weighed by ``part_weights`` (equal by default), not by cell counts; extremal's area warning uses that measure."""

import pytest
import torch
from toys.problems import FPS, HOP, N_FFT, SR, toy_crops, toy_waveform

from avxai import Spectrogram
from avxai.methods.extremal_config import ExtremalConfig
from avxai.methods.extremal_warnings import score_problems
from avxai.methods.parts import mask_area, part_areas
from avxai.modalities.audio_visual import AudioVisual
from avxai.modalities.video import FaceVideo


def av(weights=(1.0, 1.0)):
    return AudioVisual(Spectrogram(toy_waveform(1), SR, n_fft=N_FFT, hop_length=HOP), FaceVideo(toy_crops(1), FPS),
                       part_weights=weights)


def masks_with(modality, audio, video):
    a, v = modality.parts()
    return modality.join_masks([torch.full((1, *a.grid_shape), audio), torch.full((1, *v.grid_shape), video)])


def test_part_weighted_area_not_cell_weighted():
    modality = av()
    a_cells, v_cells = modality.part_sizes  # 2013 audio cells (33 x 61), 1536 video cells (6 x 16 x 16)
    masks = masks_with(modality, 0.2, 0.05)
    assert part_areas(modality, masks)[0].tolist() == pytest.approx([0.2, 0.05])
    assert float(mask_area(modality, masks)[0]) == pytest.approx(0.125)
    assert float(masks.mean()) == pytest.approx((0.2 * a_cells + 0.05 * v_cells) / (a_cells + v_cells))
    assert float(mask_area(av((3.0, 1.0)), masks)[0]) == pytest.approx(0.75 * 0.2 + 0.25 * 0.05)
    plain = torch.rand(2, 5, 7)
    assert torch.allclose(mask_area(Spectrogram(toy_waveform(1), SR), plain), plain.flatten(1).mean(dim=1))
    assert part_areas(Spectrogram(toy_waveform(1), SR), plain) is None


def test_area_warning_uses_the_given_areas():
    modality = av()
    config = ExtremalConfig(areas=(0.125,), area_tolerance=0.01)
    masks = masks_with(modality, 0.25, 0.0)  # part-weighted area 0.125; cell mean 0.25 * 2013 / 3549 = 0.142
    args = (torch.tensor([[1.0]]), torch.tensor([1.0]), torch.tensor([0.0]), config, masks.unsqueeze(0))
    assert any("final mask area off its target" in w for w in score_problems(*args))  # the cell mean
    assert not any("final mask area" in w for w in score_problems(*args, areas=mask_area(modality, masks).view(1, 1)))


def test_extremal_on_an_av_input_reports_areas_as_the_constraint_counts_them():
    from toys.problems import AVRegion

    from avxai import ClassLogit, extremal

    torch.manual_seed(0)
    modality = av()
    config = ExtremalConfig(areas=(0.2,), iterations=25, progress=False, seed=0)
    e = extremal(AVRegion().eval(), modality, ClassLogit(0), config)
    masks = e.masks[:, 0].reshape(1, -1)
    per_part = part_areas(modality, masks)[0]
    assert e.metadata["part_areas"][0][0] == pytest.approx(per_part.tolist(), abs=1e-6)  # (B, K, parts)
    assert float(e.history["area"][-1, 0, 0]) == pytest.approx(float(per_part.mean()), abs=1e-5)  # equal weights
    assert float(e.history["area"][-1, 0, 0]) != pytest.approx(float(masks.mean()), abs=1e-3)  # not the cell mean

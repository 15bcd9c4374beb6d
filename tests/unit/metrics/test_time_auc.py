"""Time-localisation AUCs: Li et al. (2022)'s multi-speaker protocol and Bolaños et al. (2025)'s relaxed segment
AUC, checked against hand-counted ROC AUCs and against maps of a toy model whose evidence lies in known frames."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from avxai import ClassLogit, TensorModality
from avxai.data.mixtures import Segment
from avxai.methods import OcclusionConfig, occlusion
from avxai.metrics.time_auc import (
    roc_auc, segment_labels, speaker_localisation_auc, time_annotation_auc, time_profile,
)


def _pairs_auc(labels, scores):
    """AUC by counting: the share of (positive, negative) pairs ranked right, ties half."""
    pos = [s for y, s in zip(labels, scores) if y == 1]
    neg = [s for y, s in zip(labels, scores) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_roc_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 40)
    scores = np.round(rng.normal(size=40), 1)   # ties on purpose
    assert roc_auc(labels, scores) == pytest.approx(_pairs_auc(labels, scores))
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))
    with pytest.raises(ValueError, match="NaN"):
        roc_auc([0, 1], [0.0, float("nan")])


def test_time_profile_sums_the_other_axes():
    a = torch.arange(24.0).reshape(1, 2, 3, 4)
    torch.testing.assert_close(time_profile(a), a.sum(dim=(1, 2)).double())
    torch.testing.assert_close(time_profile(a, ("time", "freq", "mel")), a.sum(dim=(2, 3)).double())
    with pytest.raises(ValueError, match="time"):
        time_profile(a, ("freq", "mel", "x"))


# A-B-A: 10 frames at 0.05 s .. 0.95 s; A in [0, 0.3) and [0.7, 1.0), B in [0.3, 0.7)
ABA = [Segment(0.0, 0.3, "A"), Segment(0.3, 0.7, "B"), Segment(0.7, 1.0, "A")]
TIMES = np.arange(10) * 0.1 + 0.05


def test_speaker_localisation_auc_by_hand():
    perfect = torch.tensor([[3.0, 2, 2, 0, 0, 0, 0, 1, 1, 1]])
    assert speaker_localisation_auc(perfect, TIMES, ABA, "A").item() == 1.0
    assert speaker_localisation_auc(-perfect, TIMES, ABA, "A").item() == 0.0
    assert speaker_localisation_auc(perfect, TIMES, ABA, "B").item() == 0.0
    rng = np.random.default_rng(1)
    row = rng.normal(size=10)
    labels = [1, 1, 1, 0, 0, 0, 0, 1, 1, 1]
    got = speaker_localisation_auc(torch.tensor(row)[None], TIMES, ABA, "A").item()
    assert got == pytest.approx(_pairs_auc(labels, row))
    # frames in no turn (a pause between 0.3 and 0.5) are left out, whatever their score
    gap = [Segment(0.0, 0.3, "A"), Segment(0.5, 0.7, "B"), Segment(0.7, 1.0, "A")]
    spiky = perfect.clone()
    spiky[0, 3:5] = 100.0
    assert speaker_localisation_auc(spiky, TIMES, gap, "A").item() == 1.0
    with pytest.raises(ValueError, match="no segment is labelled"):
        speaker_localisation_auc(perfect, TIMES, ABA, "C")
    with pytest.raises(ValueError, match="one talker"):
        speaker_localisation_auc(perfect, TIMES, [Segment(0.0, 1.0, "A")], "A")


def test_segment_labels_follow_the_relaxed_rule():
    # speech in [0.25, 0.62): segment 2 overlaps 0.05 s (left out), 3-5 fully, 6 by 0.02 s (left out)
    labels = segment_labels([Segment(0.25, 0.62, "speech")], 1.0)
    assert labels.tolist() == [0, 0, -1, 1, 1, 1, -1, 0, 0, 0]
    assert segment_labels([Segment(0.2, 0.3, "x")], 0.45, label="y").tolist() == [0, 0, 0, 0, 0]


def test_time_annotation_auc_by_hand():
    times = np.arange(100) * 0.01 + 0.005           # 10 ms frames over 1 s: ten frames per 100 ms segment
    speech = [Segment(0.25, 0.62, "speech")]
    profile = torch.zeros(1, 100)
    profile[0, 30:60] = 1.0                           # the positive segments 3-5
    profile[0, 20:30] = 5.0                           # the left-out segment 2: it cannot hurt
    assert time_annotation_auc(profile, times, speech).item() == 1.0
    rng = np.random.default_rng(2)
    row = torch.tensor(rng.normal(size=100))[None]
    seg_means = row[0].reshape(10, 10).mean(dim=1).numpy()
    keep = [0, 1, 3, 4, 5, 7, 8, 9]
    want = _pairs_auc([0, 0, 1, 1, 1, 0, 0, 0], seg_means[keep])
    assert time_annotation_auc(row, times, speech).item() == pytest.approx(want)


class FramesModel(nn.Module):
    """Logit 0 = mean of the input in frames 3-6 of 10; logit 1 = 0: the evidence lies in those frames only."""

    def forward(self, x):
        s = x[:, 0, :, 3:7].mean(dim=(1, 2))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_maps_of_a_toy_with_known_frames():
    x = torch.rand(1, 1, 4, 10, generator=torch.Generator().manual_seed(0)) + 0.5
    modality = TensorModality(x, ("freq", "time"))
    expl = occlusion(FramesModel(), modality, ClassLogit(0), OcclusionConfig(window=(4, 1), stride=(4, 1)))
    segments = [Segment(0.3, 0.7, "target"), Segment(0.0, 0.3, "other"), Segment(0.7, 1.0, "other")]
    assert speaker_localisation_auc(expl.attribution, TIMES, segments, "target", expl.axes).item() == 1.0
    assert time_annotation_auc(expl.attribution, TIMES, [Segment(0.3, 0.7, "speech")],
                               axes=expl.axes, min_overlap_s=0.05).item() == 1.0
    # a map that points at the wrong frames scores 0, a constant map chance
    assert speaker_localisation_auc(-expl.attribution, TIMES, segments, "target", expl.axes).item() == 0.0
    assert speaker_localisation_auc(torch.ones(1, 4, 10), TIMES, segments, "target").item() == 0.5

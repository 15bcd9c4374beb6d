"""The inspection tools on toy models whose learned answer is known (``toys.inspect_models.ToneUnits``: unit 1
responds only to energy near 1 kHz), and on clustered toy embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from avxai.inspect import (MaximiseConfig, TopSegmentsConfig, apply_condition, embed, embedding_map,
                           first_layer_filters, maximise, nearest, parse_conditions, top_segments)
from avxai.inspect.maximise import class_objective, direction_objective, unit_objective
from toys.inspect_models import BURSTS_1K, RECORDINGS, UNIT_1K, ToneUnits, bursts

RATE = 16000
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return ToneUnits()


@pytest.fixture(scope="module")
def recordings():
    return [bursts(r, seed=i) for i, r in enumerate(RECORDINGS)]


def test_waveform_filters_peak_at_their_tones_sorted_by_centre(model):
    f = first_layer_filters(model)
    assert f.kind == "waveform" and f.layer == "front"
    np.testing.assert_allclose(f.centres_hz, [500, 500, 1000, 1000, 2000, 2000, 4000, 4000], atol=RATE / 1024)
    assert np.all(np.diff(f.centres_hz) >= 0)
    # the 1 kHz filters (original channels 2 and 3) peak at 1 kHz and are >= 40 dB down at 2 kHz
    row = list(f.order).index(2)
    at = lambda hz: f.response[row, np.abs(f.freqs_hz - hz).argmin()]  # noqa: E731
    assert at(1000) > -1 and at(2000) < -40


def test_feature_filters_read_hz_from_the_models_mel_bank():
    class MelFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.sample_rate = RATE
            import torchaudio
            self.mel = torchaudio.transforms.MelScale(n_mels=20, sample_rate=RATE, n_stft=257)
            self.conv = nn.Conv1d(20, 3, 3)
            with torch.no_grad():
                self.conv.weight.zero_()
                for k, band in enumerate((15, 2, 8)):
                    self.conv.weight[k, band] = 1.0

    net = MelFirst()
    f = first_layer_filters(net, "conv")
    centres = net.mel.fb.argmax(dim=0).numpy() * RATE / 512
    assert f.kind == "features" and "mel.fb" in f.metadata["axis"]
    np.testing.assert_allclose(f.centres_hz, centres[[2, 8, 15]])
    assert list(f.order) == [1, 2, 0]


def test_image_filters_of_a_visual_layer_are_rgb_in_unit_range():
    net = nn.Sequential(nn.Conv2d(3, 4, 3))
    f = first_layer_filters(net)
    assert f.kind == "image" and f.images.shape == (4, 3, 3, 3)
    assert f.images.min() >= 0 and f.images.max() <= 1


def test_top_segments_of_the_1khz_unit_are_the_1khz_bursts(model, recordings):
    result = top_segments(model, "energy", recordings, RATE, TopSegmentsConfig(unit=UNIT_1K, top=4))
    assert len(result.segments) >= 2
    for seg in result.segments:
        inside = [(a, b) for r, a, b in BURSTS_1K if r == seg["recording"]]
        assert inside, f"segment from recording {seg['recording']} without a 1 kHz burst"
        (a, b), (t0, t1) = inside[0], seg["time_s"]
        assert a - 0.02 <= t0 and t1 <= b + 0.02
        assert seg["freq_hz"][0] < 1000 < seg["freq_hz"][1] and abs(seg["peak_freq_hz"] - 1000) <= 40
    # non-maximum suppression: at most per_recording from one recording, both bursts' recordings reached
    counts = np.bincount([s["recording"] for s in result.segments])
    assert counts.max() <= 2 and {0, 1} <= {s["recording"] for s in result.segments}
    assert all(a.shape[-1] > 0 for a in result.audio) and len(result.patches) == len(result.segments)


def test_top_segments_limits_one_recording(model, recordings):
    result = top_segments(model, "energy", recordings, RATE, TopSegmentsConfig(unit=UNIT_1K, top=2, per_recording=1))
    assert sorted(s["recording"] for s in result.segments) == [0, 1]


def test_activation_maximisation_puts_energy_at_1khz(model):
    config = MaximiseConfig(seconds=0.3, steps=40, starts=2, griffin_lim_iters=16)
    result = maximise(model, unit_objective(model, "energy", UNIT_1K), RATE, config)
    power = np.exp(2 * result.log_magnitude).mean(axis=-1)  # (starts, freq)
    peaks = result.freqs_hz[power.argmax(axis=1)]
    assert np.all(np.abs(peaks - 1000) <= 2 * RATE / 512)
    band = (result.freqs_hz > 800) & (result.freqs_hz < 1200)
    assert np.all(power[:, band].sum(axis=1) / power.sum(axis=1) > 0.4)
    meta = result.metadata
    assert all(f > 10 * s for f, s in zip(meta["final_score"], meta["start_score"]))
    assert all(g > 0.5 * f for g, f in zip(meta["griffin_lim_score"], meta["final_score"]))  # audible version works
    assert "Griffin-Lim" in meta["audio"] and result.audio.shape == (2, 1, int(0.3 * RATE))


def test_maximisation_is_seeded_and_its_regularisers_are_named_fields(model):
    config = MaximiseConfig(seconds=0.2, steps=5, starts=1, griffin_lim_iters=2)
    a = maximise(model, unit_objective(model, "energy", 0), RATE, config)
    b = maximise(model, unit_objective(model, "energy", 0), RATE, config)
    np.testing.assert_array_equal(a.log_magnitude, b.log_magnitude)
    for name in ("l2", "tv_freq", "tv_time", "temporal"):
        assert name in a.metadata["config"]
    fast = maximise(model, unit_objective(model, "energy", 0), RATE, MaximiseConfig(
        seconds=0.2, steps=5, starts=1, griffin_lim_iters=2, temporal="fast"))
    assert not np.array_equal(fast.log_magnitude, a.log_magnitude)
    with pytest.raises(ValueError, match="temporal"):
        MaximiseConfig(temporal="medium")
    with pytest.raises(ValueError, match="tv_time"):
        MaximiseConfig(tv_time=-1)


def test_class_and_direction_objectives(model):
    wav = bursts([(1000.0, 0.0, 0.3)], seconds=0.3)
    out = model(wav)
    assert torch.allclose(class_objective(2)(model, wav), out[:, 2])
    cos = direction_objective(model, out[0])(model, wav)
    assert torch.allclose(cos, torch.ones(1), atol=1e-5)
    with pytest.raises(ValueError, match="--class 9"):
        class_objective(9)(model, wav)


def test_clustered_embeddings_have_high_speaker_silhouette_and_low_condition_silhouette(model):
    waves, speaker, condition = [], [], []
    for f in (500.0, 1000.0, 2000.0):
        for c in ("noise:30", "noise:10"):
            for s in range(3):
                waves.append(apply_condition(bursts([(f, 0.1, 0.4)], seconds=0.5, seed=s), RATE, c, seed=s))
                speaker.append(f"{f:g} Hz")
                condition.append(c)
    x = embed(model, waves, layer="energy")
    assert x.shape == (18, 4)
    emap = embedding_map(x, {"speaker": speaker, "condition": condition}, [str(i) for i in range(18)],
                         projections=("pca", "tsne", "umap"))
    assert emap.silhouettes["speaker"] > 0.9 and emap.silhouettes["condition"] < 0.1
    assert emap.projections["pca"].shape == (18, 2) and emap.projections["tsne"].shape == (18, 2)
    try:
        import umap  # noqa: F401  # optional dependency
    except ImportError:
        assert "umap" not in emap.projections and "not installed" in emap.notes["umap"]
    # the nearest neighbours of a 1 kHz utterance are the other 1 kHz utterances
    assert {speaker[i] for i, _ in nearest(x, 6, k=5)} == {"1000 Hz"}


def test_embed_uses_the_models_embedder_by_default():
    class WithEmbedder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 3)

        def embedder(self):
            return nn.Sequential(nn.Flatten(), nn.LazyLinear(2))

        def forward(self, x):
            return self.lin(x[..., :4])

    x = embed(WithEmbedder(), [torch.randn(1, 1, 10), torch.randn(1, 1, 10)])
    assert x.shape == (2, 2)


def test_conditions_parse_and_change_the_signal():
    assert parse_conditions("clean, noise:10,telephone") == ("clean", "noise:10", "telephone")
    for bad in ("loud", "clean:3", "noise:x", "clean,clean"):
        with pytest.raises(ValueError):
            parse_conditions(bad)
    wav = bursts([(200.0, 0.0, 0.5), (1000.0, 0.0, 0.5)], seconds=0.5, noise=0.0)
    phone = apply_condition(wav, RATE, "telephone")
    spec = torch.fft.rfft(phone[0, 0]).abs()
    assert spec[100] < 1e-3 * spec[500]  # 200 Hz removed, 1 kHz kept (bins of 2 Hz)
    noisy = apply_condition(wav, RATE, "noise:10", seed=1)
    snr = 10 * torch.log10(wav.pow(2).mean() / (noisy - wav).pow(2).mean())
    assert abs(float(snr) - 10) < 0.5


def test_bad_layer_and_unit_are_one_clear_error(model, recordings):
    with pytest.raises(ValueError, match="no layer 'nope'"):
        top_segments(model, "nope", recordings, RATE)
    with pytest.raises(ValueError, match="unit must be a channel index in \\[0, 4\\)"):
        top_segments(model, "energy", recordings, RATE, TopSegmentsConfig(unit=7))
    with pytest.raises(ValueError, match="Conv1d/2d/3d, Linear, LSTM or GRU"):
        first_layer_filters(model, "energy")


def test_field_box_is_the_span_around_the_peak_not_a_mass_quantile():
    from avxai.inspect.top_segments import field_box
    sens = np.full((20, 100), 0.01)  # every cell matters a little (a mean over frames) ...
    sens[5:9, 40:46] = 1.0  # ... and a local patch matters a lot
    assert field_box(sens, 0.1) == ((5, 8), (40, 45))


def test_separated_sources_of_a_band_splitter_cluster_by_source(model):
    from avxai.inspect import separate_sources
    from toys.inspect_models import BandSplit

    mixtures = [bursts([(500.0, 0.0, 0.5), (2000.0, 0.0, 0.5)], seconds=0.5, seed=s) * (1 + s) for s in range(4)]
    waves, labels, names = separate_sources(BandSplit(), mixtures, to_rate=RATE)
    assert len(waves) == 8 and labels["source"][:2] == ["source 0", "source 1"] and names[1] == "mixture 0/source 1"
    x = embed(model, waves, layer="energy")
    emap = embedding_map(x, labels, names, projections=("pca",))
    assert emap.silhouettes["source"] > 0.9 and emap.silhouettes["mixture"] < 0.1
    with pytest.raises(ValueError, match="sources >= 2"):
        separate_sources(model, mixtures)

"""Loaders of real architectures from local checkpoints: round trips, mismatches, sample rates, one explanation each."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from avxai.methods import OcclusionConfig, get_method
from avxai.modalities import Spectrogram
from avxai.models.loaders import (
    HDemucsSeparator, SampleRateWrapper, load_checkpoint, load_convtasnet, load_ecapa_tdnn, load_hdemucs, load_module,
    with_sample_rate,
)
from avxai.scorers import SDR, SISDR, SpeakerCosine

SR = 8000
TINY_TASNET = dict(num_sources=2, enc_kernel_size=16, enc_num_feats=16, msk_num_feats=8, msk_num_hidden_feats=16,
                   msk_num_layers=2, msk_num_stacks=1)
TINY_DEMUCS = dict(sources=("speech", "noise"), audio_channels=1, channels=4, depth=3, nfft=256)
TINY_ECAPA = dict(n_mels=24, channels=[16, 16, 16, 16, 48], lin_neurons=8, attention_channels=8, se_channels=8)
COARSE = OcclusionConfig(window=(43, 16), stride=(43, 16))  # 3 x 2 windows on a (129, 32) grid


def mixture(seconds=0.25, seed=0, rate=SR):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    a = 0.3 * torch.sin(2 * torch.pi * 440 * t)
    b = 0.1 * torch.randn(t.numel(), generator=g)
    return (a + b).view(1, 1, -1), torch.stack([a, b]).unsqueeze(0)


def spectrogram(x, rate=SR):
    return Spectrogram(x, rate, n_fft=256, hop_length=64)


def test_convtasnet_round_trip_and_explanation(tmp_path):
    torch.manual_seed(0)
    model = load_convtasnet(sample_rate=SR, **TINY_TASNET)
    path = tmp_path / "tasnet.pt"
    torch.save(model.network.state_dict(), path)
    loaded = load_convtasnet(path, sample_rate=SR, **TINY_TASNET)
    x, sources = mixture()
    assert loaded.sample_rate == SR and not loaded.training
    assert torch.equal(loaded(x), model(x)) and loaded(x).shape == (1, 2, x.shape[-1])
    expl = get_method("occlusion")(loaded, spectrogram(x), SISDR(sources, source=0), COARSE)
    assert expl.attribution.shape == (1, 129, x.shape[-1] // 64 + 1) and torch.isfinite(expl.attribution).all()


def test_hdemucs_round_trip_and_explanation(tmp_path):
    torch.manual_seed(0)
    model = load_hdemucs(sample_rate=SR, **TINY_DEMUCS)
    path = tmp_path / "hdemucs.pt"
    torch.save({"state_dict": model.network.state_dict()}, path)  # a wrapped checkpoint is unwrapped
    loaded = load_hdemucs(path, sample_rate=SR, **TINY_DEMUCS)
    x, _ = mixture()
    assert isinstance(loaded, HDemucsSeparator) and loaded.source_names == ["speech", "noise"]
    assert torch.equal(loaded(x), model(x)) and loaded(x).shape == (1, 2, x.shape[-1])
    expl = get_method("occlusion")(loaded, spectrogram(x), SDR(None, source=1), COARSE)
    assert torch.isfinite(expl.attribution).all()
    assert expl.scores["unmasked"].item() == pytest.approx(100.0, abs=0.5)  # own output: the SDR clamp


def test_ecapa_tdnn_round_trip_and_explanation(tmp_path):
    pytest.importorskip("speechbrain")
    torch.manual_seed(0)
    model = load_ecapa_tdnn(sample_rate=16000, **TINY_ECAPA)
    path = tmp_path / "embedding_model.ckpt"
    torch.save(model.embedding_model.state_dict(), path)
    loaded = load_ecapa_tdnn(path, sample_rate=16000, **TINY_ECAPA)
    x, _ = mixture(rate=16000)
    emb = loaded(x)
    assert emb.shape == (1, 8) and torch.equal(emb, model(x))
    enrol, _ = mixture(seed=1, rate=16000)
    expl = get_method("occlusion")(loaded, spectrogram(x, 16000), SpeakerCosine(loaded, enrol, sample_rate=16000),
                                   COARSE)
    assert torch.isfinite(expl.attribution).all()


def test_missing_speechbrain_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "speechbrain.lobes.features", None)  # import now raises ImportError
    with pytest.raises(ImportError, match=r"pip install avxai\[speechbrain\]"):
        load_ecapa_tdnn()


def test_a_checkpoint_of_another_architecture_lists_the_mismatching_keys(tmp_path):
    path = tmp_path / "bigger.pt"
    torch.save(load_convtasnet(**{**TINY_TASNET, "enc_num_feats": 32}).network.state_dict(), path)
    with pytest.raises(ValueError, match=r"shape mismatches: encoder\.weight \(32, 1, 16\) vs model \(16, 1, 16\)"):
        load_convtasnet(path, **TINY_TASNET)
    other = tmp_path / "demucs.pt"
    torch.save(load_hdemucs(**TINY_DEMUCS).network.state_dict(), other)
    with pytest.raises(ValueError, match="missing keys: encoder.weight") as err:
        load_convtasnet(other, **TINY_TASNET)
    assert "unexpected keys" in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_convtasnet(tmp_path / "nope.pt", **TINY_TASNET)
    with pytest.raises(ValueError, match="cannot be built with these arguments"):
        load_convtasnet(num_speakers=2)


def test_prefixed_and_keyed_checkpoints(tmp_path):
    torch.manual_seed(0)
    model = load_convtasnet(**TINY_TASNET)
    path = tmp_path / "dp.pt"
    torch.save({"weights": {f"module.{k}": v for k, v in model.network.state_dict().items()}}, path)
    loaded = load_convtasnet(path, key="weights", strip_prefix="module.", **TINY_TASNET)
    x, _ = mixture()
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match="has no entry 'params'"):
        load_convtasnet(path, key="params", **TINY_TASNET)


def test_any_module_gets_a_sample_rate(tmp_path):
    class Gain(nn.Module):
        def __init__(self):
            super().__init__()
            self.g = nn.Parameter(torch.tensor(2.0))

        def forward(self, x):
            return self.g * x

    m = Gain()
    path = tmp_path / "gain.pt"
    torch.save({"g": torch.tensor(3.0)}, path)
    loaded = load_module(m, path, sample_rate=SR)
    assert loaded is m and loaded.sample_rate == SR and loaded.g.item() == 3.0
    with pytest.raises(ValueError, match="does not state its sample rate; pass sample_rate="):
        load_module(Gain())
    with pytest.raises(ValueError, match="resample the audio instead"):
        with_sample_rate(loaded, 16000)

    class Fixed(nn.Module):
        @property
        def sample_rate(self):
            return None  # a read-only property: the rate goes on a wrapper

        def forward(self, x):
            return x

    wrapped = with_sample_rate(Fixed(), SR)
    assert isinstance(wrapped, SampleRateWrapper) and wrapped.sample_rate == SR
    x, _ = mixture()
    assert torch.equal(wrapped(x), x)
    # the sample-rate check of a method now refuses audio at another rate
    with pytest.raises(ValueError, match="expects audio at 8000 Hz but the input is at 16000 Hz"):
        get_method("occlusion")(loaded, spectrogram(mixture(rate=16000)[0], 16000), SDR(None), COARSE)
    with pytest.raises(ValueError, match="load_checkpoint|does not match"):
        load_checkpoint(Gain(), {"h": torch.tensor(1.0)})

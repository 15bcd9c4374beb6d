"""Torch front ends (avxai.models.features): numerically the references (librosa, torchaudio's Kaldi fbank),
per-utterance normalisation, layouts, and gradients to the waveform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio

from avxai.models.features import MFCC, Fbank, LogMel, MelSpectrogram

pytestmark = pytest.mark.usefixtures("one_thread")
RATE = 16000
MEL = dict(n_fft=512, hop_length=160, win_length=400, n_mels=40, f_min=20.0, f_max=7600.0)


@pytest.fixture(scope="module")
def wave():
    t = torch.arange(RATE // 2) / RATE
    g = torch.Generator().manual_seed(0)
    return (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.05 * torch.randn(len(t), generator=g)).reshape(1, 1, -1)


def _librosa_mel(wave, **extra):
    librosa = pytest.importorskip("librosa")
    return librosa.feature.melspectrogram(
        y=wave[0, 0].double().numpy(), sr=RATE, n_fft=MEL["n_fft"], hop_length=MEL["hop_length"],
        win_length=MEL["win_length"], n_mels=MEL["n_mels"], fmin=MEL["f_min"], fmax=MEL["f_max"], htk=True,
        norm=None, power=2.0, center=True, pad_mode="constant", **extra)


def test_mel_and_log_mel_match_librosa(wave):
    ref = _librosa_mel(wave)
    mel = MelSpectrogram(RATE, pad_mode="constant", **MEL)(wave)[0].double().numpy()
    assert mel.shape == ref.shape
    np.testing.assert_allclose(mel, ref, rtol=1e-3, atol=1e-4 * ref.max())  # float32 vs float64
    log = LogMel(RATE, pad_mode="constant", log_offset=1e-3, **MEL)(wave)[0].double().numpy()
    np.testing.assert_allclose(log, np.log(ref + 1e-3), atol=2e-3)
    db = LogMel(RATE, pad_mode="constant", log_offset=1e-3, base="db", **MEL)(wave)[0].double().numpy()
    np.testing.assert_allclose(db, 10 * np.log10(ref + 1e-3), atol=1e-2)


def test_mfcc_matches_librosa(wave):
    librosa = pytest.importorskip("librosa")
    ref = librosa.feature.mfcc(
        y=wave[0, 0].double().numpy(), sr=RATE, n_mfcc=13, n_fft=MEL["n_fft"], hop_length=MEL["hop_length"],
        win_length=MEL["win_length"], n_mels=MEL["n_mels"], fmin=MEL["f_min"], fmax=MEL["f_max"], htk=True,
        mel_norm=None, norm="ortho", pad_mode="reflect", dct_type=2)  # power_to_db with top_db=80, as torchaudio
    ours = MFCC(RATE, n_mfcc=13, **MEL)(wave)[0].double().numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-5 * np.abs(ref).max())  # float32 vs float64


def test_fbank_is_kaldis_per_utterance(wave):
    batch = torch.cat([wave, 0.5 * wave.flip(-1)])
    ours = Fbank(RATE, n_mels=23, scale=32768.0)(batch)
    assert ours.shape[0] == 2 and ours.shape[2] == 23  # (batch, frames, mels), Kaldi's order
    for row in range(2):
        ref = torchaudio.compliance.kaldi.fbank(batch[row] * 32768.0, num_mel_bins=23, dither=0.0,
                                                sample_frequency=RATE)
        torch.testing.assert_close(ours[row], ref)
    assert Fbank(RATE, n_mels=23).frame_hop_s == 0.01


@pytest.mark.parametrize("normalize", ["mean", "meanvar"])
def test_per_utterance_normalisation(wave, normalize):
    feats = LogMel(RATE, normalize=normalize, **MEL)(torch.cat([wave, 3 * wave]))
    torch.testing.assert_close(feats.mean(dim=-1), torch.zeros(2, MEL["n_mels"]), atol=1e-4, rtol=0)
    if normalize == "meanvar":
        torch.testing.assert_close(feats.std(dim=-1), torch.ones(2, MEL["n_mels"]), atol=1e-3, rtol=0)


def test_layouts_and_channels(wave):
    stereo = torch.cat([wave, wave], dim=1)  # two equal channels: their mean is the mono signal
    bft = LogMel(RATE, **MEL)(stereo)
    torch.testing.assert_close(bft, LogMel(RATE, **MEL)(wave))
    assert LogMel(RATE, layout="btf", **MEL)(wave).shape == bft.transpose(1, 2).shape
    assert LogMel(RATE, layout="bcft", **MEL)(wave).shape == bft.unsqueeze(1).shape
    assert MelSpectrogram(RATE, **MEL).frame_hop_s == 0.01


@pytest.mark.parametrize("front", [MelSpectrogram(RATE, **MEL), LogMel(RATE, **MEL), MFCC(RATE, **MEL),
                                   Fbank(RATE, n_mels=20, normalize="mean")], ids=lambda f: type(f).__name__)
def test_gradients_reach_the_waveform(wave, front):
    x = wave.clone().requires_grad_(True)
    front(x).pow(2).mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_bad_arguments_are_one_line():
    with pytest.raises(ValueError, match="layout must be one of"):
        LogMel(RATE, layout="tf")
    with pytest.raises(ValueError, match="normalize must be"):
        MFCC(RATE, normalize="std")
    with pytest.raises(ValueError, match="sample_rate must be a positive integer"):
        LogMel(16000.0)
    with pytest.raises(ValueError, match=r"takes a waveform \(batch, channels, time\), got \(2, 100\)"):
        LogMel(RATE)(torch.zeros(2, 100))
    with pytest.raises(ValueError, match="at least one 400-sample window"):
        Fbank(RATE)(torch.zeros(1, 1, 100))

"""Synthetic speakers and test-signal builders: determinism, measurable voice differences, exact SNRs."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch

from avxai.data import (
    Segment,
    SyntheticSpeaker,
    add_noise,
    build_aba,
    build_noisy_with_silence,
    energy_vad,
    load_segments,
    make_speakers,
    mask_to_segments,
    mix_at_snr,
    pad_with_silence,
    save_segments,
    segments_to_mask,
)
from avxai.data.speech_mixtures import SpeechDataConfig, heldout_speakers

SR = 16000


def median_f0(wav: torch.Tensor, sr: int = SR, fmin: float = 60.0, fmax: float = 400.0) -> float:
    """Median F0 (Hz) over the loud 40 ms frames of a (1, time) waveform, by normalised autocorrelation."""
    y = wav[0].double().numpy()
    n, hop = int(0.04 * sr), int(0.01 * sr)
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[::hop]
    energy = (frames**2).sum(axis=1)
    frames = frames[energy > 0.1 * energy.max()]
    frames = frames - frames.mean(axis=1, keepdims=True)
    spec = np.fft.rfft(frames * np.hanning(n), n=2 * n, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :n]
    lo, hi = int(sr / fmax), int(sr / fmin)
    lag = lo + ac[:, lo:hi].argmax(axis=1)
    return float(np.median(sr / lag))


def snr_db(clean: torch.Tensor, noisy: torch.Tensor) -> float:
    noise = (noisy - clean).double()
    return 10 * math.log10(clean.double().pow(2).mean().item() / noise.pow(2).mean().item())


# -- synthetic speakers -------------------------------------------------------------------------
def test_utterance_shape_level_and_determinism():
    spk = SyntheticSpeaker(3, seed=0)
    a = spk.utterance(1.25, SR, seed=7)
    assert a.shape == (1, 20000) and a.dtype == torch.float32
    assert abs(a.abs().max().item() - 0.5) < 1e-6
    assert torch.equal(a, SyntheticSpeaker(3, seed=0).utterance(1.25, SR, seed=7))
    # a different utterance seed gives a different syllable sequence, same voice
    b = spk.utterance(1.25, SR, seed=8)
    assert (a - b).abs().mean() > 0.01
    # a different population seed gives a different voice for the same id
    assert SyntheticSpeaker(3, seed=1).params != spk.params


def test_speakers_differ_in_measured_f0():
    speakers = make_speakers(8, seed=0)
    lo = min(speakers, key=lambda s: s.params.f0_hz)
    hi = max(speakers, key=lambda s: s.params.f0_hz)
    assert hi.params.f0_hz / lo.params.f0_hz > 1.8  # the population spans a wide F0 range
    f_lo, f_hi = median_f0(lo.utterance(2.0, SR, seed=1)), median_f0(hi.utterance(2.0, SR, seed=1))
    # measured F0 follows the speaker parameter (within 20 %: intonation moves the median)
    assert abs(f_lo / lo.params.f0_hz - 1) < 0.2
    assert abs(f_hi / hi.params.f0_hz - 1) < 0.2
    assert f_hi > 1.5 * f_lo


def test_speaker_population_is_spread_out():
    p = [s.params for s in make_speakers(16, seed=0)]
    log_f0 = np.log([q.f0_hz for q in p])
    scale = np.array([q.tract_scale for q in p])
    pts = np.stack([(log_f0 - log_f0.min()) / np.ptp(log_f0), (scale - scale.min()) / np.ptp(scale)], axis=1)
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1) + np.eye(16) * 9
    assert d.min() > 0.1  # no two voices share (F0, tract scale)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_utterance_rejects_bad_duration(bad):
    with pytest.raises(ValueError, match="duration_s"):
        SyntheticSpeaker(0, 0).utterance(bad, SR, seed=0)


def test_utterance_rejects_bad_ids_and_rates():
    with pytest.raises(ValueError, match="speaker_id"):
        SyntheticSpeaker(-1, 0)
    with pytest.raises(ValueError, match="sample_rate"):
        SyntheticSpeaker(0, 0).utterance(1.0, 4000, seed=0)


# -- ABA ------------------------------------------------------------------------------------------
def test_aba_segments_tile_the_waveform_and_match_energy():
    a, b = make_speakers(2, seed=0)
    wav, segs = build_aba(a, b, durations=(0.8, 1.1, 0.7), sample_rate=SR, seed=3)
    assert wav.shape == (1, int(round(2.6 * SR)))
    assert [s.label for s in segs] == ["A", "B", "A"]
    assert segs[0].start_s == 0.0 and segs[-1].end_s == pytest.approx(wav.shape[-1] / SR)
    assert sum(s.duration_s for s in segs) == pytest.approx(2.6)
    for s0, s1 in zip(segs, segs[1:]):
        assert s0.end_s == s1.start_s
    # every turn holds speech: a substantial share of its 20 ms frames is active
    vad = energy_vad(wav, SR, frame_s=0.02, threshold_db=-30)[0]
    times = torch.arange(vad.shape[0]) * 0.02 + 0.01
    for s in segs:
        inside = segments_to_mask([s], times)
        assert vad[inside].float().mean() > 0.4
    # the B turn is speaker B: its pitch is B's, not A's
    f_a = median_f0(wav[:, : int(0.8 * SR)])
    f_b = median_f0(wav[:, int(0.8 * SR): int(1.9 * SR)])
    assert abs(math.log(f_b / b.params.f0_hz)) < abs(math.log(f_b / a.params.f0_hz))
    assert abs(math.log(f_a / a.params.f0_hz)) < abs(math.log(f_a / b.params.f0_hz))


def test_aba_is_deterministic_and_validates():
    a, b = make_speakers(2, seed=0)
    w1, s1 = build_aba(a, b, seed=5)
    w2, s2 = build_aba(a, b, seed=5)
    assert torch.equal(w1, w2) and s1 == s2
    with pytest.raises(ValueError, match="3 durations"):
        build_aba(a, b, durations=(1.0, 1.0))
    with pytest.raises(TypeError, match="utterance"):
        build_aba(a, "speaker b")


def test_segments_json_round_trip(tmp_path):
    segs = [Segment(0.0, 1.0, "A"), Segment(1.0, 2.5, "B")]
    path = save_segments(tmp_path / "s.json", segs, metadata={"target_class": 0})
    assert load_segments(path) == segs
    loaded, meta = load_segments(path, with_metadata=True)
    assert loaded == segs and meta == {"target_class": 0}
    with pytest.raises(ValueError, match="start_s < end_s"):
        Segment(1.0, 0.5, "A")


# -- noise, SNR, silence, VAD ------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["white", "pink"])
@pytest.mark.parametrize("target_db", [-5.0, 0.0, 12.5])
def test_add_noise_hits_snr(kind, target_db):
    x = SyntheticSpeaker(1, 0).utterance(1.0, SR, seed=0)
    y = add_noise(x, target_db, seed=0, kind=kind)
    assert abs(snr_db(x, y) - target_db) < 0.1
    assert torch.equal(y, add_noise(x, target_db, seed=0, kind=kind))


def test_pink_noise_has_falling_spectrum():
    x = torch.ones(1, SR) * 0.1
    n = (add_noise(x, 0.0, seed=1, kind="pink") - x)[0].numpy()
    spec = np.abs(np.fft.rfft(n)) ** 2
    f = np.fft.rfftfreq(len(n), 1 / SR)
    low, high = spec[(f > 100) & (f < 200)].mean(), spec[(f > 4000) & (f < 8000)].mean()
    assert 10 * np.log10(low / high) > 10  # 1/f: ~15 dB between these bands


@pytest.mark.parametrize("target_db", [-10.0, 0.0, 7.3, 20.0])
def test_mix_at_snr_hits_snr(target_db):
    a, b = make_speakers(2, seed=0)
    t, i = a.utterance(1.0, SR, seed=1), b.utterance(1.0, SR, seed=2)
    mix = mix_at_snr(t, i, target_db)
    assert abs(snr_db(t, mix) - target_db) < 0.1
    with pytest.raises(ValueError, match="same shape"):
        mix_at_snr(t, i[:, :-1], 0.0)
    with pytest.raises(ValueError, match="non-silent"):
        mix_at_snr(t, torch.zeros_like(i), 0.0)


def test_energy_vad_finds_silence():
    spk = SyntheticSpeaker(2, 0)
    speech = spk.utterance(1.0, SR, seed=0)
    wav, seg = pad_with_silence(speech, SR, before_s=0.5, after_s=0.3)
    assert wav.shape[-1] == int(1.8 * SR) and seg == Segment(0.5, 1.5, "speech")
    vad = energy_vad(wav, SR, frame_s=0.02, threshold_db=-40)[0]
    assert vad.shape == (90,)
    assert not vad[:25].any() and not vad[-15:].any()  # the padded silence
    assert vad[25:75].float().mean() > 0.5
    segs = mask_to_segments(vad, 0.02, min_gap_s=0.3)
    assert segs[0].start_s >= 0.5 - 1e-9 and segs[-1].end_s <= 1.5 + 1e-9


def test_noisy_with_silence_segments_are_where_the_speech_is():
    spk = SyntheticSpeaker(4, 0)
    wav, segs = build_noisy_with_silence(spk, SR, seed=2, layout=(0.4, 0.8, 0.5, 0.8, 0.3), snr_db=15.0)
    assert wav.shape == (1, int(2.8 * SR))
    assert [(s.start_s, s.end_s) for s in segs] == [pytest.approx((0.4, 1.2)), pytest.approx((1.7, 2.5))]
    times = torch.arange(wav.shape[-1]) / SR
    inside = segments_to_mask(segs, times)
    p_in = wav[0, inside].pow(2).mean()
    p_out = wav[0, ~inside].pow(2).mean()
    # outside the speech there is only noise, 15 dB below the speech power
    assert 10 * math.log10(p_out / p_in) == pytest.approx(-10 * math.log10(1 + 10**1.5), abs=0.5)
    vad = energy_vad(wav, SR, frame_s=0.02, threshold_db=-15)[0]
    t = torch.arange(vad.shape[0]) * 0.02 + 0.01
    frame_in = segments_to_mask(segs, t)
    assert vad[~frame_in].float().mean() < 0.05 and vad[frame_in].float().mean() > 0.3


def test_add_noise_validates():
    x = torch.zeros(1, 100)
    with pytest.raises(ValueError, match="silent"):
        add_noise(x, 10.0, seed=0)
    with pytest.raises(ValueError, match="white"):
        add_noise(torch.ones(1, 100), 10.0, seed=0, kind="brown")


# -- optional TTS ---------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_tts():
    from avxai.data import synthesize

    wav = synthesize("hello world", voice="en-us+f2", engine="espeak-ng", sample_rate=SR)
    assert wav.dim() == 2 and wav.shape[0] == 1 and wav.shape[1] > SR // 4


def test_tts_missing_engine_names_install(monkeypatch):
    from avxai.data import tts

    monkeypatch.setattr(tts.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng flite"):
        tts.synthesize("hello", engine="flite")


def test_speech_data_config_checks_its_speaker_split_and_renders_the_training_pool():
    cfg = SpeechDataConfig(train_speakers=3, train_utterances=2, utterance_s=0.5, crop_s=0.25, eval_speakers=(10, 12))
    pool = cfg.training_pool(8000, seed=0)
    assert len(pool) == 6 and pool.speakers == [0, 1, 2]
    assert all(u.shape == (4000,) for utts in pool.audio for u in utts)
    with pytest.raises(ValueError, match=r"eval_speakers \[2, 5\) must hold >= 1 ids above the training ids 0..2"):
        SpeechDataConfig(train_speakers=3, eval_speakers=(2, 5))
    with pytest.raises(ValueError, match="crop_s must be in"):
        SpeechDataConfig(crop_s=5.0, utterance_s=4.0)
    with pytest.raises(ValueError, match="train_speakers >= 2"):
        SpeechDataConfig(train_speakers=1)
    with pytest.raises(ValueError, match=r"must hold >= 2 ids"):
        cfg.check_heldout_ids("eval_speakers", (10, 11), at_least=2)


def test_heldout_speakers_refuses_the_checkpoints_training_speakers():
    doc = {"speakers": {"speaker_seed": 3, "train_ids": [0, 40]}}
    speakers = heldout_speakers(range(100, 102), doc)
    assert [(s.speaker_id, s.seed) for s in speakers] == [(100, 3), (101, 3)]
    with pytest.raises(ValueError, match=r"speaker ids \[38, 39\] were used in training"):
        heldout_speakers(range(38, 42), doc)

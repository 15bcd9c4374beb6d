"""The real test utterances (avxai/assets/real): turns and segments line up with the audio, noise at the SNR asked."""

import pytest
import torch

from avxai.data.real_speech import REAL_RATE, speech_with_gaps_and_noise, turns_utterance


def _rms(x):
    return float(x.double().pow(2).mean().sqrt())


@pytest.mark.parametrize("order", ["ABA", "BAB"])
def test_turns_cover_the_utterance_and_name_the_target(order):
    u = turns_utterance(order)
    assert u.waveform.shape[0] == 1 and u.sample_rate == REAL_RATE and u.target == order[0]
    spans = sorted(span for spans in u.segments.values() for span in spans)
    assert spans[0][0] == 0.0 and abs(spans[-1][1] - u.duration_s) < 1e-3
    assert all(abs(a[1] - b[0]) < 1e-3 for a, b in zip(spans, spans[1:]))  # back to back
    assert len(u.segments[order[0]]) == 2 and len(u.segments[order[1]]) == 1
    assert set(u.enroll) == {"A", "B"} and all(e.shape[0] == 1 for e in u.enroll.values())
    # every turn is speech at about -26 dBFS
    for s, e in spans:
        assert 0.02 < _rms(u.waveform[0, round(s * REAL_RATE):round(e * REAL_RATE)]) < 0.1


def test_cropped_target_turns_lower_the_uniform_share():
    full, short = turns_utterance("ABA"), turns_utterance("ABA", target_turn_s=1.0)
    assert full.target_share() > 0.6 and 0.4 < short.target_share() < 0.5
    assert all(0.8 < e - s < 1.2 for s, e in short.segments["A"])


def test_gaps_are_silent_but_for_the_noise_at_the_snr():
    u = speech_with_gaps_and_noise(snr_db=5, seed=3)
    again = speech_with_gaps_and_noise(snr_db=5, seed=3)
    assert torch.equal(u.waveform, again.waveform)
    assert not torch.equal(u.waveform, speech_with_gaps_and_noise(snr_db=5, seed=4).waveform)
    clean, noise = u.metadata["clean"], u.waveform - u.metadata["clean"]
    active = torch.zeros(clean.shape[-1], dtype=torch.bool)
    for s, e in u.segments["speech"]:
        assert abs(e - s - 0.5) < 0.25
        active[round(s * REAL_RATE):round(e * REAL_RATE)] = True
    assert clean[0, ~active].abs().max() == 0  # the gaps hold nothing but the noise
    snr = 10 * torch.log10(clean[0, active].double().pow(2).mean() / noise.double().pow(2).mean())
    assert abs(float(snr) - 5.0) < 0.01
    assert 0.4 < u.target_share() < 0.6


def test_bad_arguments_say_what_to_give():
    with pytest.raises(ValueError, match="ABA"):
        turns_utterance("AAB")
    with pytest.raises(ValueError, match="snr_db"):
        speech_with_gaps_and_noise(snr_db=float("nan"), seed=0)
    with pytest.raises(ValueError, match="talker"):
        speech_with_gaps_and_noise(snr_db=5, seed=0, talker="C")

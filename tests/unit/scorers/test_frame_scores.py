"""Frame-level scores (mean / max over all, region or detected frames), the one-column softmax refusal, the
sigmoid class score, and SpeakerCosine's enrollment checks (rate, length, several utterances)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avxai.scorers import ClassLogit, ClassLogProbability, ClassProbability, ClassSigmoid, FrameScore, SpeakerCosine

# 10 frames of 0.1 s: probabilities high on frames 3-5 (0.3-0.6 s) for input 0, 6-7 for input 1
PROBS = torch.full((2, 10), 0.1)
PROBS[0, 3:6] = 0.9
PROBS[1, 6:8] = 0.8


def test_mean_and_max_over_all_frames():
    all_mean = FrameScore("probability").prepare(PROBS)
    assert torch.allclose(all_mean(PROBS), PROBS.mean(dim=1))
    assert torch.allclose(FrameScore("probability", "max").prepare(PROBS)(PROBS), torch.tensor([0.9, 0.8]))
    info = all_mean.describe()
    assert info["frames"] == 10 and info["frames_scored"] == [10, 10] and info["reduce"] == "mean"


def test_a_region_in_seconds_picks_the_frames_whose_centre_lies_in_it():
    scorer = FrameScore("probability", region=(0.3, 0.6), frame_hop_s=0.1).prepare(PROBS)
    assert scorer.frames[0].nonzero().flatten().tolist() == [3, 4, 5]
    assert torch.allclose(scorer(PROBS), torch.tensor([0.9, 0.1]))
    assert scorer.describe()["frame_hop_from"] == "model" and scorer.describe()["region_s"] == [0.3, 0.6]
    # the hop derived from the input duration: 1 s over 10 frames
    derived = FrameScore("probability", region=(0.3, 0.6), duration_s=1.0).prepare(PROBS)
    assert torch.equal(derived.frames, scorer.frames)
    assert derived.describe()["frame_hop_s"] == pytest.approx(0.1)
    assert derived.describe()["frame_hop_from"] == "input duration / output frames"
    # narrower than a frame: the frame holding its midpoint
    assert FrameScore(region=(0.41, 0.42), frame_hop_s=0.1).prepare(PROBS).frames[0].nonzero().item() == 4
    with pytest.raises(ValueError, match="frame hop"):
        FrameScore(region=(0.3, 0.6)).prepare(PROBS)
    with pytest.raises(ValueError, match="starts after the model's last frame"):
        FrameScore(region=(2.0, 3.0), frame_hop_s=0.1).prepare(PROBS)


def test_detected_frames_are_fixed_at_prepare_time():
    scorer = FrameScore("probability", detect=True, threshold=0.5).prepare(PROBS)
    assert scorer.frames[0].nonzero().flatten().tolist() == [3, 4, 5]
    assert scorer.frames[1].nonzero().flatten().tolist() == [6, 7]
    masked = PROBS.clone()
    masked[0, 3:6] = 0.2  # the evidence removed: the same frames now score low
    assert torch.allclose(scorer(masked), torch.tensor([0.2, 0.8]))
    assert scorer.describe()["threshold"] == 0.5 and scorer.describe()["frames_scored"] == [3, 2]
    with pytest.raises(ValueError, match="no frame of input 0 is detected"):
        FrameScore(detect=True, threshold=0.95).prepare(PROBS)


def test_logit_and_sigmoid_outputs():
    logits = torch.logit(PROBS)
    sig = FrameScore("sigmoid", detect=True).prepare(logits)
    assert torch.equal(sig.frames, FrameScore(detect=True).prepare(PROBS).frames)
    assert torch.allclose(sig(logits), torch.tensor([0.9, 0.8]), atol=1e-6)
    raw = FrameScore("logit", "max").prepare(logits)
    assert torch.allclose(raw(logits), logits.amax(dim=1))
    # a one-column logit under "probability": refused, the softmax of one column would be constant
    with pytest.raises(ValueError, match="not a probability in \\[0, 1\\].*'logit' or 'sigmoid'"):
        FrameScore("probability").prepare(logits)


def test_several_columns_pick_a_target():
    # (n, frames, 3 speakers): speaker 2 active on frames 3-5
    values = torch.zeros(1, 10, 3)
    values[0, 3:6, 2] = 4.0
    prepared = FrameScore("probability", region=(0.3, 0.6), frame_hop_s=0.1).prepare(values)
    assert prepared.target == 2  # the column with the highest mean over the region
    expected = values.softmax(-1)[0, 3:6, 2].mean()
    assert prepared(values).item() == pytest.approx(expected.item())
    assert FrameScore("sigmoid", target=0).prepare(values)(values).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="out of range"):
        FrameScore(target=5).prepare(values)(values)


def test_frame_score_is_differentiable_and_checks_shapes():
    logits = torch.logit(PROBS).requires_grad_()
    scorer = FrameScore("sigmoid", detect=True).prepare(logits.detach())
    scorer(logits).sum().backward()
    assert (logits.grad[0, :3] == 0).all() and (logits.grad[0, 3:6] > 0).all()
    with pytest.raises(ValueError, match="per-frame outputs"):
        FrameScore().prepare(torch.zeros(2))
    with pytest.raises(ValueError, match="frame count must not depend"):
        scorer(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="prepared"):
        FrameScore()(PROBS)
    with pytest.raises(ValueError, match="region or detect"):
        FrameScore(region=(0, 1), detect=True)
    with pytest.raises(ValueError, match="output must be one of"):
        FrameScore("softmax")


def test_frame_score_under_inference_mode_then_autograd():
    with torch.inference_mode():
        unmasked = torch.logit(PROBS)
    scorer = FrameScore("sigmoid", "max", detect=True).prepare(unmasked)
    x = torch.logit(PROBS).requires_grad_()
    scorer(x).sum().backward()  # the prepared frames are normal tensors: no "inference tensors" error
    assert x.grad.abs().sum() > 0


def test_one_column_softmax_is_refused_and_sigmoid_is_offered():
    one = torch.tensor([[0.3], [-2.0]])
    for cls in (ClassProbability, ClassLogProbability):
        with pytest.raises(ValueError, match="one-column output is constant.*ClassSigmoid"):
            cls(0)(one)
        with pytest.raises(ValueError, match="one-column"):
            cls(None).prepare(one)
    assert torch.allclose(ClassSigmoid(0)(one), one.sigmoid().squeeze(1))
    assert torch.equal(ClassLogit(0)(one), one.squeeze(1))
    assert ClassSigmoid(None).prepare(one).target.tolist() == [0, 0]


class Embed(torch.nn.Module):
    """A toy embedder at 16 kHz needing at least 400 samples (one window). Shape: ``(b, 1, t)`` -> ``(b, 3)``."""

    sample_rate = 16000

    def forward(self, wav):
        windows = wav.unfold(-1, 400, 400)  # (b, 1, n, 400): empty below 400 samples
        if windows.shape[2] == 0:
            raise RuntimeError("Kernel size can't be greater than actual input size")
        return torch.stack([windows.mean(dim=(1, 2, 3)), windows.abs().mean(dim=(1, 2, 3)),
                            windows.std(dim=3).mean(dim=(1, 2))], dim=1)


def test_speaker_cosine_checks_the_enrollment_rate_like_the_input():
    enroll = torch.randn(1, 1, 4000, generator=torch.Generator().manual_seed(0))
    scorer = SpeakerCosine(Embed(), enroll, sample_rate=16000)
    assert scorer(Embed()(enroll)).item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="enrollment is at 8000 Hz but the model takes 16000 Hz"):
        SpeakerCosine(Embed(), enroll, sample_rate=8000)
    with pytest.raises(ValueError, match="give the enrollment's sample_rate"):
        SpeakerCosine(Embed(), enroll)
    # embeddings need no rate
    assert SpeakerCosine(None, Embed()(enroll)).enrollment.shape == (1, 3)


def test_speaker_cosine_refuses_an_enrollment_too_short_to_embed():
    short = torch.randn(1, 1, 200, generator=torch.Generator().manual_seed(1))
    with pytest.raises(ValueError, match=r"cannot embed the enrollment of 200 samples \(0.013 s\).*too short"):
        SpeakerCosine(Embed(), short, sample_rate=16000)
    with pytest.raises(ValueError, match="too short: 3000 samples"):
        SpeakerCosine(Embed(), torch.randn(1, 1, 3000), sample_rate=16000, min_samples=8000)


def test_several_enrollment_utterances_average_their_unit_embeddings():
    g = torch.Generator().manual_seed(2)
    utts = [torch.randn(1, 1, 4000, generator=g), 3.0 * torch.randn(1, 1, 6000, generator=g),
            torch.randn(800, generator=g)]
    scorer = SpeakerCosine(Embed(), utts, sample_rate=16000)
    with torch.no_grad():
        units = [F.normalize(Embed()(u.view(1, 1, -1)), dim=-1) for u in utts]
    assert torch.allclose(scorer.enrollment, torch.cat(units).mean(0, keepdim=True))
    info = scorer.describe()
    assert info["enrollment_utterances"] == 3 and "mean of the L2-normalised" in info["enrollment"]
    with pytest.raises(ValueError, match="utterance 1 .*too short"):
        SpeakerCosine(Embed(), [utts[0], torch.randn(1, 1, 100)], sample_rate=16000)
    with pytest.raises(ValueError, match="empty"):
        SpeakerCosine(Embed(), [], sample_rate=16000)
    assert math.isfinite(scorer(Embed()(utts[0])).item())

import math

import pytest
import torch

from avxai.scorers import SDR, SISDR, ClassLogit, ClassProbability, SpeakerCosine, bss_sdr, si_sdr


def _orthogonal_pair(n=16000, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(n, generator=g)
    noise = torch.randn(n, generator=g)
    s, noise = s - s.mean(), noise - noise.mean()
    noise = noise - (noise @ s) / (s @ s) * s  # exactly orthogonal to s
    return s, noise


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 12.5])
def test_si_sdr_matches_the_formula_on_known_signals(snr_db):
    s, noise = _orthogonal_pair()
    noise = noise / noise.norm() * s.norm() * 10 ** (-snr_db / 20)
    for gain in (1.0, 0.1, 7.0):  # scale invariance
        assert si_sdr(gain * (s + noise), s).item() == pytest.approx(snr_db, abs=1e-3)
    scorer = SISDR(s.view(1, 1, -1)).prepare(s.view(1, 1, -1))
    assert scorer((s + noise).view(1, 1, -1)).item() == pytest.approx(snr_db, abs=1e-3)


def test_sdr_matches_fast_bss_eval():
    fast_bss_eval = pytest.importorskip("fast_bss_eval")
    s, noise = _orthogonal_pair(8000, seed=1)
    est = torch.stack([s + 0.3 * noise, s + 0.05 * noise, 0.5 * s + noise])
    ref = s.expand(3, -1)
    # bss_sdr computes in float64 (float32 loses ~1e-3 dB at high SDR), so the reference does too
    # one row at a time: torch 2.11's batched MKL solve fails once torch.set_num_threads(n > 1) has run in the
    # process (another test does), see bss_sdr
    expected = torch.cat([fast_bss_eval.sdr(ref[i:i + 1].double().unsqueeze(1), est[i:i + 1].double().unsqueeze(1),
                                            filter_length=512).squeeze(1) for i in range(3)]).float()
    assert torch.allclose(bss_sdr(est, ref), expected, atol=1e-4)
    scorer = SDR(s.view(1, -1)).prepare(s.view(1, 1, -1))
    assert torch.allclose(scorer(est.unsqueeze(1)), expected, atol=1e-4)
    assert expected[1] > expected[0] > expected[2]


def test_reference_rows_follow_inputs_modulo_batch():
    s0, n0 = _orthogonal_pair(4000, 2)
    s1, n1 = _orthogonal_pair(4000, 3)
    refs = torch.stack([s0, s1]).unsqueeze(1)
    scorer = SISDR(refs).prepare(refs)
    out = torch.stack([s0 + n0, s1 + 0.1 * n1, s0 + n0, s1 + 0.1 * n1]).unsqueeze(1)
    scores = scorer(out)
    assert torch.allclose(scores[:2], scores[2:])
    assert scores[1] > scores[0]


def test_self_reference_scores_the_unmasked_output_as_perfect():
    s, noise = _orthogonal_pair(4000)
    out = (s + 0.2 * noise).view(1, 1, -1)
    scorer = SISDR(None).prepare(out)
    assert scorer(out).item() > 60
    assert scorer(s.view(1, 1, -1)).item() < 20


def test_separation_source_is_fixed_from_the_unmasked_run():
    s0, _ = _orthogonal_pair(4000, 4)
    s1, _ = _orthogonal_pair(4000, 5)
    refs = torch.stack([s0, s1]).unsqueeze(0)  # (1, 2 sources, time)
    unmasked = torch.stack([s1, s0]).unsqueeze(0)  # the model outputs the sources swapped
    scorer = SISDR(refs, source=0).prepare(unmasked)
    assert scorer.channel == 1
    # a perturbed output where channel 0 now resembles source 0 better: the scorer still reads channel 1
    flipped = torch.stack([s0, 0.5 * s0 + s1]).unsqueeze(0)
    assert scorer(flipped).item() == pytest.approx(si_sdr(0.5 * s0 + s1, s0).item(), abs=1e-4)


def test_bad_references_raise():
    s, _ = _orthogonal_pair(4000)
    with pytest.raises(ValueError, match="silent"):
        SDR(torch.zeros(1, 4000))
    with pytest.raises(ValueError, match="samples but the reference has"):
        SDR(s.view(1, -1)).prepare(s[:3000].view(1, 1, -1))
    with pytest.raises(ValueError, match="NaN"):
        SISDR(s.view(1, -1)).prepare(torch.full((1, 1, 4000), float("nan")))


def test_class_scores():
    logits = torch.tensor([[1.0, 3.0, 0.0], [2.0, 0.0, 1.0]])
    assert torch.equal(ClassLogit(1)(logits), torch.tensor([3.0, 0.0]))
    prepared = ClassLogit(None).prepare(logits)
    assert prepared.target.tolist() == [1, 0]
    assert torch.equal(prepared(logits), torch.tensor([3.0, 2.0]))
    probs = ClassProbability(2)(logits)
    assert torch.allclose(probs, logits.softmax(1)[:, 2])
    with pytest.raises(ValueError, match="out of range"):
        ClassLogit(5)(logits)


def test_speaker_cosine():
    class Embed(torch.nn.Module):
        def forward(self, wav):
            return torch.stack([wav.mean(dim=(1, 2)), wav.abs().mean(dim=(1, 2)), wav.std(dim=(1, 2))], dim=1)

    enroll = torch.randn(1, 1, 1000, generator=torch.Generator().manual_seed(0))
    scorer = SpeakerCosine(Embed(), enroll)
    same = Embed()(enroll)
    assert scorer(same).item() == pytest.approx(1.0, abs=1e-6)
    other = torch.tensor([[1.0, 0.0, 0.0]])
    expected = torch.nn.functional.cosine_similarity(other, same)
    assert scorer(other).item() == pytest.approx(expected.item(), abs=1e-6)
    with pytest.raises(ValueError, match="silent"):
        SpeakerCosine(Embed(), torch.zeros(1, 1, 1000))
    with pytest.raises(ValueError, match="embeddings"):
        scorer(torch.zeros(2, 5))
    assert math.isclose(SpeakerCosine(None, same)(same).item(), 1.0, abs_tol=1e-6)

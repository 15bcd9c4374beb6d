"""Enhancement and separation: scorers on known signals, fixed source order, IBM metrics, models, tasks, CLI."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from avxai.data.speech_mixtures import (
    UtterancePool, band_limited_noise, enhancement_batch, noisy_utterance, separation_batch, two_speaker_mixture,
)
from avxai.data.synthetic import SyntheticSpeaker
from avxai.io.audio import save_audio
from avxai.methods import METHODS, OcclusionConfig, get_method
from avxai.metrics.masks import (
    energy_share, ibm_on_grid, ideal_binary_mask, mask_iou, mask_scores, preserve_delete_scores,
)
from avxai.modalities import Spectrogram
from avxai.models import load_model, save_model
from avxai.models.enhancement import EnhancerConfig, MaskingEnhancer
from avxai.models.separation import Separator, SeparatorConfig, small_convtasnet
from avxai.scorers import SDR, SISDR, si_sdr

SR = 8000
N_FFT, HOP = 256, 64
CUTOFF_HZ = 1000.0  # the toy separator's band split


# ---------------------------------------------------------------------------------------------
# toy models with known answers
# ---------------------------------------------------------------------------------------------
class BandSplit(nn.Module):
    """Toy separator: channel 0 = the input below ``CUTOFF_HZ``, channel 1 = above (ideal FFT filters).

    With ``sort_by_energy`` the louder band comes first, so masking one band can swap the outputs.
    Shape: ``(n, 1, time) -> (n, 2, time)``.
    """

    def __init__(self, sort_by_energy: bool = False, sample_rate: int = SR):
        super().__init__()
        self.sort_by_energy = sort_by_energy
        self.sample_rate = sample_rate

    def forward(self, x):
        spec = torch.fft.rfft(x[:, 0], dim=-1)
        low = torch.fft.rfftfreq(x.shape[-1], 1.0 / self.sample_rate) < CUTOFF_HZ
        a = torch.fft.irfft(spec * low, n=x.shape[-1])
        b = torch.fft.irfft(spec * ~low, n=x.shape[-1])
        out = torch.stack([a, b], dim=1)
        if self.sort_by_energy:
            louder_b = (b.pow(2).sum(-1) > a.pow(2).sum(-1)).view(-1, 1, 1)
            out = torch.where(louder_b, out.flip(1), out)
        return out


def tones(freqs_amps, seconds=0.5, seed=0):
    """Sum of sines plus a little noise per row: ``[(f, a), ...]`` -> ``(1, time)``."""
    t = torch.arange(int(seconds * SR)) / SR
    g = torch.Generator().manual_seed(seed)
    sig = sum(a * torch.sin(2 * math.pi * f * t + float(torch.rand(1, generator=g)) * 6.28) for f, a in freqs_amps)
    return sig.view(1, -1).float()


def low_high_mixture(low_amp=0.5, high_amp=0.2, seed=0, noise=0.0):
    """A low-band source (300 + 600 Hz) and a high-band source (2000 + 2600 Hz), plus white noise of std
    ``noise`` that belongs to neither (it keeps SDRs finite and away from numerical precision).

    Shape: mixture ``(1, 1, t)``, sources ``(1, 2, t)``.
    """
    low = tones([(300, low_amp), (600, low_amp / 2)], seed=seed)
    high = tones([(2000, high_amp), (2600, high_amp / 2)], seed=seed + 1)
    floor = noise * torch.randn(low.shape, generator=torch.Generator().manual_seed(seed + 2))
    return (low + high + floor).view(1, 1, -1), torch.stack([low, high], dim=1)


# ---------------------------------------------------------------------------------------------
# scorers on known signals
# ---------------------------------------------------------------------------------------------
def orthogonal(n=8000, seed=0):
    g = torch.Generator().manual_seed(seed)
    s, noise = torch.randn(n, generator=g), torch.randn(n, generator=g)
    s, noise = s - s.mean(), noise - noise.mean()
    return s, noise - (noise @ s) / (s @ s) * s


@pytest.mark.parametrize("snr_db", [-3.0, 6.0])
def test_si_sdr_is_the_power_ratio_for_orthogonal_noise(snr_db):
    s, n = orthogonal()
    n = n * (s.pow(2).sum() / n.pow(2).sum() / 10 ** (snr_db / 10)).sqrt()  # known noise power
    expected = 10 * math.log10(s.pow(2).sum() / n.pow(2).sum())
    assert expected == pytest.approx(snr_db, abs=1e-4)
    scorer = SISDR(s.view(1, 1, -1)).prepare(s.view(1, 1, -1))
    for gain in (1.0, 0.25):
        assert scorer((gain * (s + n)).view(1, 1, -1)).item() == pytest.approx(expected, abs=1e-3)


def test_sdr_scorer_matches_fast_bss_eval_directly():
    fast_bss_eval = pytest.importorskip("fast_bss_eval")
    s, n = orthogonal(6000, seed=3)
    est = torch.stack([s + 0.5 * n, s + 0.1 * n, 0.3 * s + n]).unsqueeze(1)
    ref = s.view(1, 1, -1)
    # one row at a time: a batched solve hangs in torch 2.11 + MKL once torch.set_num_threads ran (see bss_sdr)
    expected = torch.cat([fast_bss_eval.sdr(ref, est[i:i + 1], filter_length=512, clamp_db=100.0).squeeze(1)
                          for i in range(3)])
    scorer = SDR(ref).prepare(s.view(1, 1, -1))
    assert torch.allclose(scorer(est), expected, atol=1e-3)


def test_sdr_survives_torch_set_num_threads():
    """torch 2.11 + MKL: batched linalg.solve fails or hangs after set_num_threads; bss_sdr solves row by row.

    Runs in a subprocess: once set, the broken thread state cannot be undone in this process.
    """
    pytest.importorskip("fast_bss_eval")
    code = (
        "import torch, fast_bss_eval\n"
        "from avxai.scorers import bss_sdr\n"
        "g = torch.Generator().manual_seed(0)\n"
        "ref = torch.randn(3, 4000, generator=g, dtype=torch.float64)\n"
        "est = ref + torch.tensor([[0.5], [0.2], [1.0]], dtype=torch.float64) * torch.randn(3, 4000, generator=g,"
        " dtype=torch.float64)\n"
        "torch.set_num_threads(2)\n"
        "got = bss_sdr(est, ref)\n"
        "rows = torch.cat([-fast_bss_eval.sdr_loss(est[i:i+1, None], ref[i:i+1, None]).squeeze(1) for i in range(3)])\n"
        "assert torch.allclose(got, rows, atol=1e-6), (got, rows)\n"
        "print('ok')\n"
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]


@pytest.mark.parametrize("cls", [SDR, SISDR])
def test_a_silent_output_scores_the_floor_not_zero_db(cls):
    """A deletion curve ends with the whole input removed: the silent output must score lowest (-100 dB),
    not the 0 dB of 0/0, or the curve climbs back at its last step."""
    s, n = orthogonal(4000, seed=5)
    scorer = cls(s.view(1, 1, -1)).prepare(s.view(1, 1, -1))
    silent, noisy = scorer(torch.zeros(1, 1, 4000)).item(), scorer((s + 3.0 * n).view(1, 1, -1)).item()
    assert silent == pytest.approx(-100.0, abs=1e-3) and noisy > silent + 80


def test_self_reference_sdr_scores_the_unmasked_output_at_the_clamp():
    x = tones([(440, 0.3), (1200, 0.1)]).view(1, 1, -1)
    scorer = SDR(None).prepare(x)
    assert scorer(x).item() == pytest.approx(100.0, abs=0.5)  # identical output: the clamp, not inf
    noisy = x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert 0 < scorer(noisy).item() < 60


# ---------------------------------------------------------------------------------------------
# separation: the source order is fixed from the unperturbed run
# ---------------------------------------------------------------------------------------------
def test_source_order_is_fixed_under_masking_that_would_swap_the_outputs():
    mixture, sources = low_high_mixture(low_amp=0.5, high_amp=0.2)
    model = BandSplit(sort_by_energy=True)
    unmasked = model(mixture)
    scorer = SISDR(sources, source=0).prepare(unmasked)  # source 0 = the (louder) low band -> channel 0
    assert scorer.channel.tolist() == [0]
    modality = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP)
    freqs = torch.as_tensor(modality.coordinates()["freq"])
    remove_low = torch.ones(1, *modality.grid_shape)
    remove_low[:, freqs < CUTOFF_HZ] = 0.0
    out = model(modality.perturb(remove_low))
    # the perturbed low band is now the quieter one, so the toy swapped its outputs ...
    assert out[0, 0].pow(2).sum() > 10 * out[0, 1].pow(2).sum()
    # ... and the scorer still reads channel 0 (now the high band): a very low score, not a re-matched one
    score = scorer(out).item()
    assert score == pytest.approx(si_sdr(out[0, 0], sources[0, 0]).item(), abs=1e-4)
    assert score < -20 and si_sdr(out[0, 1], sources[0, 0]).item() > score + 20


def test_source_order_is_matched_per_input_of_a_batch():
    m0, s0 = low_high_mixture(low_amp=0.5, high_amp=0.2, seed=0)   # low louder: low band on channel 0
    m1, s1 = low_high_mixture(low_amp=0.1, high_amp=0.4, seed=2)   # high louder: low band on channel 1
    model = BandSplit(sort_by_energy=True)
    mixtures, refs = torch.cat([m0, m1]), torch.cat([s0, s1])
    scorer = SDR(refs, source=0).prepare(model(mixtures))
    assert scorer.channel.tolist() == [0, 1]
    scores = scorer(model(mixtures))
    assert (scores > 20).all()  # each input is scored on its own low-band channel
    assert scorer.describe()["output_channel"] == [0, 1]


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


# ---------------------------------------------------------------------------------------------
# bad inputs raise clear errors
# ---------------------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_value_errors():
    mixture, sources = low_high_mixture()
    modality = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP)
    occ = get_method("occlusion")
    cfg = OcclusionConfig(window=(64, 16))
    with pytest.raises(ValueError, match="samples but the reference has"):
        occ(BandSplit(), modality, SDR(sources[..., :-100], source=0), cfg)
    with pytest.raises(ValueError, match="silent"):
        SDR(torch.zeros_like(sources), source=1)
    with pytest.raises(ValueError, match="expects audio at 16000 Hz but the input is at 8000 Hz"):
        occ(BandSplit(sample_rate=16000), modality, SDR(sources), cfg)

    class NaNModel(nn.Module):
        sample_rate = SR

        def forward(self, x):
            return x * float("nan")

    with pytest.raises(ValueError, match="NaN"):
        occ(NaNModel(), modality, SDR(None), cfg)
    with pytest.raises(ValueError, match="source 3 does not exist"):
        occ(BandSplit(), modality, SDR(None, source=3), cfg)
    with pytest.raises(ValueError, match="same shape"):
        ideal_binary_mask(sources[0, 0], sources[0, 1, :-1], N_FFT, HOP)
    with pytest.raises(ValueError, match="same grid"):
        mask_iou(torch.rand(3, 4), torch.ones(4, 3))


# ---------------------------------------------------------------------------------------------
# masks metrics
# ---------------------------------------------------------------------------------------------
def test_ideal_binary_mask_follows_the_louder_source_on_the_spectrogram_grid():
    mixture, sources = low_high_mixture(low_amp=0.3, high_amp=0.3)
    ibm = ideal_binary_mask(sources[:, 0:1], sources[:, 1:2], N_FFT, HOP)  # (1, 1, t) inputs
    modality = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP)
    assert ibm.shape == modality.grid_shape
    freqs = torch.as_tensor(modality.coordinates()["freq"])
    for f_hz in (300, 600):
        assert ibm[(freqs - f_hz).abs().argmin()].mean() == 1.0
    for f_hz in (2000, 2600):
        assert ibm[(freqs - f_hz).abs().argmin()].mean() == 0.0
    # a high threshold keeps fewer cells
    assert ideal_binary_mask(sources[0, 0], sources[0, 1], N_FFT, HOP, threshold_db=20).sum() < ibm.sum()


def test_ibm_on_the_modality_grid_linear_and_mel():
    mixture, sources = low_high_mixture(low_amp=0.3, high_amp=0.3)
    lin = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP)
    direct = ideal_binary_mask(sources[0, 0], sources[0, 1], N_FFT, HOP)
    assert (ibm_on_grid(lin, sources[0, 0]) == direct).float().mean() > 0.99  # interferer = mixture - target
    mel = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP, n_mels=40)
    ibm = ibm_on_grid(mel, sources[0, 0])
    assert ibm.shape == mel.grid_shape
    centres = torch.as_tensor(mel.coordinates()["mel"])
    for f_hz, expected in ((300, 1.0), (600, 1.0), (2000, 0.0), (2600, 0.0)):
        assert ibm[(centres - f_hz).abs().argmin()].mean() == expected
    with pytest.raises(ValueError, match="same recording"):
        ibm_on_grid(lin, sources[0, 0, :-5])


def test_mask_scores_of_an_attribution_keep_its_positive_cells():
    mixture, sources = low_high_mixture(low_amp=0.3, high_amp=0.3, noise=0.01)
    modality = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP)
    scorer = SISDR(sources, source=0)
    expl = get_method("occlusion")(BandSplit(), modality, scorer, OcclusionConfig(window=(8, 32), stride=(8, 32)))
    got = mask_scores(BandSplit(), modality, scorer, expl)
    assert got["area"] == pytest.approx(float((expl.attribution[0] > 0).float().mean()))
    assert got["unmasked"] == pytest.approx(float(expl.scores["unmasked"][0]), abs=1e-4)
    assert got["preserved"] > got["deleted"] + 20  # the positive cells are the low band's


def test_mask_iou_definitions():
    truth = torch.zeros(10, 10, dtype=torch.bool)
    truth[:3] = True  # area 0.3
    ramp = torch.arange(100, 0, -1).float().view(10, 10)  # descending in grid order: top cells = first rows
    assert mask_iou(ramp, truth).item() == pytest.approx(1.0)
    assert mask_iou(-ramp, truth).item() == pytest.approx(0.0)
    assert mask_iou(ramp, truth, area=0.6).item() == pytest.approx(0.5)  # 30 of 60 kept cells are in the truth
    batch = mask_iou(torch.stack([ramp, -ramp]), truth)
    assert batch.tolist() == pytest.approx([1.0, 0.0])
    assert energy_share(torch.ones(10), 3 * torch.ones(10)) == pytest.approx(0.1)


# ---------------------------------------------------------------------------------------------
# generated data
# ---------------------------------------------------------------------------------------------
def test_generated_mixtures_keep_references_at_the_asked_ratio():
    spk_a, spk_b = SyntheticSpeaker(100, 0), SyntheticSpeaker(101, 0)
    m = two_speaker_mixture(spk_a, spk_b, 0.5, SR, sir_db=3.0, seed=1)
    assert torch.allclose(m.sources.sum(0, keepdim=True), m.mixture, atol=1e-6)
    p = m.sources.double().pow(2).mean(-1)
    assert 10 * math.log10(p[0] / p[1]) == pytest.approx(3.0, abs=1e-3)
    again = two_speaker_mixture(spk_a, spk_b, 0.5, SR, sir_db=3.0, seed=1)
    assert torch.equal(again.mixture, m.mixture)
    for kind in ("white", "babble", "band"):
        n = noisy_utterance(spk_a, 0.5, SR, snr_db=5.0, kind=kind, seed=2)
        ratio = n.clean.double().pow(2).mean() / n.noise.double().pow(2).mean()
        assert 10 * math.log10(ratio) == pytest.approx(5.0, abs=1e-3)


def test_band_limited_noise_stays_in_its_band():
    x = band_limited_noise(8000, SR, seed=0, low_hz=500.0, high_hz=1000.0)[0].double()
    power = torch.fft.rfft(x).abs().pow(2)
    f = torch.fft.rfftfreq(x.numel(), 1 / SR)
    inside = power[(f > 450) & (f < 1100)].sum() / power.sum()
    assert inside > 0.99
    with pytest.raises(ValueError, match="Nyquist"):
        band_limited_noise(100, SR, 0, 500.0, 6000.0)


def test_training_batches_have_the_documented_shapes():
    pool = UtterancePool([0, 1, 2], SR, utterances=1, utterance_s=1.0, seed=0)
    rng = np.random.default_rng(0)
    noisy, clean = enhancement_batch(pool, 3, 2000, rng)
    assert noisy.shape == clean.shape == (3, 1, 2000)
    mix, src = separation_batch(pool, 2, 2000, rng)
    assert mix.shape == (2, 1, 2000) and src.shape == (2, 2, 2000)
    assert torch.allclose(src.sum(1, keepdim=True), mix, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
TINY_ENH = EnhancerConfig(sample_rate=SR, n_fft=N_FFT, hop_length=HOP, hidden=8, dilations=(1, 2))
TINY_SEP = SeparatorConfig(sample_rate=SR, enc_kernel_size=16, enc_num_feats=16, msk_num_feats=8,
                           msk_num_hidden_feats=16, msk_num_layers=2, msk_num_stacks=1)


def test_masking_enhancer_with_an_open_mask_returns_its_input():
    torch.manual_seed(0)
    model = MaskingEnhancer(TINY_ENH).eval()
    x = tones([(440, 0.3), (1500, 0.1)]).view(1, 1, -1)
    y = model(x)
    assert y.shape == x.shape
    m = model.mask(x)
    assert m.shape == (1, N_FFT // 2 + 1, x.shape[-1] // HOP + 1) and 0 <= m.min() and m.max() <= 1
    with torch.no_grad():
        model.out.bias.fill_(30.0)  # sigmoid(30) = 1: the mask keeps everything
        model.out.weight.zero_()
    assert torch.allclose(model(x), x, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(batch, 1, time\)"):
        model(x.view(1, -1))


def test_checkpoints_of_both_models_round_trip(tmp_path):
    torch.manual_seed(0)
    enh = MaskingEnhancer(TINY_ENH).eval()
    path = save_model(enh, tmp_path / "enh" / "enhancer.pt", architecture="enhancer", kwargs=enh.config,
                      extra={"note": "test"})
    x = tones([(440, 0.3)]).view(1, 1, -1)
    assert torch.equal(load_model(path)(x), enh(x))
    sep = Separator(small_convtasnet(TINY_SEP), SR, 2).eval()
    path = save_model(sep, tmp_path / "sep" / "convtasnet.pt", architecture="separator", kwargs=TINY_SEP)
    loaded = load_model(path)
    assert loaded.sample_rate == SR and torch.equal(loaded(x), sep(x))
    # a checkpoint of another size lists the mismatching keys
    other = tmp_path / "other"
    bigger = dataclasses.replace(TINY_SEP, enc_num_feats=32)
    save_model(Separator(small_convtasnet(bigger), SR, 2), other / "convtasnet.pt", architecture="separator",
               kwargs=bigger)
    doc = json.loads((other / "convtasnet.json").read_text())
    (other / "convtasnet.json").write_text(json.dumps({**doc, "model": dataclasses.asdict(TINY_SEP)}))
    with pytest.raises(ValueError, match="shape mismatches: encoder.weight"):
        load_model(other / "convtasnet.pt")


# ---------------------------------------------------------------------------------------------
# tasks and the command line
# ---------------------------------------------------------------------------------------------
def _task_files(tmp_path):
    torch.manual_seed(0)
    save_model(MaskingEnhancer(TINY_ENH), tmp_path / "enhancer.pt", architecture="enhancer", kwargs=TINY_ENH)
    save_model(Separator(small_convtasnet(TINY_SEP), SR, 2), tmp_path / "convtasnet.pt", architecture="separator",
               kwargs=TINY_SEP)
    mixture, sources = low_high_mixture()
    save_audio(tmp_path / "mix.wav", mixture[0], SR)
    save_audio(tmp_path / "s1.wav", sources[0, :1], SR)
    save_audio(tmp_path / "s2.wav", sources[0, 1:], SR)
    save_audio(tmp_path / "short.wav", sources[0, :1, :-10], SR)
    return mixture, sources


def _args(tmp_path, **kw):
    base = dict(input=str(tmp_path / "mix.wav"), reference=None, source=None, segments=None, score=None,
                model=None, architecture=None, resample=False, mono=False, n_fft=N_FFT, hop_length=HOP, n_mels=None,
                perturbation=None)
    base.update(kw)
    return argparse.Namespace(**base)


def _prepare(name, args):
    """The problem ``avxai explain --task name`` builds from the parsed flags."""
    from avxai.cli import task_model, task_options
    from avxai.tasks import TASKS

    task = TASKS[name]
    return task.build(task_model(task, args), task_options(task, args))


def test_tasks_build_model_modality_and_scorer(tmp_path):
    from avxai.scorers import SDR as SDRClass
    from avxai.tasks import TASKS

    mixture, sources = _task_files(tmp_path)
    enh = _prepare("enhancement", _args(tmp_path, model=str(tmp_path / "enhancer.pt"),
                                             reference=str(tmp_path / "s1.wav"), score="si-sdr"))
    assert isinstance(enh.scorer, SISDR) and enh.scorer.reference.shape == (1, 1, mixture.shape[-1])
    assert enh.modality.grid_shape[0] == N_FFT // 2 + 1
    own = _prepare("enhancement", _args(tmp_path, model=str(tmp_path / "enhancer.pt")))
    assert isinstance(own.scorer, SDRClass) and own.scorer.reference is None
    sep = _prepare("separation", _args(tmp_path, model=str(tmp_path / "convtasnet.pt"), source=1,
                                            reference=f"{tmp_path / 's1.wav'},{tmp_path / 's2.wav'}"))
    assert sep.scorer.reference.shape == (1, 2, mixture.shape[-1]) and sep.scorer.source == 1
    with pytest.raises(ValueError, match="--source 2 does not exist"):
        _prepare("separation", _args(tmp_path, model=str(tmp_path / "convtasnet.pt"), source=2,
                                          reference=f"{tmp_path / 's1.wav'},{tmp_path / 's2.wav'}"))
    with pytest.raises(ValueError, match="same recording length"):
        _prepare("enhancement", _args(tmp_path, model=str(tmp_path / "enhancer.pt"),
                                           reference=str(tmp_path / "short.wav")))
    # an 8 kHz file for a 16 kHz model: refused unless --resample
    cfg = EnhancerConfig(sample_rate=16000, n_fft=N_FFT, hop_length=HOP, hidden=8, dilations=(1,))
    save_model(MaskingEnhancer(cfg), tmp_path / "enh16.pt", architecture="enhancer", kwargs=cfg)
    with pytest.raises(ValueError, match="is sampled at 8000 Hz but 16000 Hz"):
        _prepare("enhancement", _args(tmp_path, model=str(tmp_path / "enh16.pt")))
    resampled = _prepare("enhancement", _args(tmp_path, model=str(tmp_path / "enh16.pt"),
                                                   resample=True))
    assert resampled.modality.sample_rate == 16000


def test_cli_explains_a_separated_source(tmp_path):
    from avxai.cli import main

    _task_files(tmp_path)
    out = tmp_path / "out"
    code = main(["explain", "--task", "separation", "--method", "occlusion", "--input", str(tmp_path / "mix.wav"),
                 "--reference", f"{tmp_path / 's1.wav'},{tmp_path / 's2.wav'}", "--source", "1",
                 "--model", str(tmp_path / "convtasnet.pt"), "--score", "si-sdr",
                 "--n-fft", str(N_FFT), "--hop-length", str(HOP), "--window", "43,16", "--stride", "43,16",
                 "--out", str(out), "--quiet"])
    assert code == 0
    doc = json.loads((out / "explanation.json").read_text())
    assert doc["metadata"]["task"] == "separation" and doc["metadata"]["scorer"]["scorer"] == "SISDR"
    assert doc["metadata"]["scorer"]["source"] == 1 and (out / "figure.png").exists()
    # the target report: source 1's IBM (the high band) at area = its energy share, preserved / deleted scores
    target = json.loads((out / "target.json").read_text())
    mixture, sources = low_high_mixture()
    assert target["reference"] and target["energy_share"] == pytest.approx(
        energy_share(sources[0, 1], mixture[0, 0] - sources[0, 1]), abs=1e-4)
    assert target["area"] == pytest.approx(target["energy_share"]) and 0 <= target["iou"] <= 1
    assert target["unmasked"] == pytest.approx(doc["scores"]["unmasked"][0], abs=1e-3)
    for key in ("preserved", "deleted", "ibm_preserved", "ibm_deleted", "chance_iou", "ibm_area"):
        assert math.isfinite(target[key])
    assert (out / "target.png").stat().st_size > 10_000


@pytest.mark.skipif("extremal" not in METHODS, reason="extremal perturbation is not registered yet")
def test_cli_explains_an_enhancer_against_its_own_output(tmp_path, capsys):
    from avxai.cli import main

    _task_files(tmp_path)
    out = tmp_path / "own"
    code = main(["explain", "--task", "enhancement", "--method", "extremal", "--input", str(tmp_path / "mix.wav"),
                 "--model", str(tmp_path / "enhancer.pt"), "--n-fft", str(N_FFT), "--hop-length",
                 str(HOP), "--areas", "0.1,0.3", "--iterations", "5", "--out", str(out), "--quiet"])
    assert code == 0
    doc = json.loads((out / "explanation.json").read_text())
    assert doc["metadata"]["score_against"] == "model output on the unmasked input"
    assert doc["scores"]["unmasked"][0] == pytest.approx(100.0, abs=0.5)  # SDR of the output against itself
    target = json.loads((out / "target.json").read_text())
    assert not target["reference"] and "iou" not in target and target["area"] == 0.3  # the middle area
    assert target["preserved"] == pytest.approx(doc["scores"]["preserved"][0][1], abs=1e-4)
    assert (out / "target.png").exists() and "no reference" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["explain", "--task", "enhancement", "--input", str(tmp_path / "mix.wav"), "--score", "snr",
              "--out", str(out)])
    assert main(["explain", "--task", "enhancement", "--input", str(tmp_path / "mix.wav"), "--source", "1",
                 "--model", str(tmp_path / "enhancer.pt"), "--out", str(out)]) == 2
    assert "--source do(es) not apply to --task enhancement" in capsys.readouterr().err


def test_mask_vs_ibm_figure(tmp_path):
    from avxai.viz.separation import plot_mask_vs_ibm

    mixture, sources = low_high_mixture(low_amp=0.3, high_amp=0.3)
    modality = Spectrogram(mixture, SR, n_fft=N_FFT, hop_length=HOP)
    model, scorer = BandSplit(), SDR(sources, source=0)
    expl = get_method("occlusion")(model, modality, scorer, OcclusionConfig(window=(16, 16)))
    ibm = ideal_binary_mask(sources[0, 0], sources[0, 1], N_FFT, HOP)
    expl.scores.update({k: v for k, v in preserve_delete_scores(model, modality, scorer, ibm[None]).items()
                        if k != "unmasked"})
    fig = plot_mask_vs_ibm(expl, ibm)
    fig.savefig(tmp_path / "ibm.png")
    assert (tmp_path / "ibm.png").stat().st_size > 10_000
    title = fig._suptitle.get_text()
    assert "preserved" in title and "deleted" in title
    assert any("IoU" in ax.get_title() for ax in fig.axes)
    with pytest.raises(ValueError, match="grid"):
        plot_mask_vs_ibm(expl, ibm[:, :-1])

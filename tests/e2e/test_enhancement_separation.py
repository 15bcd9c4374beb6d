"""Enhancement and separation through the tasks and the command line, and the mask-vs-IBM figure."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from avxai.io.audio import save_audio
from avxai.methods import METHODS, OcclusionConfig, get_method
from avxai.metrics.masks import energy_share, ideal_binary_mask, preserve_delete_scores
from avxai.modalities import Spectrogram
from avxai.models import save_model
from avxai.models.enhancement import EnhancerConfig, MaskingEnhancer
from avxai.models.separation import Separator, SeparatorConfig, small_convtasnet
from avxai.scorers import SDR, SISDR
from toys.separation import HOP, N_FFT, SR, BandSplit, low_high_mixture

TINY_ENH = EnhancerConfig(sample_rate=SR, n_fft=N_FFT, hop_length=HOP, hidden=8, dilations=(1, 2))
TINY_SEP = SeparatorConfig(sample_rate=SR, enc_kernel_size=16, enc_num_feats=16, msk_num_feats=8,
                           msk_num_hidden_feats=16, msk_num_layers=2, msk_num_stacks=1)




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
                model=None, model_arg=[], architecture=None, resample=False, mono=False, n_fft=N_FFT, hop_length=HOP, n_mels=None,
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

    mixture, sources = _task_files(tmp_path)
    enh = _prepare("enhancement", _args(tmp_path, model=str(tmp_path / "enhancer.pt"),
                                             reference=str(tmp_path / "s1.wav"), score="si-sdr"))
    assert isinstance(enh.scorer, SISDR) and enh.scorer.reference.shape == (1, 1, mixture.shape[-1])
    assert enh.modality.grid_shape[0] == N_FFT // 2 + 1
    own = _prepare("enhancement", _args(tmp_path, model=str(tmp_path / "enhancer.pt")))
    assert isinstance(own.scorer, SDRClass) and own.scorer.reference is None
    sep = _prepare("separation", _args(tmp_path, model=str(tmp_path / "convtasnet.pt"), source=2,  # from 1
                                            reference=f"{tmp_path / 's1.wav'},{tmp_path / 's2.wav'}"))
    assert sep.scorer.reference.shape == (1, 2, mixture.shape[-1]) and sep.scorer.source == 1
    with pytest.raises(ValueError, match="--source 3 does not exist"):
        _prepare("separation", _args(tmp_path, model=str(tmp_path / "convtasnet.pt"), source=3,
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
                 "--reference", f"{tmp_path / 's1.wav'},{tmp_path / 's2.wav'}", "--source", "2",
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
    assert any("IoU" in ax.get_title(loc="left") and "chance" in ax.get_title(loc="left") for ax in fig.axes)
    with pytest.raises(ValueError, match="grid"):
        plot_mask_vs_ibm(expl, ibm[:, :-1])

"""SpeechBrain adapters: tiny local model folders (hyperparams.yaml + .ckpt files written in the test), loaded offline.

Each adapter is compared with SpeechBrain's own interface loaded by ``from_hparams(source=folder, savedir=folder)``
(``encode_batch``, ``separate_batch``, ``enhance_batch``) on the same input: equal within 1e-6 absolute (the same
modules in the same order; measured 0.0). Gradients reach the waveform and occlusion explains each one.
"""

from __future__ import annotations

import sys

import pytest
import torch

pytest.importorskip("speechbrain")

import avxai  # noqa: E402
from avxai.methods import OcclusionConfig, get_method  # noqa: E402
from avxai.modalities import Spectrogram  # noqa: E402
from avxai.models import embedder_of, num_sources_of, sample_rate_of, stft_of  # noqa: E402
from avxai.models.speechbrain_folder import (  # noqa: E402
    SpeechBrainEmbedder, SpeechBrainEnhancer, SpeechBrainSeparator, is_speechbrain_folder, load_speechbrain,
)
from avxai.models.spec import resolve_model, spec_kind_of  # noqa: E402
from avxai.scorers import SDR  # noqa: E402
from speechbrain.inference.classifiers import EncoderClassifier  # noqa: E402
from speechbrain.inference.enhancement import SpectralMaskEnhancement  # noqa: E402
from speechbrain.inference.separation import SepformerSeparation  # noqa: E402
from toys.speechbrain import ECAPA, SEPFORMER, ecapa_folder, enhancer_folder, sepformer_folder, write_folder  # noqa: E402

TOL = 1e-6
COARSE = OcclusionConfig(window=(43, 8), stride=(43, 8))


def signal(rate, seconds=0.5, seed=0, batch=1):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    tone = 0.3 * torch.sin(2 * torch.pi * (300 + 150 * seed) * t)
    return (tone + 0.05 * torch.randn(batch, 1, t.numel(), generator=g)).float()


@pytest.fixture(scope="module")
def ecapa(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spkrec")
    return folder, ecapa_folder(folder)


def test_encoder_classifier_equals_encode_batch(ecapa, one_thread):
    folder, built = ecapa
    model = load_speechbrain(folder)
    assert isinstance(model, SpeechBrainEmbedder) and not model.training and model.interface == "EncoderClassifier"
    assert sample_rate_of(model) == 16000 and embedder_of(model) is model
    for key, value in built["embedding_model"].state_dict().items():  # the .ckpt weights, not a fresh init
        assert torch.equal(model.mods.embedding_model.state_dict()[key], value)
    reference = EncoderClassifier.from_hparams(source=str(folder), savedir=str(folder))  # offline: files are there
    x = signal(16000, batch=2)
    with torch.no_grad():
        emb = model(x)
        expected = reference.encode_batch(x[:, 0]).reshape(2, -1)
    assert emb.shape == (2, 8)
    torch.testing.assert_close(emb, expected, atol=TOL, rtol=0)


def test_encoder_classifier_through_the_spec_resolver_gradients_and_occlusion(ecapa, one_thread):
    folder, _ = ecapa
    assert is_speechbrain_folder(str(folder)) and spec_kind_of(str(folder)).name == "speechbrain"
    model = resolve_model(str(folder))
    assert isinstance(model, SpeechBrainEmbedder)
    x = signal(16000).requires_grad_(True)
    model(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    options = avxai.tasks.SpeakerOptions(input=signal(16000)[0], sample_rate=16000, enroll=signal(16000, seed=1)[0])
    problem = avxai.tasks.speaker.build(model, options)
    for method, config in (("occlusion", COARSE), ("saliency", None)):
        expl = get_method(method)(problem.model, problem.modality, problem.scorer, config)
        assert expl.attribution.shape == (1, *problem.modality.grid_shape)
        assert torch.isfinite(expl.attribution).all()


def test_sepformer_equals_separate_batch_and_is_explained(tmp_path, one_thread):
    sepformer_folder(tmp_path)
    model = load_speechbrain(tmp_path)
    assert isinstance(model, SpeechBrainSeparator) and num_sources_of(model) == 2 and sample_rate_of(model) == 8000
    reference = SepformerSeparation.from_hparams(source=str(tmp_path), savedir=str(tmp_path))
    x = signal(8000, batch=2)
    with torch.no_grad():
        sources = model(x)
        expected = reference.separate_batch(x[:, 0]).permute(0, 2, 1)
    assert sources.shape == (2, 2, x.shape[-1])
    torch.testing.assert_close(sources, expected, atol=TOL, rtol=0)
    mix = signal(8000, seconds=0.25)
    expl = get_method("occlusion")(model, Spectrogram(mix, 8000, n_fft=256, hop_length=64), SDR(None, source=1),
                                   COARSE)
    assert expl.attribution.shape == (1, 129, mix.shape[-1] // 64 + 1) and torch.isfinite(expl.attribution).all()


def test_spectral_mask_enhancement_equals_enhance_batch_and_is_explained(tmp_path, one_thread):
    enhancer_folder(tmp_path)
    model = load_speechbrain(tmp_path)
    assert isinstance(model, SpeechBrainEnhancer) and sample_rate_of(model) == 16000
    assert stft_of(model) == (512, 256)
    reference = SpectralMaskEnhancement.from_hparams(source=str(tmp_path), savedir=str(tmp_path))
    x = signal(16000, batch=2)
    with torch.no_grad():
        enhanced = model(x)
        expected = reference.enhance_batch(x[:, 0], lengths=torch.ones(2)).unsqueeze(1)
    assert enhanced.shape == x.shape
    torch.testing.assert_close(enhanced, expected, atol=TOL, rtol=0)
    noisy = signal(16000, seconds=0.25)
    expl = get_method("occlusion")(model, Spectrogram(noisy, 16000, n_fft=256, hop_length=64), SDR(None), COARSE)
    assert torch.isfinite(expl.attribution).all()


def test_a_folder_that_lacks_a_part_names_it(tmp_path, one_thread):
    ecapa_folder(tmp_path)
    (tmp_path / "classifier.ckpt").unlink()
    with pytest.raises(ValueError, match=r"lacks classifier\.ckpt \(the weights"):
        load_speechbrain(tmp_path)
    with pytest.raises(ValueError, match=r"lacks classifier\.ckpt"):
        resolve_model(str(tmp_path))
    (tmp_path / "hyperparams.yaml").unlink()
    assert not is_speechbrain_folder(tmp_path)
    with pytest.raises(ValueError, match="lacks hyperparams.yaml"):
        load_speechbrain(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_speechbrain(tmp_path / "nothing")
    (tmp_path / "hyperparams.yaml").write_text("modules: [unclosed\n")
    with pytest.raises(ValueError, match="hyperparams.yaml does not load"):
        load_speechbrain(tmp_path)
    (tmp_path / "hyperparams.yaml").write_text("sample_rate: 16000\n")
    with pytest.raises(ValueError, match="lacks 'modules' or 'pretrainer'"):
        load_speechbrain(tmp_path)


def test_a_cloned_repository_with_files_named_by_the_pretrainer_paths_loads(tmp_path, one_thread):
    yaml = ECAPA.replace("<pretrained_path>/classifier.ckpt", "<pretrained_path>/classifier_weights.pt")
    built = write_folder(tmp_path, yaml, seed=3)
    (tmp_path / "classifier.ckpt").rename(tmp_path / "classifier_weights.pt")
    model = load_speechbrain(tmp_path)
    for key, value in built["classifier"].state_dict().items():  # read from classifier_weights.pt
        assert torch.equal(model.mods.classifier.state_dict()[key], value)
    assert not (tmp_path / "classifier.ckpt").exists()  # nothing was linked or copied into the folder
    (tmp_path / "classifier_weights.pt").unlink()
    with pytest.raises(ValueError, match=r"lacks classifier\.ckpt \(or classifier_weights\.pt\)"):
        load_speechbrain(tmp_path)


def test_sample_rate_and_interface_arguments(tmp_path, one_thread):
    write_folder(tmp_path / "sep", SEPFORMER.replace("sample_rate: 8000\n", ""))
    with pytest.raises(ValueError, match="states no sample_rate.*sample_rate=HZ"):
        load_speechbrain(tmp_path / "sep")
    assert load_speechbrain(tmp_path / "sep", sample_rate=8000).sample_rate == 8000
    assert resolve_model(str(tmp_path / "sep"), args={"sample_rate": 8000}).num_sources == 2
    write_folder(tmp_path / "spk", ECAPA)
    with pytest.raises(ValueError, match="says sample_rate: 16000 but sample_rate=8000"):
        load_speechbrain(tmp_path / "spk", sample_rate=8000)
    with pytest.raises(ValueError, match="lacks the module.*encoder, masknet, decoder"):
        load_speechbrain(tmp_path / "spk", interface="SepformerSeparation")
    with pytest.raises(ValueError, match="'EncoderDecoderASR' is not one avxai adapts"):
        load_speechbrain(tmp_path / "spk", interface="EncoderDecoderASR")
    assert load_speechbrain(tmp_path / "spk", interface="SpeakerRecognition").interface == "SpeakerRecognition"
    with pytest.raises(ValueError, match="takes no argument n_mels"):
        load_speechbrain(tmp_path / "spk", n_mels=80)
    ecapa_rate_from_fbank = ECAPA.replace("sample_rate: 16000\n", "").replace("!ref <sample_rate>", "16000")
    write_folder(tmp_path / "fbank", ecapa_rate_from_fbank)
    assert load_speechbrain(tmp_path / "fbank").sample_rate == 16000  # the rate the Fbank was built for
    with pytest.raises(ValueError, match=r"mono waveform \(batch, 1, time\)"):
        load_speechbrain(tmp_path / "fbank")(torch.zeros(1, 2, 16000))


def test_missing_speechbrain_names_the_extra(ecapa, monkeypatch):
    monkeypatch.setitem(sys.modules, "hyperpyyaml", None)
    with pytest.raises(ImportError, match=r"pip install avxai\[speechbrain\]"):
        load_speechbrain(ecapa[0])
    with pytest.raises(ImportError, match=r"pip install avxai\[speechbrain\]"):
        resolve_model(str(ecapa[0]))

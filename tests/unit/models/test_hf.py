"""HuggingFace transformers adapters: tiny random-weight models saved to a local folder, loaded offline.

Each model is compared with the HF pipeline (the ``Wav2Vec2FeatureExtractor`` in numpy, then the model): equal
within 1e-5 absolute (float32; the normalisation's mean and variance are summed in another order). Gradients reach
the waveform, and occlusion and saliency explain each model through the speaker task.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
pytest.importorskip("transformers")

import avxai  # noqa: E402
from avxai.methods import OcclusionConfig, get_method  # noqa: E402
from avxai.models import embedder_of, num_sources_of, sample_rate_of  # noqa: E402
from avxai.models.hf import (  # noqa: E402
    HFAudioModel, HFSpeakerEmbedder, KaldiFbank, WhisperLogMel, is_hf_folder, load_hf,
)
from avxai.models.spec import resolve_model, spec_kind_of  # noqa: E402
from toys.hf import (  # noqa: E402
    SAMPLE_RATE, ast_classifier_folder, reference_output, wav2vec2_classifier_folder, whisper_classifier_folder, wav2vec2_frame_classifier_folder, wavlm_xvector_folder,
)

TOL = 1e-5
COARSE = OcclusionConfig(window=(129, 8), stride=(129, 8))


def speech(seconds=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = 0.3 * torch.sin(2 * torch.pi * (200 + 100 * seed) * t) * (t < seconds / 2)
    return (tone + 0.05 * torch.randn(t.numel(), generator=g)).view(1, 1, -1)


@pytest.fixture(scope="module")
def xvector(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wavlm-sv")
    model, extractor = wavlm_xvector_folder(folder)
    return folder, model, extractor


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("w2v-cls")
    model, extractor = wav2vec2_classifier_folder(folder)
    return folder, model, extractor


def test_xvector_is_a_speaker_embedder_equal_to_the_hf_pipeline(xvector, one_thread):
    folder, model, extractor = xvector
    adapter = load_hf(folder)
    assert isinstance(adapter, HFSpeakerEmbedder) and not adapter.training
    assert sample_rate_of(adapter) == SAMPLE_RATE and embedder_of(adapter) is adapter and adapter.output == "embeddings"
    x = torch.cat([speech(seed=0), speech(seed=1)])
    with torch.no_grad():
        emb = adapter(x)
    assert emb.shape == (2, 8)
    torch.testing.assert_close(emb, reference_output(model, extractor, x, "embeddings"), atol=TOL, rtol=0)
    with pytest.raises(ValueError, match="no output 'logits'.*before its AM-softmax"):
        load_hf(folder, output="logits")
    built = HFSpeakerEmbedder(model, sample_rate=SAMPLE_RATE, output="logits")  # in Python: embedder() embeds
    with torch.no_grad():
        torch.testing.assert_close(embedder_of(built)(x), emb, atol=TOL, rtol=0)


def test_classifier_logits_equal_to_the_hf_pipeline_and_labels(classifier, one_thread):
    folder, model, extractor = classifier
    adapter = load_hf(folder)
    assert type(adapter) is HFAudioModel and embedder_of(adapter) is None and num_sources_of(adapter) is None
    assert adapter.labels == ("class0", "class1", "class2", "class3")
    x = speech()
    with torch.no_grad():
        torch.testing.assert_close(adapter(x), reference_output(model, extractor, x, "logits"), atol=TOL, rtol=0)


def test_frame_classifier_states_its_frame_hop(tmp_path, one_thread):
    model, extractor = wav2vec2_frame_classifier_folder(tmp_path)
    adapter = load_hf(tmp_path)
    assert adapter.frame_hop_s == pytest.approx(20 / SAMPLE_RATE)  # conv strides 5 * 4
    x = speech()
    with torch.no_grad():
        logits = adapter(x)
        torch.testing.assert_close(logits, reference_output(model, extractor, x, "logits"), atol=TOL, rtol=0)
    frames = ((x.shape[-1] - 10) // 5 + 1 - 8) // 4 + 1  # the two convolutions (kernel 10 / stride 5, 8 / 4)
    assert logits.shape == (1, frames, 2)


@pytest.mark.parametrize("seconds", [0.5, 1.0])  # 48 frames padded to 64; 98 frames cut to 64
def test_ast_kaldi_fbank_front_end_equals_the_hf_pipeline(tmp_path, seconds, one_thread):
    model, extractor = ast_classifier_folder(tmp_path)
    adapter = load_hf(tmp_path)
    assert isinstance(adapter.front, KaldiFbank) and adapter.front.max_length == 64
    x = torch.cat([speech(seconds, seed=0), speech(seconds, seed=1)])
    with torch.no_grad():
        torch.testing.assert_close(adapter(x), reference_output(model, extractor, x, "logits"), atol=TOL, rtol=0)
    x.requires_grad_(True)
    adapter(x)[:, 0].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("seconds", [0.5, 1.5])  # padded to the 1 s chunk; cut to it
def test_whisper_log_mel_front_end_equals_the_hf_pipeline(tmp_path, seconds, one_thread):
    model, extractor = whisper_classifier_folder(tmp_path)
    adapter = load_hf(tmp_path)
    assert isinstance(adapter.front, WhisperLogMel) and adapter.front.n_samples == SAMPLE_RATE
    x = torch.cat([speech(seconds, seed=0), speech(seconds, seed=1)])
    features = extractor(list(x[:, 0].numpy()), sampling_rate=SAMPLE_RATE, return_tensors="pt").input_features
    torch.testing.assert_close(adapter.features(x), features, atol=TOL, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(adapter(x), reference_output(model, extractor, x, "logits"), atol=TOL, rtol=0)
    x.requires_grad_(True)
    adapter(x)[:, 0].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_without_do_normalize_the_waveform_goes_in_as_it_is(tmp_path, one_thread):
    model, extractor = wav2vec2_classifier_folder(tmp_path, do_normalize=False)
    adapter = load_hf(tmp_path)
    assert not adapter.front.normalize
    x = speech()
    torch.testing.assert_close(adapter.features(x), x[:, 0])
    with torch.no_grad():
        torch.testing.assert_close(adapter(x), reference_output(model, extractor, x, "logits"), atol=TOL, rtol=0)


def test_the_spec_resolver_loads_both_folders(xvector, classifier, one_thread):
    for folder, cls in ((xvector[0], HFSpeakerEmbedder), (classifier[0], HFAudioModel)):
        assert is_hf_folder(str(folder)) and spec_kind_of(str(folder)).name == "hf"
        model = resolve_model(str(folder))
        assert type(model) is cls and model.sample_rate == SAMPLE_RATE
    assert resolve_model(str(xvector[0]), args={"output": "embeddings"}).output == "embeddings"
    with pytest.raises(ValueError, match="takes no argument n_mels"):
        resolve_model(str(xvector[0]), args={"n_mels": 40})


def test_gradient_reaches_the_waveform(xvector, classifier, one_thread):
    for folder in (xvector[0], classifier[0]):
        adapter = load_hf(folder)
        x = speech().requires_grad_(True)
        adapter(x).sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_occlusion_and_saliency_explain_both(xvector, classifier, one_thread):
    options = avxai.tasks.SpeakerOptions(input=speech()[0], sample_rate=SAMPLE_RATE, enroll=speech(seed=1)[0])
    problem = avxai.tasks.speaker.build(load_hf(xvector[0]), options)
    ident = avxai.tasks.speaker.build(load_hf(classifier[0]),
                                      avxai.tasks.SpeakerOptions(input=speech()[0], sample_rate=SAMPLE_RATE))
    for p in (problem, ident):
        for method, config in (("occlusion", COARSE), ("saliency", None)):
            expl = get_method(method)(p.model, p.modality, p.scorer, config)
            assert expl.attribution.shape == (1, *p.modality.grid_shape)
            assert torch.isfinite(expl.attribution).all()


def test_a_folder_that_lacks_a_part_names_it(tmp_path, one_thread):
    wav2vec2_classifier_folder(tmp_path)
    (tmp_path / "preprocessor_config.json").rename(tmp_path / "pre.json")
    with pytest.raises(ValueError, match="lacks preprocessor_config.json"):
        load_hf(tmp_path)
    pre = json.loads((tmp_path / "pre.json").read_text())
    del pre["sampling_rate"]
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(pre))
    with pytest.raises(ValueError, match="does not state its sample rate; add 'sampling_rate'.*sample_rate=16000"):
        load_hf(tmp_path)
    assert load_hf(tmp_path, sample_rate=16000).sample_rate == 16000  # the argument fills the missing rate
    pre.update(sampling_rate=8000)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(pre))
    with pytest.raises(ValueError, match="says sampling_rate=8000 Hz but sample_rate=16000 was given"):
        load_hf(tmp_path, sample_rate=16000)
    pre.update(feature_extractor_type="SeamlessM4TFeatureExtractor")
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(pre))
    with pytest.raises(ValueError, match="SeamlessM4TFeatureExtractor computes features.*ASTFeatureExtractor"):
        load_hf(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "architectures": ["Wav2Vec2ForCTC"]}))
    with pytest.raises(ValueError, match="Wav2Vec2ForCTC, not an audio head"):
        load_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "architectures"}))
    with pytest.raises(ValueError, match="names no 'architectures'"):
        load_hf(tmp_path)
    (tmp_path / "config.json").unlink()
    assert not is_hf_folder(tmp_path)
    with pytest.raises(ValueError, match="lacks config.json"):
        load_hf(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_hf(tmp_path / "nothing")


def test_missing_weights_and_a_wrong_output_are_one_line(classifier, tmp_path, one_thread):
    wav2vec2_classifier_folder(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="does not load as Wav2Vec2ForSequenceClassification"):
        load_hf(tmp_path)
    with pytest.raises(ValueError, match="no output 'embeddings' avxai can score; pick one of logits"):
        load_hf(classifier[0], output="embeddings")
    folder, model, _ = classifier
    with pytest.raises(ValueError, match="no tensor 'embeddings'.*tensors: logits"):  # a module built in Python
        HFAudioModel(model, sample_rate=SAMPLE_RATE, output="embeddings")(speech())
    with pytest.raises(ValueError, match=r"mono waveform \(batch, 1, time\)"):
        load_hf(classifier[0])(speech().repeat(1, 2, 1))


def test_missing_transformers_names_the_extra(classifier, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=r"pip install avxai\[hf\]"):
        load_hf(classifier[0])
    with pytest.raises(ImportError, match=r"pip install avxai\[hf\]"):
        resolve_model(str(classifier[0]))

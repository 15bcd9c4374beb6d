"""Resemblyzer's real pretrained encoder in torch: the same embedding as ``VoiceEncoder.embed_utterance`` on the
same samples (cosine >= 0.9999, real and generated speech), its pieces (mel front end, partial slices, volume step)
against resemblyzer's own, gradients to the waveform, and a finite explanation on a real recording."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from avxai.data.synthetic import SyntheticSpeaker
from avxai.methods import get_method
from avxai.models import ARCHITECTURES, ResemblyzerEmbedder, embedder_of, load_model, sample_rate_of
from avxai.models.resemblyzer import partial_slices
from avxai.models.state import ASSETS_DIR
from avxai.tasks.speaker import SpeakerOptions, build

resemblyzer = pytest.importorskip("resemblyzer")
from resemblyzer import VoiceEncoder, audio, preprocess_wav  # noqa: E402  (after the skip: an optional extra)

REAL = ASSETS_DIR / "real"
#: the match the issue asks for (float32 numpy/librosa vs float32 torch: measured above 0.99999)
MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return load_model(architecture="resemblyzer")


@pytest.fixture(scope="module")
def reference():
    return VoiceEncoder(device="cpu", verbose=False)


def read(name: str) -> np.ndarray:
    wav, rate = sf.read(REAL / name, dtype="float32")
    assert rate == 16000 and wav.ndim == 1
    return wav


def ours(model, wav: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(wav)[None, None])[0].numpy()


def test_the_registry_row_builds_the_real_encoder(model):
    arch = ARCHITECTURES["resemblyzer"]
    assert arch.extra == "resemblyzer" and not arch.needs_checkpoint
    assert isinstance(model, ResemblyzerEmbedder) and not model.training
    assert sample_rate_of(model) == 16000 and embedder_of(model) is model
    assert set(model.state_dict()) == {k for k in VoiceEncoder(device="cpu", verbose=False).state_dict()}
    with pytest.raises(ValueError, match="takes 16000 Hz.*resample"):
        arch.create(sample_rate=8000)
    by_name = load_model("resemblyzer")  # the README's spelling: a name whose weights ship in its pip package
    assert isinstance(by_name, ResemblyzerEmbedder)
    assert all(torch.equal(a, b) for a, b in zip(by_name.state_dict().values(), model.state_dict().values()))


@pytest.mark.parametrize("name", ["aba.wav", "enroll_A.wav"])
def test_embedding_matches_embed_utterance_on_real_speech(model, reference, name):
    wav = preprocess_wav(read(name), 16000)  # what embed_utterance expects: volume raised, long pauses cut
    assert float(ours(model, wav) @ reference.embed_utterance(wav)) >= MIN_COSINE


@pytest.mark.parametrize("seconds", [0.7, 3.3])
def test_embedding_matches_embed_utterance_on_generated_speech(model, reference, seconds):
    wav = SyntheticSpeaker(3).utterance(seconds, 16000, seed=1).reshape(-1).numpy().astype(np.float32)
    wav = preprocess_wav(wav, 16000)
    assert float(ours(model, wav) @ reference.embed_utterance(wav)) >= MIN_COSINE


def test_volume_step_is_preprocess_wavs_and_can_be_turned_off(model, reference):
    quiet = 0.01 * read("enroll_B.wav")  # about -66 dBFS: preprocess_wav raises it to -30 dBFS
    raised = audio.normalize_volume(quiet, -30, increase_only=True)
    assert float(ours(model, quiet) @ reference.embed_utterance(raised)) >= MIN_COSINE
    raw = ResemblyzerEmbedder(normalize_volume=False)
    raw.load_state_dict(model.state_dict())
    raw.eval()
    assert float(ours(raw, quiet) @ reference.embed_utterance(quiet)) >= MIN_COSINE  # the samples as given
    assert float(ours(raw, quiet) @ ours(model, quiet)) < 0.99  # the volume matters to the mel power (no log)


def test_front_end_and_partials_are_resemblyzers():
    wav = preprocess_wav(read("aba.wav"), 16000)[:40000]
    mel = ResemblyzerEmbedder().mel(torch.from_numpy(wav)[None])[0].numpy()
    expected = audio.wav_to_mel_spectrogram(wav)
    assert mel.shape == expected.shape
    np.testing.assert_allclose(mel, expected, rtol=1e-3, atol=1e-5 * expected.max())
    for n in [1, 159, 160, 5000, 25599, 25600, 25601, 40000, 114400]:
        for rate, coverage in [(1.3, 0.75), (0.625, 0.5), (4.0, 1.0)]:
            _, slices = VoiceEncoder.compute_partial_slices(n, rate, coverage)
            assert partial_slices(n, rate, coverage) == [s.start for s in slices], (n, rate, coverage)
    with pytest.raises(ValueError, match="rate"):
        ResemblyzerEmbedder(rate=0.5)


def test_batches_and_gradients_reach_the_waveform(model):
    wav = torch.from_numpy(np.stack([read("enroll_A.wav")[:24000], read("enroll_B.wav")[:24000]]))[:, None]
    wav.requires_grad_(True)
    emb = model(wav)
    assert emb.shape == (2, 256)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    with torch.no_grad():
        torch.testing.assert_close(model(wav[1:]), emb[1:].detach(), atol=1e-5, rtol=0)
    (emb[0] @ emb[1]).backward()
    assert torch.isfinite(wav.grad).all() and wav.grad.abs().sum() > 0


def test_saliency_on_a_real_recording_is_finite(model):
    problem = build(model, SpeakerOptions(input=REAL / "aba.wav", enroll=REAL / "enroll_A.wav",
                                          segments=REAL / "aba_segments.json", n_fft=512, hop_length=128))
    method = get_method("saliency")
    explanation = method(problem.model, problem.modality, problem.scorer, method.config_class())
    assert explanation.attribution.shape[-2] == 257
    assert torch.isfinite(explanation.attribution).all() and explanation.attribution.abs().sum() > 0
    assert 0.8 < explanation.scores["unmasked"].item() < 1.0  # the same talker, other sentences: measured 0.884

"""avxai.wrap: any module as a model avxai explains (sample rate once, output picked, a torch front end), and
the one-line errors of a model that lacks a part."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import avxai
from avxai.models import LogMel, ModelContract, embedder_of, sample_rate_of
from avxai.models.wrap import Wrapped, select_output, wrap
from avxai.modalities import TensorModality
from avxai.scorers import ClassLogit

pytestmark = pytest.mark.usefixtures("one_thread")
RATE = 8000


class Several(nn.Module):
    """Returns a tuple, a dict or a ModelOutput-like object of tensors: Shape (batch, channels, time) -> ..."""

    def __init__(self, kind):
        super().__init__()
        self.kind, self.proj = kind, nn.Linear(1, 3)

    def forward(self, x):
        logits = self.proj(x.mean(dim=-1))  # (batch, 3)
        hidden = x.mean(dim=1)  # (batch, time)
        if self.kind == "tuple":
            return logits, hidden
        if self.kind == "dict":
            return {"logits": logits, "hidden": hidden}
        return "not a tensor"


class FeatureModel(nn.Module):
    """A model on log-mels: (batch, n_mels, frames) -> (batch, 2)."""

    def __init__(self, n_mels=20):
        super().__init__()
        self.conv = nn.Conv1d(n_mels, 2, 3)

    def forward(self, feats):
        return self.conv(feats).mean(dim=-1)


def test_wrap_is_top_level_and_states_the_contract():
    model = wrap(nn.Conv1d(1, 1, 3), sample_rate=RATE)
    assert avxai.wrap is wrap and isinstance(model, (Wrapped, ModelContract)) and sample_rate_of(model) == RATE
    x = torch.randn(2, 1, 100)
    torch.testing.assert_close(model(x), model.model(x))


@pytest.mark.parametrize("output", [0, "logits", lambda out: out[0] if isinstance(out, tuple) else out["logits"]])
@pytest.mark.parametrize("kind", ["tuple", "dict"])
def test_output_picks_the_tensor_to_score(kind, output):
    if kind == "tuple" and output == "logits":
        pytest.skip("a tuple has no keys")
    torch.manual_seed(0)
    inner = Several(kind)
    x = torch.randn(2, 1, 50)
    assert torch.equal(wrap(inner, sample_rate=RATE, output=output)(x), inner.proj(x.mean(dim=-1)))


def test_output_of_a_huggingface_model_output():
    outputs = pytest.importorskip("transformers.modeling_outputs")
    out = outputs.SequenceClassifierOutput(logits=torch.ones(2, 3), hidden_states=None)
    assert torch.equal(select_output(out, "logits"), out.logits)
    assert torch.equal(select_output(out, 0), out.logits)
    assert torch.equal(select_output(out, None), out.logits)  # its only entry


def test_an_output_avxai_cannot_score_is_one_error():
    x = torch.randn(1, 1, 20)
    with pytest.raises(TypeError, match=r"returned a tuple of 2: a tensor \(1, 3\), a tensor \(1, 20\), which avxai "
                                        r"cannot score; pass output="):
        wrap(Several("tuple"), sample_rate=RATE)(x)
    with pytest.raises(TypeError, match=r"returned a str, which avxai cannot score"):
        wrap(Several("str"), sample_rate=RATE)(x)
    with pytest.raises(TypeError, match=r"output='embedding' is not an entry.*keys \['logits', 'hidden'\]"):
        wrap(Several("dict"), sample_rate=RATE, output="embedding")(x)
    with pytest.raises(TypeError, match=r"output=5 needs a tuple or mapping of at least 6 entries"):
        wrap(Several("tuple"), sample_rate=RATE, output=5)(x)
    with pytest.raises(TypeError, match="picked a str"):
        wrap(Several("dict"), sample_rate=RATE, output=lambda out: "x")(x)


def test_the_sample_rate_is_declared_once_and_checked():
    with pytest.raises(ValueError, match=r"Conv1d does not state its sample rate; pass wrap\(model, sample_rate="):
        wrap(nn.Conv1d(1, 1, 3))
    stated = nn.Conv1d(1, 1, 3)
    stated.sample_rate = 16000
    assert wrap(stated).sample_rate == 16000
    with pytest.raises(ValueError, match="says sample_rate=16000 Hz but sample_rate=8000 was given; resample"):
        wrap(stated, sample_rate=8000)
    with pytest.raises(ValueError, match="the front end works at 16000 Hz but the model at 8000 Hz"):
        wrap(FeatureModel(), sample_rate=RATE, features=LogMel(16000, n_mels=20))
    with pytest.raises(TypeError, match="wrap takes a torch.nn.Module"):
        wrap(lambda x: x, sample_rate=RATE)
    with pytest.raises(ValueError, match=r"takes a waveform \(batch, channels, time\), got \(100,\)"):
        wrap(nn.Identity(), sample_rate=RATE)(torch.zeros(100))


def test_embedding_states_the_embedder():
    plain = wrap(nn.Conv1d(1, 4, 3), sample_rate=RATE)
    assert embedder_of(plain) is None
    model = wrap(nn.Conv1d(1, 4, 3), sample_rate=RATE, embedding=True)
    assert embedder_of(model) is model


def test_mono_and_forward_kwargs():
    class NeedsScale(nn.Module):
        def forward(self, x, scale):
            assert x.dim() == 2
            return x * scale

    model = wrap(NeedsScale(), sample_rate=RATE, mono=True, forward_kwargs={"scale": 2.0})
    x = torch.randn(2, 2, 10)
    torch.testing.assert_close(model(x), 2 * x.mean(dim=1))


def test_a_feature_model_becomes_a_differentiable_waveform_model():
    torch.manual_seed(0)
    front = LogMel(RATE, n_fft=256, hop_length=80, n_mels=20, normalize="mean")
    model = wrap(FeatureModel(), sample_rate=RATE, features=front)
    x = (0.1 * torch.randn(2, 1, RATE // 4)).requires_grad_(True)
    torch.testing.assert_close(model(x), model.model(front(x)))
    model(x)[:, 0].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # and through avxai: saliency of the waveform, masked sample by sample
    modality = TensorModality(x.detach()[:1], ("time",))
    explanation = avxai.methods.saliency(model.eval(), modality, ClassLogit(0))
    assert torch.isfinite(explanation.attribution).all() and explanation.attribution.abs().sum() > 0


def test_a_front_end_by_name_or_mapping():
    model = wrap(FeatureModel(n_mels=16), sample_rate=RATE, features={"kind": "logmel", "n_mels": 16, "n_fft": 256})
    assert isinstance(model.features, LogMel) and model.features.sample_rate == RATE and model.features.n_mels == 16
    assert model(torch.randn(1, 1, 800)).shape == (1, 2)
    assert type(wrap(FeatureModel(n_mels=40), sample_rate=RATE, features="mfcc").features).__name__ == "MFCC"
    with pytest.raises(ValueError, match="unknown front end 'spectrogram'; choose one of mel, logmel, mfcc, fbank"):
        wrap(FeatureModel(), sample_rate=RATE, features="spectrogram")
    with pytest.raises(ValueError, match="front end 'logmel' cannot be built with {'mels': 3}"):
        wrap(FeatureModel(), sample_rate=RATE, features={"kind": "logmel", "mels": 3})

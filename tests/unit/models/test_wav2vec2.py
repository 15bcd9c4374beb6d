"""torchaudio's wav2vec2 family as registry rows: what the output is (the last hidden state's mean, or the aux
head's logits' mean), a torchaudio state dict loaded as is, gradients to the waveform, and argument errors."""

from __future__ import annotations

import pytest
import torch

from avxai.models import ARCHITECTURES, embedder_of, load_model, resolve_model
from avxai.models.wav2vec2 import Wav2Vec2Pooled

pytestmark = pytest.mark.usefixtures("one_thread")
TINY = dict(encoder_embed_dim=16, encoder_num_layers=1, encoder_num_heads=2, encoder_ff_interm_features=32,
            extractor_conv_layer_config=[[8, 10, 5], [8, 3, 2]], encoder_pos_conv_kernel=4, encoder_pos_conv_groups=2)


def build(name="wav2vec2", **extra):
    torch.manual_seed(0)
    return ARCHITECTURES[name].create(**TINY, **extra).eval()


@pytest.mark.parametrize("name", ["wav2vec2", "wavlm"])
def test_the_output_is_the_mean_of_the_last_layer(name):
    x = 0.1 * torch.randn(2, 1, 4000)
    model = build(name)
    assert isinstance(model, Wav2Vec2Pooled) and model.head == "embedding" and embedder_of(model) is model
    with torch.inference_mode():
        frames, _ = model.network(x[:, 0])
        torch.testing.assert_close(model(x), frames.mean(dim=1))
    head = build(name, aux_num_out=3)
    assert head.head == "logits" and embedder_of(head) is None
    with torch.inference_mode():
        logits, _ = head.network(x[:, 0])
        assert logits.shape[-1] == 3
        torch.testing.assert_close(head(x), logits.mean(dim=1))


def test_a_torchaudio_state_dict_loads_as_is(tmp_path):
    model = build(aux_num_out=2)
    path = tmp_path / "w2v.pt"
    torch.save(model.network.state_dict(), path)  # torchaudio's own keys, no JSON beside it
    loaded = load_model(path, architecture="wav2vec2", kwargs={**TINY, "aux_num_out": 2})
    again = resolve_model(str(path), architecture="wav2vec2", args={**TINY, "aux_num_out": 2})
    x = 0.1 * torch.randn(1, 1, 3200)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), model(x))
        torch.testing.assert_close(again(x), model(x))


def test_gradients_reach_the_waveform():
    x = (0.1 * torch.randn(1, 2, 3200)).requires_grad_(True)  # two channels: mixed to mono inside
    build(aux_num_out=2)(x)[:, 0].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_bad_arguments_are_one_line():
    with pytest.raises(ValueError, match=r"wav2vec2 cannot be built .*unexpected arguments \['n_layers'\]"):
        ARCHITECTURES["wav2vec2"].create(n_layers=2)
    with pytest.raises(ValueError, match=r"takes a waveform \(batch, channels, time\)"):
        build()(torch.zeros(1, 3200))

"""The reference enhancer and separator: an open mask returns the input; checkpoints round-trip."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from avxai.models import load_model, save_model
from avxai.models.enhancement import EnhancerConfig, MaskingEnhancer
from avxai.models.separation import Separator, SeparatorConfig, small_convtasnet
from toys.separation import HOP, N_FFT, SR, tones

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

"""SpeakerNet: shapes, input checks, checkpoints, and the bundled model on fresh synthetic speech."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from avxai.data import SyntheticSpeaker, load_segments
from avxai.models import ARCHITECTURES, SpeakerNet, load_model, load_state_dict_checked, save_model
from avxai.models.state import read_config

DEFAULT_SPEAKER_CHECKPOINT = ARCHITECTURES["speakernet"].bundled_path()

REPO = Path(__file__).resolve().parents[3]
ASSETS = REPO / "avxai" / "assets" / "speaker"


def tiny(n_speakers: int = 4, **kw) -> SpeakerNet:
    torch.manual_seed(0)
    return SpeakerNet(n_speakers, channels=16, embedding_dim=8, **kw).eval()


# -- shapes and size --------------------------------------------------------------------------------
def test_shapes_embedder_and_config():
    net = tiny()
    x = torch.randn(3, 1, 8000) * 0.1
    assert net(x).shape == (3, 4)
    assert net.embed(x).shape == (3, 8)
    emb = net.embedder()
    assert isinstance(emb, torch.nn.Module) and emb.sample_rate == net.sample_rate == 16000
    assert torch.equal(emb(x), net.embed(x))
    assert SpeakerNet(**net.config).config == net.config
    assert net.features(x).shape == (3, 40, 51)  # 8000 / 160 + 1 frames, mean-normalised over frames
    assert net.features(x).mean(dim=-1).abs().max() < 1e-4


def test_batch_invariance_in_eval_mode():
    net = tiny()
    x = torch.randn(4, 1, 6000) * 0.1
    assert torch.allclose(net(x)[1:2], net(x[1:2]), atol=1e-5)


@pytest.mark.parametrize("pooling", ["attentive", "stats"])
def test_default_size_is_a_few_hundred_thousand_parameters(pooling):
    n = sum(p.numel() for p in SpeakerNet(16, pooling=pooling).parameters())
    assert 1e5 < n < 1e6


def test_gradients_reach_the_waveform():
    net = tiny()
    x = (torch.randn(2, 1, 4000) * 0.1).requires_grad_(True)
    net(x)[:, 1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# -- input checks ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("x, err, match", [
    (torch.randn(2, 2, 4000), ValueError, "average the channels"),
    (torch.randn(2, 4000), ValueError, "3-D"),
    (torch.randn(4000), ValueError, "3-D"),
    (torch.randn(1, 1, 100), ValueError, "n_fft"),
    (torch.full((1, 1, 4000), float("nan")), ValueError, "NaN"),
    (torch.ones(1, 1, 4000, dtype=torch.int16), TypeError, "floating point"),
    ([0.0] * 4000, TypeError, "torch.Tensor"),
])
def test_bad_inputs_raise_with_a_fix(x, err, match):
    with pytest.raises(err, match=match):
        tiny()(x)


@pytest.mark.parametrize("kw, match", [
    (dict(n_speakers=1), "n_speakers"),
    (dict(n_speakers=4, pooling="max"), "pooling"),
    (dict(n_speakers=4, n_mels=400), "n_mels"),
    (dict(n_speakers=4, log_floor=0.0), "log_floor"),
])
def test_bad_config_raises(kw, match):
    with pytest.raises(ValueError, match=match):
        SpeakerNet(**kw)


# -- checkpoints --------------------------------------------------------------------------------------
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    net = tiny(5, n_mels=32)
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    path = save_model(net, tmp_path / "net.pt", architecture="speakernet", kwargs=net.config, extra={"note": "test"})
    doc = json.loads((tmp_path / "net.json").read_text())
    assert doc["model"] == net.config and doc["note"] == "test" and doc["architecture"] == "speakernet"
    loaded = load_model(path)
    x = torch.randn(2, 1, 5000) * 0.1
    assert not loaded.training
    assert torch.equal(loaded(x), net(x))
    # a wrapped state dict loads too
    torch.save({"state_dict": net.state_dict(), "epoch": 3}, tmp_path / "wrapped.pt")
    other = tiny(5, n_mels=32)
    load_state_dict_checked(other, tmp_path / "wrapped.pt")
    assert torch.equal(other(x), net(x))


def test_checkpoint_with_wrong_keys_lists_them(tmp_path):
    net = tiny()
    state = net.state_dict()
    state["head.weight"] = state.pop("classifier.weight")
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ValueError) as info:
        load_state_dict_checked(tiny(), tmp_path / "bad.pt")
    msg = str(info.value)
    assert "missing keys: classifier.weight" in msg and "unexpected keys: head.weight" in msg


def test_checkpoint_with_wrong_shapes_lists_them(tmp_path):
    torch.save(tiny(6).state_dict(), tmp_path / "six.pt")
    with pytest.raises(ValueError, match=r"shape mismatches: classifier.weight \(6, 8\) vs model \(4, 8\)"):
        load_state_dict_checked(tiny(4), tmp_path / "six.pt")


def test_checkpoint_path_and_config_errors(tmp_path):
    with pytest.raises(ValueError, match=".pt"):
        save_model(tiny(), tmp_path / "net.pth", architecture="speakernet", kwargs=tiny().config)
    torch.save(tiny().state_dict(), tmp_path / "lonely.pt")
    with pytest.raises(ValueError, match="no lonely.json beside it"):
        load_model(tmp_path / "lonely.pt")
    with pytest.raises(ValueError, match="no JSON beside it, so speakernet's default arguments"):
        load_model(tmp_path / "lonely.pt", architecture="speakernet")


# -- the bundled model ----------------------------------------------------------------------------------
needs_assets = pytest.mark.skipif(not DEFAULT_SPEAKER_CHECKPOINT.is_file(),
                                  reason="bundled model missing; run recipes/speaker/train.py")


@needs_assets
def test_bundled_model_is_small_and_identifies_fresh_utterances():
    assert DEFAULT_SPEAKER_CHECKPOINT.stat().st_size < 3 * 2**20
    model = load_model("speakernet")
    doc = read_config(DEFAULT_SPEAKER_CHECKPOINT.with_suffix(".json"))
    spk = doc["speakers"]
    speakers = [SyntheticSpeaker(i, spk["speaker_seed"]) for i in spk["speaker_ids"]]
    assert len(speakers) == model.n_speakers
    # seeds = 0 mod 4 are never used by the recipe (train 1, held-out 2, demo 3 mod 4): fresh utterances
    x = torch.stack([s.utterance(1.5, model.sample_rate, seed=4 * (123457 + k)) for s in speakers for k in range(2)])
    y = torch.arange(len(speakers)).repeat_interleave(2)
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc >= 0.9


@needs_assets
def test_bundled_aba_evidence_is_in_the_a_turns():
    model = load_model("speakernet")
    segs, meta = load_segments(ASSETS / "aba_segments.json", with_metadata=True)
    wav, sr = sf.read(ASSETS / "aba.wav", dtype="float32")
    assert sr == model.sample_rate and abs(len(wav) / sr - segs[-1].end_s) < 1e-3
    a = meta["target_class"]
    x = torch.from_numpy(wav).view(1, 1, -1)

    def logit_a(zero: str | None) -> float:
        z = x.clone()
        for s in segs:
            if s.label == zero:
                z[..., round(s.start_s * sr):round(s.end_s * sr)] = 0.0
        with torch.no_grad():
            return model(z)[0, a].item()

    full, no_a, no_b = logit_a(None), logit_a("A"), logit_a("B")
    assert model(x).argmax().item() == a
    assert full - no_a > 3.0  # removing A's turns removes the evidence for A
    assert no_b > full - 1.0  # removing B's turn does not
    enroll, _ = sf.read(ASSETS / "enroll_A.wav", dtype="float32")
    with torch.no_grad():
        assert model(torch.from_numpy(enroll).view(1, 1, -1)).argmax().item() == a


@pytest.mark.slow  # ~5 s on an idle machine (mostly imports and the optimiser's first use)
def test_recipe_debug_run(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("speaker_train", REPO / "recipes" / "speaker" / "train.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    threads = torch.get_num_threads()
    try:
        metrics = mod.main(["--debug", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(threads)
    assert 0.0 <= metrics["heldout_accuracy"] <= 1.0
    for name in ("speaker_net.pt", "speaker_net.json", "aba.wav", "aba_segments.json", "enroll_A.wav"):
        assert (tmp_path / "assets" / name).is_file()
    assert json.loads((tmp_path / "metrics.json").read_text())["probe"]["full"]["logit_A"] == pytest.approx(
        metrics["probe"]["full"]["logit_A"])
    reloaded = load_model(tmp_path / "assets" / "speaker_net.pt")
    assert reloaded.n_speakers == 4

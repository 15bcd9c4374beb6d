"""The model registry and contract: one conformance table over every registered architecture, and the errors of
saving and loading checkpoints."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from torch import nn

from avxai.models import (
    ARCHITECTURES, Architecture, ModelBlob, ModelContract, crop_size_of, embedder_of, fps_of, load_model,
    num_sources_of, pca_layers_of, register, sample_rate_of, save_model, stft_of,
)
from avxai.models.state import ASSETS_DIR

# tiny constructor arguments of every registered architecture (JSON-like: lists, not tuples); a new row in the
# registry needs one here, and test_every_architecture_has_a_tiny_config says so
TINY = {
    "speakernet": dict(n_speakers=3, n_mels=16, n_fft=256, hop_length=80, channels=8, embedding_dim=8),
    "enhancer": dict(sample_rate=8000, n_fft=64, hop_length=16, hidden=8, dilations=[1, 2]),
    "convtasnet": dict(sample_rate=8000, num_sources=2, enc_kernel_size=16, enc_num_feats=16, msk_num_feats=8,
                       msk_num_hidden_feats=16, msk_num_layers=2, msk_num_stacks=1),
    "separator": dict(sample_rate=8000, num_sources=2, enc_kernel_size=16, enc_num_feats=16, msk_num_feats=8,
                      msk_num_hidden_feats=16, msk_num_layers=2, msk_num_stacks=1),
    "hdemucs": dict(sample_rate=8000, sources=["speech", "noise"], audio_channels=1, channels=4, depth=3, nfft=256),
    "ecapa-tdnn": dict(sample_rate=16000, n_mels=24, channels=[16, 16, 16, 16, 48], lin_neurons=8,
                       attention_channels=8, se_channels=8),
    "resemblyzer": dict(sample_rate=16000),  # the real weights from the resemblyzer wheel (nothing smaller exists)
    "av-enhancer": dict(sample_rate=8000, fps=25.0, n_fft=64, hop_length=32, crop_size=16, visual_blocks=2,
                        visual_dim=8, audio_channels=2, audio_dim=8, hidden=8),
    "wav2vec2": dict(sample_rate=16000, encoder_embed_dim=16, encoder_num_layers=1, encoder_num_heads=2,
                     encoder_ff_interm_features=32, extractor_conv_layer_config=[[8, 10, 5], [8, 3, 2]],
                     encoder_pos_conv_kernel=4, encoder_pos_conv_groups=2),
    "wavlm": dict(sample_rate=16000, encoder_embed_dim=16, encoder_num_layers=1, encoder_num_heads=2,
                  encoder_ff_interm_features=32, extractor_conv_layer_config=[[8, 10, 5], [8, 3, 2]],
                  encoder_pos_conv_kernel=4, encoder_pos_conv_groups=2, encoder_num_buckets=8,
                  encoder_max_distance=16, aux_num_out=3),
}
SECONDS = 0.4


def _available(name):
    extra = ARCHITECTURES[name].extra
    return extra is None or pytest.importorskip(extra) is not None


def build(name):
    _available(name)
    torch.manual_seed(0)
    model = ARCHITECTURES[name].create(**TINY[name])
    with torch.no_grad():  # non-trivial normalisation statistics, so that a round trip must carry the buffers
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def inputs(model):
    """A batch of two inputs the model takes: a waveform ``(2, 1, time)``, with face crops for an AV model."""
    rate = sample_rate_of(model)
    g = torch.Generator().manual_seed(1)
    wav = 0.1 * torch.randn(2, 1, int(SECONDS * rate), generator=g)
    if fps_of(model) is None:
        return (wav,)
    size = crop_size_of(model, required=True)
    return wav, torch.rand(2, round(SECONDS * fps_of(model)), 3, size, size, generator=g)


def test_every_architecture_has_a_tiny_config():
    assert set(TINY) == set(ARCHITECTURES), "add tiny constructor arguments of the new architecture to TINY"


@pytest.mark.parametrize("name", sorted(TINY))
def test_builds_and_satisfies_the_contract(name):
    model = build(name)
    assert isinstance(model, ModelContract)
    assert sample_rate_of(model) == TINY[name]["sample_rate" if "sample_rate" in TINY[name] else "n_speakers"] or \
        name == "speakernet" and sample_rate_of(model) == 16000
    stft, fps, crop = stft_of(model), fps_of(model), crop_size_of(model)  # optional parts: typed when stated
    assert stft is None or all(isinstance(v, int) and v > 0 for v in stft)
    assert fps is None or fps > 0
    assert crop is None or crop > 0
    layers = pca_layers_of(model)
    assert layers is None or all(model.get_submodule(path) is not None for path in layers.values())
    with torch.inference_mode():
        out = model(*inputs(model))
        assert torch.isfinite(out).all() and out.shape[0] == 2
        sources = num_sources_of(model)
        if sources is not None:
            assert out.shape[1] == sources
        embedder = embedder_of(model)
        if embedder is not None:
            emb = embedder(*inputs(model))
            assert emb.dim() == 2 and emb.shape[0] == 2


@pytest.mark.parametrize("name", sorted(TINY))
def test_save_and_load_give_identical_outputs(name, tmp_path):
    model = build(name)
    path = save_model(model, tmp_path / f"{name}.pt", architecture=name, kwargs=TINY[name], extra={"note": "test"})
    doc = json.loads(path.with_suffix(".json").read_text())
    assert doc["architecture"] == name and doc["model"] == TINY[name] and doc["note"] == "test"
    loaded = load_model(path)
    assert type(loaded) is type(model) and not loaded.training
    x = inputs(model)
    with torch.inference_mode():
        assert torch.equal(loaded(*x), model(*x))
    blob = ModelBlob.from_path(path, architecture=name)
    assert blob.architecture == name and blob.build() is blob.build()  # cached per process
    with torch.inference_mode():
        assert torch.equal(blob.build()(*x), model(*x))


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_mismatched_checkpoint_lists_the_keys(name, tmp_path):
    model = build(name)
    path = save_model(model, tmp_path / "m.pt", architecture=name, kwargs=TINY[name])
    state = ARCHITECTURES[name].weights_of(model).state_dict()
    first = next(iter(state))
    state["bogus.weight"] = state.pop(first)
    torch.save(state, path)
    with pytest.raises(ValueError) as err:
        load_model(path)
    assert f"missing keys: {first}" in str(err.value) and "unexpected keys: bogus.weight" in str(err.value)


@pytest.mark.parametrize("name", [n for n in sorted(TINY) if ARCHITECTURES[n].extra])
def test_a_missing_optional_dependency_names_the_extra(name, monkeypatch):
    extra = ARCHITECTURES[name].extra
    monkeypatch.setitem(sys.modules, extra, None)  # its import now raises ImportError
    with pytest.raises(ImportError) as err:
        ARCHITECTURES[name].create(**TINY[name])
    assert f"pip install avxai[{extra}]" in str(err.value) and "\n" not in str(err.value)


def test_any_architecture_with_an_extra_names_it_in_one_line(monkeypatch):
    def needs_a_package(**kwargs):
        import avxai_not_a_real_package  # noqa: F401

    monkeypatch.setitem(ARCHITECTURES, "needs-x", Architecture("needs-x", needs_a_package, "test", extra="x",
                                                                   needs_checkpoint=False))
    with pytest.raises(ImportError, match=r"^architecture 'needs-x' needs .*pip install avxai\[x\]") as err:
        load_model(architecture="needs-x")
    assert "\n" not in str(err.value)


# -- loading errors ------------------------------------------------------------------------------------------
@pytest.fixture
def saved(tmp_path):
    return save_model(build("enhancer"), tmp_path / "enh.pt", architecture="enhancer", kwargs=TINY["enhancer"])


def test_a_missing_checkpoint_is_blamed_on_the_pt_file(saved):
    saved.unlink()  # the JSON is still there
    with pytest.raises(FileNotFoundError, match=r"enh\.pt does not exist") as err:
        load_model(saved)
    assert "enh.json" not in str(err.value)
    with pytest.raises(ValueError, match="unknown model 'no-such-model'"):
        load_model("no-such-model")


def test_an_invalid_json_names_its_file(saved):
    saved.with_suffix(".json").write_text("{not json")
    with pytest.raises(ValueError, match=r"enh\.json is not valid JSON"):
        load_model(saved)


def test_random_bytes_never_suggest_loading_unsafely(saved):
    saved.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="weights-only state dict") as err:
        load_model(saved)
    assert "weights_only" not in str(err.value) and err.value.__cause__ is None and err.value.__suppress_context__


def test_architecture_must_agree_with_the_json_and_name_a_registered_model(saved, tmp_path):
    with pytest.raises(ValueError, match="describes a 'enhancer' model but architecture 'separator'"):
        load_model(saved, architecture="separator")
    with pytest.raises(ValueError, match="unknown architecture 'conformer'"):
        load_model(saved, architecture="conformer")
    bare = tmp_path / "bare.pt"
    bare.write_bytes(saved.read_bytes())
    with pytest.raises(ValueError, match="no bare.json beside it.*--architecture"):
        load_model(bare)
    with pytest.raises(ValueError, match="bare.pt has no JSON beside it, so enhancer.s default arguments"):  # larger
        load_model(bare, architecture="enhancer")
    x = torch.randn(1, 1, 800)
    with torch.inference_mode():  # constructor arguments given in Python instead of a JSON
        assert torch.equal(load_model(bare, architecture="enhancer", kwargs=TINY["enhancer"])(x), build("enhancer")(x))


def test_json_load_options_unwrap_a_prefixed_checkpoint(saved):
    state = torch.load(saved, weights_only=True)
    torch.save({"weights": {f"module.{k}": v for k, v in state.items()}}, saved)
    doc = json.loads(saved.with_suffix(".json").read_text())
    doc["model"].update(key="weights", strip_prefix="module.")
    saved.with_suffix(".json").write_text(json.dumps(doc))
    x = torch.randn(1, 1, 800)
    with torch.inference_mode():
        assert torch.equal(load_model(saved)(x), build("enhancer")(x))


def test_save_model_refuses_arguments_that_do_not_rebuild_the_model(tmp_path):
    with pytest.raises(ValueError, match="kwargs do not rebuild"):
        save_model(build("enhancer"), tmp_path / "e.pt", architecture="enhancer",
                   kwargs={**TINY["enhancer"], "hidden": 9})
    with pytest.raises(ValueError, match="must end in .pt"):
        save_model(build("enhancer"), tmp_path / "e.pth", architecture="enhancer", kwargs=TINY["enhancer"])
    with pytest.raises(ValueError, match="already registered"):
        register(ARCHITECTURES["enhancer"])


# -- the contract on any module ------------------------------------------------------------------------------
def test_accessors_check_types_and_say_what_is_missing():
    plain = nn.Linear(2, 2)
    assert sample_rate_of(plain) is None and stft_of(plain) is None and embedder_of(plain) is None
    with pytest.raises(ValueError, match="does not state its sample_rate.*with_sample_rate"):
        sample_rate_of(plain, required=True)
    plain.sample_rate = 16000.5
    with pytest.raises(TypeError, match="positive whole number"):
        sample_rate_of(plain)
    plain.n_fft = 512
    with pytest.raises(ValueError, match="states n_fft but not hop_length"):
        stft_of(plain)
    plain.pca_layers = {"audio": 3}
    with pytest.raises(TypeError, match="pca_layers"):
        pca_layers_of(plain)


# -- the bundled models --------------------------------------------------------------------------------------
BUNDLED = [a for a in ARCHITECTURES.values() if a.bundled]


@pytest.mark.parametrize("arch", BUNDLED, ids=[a.name for a in BUNDLED])
def test_bundled_names_load_the_assets(arch):
    path = arch.bundled_path()
    if not path.is_file():
        pytest.skip(f"{path} missing; run {arch.recipe}")
    assert path.parent.parent == ASSETS_DIR
    assert json.loads(path.with_suffix(".json").read_text())["architecture"] == arch.name
    model = load_model(arch.name)
    assert type(model) is type(arch.create(**json.loads(path.with_suffix(".json").read_text())["model"]))
    assert not model.training and sample_rate_of(model) > 0

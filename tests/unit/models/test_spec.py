"""The model-spec grammar: every form of ``--model SPEC`` through one resolver, with one-line errors."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from avxai.models import ModelBlob, save_model
from avxai.models.registry import ARCHITECTURES
from avxai.models.spec import (
    SPEC_KINDS, ModelSpec, SpecKind, get_spec_kind, model_source, parse_model_args, register_spec_kind,
    resolve_model, spec_forms,
)

ENHANCER = dict(sample_rate=8000, n_fft=64, hop_length=16, hidden=8, dilations=[1, 2])


class Gain(nn.Module):
    """A toy model: waveform times ``gain``. Shape: ``(batch, 1, time)`` -> same."""

    def __init__(self, gain: float = 1.0, sample_rate: int | None = 16000):
        super().__init__()
        self.gain = float(gain)
        if sample_rate is not None:
            self.sample_rate = sample_rate

    def forward(self, x):
        return self.gain * x


@pytest.fixture
def toy_kind():
    """A kind for specs ``toy:GAIN`` (and ``toy:raise``, ``toy:import``, ``toy:nomodule``, ``toy:norate``),
    removed afterwards."""
    def load(spec, args):
        what = spec.split(":", 1)[1]
        if what == "raise":
            raise RuntimeError("deep inside torch\nsecond line")
        if what == "import":
            raise ImportError("No module named 'toypkg'")
        if what == "nomodule":
            return 3
        if what == "norate":
            return Gain(sample_rate=None)
        return Gain(float(what), **args)

    kind = register_spec_kind(SpecKind("toy", lambda s: s.startswith("toy:"), load, extra="toy",
                                       example="toy:2.0 (a test kind)"))
    yield kind
    SPEC_KINDS.remove(kind)


@pytest.fixture
def checkpoint(tmp_path):
    model = ARCHITECTURES["enhancer"].create(**ENHANCER)
    return save_model(model, tmp_path / "enh.pt", architecture="enhancer", kwargs=ENHANCER), model


def test_the_built_in_kinds_come_first():
    assert [k.name for k in SPEC_KINDS][:2] == ["name", "checkpoint"]
    assert "speakernet" in spec_forms() and "runs/model.pt" in spec_forms()


def test_a_bundled_name_loads_the_registry_model_in_eval_mode():
    model = resolve_model("speakernet")
    assert type(model).__name__ == "SpeakerNet" and not model.training


def test_a_checkpoint_with_its_json_and_one_without_plus_architecture(checkpoint, tmp_path):
    path, model = checkpoint
    x = torch.randn(1, 1, 800)
    with torch.no_grad():
        assert torch.equal(resolve_model(path)(x), model.eval()(x))
        bare = tmp_path / "bare.pt"
        bare.write_bytes(path.read_bytes())
        loaded = resolve_model(bare, architecture="enhancer", args=ENHANCER)
        assert torch.equal(loaded(x), model(x))
    with pytest.raises(ValueError, match="no bare.json beside it.*--architecture"):
        resolve_model(str(bare))


def test_model_args_override_the_json(checkpoint):
    path, _ = checkpoint
    with pytest.raises(ValueError, match="shape mismatches"):  # other constructor arguments: the weights no longer fit
        resolve_model(path, args={"hidden": 4})


def test_default_and_module_pass_through():
    assert type(resolve_model(None, default="speakernet")).__name__ == "SpeakerNet"
    module = Gain()
    assert resolve_model(module) is module
    with pytest.raises(ValueError, match="sample rate"):
        resolve_model(Gain(sample_rate=None))
    with pytest.raises(ValueError, match="not to a module"):
        resolve_model(module, args={"gain": 2})
    with pytest.raises(ValueError, match="no model given"):
        resolve_model(None)


@pytest.mark.parametrize("spec, error, match", [
    ("nosuchmodel", ValueError, r"unknown model 'nosuchmodel'; accepted forms: name: speakernet"),
    ("missing/model.pt", FileNotFoundError, r"model file missing/model.pt does not exist"),
])
def test_unknown_specs_list_the_forms_in_one_line(spec, error, match):
    with pytest.raises(error, match=match) as info:
        resolve_model(spec)
    assert "\n" not in str(info.value) and "checkpoint: runs/model.pt" in str(info.value)


def test_a_folder_of_no_known_form(tmp_path):
    with pytest.raises(ValueError, match="model folder .* is of no form avxai knows"):
        resolve_model(tmp_path)


def test_an_architecture_without_weights_asks_for_a_checkpoint():
    with pytest.raises(ValueError, match="without bundled weights.*--architecture ecapa-tdnn"):
        resolve_model(None, architecture="ecapa-tdnn")
    with pytest.raises(ValueError, match="unknown architecture"):
        resolve_model("x.pt", architecture="nope")


def test_a_registered_kind_loads_with_its_args(toy_kind):
    model = resolve_model("toy:2.5", args=parse_model_args(["sample_rate=8000"]))
    assert model.gain == 2.5 and model.sample_rate == 8000 and not model.training
    assert "toy:2.0 (a test kind)" in spec_forms()
    assert get_spec_kind("toy") is toy_kind


@pytest.mark.parametrize("spec, error, match", [
    ("toy:import", ImportError, r"needs an optional dependency .*: pip install avxai\[toy\]"),
    ("toy:raise", ValueError, r"could not be loaded as toy .*RuntimeError: deep inside torch$"),
    ("toy:nomodule", TypeError, r"gave a int, not a torch.nn.Module"),
    ("toy:norate", ValueError, r"does not state its sample rate; pass it with --model-arg sample_rate=HZ"),
])
def test_a_failing_loader_is_one_line(toy_kind, spec, error, match):
    with pytest.raises(error, match=match) as info:
        resolve_model(spec)
    assert "\n" not in str(info.value)


def test_register_refuses_a_duplicate_and_inserts_before(toy_kind):
    with pytest.raises(ValueError, match="already registered"):
        register_spec_kind(SpecKind("toy", bool, lambda s, a: None))
    early = register_spec_kind(SpecKind("early", lambda s: s.startswith("toy:"), lambda s, a: Gain(7.0)),
                               before="toy")
    try:
        assert resolve_model("toy:1").gain == 7.0
    finally:
        SPEC_KINDS.remove(early)


def test_parse_model_args():
    assert parse_model_args(["n=3", "rate=0.001", "names=[a, b]", "flag=true", "key-word=x"]) == \
        {"n": 3, "rate": 0.001, "names": ["a", "b"], "flag": True, "key_word": "x"}
    with pytest.raises(ValueError, match="--model-arg takes KEY=VALUE"):
        parse_model_args(["novalue"])
    with pytest.raises(ValueError, match="more than once"):
        parse_model_args(["a=1", "a=2"])


def test_model_source_sends_bytes_for_avxai_kinds_and_the_spec_for_others(checkpoint, toy_kind, tmp_path):
    path, _ = checkpoint
    assert isinstance(model_source("speakernet"), ModelBlob)
    assert isinstance(model_source(path), ModelBlob)
    source = model_source("toy:1.5", args={"sample_rate": 8000})
    assert isinstance(source, ModelSpec) and source.kind == "toy"
    again = pickle.loads(pickle.dumps(source))
    assert again.build().gain == 1.5 and again.build() is again.build()
    assert model_source("toy:1.5", args={"sample_rate": 16000}).digest != source.digest
    with pytest.raises(ValueError, match="unknown model"):
        model_source("nosuchmodel")


def test_every_method_and_the_resolver_are_top_level():
    import avxai
    from avxai.methods import METHODS

    for name, method in METHODS.items():
        attr = name.replace("-", "_")
        assert getattr(avxai, attr) is method and attr in avxai.__all__, name
    for name in ("saliency", "smoothgrad", "integrated_gradients", "gradcam", "pca_rgb", "occlusion", "extremal",
                 "resolve_model", "wrap", "FrameScore", "ClassSigmoid"):
        assert name in avxai.__all__ and hasattr(avxai, name)
    assert avxai.resolve_model is resolve_model


def test_a_file_spec_travels_as_an_absolute_path_with_the_digest_of_its_bytes(tmp_path, monkeypatch):
    kind = register_spec_kind(SpecKind("toyfile", lambda s: s.endswith(".toy"),
                                       lambda s, a: Gain(float(open(s).read()))))
    try:
        (tmp_path / "m.toy").write_text("2.0")
        monkeypatch.chdir(tmp_path)
        source = model_source("m.toy")
        assert source.spec == str(tmp_path / "m.toy") and source.build().gain == 2.0
        (tmp_path / "m.toy").write_text("3.0")
        assert model_source("m.toy").digest != source.digest
    finally:
        SPEC_KINDS.remove(kind)

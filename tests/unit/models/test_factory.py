"""``package.module:factory`` specs: the factory called with YAML-typed model args, wrapped when it does not state
its sample rate, and one-line errors for a factory that raises or does not exist."""

from __future__ import annotations

import textwrap

import pytest
import torch

from avxai.models import Wrapped, embedder_of, parse_model_args, resolve_model, sample_rate_of
from avxai.models.factory import load_factory, parse_factory_spec
from avxai.models.spec import spec_kind_of

pytestmark = pytest.mark.usefixtures("one_thread")

MODULE = '''
import torch
from torch import nn


def plain(channels=1, hidden=4):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv1d(channels, hidden, 3), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(hidden, 2))


class Rated(nn.Module):
    def __init__(self, sample_rate, scale=1.0):
        super().__init__()
        self.sample_rate, self.scale = sample_rate, scale

    def forward(self, x):
        return self.scale * x.mean(dim=-1)


def fixed():
    return Rated(16000)


def broken(size):
    raise RuntimeError(f"size {size} is too large\\nsecond line")


def not_a_model():
    return 3


class Zoo:
    rated = Rated
'''


@pytest.fixture
def factories(tmp_path, monkeypatch):
    (tmp_path / "adapt_factories.py").write_text(textwrap.dedent(MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "adapt_factories"


def test_a_plain_factory_is_wrapped_with_its_sample_rate(factories):
    model = load_factory(f"{factories}:plain", {"hidden": 3, "sample_rate": 8000})
    assert isinstance(model, Wrapped) and sample_rate_of(model) == 8000 and not model.training
    assert model(torch.randn(2, 1, 40)).shape == (2, 2)


def test_a_factory_that_takes_the_sample_rate_gets_it(factories):
    spec = f"{factories}:Zoo.rated"  # a dotted path after the colon
    args = parse_model_args(["sample_rate=16000", "scale=2"])  # YAML values: ints
    assert spec_kind_of(spec).name == "factory"
    model = resolve_model(spec, args=args)
    assert type(model).__name__ == "Rated" and model.sample_rate == 16000 and model.scale == 2
    with pytest.raises(ValueError, match="says sample_rate=16000 Hz but sample_rate=8000 was given"):
        load_factory(f"{factories}:fixed", {"sample_rate": 8000})  # it does not take the rate: it states its own


def test_a_feature_model_gets_its_front_end_from_the_args(factories):
    args = parse_model_args(["sample_rate=8000", "channels=20", "features={kind: logmel, n_mels: 20, n_fft: 256}"])
    model = resolve_model(f"{factories}:plain", args=args)
    assert type(model.features).__name__ == "LogMel" and model.features.n_mels == 20
    assert embedder_of(model) is None  # logits, not an embedding, unless embedding=true says so
    assert embedder_of(resolve_model(f"{factories}:plain", args={**args, "embedding": True})) is not None
    x = (0.1 * torch.randn(1, 1, 800)).requires_grad_(True)
    model(x)[:, 0].sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_adapter_args_wrap_a_stated_model(factories):
    model = load_factory(f"{factories}:Rated", {"sample_rate": 8000, "frame_hop_s": 0.01, "mono": True})
    assert isinstance(model, Wrapped) and model.frame_hop_s == 0.01 and model.sample_rate == 8000
    x = torch.randn(2, 3, 10)
    torch.testing.assert_close(model(x), x.mean(dim=1).mean(dim=-1))


def test_errors_name_the_factory_in_one_line(factories):
    cases = [
        (f"{factories}:broken", {"size": 9}, ValueError,
         f"factory {factories}:broken raised RuntimeError: size 9 is too large; fix the arguments \\(size=9\\)"),
        (f"{factories}:plain", {"sample_rate": 8000, "width": 3}, ValueError, "raised TypeError: .*width"),
        (f"{factories}:not_a_model", {}, TypeError, "returned a int, not a torch.nn.Module"),
        (f"{factories}:missing", {}, ValueError, f"module '{factories}' has no 'missing'"),
        ("adapt_no_such_module:build", {}, ValueError, "cannot import module 'adapt_no_such_module'.*PYTHONPATH"),
        (f"{factories}:plain", {}, ValueError, "does not state its sample rate; pass sample_rate="),
    ]
    for spec, args, error, message in cases:
        with pytest.raises(error, match=message) as err:
            load_factory(spec, args)
        assert "\n" not in str(err.value)
        if not spec.startswith("adapt_no_such_module"):  # a module that cannot be found is no factory spec
            with pytest.raises(error, match=message):
                resolve_model(spec, args=args)
    with pytest.raises(ValueError, match="unknown model 'adapt_no_such_module:build'; accepted forms: .*factory: "):
        resolve_model("adapt_no_such_module:build")


def test_the_spec_grammar():
    assert parse_factory_spec("a.b.c:make.it") == ("a.b.c", "make.it")
    for bad in ("a.b", "a:b:c", ":b", "a/b.py:c"):
        with pytest.raises(ValueError, match="write package.module:factory"):
            parse_factory_spec(bad)

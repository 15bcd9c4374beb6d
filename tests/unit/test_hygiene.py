import pytest
import torch

from avxai import evaluation_mode


def _model():
    return torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3), torch.nn.Dropout(0.5))


def test_eval_mode_frozen_parameters_and_restore():
    model = _model().train()
    model[0].weight.requires_grad_(False)
    before = [p.requires_grad for p in model.parameters()]
    with evaluation_mode(model):
        assert not any(m.training for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == before


def test_hooks_added_inside_are_removed_and_old_ones_kept():
    model = _model()
    calls = []
    model[0].register_forward_hook(lambda *a: calls.append("old"))
    with evaluation_mode(model):
        model[0].register_forward_hook(lambda *a: calls.append("new"))
        model[1].register_forward_pre_hook(lambda *a: calls.append("pre"))
        model(torch.randn(4, 3))
    assert calls == ["old", "new", "pre"]
    calls.clear()
    model(torch.randn(4, 3))
    assert calls == ["old"]


def test_exceptions_propagate_and_state_is_restored():
    model = _model().train()
    with pytest.raises(RuntimeError, match="boom"):
        with evaluation_mode(model):
            raise RuntimeError("boom")
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_not_a_module():
    with pytest.raises(TypeError, match="nn.Module"):
        with evaluation_mode(lambda x: x):
            pass

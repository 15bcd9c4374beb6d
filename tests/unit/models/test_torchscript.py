"""TorchScript files: loaded with torch.jit.load only, forward arguments as model args, chunked stateful models,
the "torchscript" spec kind, and one-line errors for files that are not TorchScript."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from avxai.models import SPEC_KINDS, resolve_model, sample_rate_of
from avxai.models.chunked import Chunked
from avxai.models.spec import spec_kind_of
from avxai.models.torchscript import is_torchscript_file, load_torchscript

pytestmark = pytest.mark.usefixtures("one_thread")


class NeedsRate(nn.Module):
    """forward(x, sr) as a VAD's: Shape (batch, time) -> (batch, 1)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(1, 1)

    def forward(self, x: Tensor, sr: int) -> Tensor:
        return torch.sigmoid(self.proj(x.pow(2).mean(dim=-1, keepdim=True)) * float(sr) / 16000.0)


class Picky(nn.Module):
    """Takes (batch, samples) only, as Silero does: Shape (batch, samples) -> (batch, 1)."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2:
            raise ValueError("Too many dimensions for input audio chunk")
        return x.mean(dim=-1, keepdim=True)


class Stateful(nn.Module):
    """A scripted stateful chunk model: out = mean(chunk) + state; state += mean(chunk). Shape (batch, chunk) ->
    (batch, 1)."""

    def __init__(self):
        super().__init__()
        self.state = torch.zeros(0)

    @torch.jit.export
    def reset_states(self) -> None:
        self.state = torch.zeros(0)

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        if self.state.numel() == 0:
            self.state = torch.zeros_like(mean)
        out = mean + self.state
        self.state = self.state + mean
        return out


@pytest.fixture
def vad_file(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "vad.jit"
    torch.jit.script(NeedsRate()).save(str(path))
    return path


def test_forward_arguments_are_model_args_and_say_the_rate(vad_file):
    assert is_torchscript_file(vad_file) and spec_kind_of(str(vad_file)).name == "torchscript"
    model = load_torchscript(vad_file, sr=16000, mono=True)
    assert sample_rate_of(model) == 16000 and not model.training
    x = torch.randn(2, 1, 320)
    scripted = torch.jit.load(str(vad_file))
    torch.testing.assert_close(model(x), scripted(x[:, 0], 16000))
    resolved = resolve_model(str(vad_file), args={"sr": 16000, "mono": True})
    torch.testing.assert_close(resolved(x), model(x))


def test_a_chunked_scripted_model_resets_its_state(tmp_path):
    path = tmp_path / "stream.ts"
    torch.jit.script(Stateful()).save(str(path))
    model = load_torchscript(path, sample_rate=8000, chunk=4)
    assert isinstance(model, Chunked) and model.frame_hop_s == 4 / 8000
    x = torch.arange(12.0).reshape(1, 1, 12)
    means = torch.tensor([1.5, 5.5, 9.5])
    expected = torch.cumsum(means, 0).reshape(1, 3)  # the state carried from chunk to chunk, within one call
    torch.testing.assert_close(model(x), expected)
    torch.testing.assert_close(model(x), expected)  # the second call starts from a fresh state
    with torch.inference_mode():
        model(x)
    y = x.clone().requires_grad_(True)
    model(y).sum().backward()  # no "Inference tensors cannot be saved for backward"
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_what_is_not_a_torchscript_model_is_one_line(tmp_path, vad_file):
    state = tmp_path / "weights.pt"
    torch.save({"w": torch.ones(2)}, state)  # a zip, but a state dict: no code/ inside
    garbage = tmp_path / "garbage.jit"
    garbage.write_bytes(b"not a model at all")
    for path in (state, garbage):
        assert not is_torchscript_file(path)
        with pytest.raises(ValueError, match=r"is not a TorchScript file .*torch\.jit\.script\(model\)\.save") as err:
            load_torchscript(path, sample_rate=16000)
        assert "\n" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_torchscript(tmp_path / "missing.ts", sample_rate=16000)
    torch.jit.script(Stateful()).save(str(tmp_path / "stream.ts"))
    with pytest.raises(ValueError, match=r"does not state its sample rate; pass sample_rate= \(--model-arg"):
        load_torchscript(tmp_path / "stream.ts")
    with pytest.raises(ValueError, match="model file .*garbage.jit is of no form avxai knows"):
        resolve_model(str(garbage))
    assert "torchscript" in [k.name for k in SPEC_KINDS]


def test_a_missing_forward_argument_is_named_at_load_time(vad_file):
    with pytest.raises(ValueError, match=r"vad.jit needs the forward argument sr; give --model-arg sr=VALUE"):
        load_torchscript(vad_file, sample_rate=16000)
    with pytest.raises(ValueError, match=r"has no forward argument 'rate'; its forward takes sr"):
        load_torchscript(vad_file, sr=16000, rate=3)


def test_an_error_inside_torchscript_is_its_reason_in_one_line(tmp_path):
    path = tmp_path / "picky.ts"
    torch.jit.script(Picky()).save(str(path))
    with pytest.raises(ValueError, match=r"^the TorchScript model Picky failed on its input: ValueError: Too many "
                                         r"dimensions for input audio chunk; if it takes fixed-size chunks, pass "
                                         r"chunk=SAMPLES") as err:
        load_torchscript(path, sample_rate=16000)(torch.zeros(1, 1, 512))
    assert "\n" not in str(err.value)
    assert load_torchscript(path, sample_rate=16000, mono=True)(torch.zeros(1, 1, 512)).shape == (1, 1)

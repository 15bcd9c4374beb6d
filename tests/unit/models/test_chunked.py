"""Chunked and stateful models: chunks in order, the state reset before every call, frames with their hop, no
inference tensor kept between calls (gradient methods work after the unmasked run), and Silero's JIT VAD."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import avxai
from avxai.methods import ExtremalConfig, SaliencyConfig
from avxai.modalities import TensorModality
from avxai.models import Chunked, sample_rate_of
from avxai.models.torchscript import load_torchscript
from avxai.scorers import Scorer

pytestmark = pytest.mark.usefixtures("one_thread")
REAL = Path(__file__).resolve().parents[3] / "avxai" / "assets" / "real" / "aba.wav"


class LeakyEnergy(nn.Module):
    """A stateful chunk model with a known answer: state <- 0.5 * state + energy(chunk); returns sigmoid(w * state).

    Shape: chunk ``(batch, chunk)`` -> ``(batch, 1)``.
    """

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(4.0))
        self.state: Tensor | None = None
        self.calls = 0

    def reset_states(self) -> None:
        self.state = None

    def forward(self, chunk: Tensor) -> Tensor:
        self.calls += 1
        energy = chunk.pow(2).mean(dim=-1, keepdim=True)
        self.state = energy if self.state is None else 0.5 * self.state + energy
        return torch.sigmoid(self.weight * self.state - 1.0)


def by_hand(model: nn.Module, wave: Tensor, chunk: int, **kwargs) -> Tensor:
    """The reference: reset, then the model on each chunk in order; Shape (batch, time) -> (batch, frames)."""
    model.reset_states()
    return torch.cat([model(wave[:, i:i + chunk], **kwargs) for i in range(0, wave.shape[-1], chunk)], dim=1)


class MeanFrames(Scorer):
    """Mean of the per-frame output over all frames: Shape ``(n, frames)`` -> ``(n,)``."""

    units = "probability"

    def __call__(self, output: Tensor) -> Tensor:
        return output.mean(dim=1)


@pytest.fixture
def burst():
    g = torch.Generator().manual_seed(0)
    wave = torch.zeros(1, 1, 800)
    wave[..., 300:500] = torch.randn(200, generator=g)  # the energy burst: frames 3 and 4 of 100 samples
    return wave


def test_chunks_in_order_with_the_state_reset(burst):
    model = Chunked(LeakyEnergy(), chunk=100, sample_rate=8000)
    assert sample_rate_of(model) == 8000 and model.frame_hop_s == 100 / 8000
    frames = model(burst)
    assert frames.shape == (1, 8)
    torch.testing.assert_close(frames, by_hand(model.model, burst[:, 0], 100))
    torch.testing.assert_close(model(burst), frames)  # a second call: the same frames (the state was reset)
    assert frames[0, :3].max() < frames[0, 3:5].min()


def test_padding_and_a_short_input():
    x = torch.ones(2, 1, 250)
    assert Chunked(LeakyEnergy(), chunk=100, sample_rate=8000)(x).shape == (2, 3)  # zero-padded last chunk
    assert Chunked(LeakyEnergy(), chunk=100, sample_rate=8000, pad="drop")(x).shape == (2, 2)
    with pytest.raises(ValueError, match="less than one chunk of 100; pass at least 100 samples"):
        Chunked(LeakyEnergy(), chunk=100, sample_rate=8000, pad="drop")(x[..., :50])


def test_reset_hooks_and_their_errors(burst):
    with pytest.raises(ValueError, match=r"Linear has no reset_states\(\) method.*reset= the name of its reset "
                                         r"method, a callable reset\(model\), or None"):
        Chunked(nn.Linear(100, 1), chunk=100, sample_rate=8000)
    stateless = Chunked(nn.Linear(100, 1), chunk=100, sample_rate=8000, reset=None)
    assert stateless(burst).shape == (1, 8)
    resets = []
    model = Chunked(LeakyEnergy(), chunk=100, sample_rate=8000, reset=lambda m: resets.append(m.reset_states()))
    model(burst)
    model(burst)
    assert len(resets) == 2
    with pytest.raises(ValueError, match="chunk must be a positive number of samples"):
        Chunked(LeakyEnergy(), chunk=0, sample_rate=8000)


def test_gradients_after_an_inference_mode_call(burst):
    model = Chunked(LeakyEnergy(), chunk=100, sample_rate=8000)
    with torch.inference_mode():
        model(burst)  # leaves an inference-mode state in the inner model
    x = burst.clone().requires_grad_(True)
    model(x).mean().backward()  # "Inference tensors cannot be saved for backward" must not happen
    assert torch.isfinite(x.grad).all() and x.grad[..., 300:500].abs().sum() > 0


def test_saliency_and_extremal_through_avxai(burst):
    model = Chunked(LeakyEnergy(), chunk=100, sample_rate=8000)
    modality = TensorModality(burst, ("time",))
    sal = avxai.methods.saliency(model, modality, MeanFrames(), SaliencyConfig())
    att = sal.attribution.reshape(-1)
    assert torch.isfinite(att).all() and att[300:500].abs().sum() > 0 and att[:300].abs().sum() == 0
    ext = avxai.extremal(model, modality, MeanFrames(), ExtremalConfig(areas=(0.3,), iterations=4))
    assert torch.isfinite(ext.attribution).all()


# -- Silero's JIT VAD (the vad extra) ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def silero():
    threads = torch.get_num_threads()
    silero_vad = pytest.importorskip("silero_vad")  # its import sets torch to one thread globally: restore
    torch.set_num_threads(threads)
    path = Path(silero_vad.__file__).parent / "data" / "silero_vad.jit"
    if not path.is_file():
        pytest.skip(f"{path} missing")
    return path


def tone_then_silence(rate=16000):
    t = torch.arange(rate) / rate
    voiced = 0.3 * torch.sin(2 * torch.pi * 150 * t) * (1 + torch.sin(2 * torch.pi * 4 * t))  # modulated tone
    return torch.cat([torch.zeros(rate // 2), voiced, torch.zeros(rate // 2)]).reshape(1, 1, -1)


def test_silero_frames_match_the_jit_model_chunk_by_chunk(silero):
    vad = load_torchscript(silero, sr=16000, chunk=512)  # --model silero_vad.jit --model-arg sr=16000 chunk=512
    assert isinstance(vad, Chunked) and vad.frame_hop_s == 0.032 and vad.sample_rate == 16000
    jit = torch.jit.load(str(silero))
    signals = [tone_then_silence()]
    if REAL.is_file():  # a real recording (avxai/assets/real, 16 kHz) when it is there
        sf = pytest.importorskip("soundfile")
        data, rate = sf.read(REAL, dtype="float32")
        assert rate == 16000
        signals.append(torch.from_numpy(data[: 3 * rate]).reshape(1, 1, -1))
    for wave in signals:
        wave = wave[..., : wave.shape[-1] // 512 * 512]
        with torch.inference_mode():
            frames = vad(wave)
            ref = by_hand(jit, wave[:, 0], 512, sr=16000)
        assert frames.shape == ref.shape == (1, wave.shape[-1] // 512)
        torch.testing.assert_close(frames, ref, atol=1e-6, rtol=0)
    x = signals[-1][..., :16000].clone().requires_grad_(True)
    vad(x).mean().backward()  # after the inference-mode calls above
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

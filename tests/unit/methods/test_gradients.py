"""Gradient baselines on toy models whose correct attribution is known in closed form."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avxai import ClassLogit, Spectrogram, TensorModality
from avxai.methods import METHODS
from avxai.methods.gradcam import GradCAMConfig, cam_to_grid, gradcam
from avxai.methods.gradients import (
    IntegratedGradientsConfig, SaliencyConfig, SmoothGradConfig, integrated_gradients, saliency, smoothgrad,
)


class LinearGrid(nn.Module):
    """``logit_0 = sum_ft W_ft x_ft`` on a ``(batch, 1, freq, time)`` grid; logit_1 = -logit_0."""

    def __init__(self, weights: torch.Tensor):
        super().__init__()
        self.weights = nn.Parameter(weights.clone())

    def forward(self, x):
        s = (x[:, 0] * self.weights).sum(dim=(1, 2))
        return torch.stack([s, -s], dim=1)


class SquashedGrid(LinearGrid):
    """A nonlinear score ``tanh(sum W x) + 0.3 (sum W x)^2``: completeness needs the full path integral."""

    def forward(self, x):
        s = (x[:, 0] * self.weights).sum(dim=(1, 2))
        z = torch.tanh(s) + 0.3 * s**2
        return torch.stack([z, -z], dim=1)


@pytest.fixture
def grid_problem():
    gen = torch.Generator().manual_seed(0)
    weights = torch.randn(6, 20, generator=gen)
    x = torch.rand(2, 1, 6, 20, generator=gen) + 0.1
    return weights, x


def test_saliency_is_weight_times_input_for_a_linear_model(grid_problem):
    weights, x = grid_problem
    modality = TensorModality(x, ("freq", "time"))
    expected = weights * x[:, 0]  # d/dm sum W (m x) at m = 1, zero baseline
    signed = saliency(LinearGrid(weights), modality, ClassLogit(0), SaliencyConfig(absolute=False))
    torch.testing.assert_close(signed.attribution, expected, atol=1e-6, rtol=1e-5)
    absolute = saliency(LinearGrid(weights), modality, ClassLogit(0))
    torch.testing.assert_close(absolute.attribution, expected.abs(), atol=1e-6, rtol=1e-5)


def test_saliency_under_a_blur_pyramid_is_the_one_sided_slope_at_mask_1(grid_problem):
    from avxai.perturbations import BlurPyramid

    weights, x = grid_problem
    pyramid = BlurPyramid({"time": 4.0}, levels=5)
    modality = TensorModality(x, ("freq", "time"), perturbation=pyramid)
    expl = saliency(LinearGrid(weights), modality, ClassLogit(0), SaliencyConfig(absolute=False))
    # mask m blurs with level (1 - m) * 4; lowering m from 1 moves towards level 1 at slope 4 per unit of mask
    level_1 = modality._prepared.levels[1][:, 0]
    torch.testing.assert_close(expl.attribution, weights * 4 * (x[:, 0] - level_1), atol=1e-5, rtol=1e-4)


def test_saliency_on_a_mel_grid_spreads_through_the_filter_bank():
    gen = torch.Generator().manual_seed(1)
    wav = torch.randn(1, 1, 4000, generator=gen)
    modality = Spectrogram(wav, 8000, n_fft=128, hop_length=64, n_mels=12, model_input="magnitude")
    freq, frames = modality.representation.shape[-2:]
    weights = torch.randn(freq, frames, generator=gen)
    expl = saliency(LinearGrid(weights), modality, ClassLogit(0), SaliencyConfig(absolute=False))
    # the mel mask m (mel, time) scales magnitude bin f by sum_k S[f, k] m[k, t]; d score / d m[k, t] =
    # sum_f W[f, t] |X|[f, t] S[f, k]
    expected = torch.einsum("ft,fk->kt", weights * modality.representation[0, 0], modality.mel_to_linear)
    assert expl.attribution.shape == (1, 12, frames)
    torch.testing.assert_close(expl.attribution[0], expected, atol=1e-5, rtol=1e-4)


class WindowEnergy(nn.Module):
    """A waveform model whose logit is the energy of samples [start, stop): only that span matters."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, wav):
        e = self.scale * wav[:, 0, self.start:self.stop].pow(2).mean(dim=1)
        return torch.stack([e, -e], dim=1)


def test_saliency_through_the_inverse_stft_finds_the_time_window():
    gen = torch.Generator().manual_seed(2)
    wav = torch.randn(1, 1, 8000, generator=gen) * 0.1
    hop, n_fft = 64, 256
    modality = Spectrogram(wav, 8000, n_fft=n_fft, hop_length=hop)
    expl = saliency(WindowEnergy(3200, 4800), modality, ClassLogit(0))
    profile = expl.attribution[0].sum(dim=0)
    # frames whose window (centre +- n_fft / 2) overlaps samples [3200, 4800)
    first, last = (3200 - n_fft // 2) // hop, (4800 + n_fft // 2) // hop + 1
    inside = profile[first:last].sum() / profile.sum()
    assert inside > 0.999, f"saliency mass inside the model's window: {inside:.4f}"
    assert profile[: first - 1].abs().max() < 1e-6 and profile[last + 1:].abs().max() < 1e-6


def test_smoothgrad_of_a_linear_model_equals_saliency_and_is_seeded(grid_problem):
    weights, x = grid_problem
    modality = TensorModality(x, ("freq", "time"))  # signed grid: noisy values are not clamped at 0
    model = LinearGrid(weights)
    plain = saliency(model, modality, ClassLogit(0), SaliencyConfig(absolute=False)).attribution
    for noise_on in ("mask", "representation"):
        cfg = SmoothGradConfig(samples=4, noise=0.1, noise_on=noise_on, absolute=False, batch_size=4)
        smooth = smoothgrad(model, modality, ClassLogit(0), cfg).attribution
        torch.testing.assert_close(smooth, plain, atol=1e-5, rtol=1e-4)  # gradient of a linear model is constant
    nonlinear = SquashedGrid(weights * 0.2)
    cfg = SmoothGradConfig(samples=6, noise=0.3, seed=3)
    a = smoothgrad(nonlinear, modality, ClassLogit(0), cfg).attribution
    b = smoothgrad(nonlinear, modality, ClassLogit(0), cfg).attribution
    c = smoothgrad(nonlinear, modality, ClassLogit(0), SmoothGradConfig(samples=6, noise=0.3, seed=4)).attribution
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_integrated_gradients_linear_exact_and_nonlinear_complete(grid_problem):
    weights, x = grid_problem
    modality = TensorModality(x, ("freq", "time"))
    linear = integrated_gradients(LinearGrid(weights), modality, ClassLogit(0), IntegratedGradientsConfig(steps=4))
    torch.testing.assert_close(linear.attribution, weights * x[:, 0], atol=1e-5, rtol=1e-4)
    model = SquashedGrid(weights * 0.2)
    gaps = {}
    for rule, steps in (("trapezoid", 64), ("riemann_middle", 64), ("riemann_left", 8)):
        expl = integrated_gradients(model, modality, ClassLogit(0), IntegratedGradientsConfig(steps=steps, rule=rule))
        comp = expl.metadata["completeness"]
        gaps[rule] = max(abs(g) for g in comp["relative_gap"])
        total = expl.attribution.reshape(2, -1).sum(dim=1).double()
        torch.testing.assert_close(total, torch.tensor(comp["score_1"], dtype=torch.float64)
                                   - torch.tensor(comp["score_0"], dtype=torch.float64), atol=5e-3, rtol=1e-2)
        torch.testing.assert_close(expl.scores["baseline"].double(), torch.tensor(comp["score_0"], dtype=torch.float64))
    assert gaps["trapezoid"] < 1e-3 and gaps["riemann_middle"] < 1e-3
    assert gaps["riemann_left"] > gaps["trapezoid"]  # a coarse left sum is visibly worse: the gap is measured


def test_integrated_gradients_completeness_through_the_inverse_stft():
    gen = torch.Generator().manual_seed(5)
    wav = torch.randn(1, 1, 4000, generator=gen) * 0.1
    modality = Spectrogram(wav, 8000, n_fft=128, hop_length=64, n_mels=16)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            g = torch.Generator().manual_seed(6)
            self.conv = nn.Conv1d(1, 4, 33, stride=8)
            with torch.no_grad():
                self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.3)
            self.out = nn.Linear(4, 2)

        def forward(self, w):
            return self.out(torch.tanh(self.conv(w) * 5).mean(dim=-1))

    expl = integrated_gradients(Net(), modality, ClassLogit(0), IntegratedGradientsConfig(steps=32))
    rel = abs(expl.metadata["completeness"]["relative_gap"][0])
    assert rel < 0.02, f"IG completeness gap {rel:.4f} of score(1) - score(0)"


# -- Grad-CAM ------------------------------------------------------------------------------------------------
class Gated1D(nn.Module):
    """Sees only frames 10-20 of a (batch, 1, freq, time) grid, then a strided TDNN-style Conv1d."""

    def __init__(self, freq: int, frames: int, lo: int = 10, hi: int = 20):
        super().__init__()
        gate = torch.zeros(frames)
        gate[lo:hi + 1] = 1.0
        self.register_buffer("gate", gate)
        g = torch.Generator().manual_seed(7)
        self.tdnn = nn.Sequential(nn.Conv1d(freq, 8, 3, stride=2, padding=1, bias=False), nn.ReLU())
        self.head = nn.Linear(8, 3)
        with torch.no_grad():
            self.tdnn[0].weight.copy_(torch.rand(self.tdnn[0].weight.shape, generator=g))
            self.head.weight.copy_(torch.rand(self.head.weight.shape, generator=g))

    def forward(self, x):
        h = self.tdnn(x[:, 0] * self.gate)
        return self.head(h.mean(dim=-1))


def test_gradcam_1d_activation_peaks_on_the_frames_the_model_uses():
    x = torch.rand(2, 1, 8, 40, generator=torch.Generator().manual_seed(8)) + 0.5
    model = Gated1D(8, 40)
    expl = gradcam(model, TensorModality(x, ("freq", "time")), ClassLogit(0), GradCAMConfig(layer="tdnn.0"))
    assert expl.attribution.shape == (2, 8, 40)
    assert expl.metadata["activation_shape"] == [2, 8, 20] and expl.metadata["activation_axes"] == ["time"]
    cam = expl.attribution
    torch.testing.assert_close(cam, cam[:, :1].expand_as(cam))  # 1-D CAM is broadcast over frequency
    profile = cam[:, 0]
    assert ((profile.argmax(dim=1) >= 10) & (profile.argmax(dim=1) <= 20)).all()
    inside = profile[:, 8:23].sum(dim=1) / profile.sum(dim=1)
    assert (inside > 0.97).all(), inside
    assert not model.tdnn[0]._forward_hooks  # the hook is gone


class Gated2D(nn.Module):
    """Sees only freq 4-9 x time 12-25 of a (batch, 1, freq, time) grid; a strided Conv2d."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(9)
        self.features = nn.Sequential(nn.Conv2d(1, 6, 3, stride=2, padding=1, bias=False), nn.ReLU())
        self.head = nn.Linear(6, 2)
        with torch.no_grad():
            self.features[0].weight.copy_(torch.rand(self.features[0].weight.shape, generator=g))
            self.head.weight.copy_(torch.rand(self.head.weight.shape, generator=g))

    def forward(self, x):
        gate = torch.zeros_like(x)
        gate[..., 4:10, 12:26] = 1.0
        return self.head(self.features(x * gate).mean(dim=(-2, -1)))


def test_gradcam_2d_activation_maps_to_freq_and_time():
    x = torch.rand(1, 1, 16, 40, generator=torch.Generator().manual_seed(10)) + 0.5
    expl = gradcam(Gated2D(), TensorModality(x, ("freq", "time")), ClassLogit(0))  # default: last conv
    assert expl.metadata["layer"] == "features.0" and expl.metadata["activation_shape"] == [1, 6, 8, 20]
    cam = expl.attribution[0]
    f, t = divmod(int(cam.argmax()), cam.shape[1])
    assert 4 <= f <= 9 and 12 <= t <= 25
    box = torch.zeros_like(cam, dtype=torch.bool)
    box[2:12, 10:28] = True  # the region +- one activation cell (2 grid cells)
    assert cam[box].sum() / cam.sum() > 0.97


def test_gradcam_3d_activation_and_explicit_axes():
    x = torch.rand(1, 2, 6, 8, 8, generator=torch.Generator().manual_seed(11)) + 0.5

    class Video(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv3d(2, 4, 3, padding=1, bias=False)
            nn.init.uniform_(self.conv.weight, 0.0, 1.0, generator=torch.Generator().manual_seed(12))

        def forward(self, v):
            gate = torch.zeros_like(v)
            gate[:, :, 2:4, 5:8, 0:3] = 1.0  # frames 2-3, lower-left corner
            return torch.relu(self.conv(v * gate)).mean(dim=(2, 3, 4))[:, :2]

    expl = gradcam(Video(), TensorModality(x, ("time", "height", "width")), ClassLogit(0))
    cam = expl.attribution[0]
    t, rest = divmod(int(cam.argmax()), 64)
    h, w = divmod(rest, 8)
    assert 2 <= t <= 3 and 5 <= h <= 7 and 0 <= w <= 2
    # the same 2-D activation read as (time only), frequency averaged out
    expl = gradcam(Gated2D(), TensorModality(torch.rand(1, 1, 16, 40) + 0.5, ("freq", "time")), ClassLogit(0),
                   GradCAMConfig(layer="features.0", axes=(None, "time")))
    profile = expl.attribution[0, 0]
    assert 12 <= int(profile.argmax()) <= 25
    torch.testing.assert_close(expl.attribution[0], profile.expand(16, -1))


def test_cam_to_grid_permutes_and_broadcasts():
    cam = torch.arange(6.0).view(1, 3, 2)  # activation axes (time=3, freq=2)
    out = cam_to_grid(cam, ("time", "freq"), ("freq", "time"), (2, 3), mode="nearest")
    torch.testing.assert_close(out[0], cam[0].T)


def test_gradcam_errors_are_readable():
    x = torch.rand(1, 1, 8, 40) + 0.5
    modality = TensorModality(x, ("freq", "time"))
    with pytest.raises(ValueError, match="no layer 'tdnn.9'"):
        gradcam(Gated1D(8, 40), modality, ClassLogit(0), GradCAMConfig(layer="tdnn.9"))
    with pytest.raises(ValueError, match="names 1 axes"):
        gradcam(Gated2D(), modality, ClassLogit(0), GradCAMConfig(axes=("time",)))
    with pytest.raises(ValueError, match="does not have"):
        gradcam(Gated2D(), modality, ClassLogit(0), GradCAMConfig(axes=("height", "time")))
    with pytest.raises(ValueError, match="axes"):
        GradCAMConfig(axes=("time", "time"))
    with pytest.raises(ValueError, match="steps"):
        IntegratedGradientsConfig(steps=0)
    with pytest.raises(ValueError, match="rule"):
        IntegratedGradientsConfig(rule="simpson")
    with pytest.raises(ValueError, match="noise_on"):
        SmoothGradConfig(noise_on="input")


def test_hooks_are_released_when_the_model_fails():
    class Broken(Gated1D):
        def forward(self, x):  # the unmasked pass works; the gradient pass (mask needs grad) fails
            out = super().forward(x)
            if x.requires_grad:
                raise RuntimeError("boom")
            return out

    model = Broken(8, 40)
    modality = TensorModality(torch.rand(1, 1, 8, 40) + 0.5, ("freq", "time"))
    with pytest.raises(RuntimeError, match="boom"):
        gradcam(model, modality, ClassLogit(0), GradCAMConfig(layer="tdnn.0"))
    assert not model.tdnn[0]._forward_hooks


def test_a_model_that_cuts_the_graph_gets_a_clear_error():
    class Detached(LinearGrid):
        def forward(self, x):
            return super().forward(x.detach())

    modality = TensorModality(torch.rand(1, 1, 6, 20), ("freq", "time"))
    for name in ("saliency", "smoothgrad", "integrated-gradients"):
        with pytest.raises(ValueError, match="differentiabl"):
            METHODS[name](Detached(torch.randn(6, 20)), modality, ClassLogit(0))

import pytest
import torch

from avxai import Spectrogram, occlusion, OcclusionConfig, ClassLogit
from avxai.modalities.synthesis import WeightedSynthesis
from avxai.perturbations import BlurPyramid, Mean, Noise, Blur, GridInfo, parse_perturbation
from toys.models import RegionEnergy, tone_in_noise

SR = 16000


def test_round_trip_keeps_waveform_and_phase():
    wav = tone_in_noise(batch=2)
    mod = Spectrogram(wav, SR, n_fft=256, hop_length=64)
    assert mod.grid_shape == (129, wav.shape[-1] // 64 + 1)
    assert torch.allclose(mod.model_input(), wav, atol=1e-5)
    ones = torch.ones(2, *mod.grid_shape)
    assert torch.allclose(mod.perturb(ones), wav, atol=1e-5)
    assert mod.perturb(torch.zeros(2, *mod.grid_shape)).abs().max() < 1e-6  # zero baseline = silence


def test_mask_rows_belong_to_inputs_modulo_batch():
    wav = tone_in_noise(batch=2)
    wav[1] *= 0.5
    mod = Spectrogram(wav, SR, n_fft=256, hop_length=64, model_input="magnitude")
    out = mod.apply_mask(torch.ones(6, *mod.grid_shape))
    for i in range(6):
        assert torch.equal(out[i], mod.representation[i % 2])


def test_mel_grid_maps_masks_onto_linear_bins():
    mod = Spectrogram(tone_in_noise(), SR, n_fft=512, hop_length=128, n_mels=40)
    assert mod.grid_shape[0] == 40 and mod.axes == ("mel", "time")
    assert torch.allclose(mod.mel_to_linear.sum(1), torch.ones(257))
    full = mod.apply_mask(torch.ones(1, *mod.grid_shape))
    assert torch.allclose(full, mod.representation, atol=1e-6)
    # masking the low mel bands removes the 700 Hz tone but keeps the high bins
    mask = torch.ones(1, *mod.grid_shape)
    mask[:, :12] = 0
    out = mod.apply_mask(mask)[0, 0]
    bin700 = round(700 / (SR / 512))
    assert out[bin700].mean() < 0.05 * mod.representation[0, 0, bin700].mean()
    assert torch.allclose(out[200:], mod.representation[0, 0, 200:])


def test_bad_inputs_raise_clear_errors():
    wav = tone_in_noise()
    with pytest.raises(ValueError, match="batch, channels, time"):
        Spectrogram(wav[0], SR)
    with pytest.raises(ValueError, match="silent"):
        Spectrogram(torch.zeros(1, 1, SR), SR)
    bad = wav.clone()
    bad[0, 0, 100] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Spectrogram(bad, SR)
    with pytest.raises(ValueError, match="too short"):
        Spectrogram(wav[..., :100], SR, n_fft=512)
    with pytest.raises(ValueError, match="sample_rate"):
        Spectrogram(wav, 0)
    with pytest.raises(ValueError, match="unknown perturbation"):
        Spectrogram(wav, SR, perturbation="smudge")


def test_wrong_sample_rate_is_an_error_unless_resampling_is_asked_for():
    model = RegionEnergy(sample_rate=16000, n_fft=256, hop_length=64)
    wav8k = tone_in_noise(sample_rate=8000)
    mod = Spectrogram(wav8k, 8000, n_fft=256, hop_length=64)
    with pytest.raises(ValueError, match="16000 Hz but the input is at 8000 Hz"):
        occlusion(model, mod, ClassLogit(0), OcclusionConfig(window=8))
    resampled = Spectrogram(wav8k, 8000, n_fft=256, hop_length=64, resample_to=16000)
    assert resampled.sample_rate == 16000 and resampled.waveform.shape[-1] == 2 * wav8k.shape[-1]
    occlusion(model, resampled, ClassLogit(0), OcclusionConfig(window=(64, 64), stride=(64, 64)))


def test_noise_baseline_has_the_requested_snr():
    x = torch.rand(1, 1, 129, 200) + 0.5
    info = GridInfo(("freq", "time"), nonnegative=True)
    base = Noise(snr_db=10.0, seed=3).baseline(x, info)
    snr = 10 * torch.log10(x.pow(2).mean() / base.pow(2).mean())
    assert abs(snr.item() - 10.0) < 0.2
    assert (base >= 0).all()
    assert torch.equal(base, Noise(snr_db=10.0, seed=3).baseline(x, info))


def test_blur_and_mean_baselines_act_on_named_axes():
    x = torch.zeros(1, 1, 9, 50)
    x[..., 25] = 1.0
    info = GridInfo(("freq", "time"))
    t_blur = Blur({"time": 3.0}).baseline(x, info)
    f_blur = Blur({"freq": 3.0}).baseline(x, info)
    assert torch.allclose(t_blur.sum(-1), x.sum(-1), atol=1e-5)  # mass preserved along time
    assert t_blur[..., 22].mean() > 0.05 and torch.allclose(f_blur, x, atol=1e-6)  # a constant-in-freq column
    assert torch.allclose(Mean(("time",)).baseline(x, info), torch.full_like(x, 1 / 50))


def test_blur_pyramid_endpoints():
    x = torch.rand(2, 1, 16, 64)
    prepared = BlurPyramid({"time": 6.0}, levels=5).prepare(x, GridInfo(("freq", "time")))
    assert torch.allclose(prepared.apply(torch.ones(2, 16, 64)), x, atol=1e-6)
    strongest = Blur({"time": 6.0}).baseline(x, GridInfo(("freq", "time")))
    assert torch.allclose(prepared.apply(torch.zeros(2, 16, 64)), strongest, atol=1e-5)
    assert isinstance(parse_perturbation("pyramid-tf:4"), BlurPyramid)


@pytest.mark.parametrize("stft,perturbation", [(dict(n_fft=512, hop_length=128), "mean"),
                                               (dict(n_fft=400, hop_length=160, win_length=320), "mean"),
                                               (dict(n_fft=512, hop_length=128), "pyramid-tf:4")])
def test_local_resynthesis_equals_the_full_inverse_stft(stft, perturbation):
    # "mean" fades to a fixed baseline (only the touched frames are computed); the blur pyramid depends on the
    # mask (the whole grid is perturbed, then only the touched frames re-synthesised)
    wav = tone_in_noise(batch=2, seed=4).repeat(1, 2, 1)  # 2 inputs x 2 channels
    mod = Spectrogram(wav, SR, perturbation=perturbation, **stft)
    frames = mod.grid_shape[1]
    masks = torch.ones(8, *mod.grid_shape)
    for i, start in enumerate([0, 3, frames - 5, 10, 20, 0, frames - 1, 40]):
        masks[i, 2:9, start:start + 4] = 0.3 * (i % 3)
    masks[5] = 1.0  # a row the mask leaves untouched
    full = mod.to_model_input(mod.apply_mask(masks))
    assert (mod.perturb(masks) - full).abs().max() < 1e-6
    dense = torch.rand(4, *mod.grid_shape)  # long spans fall back to the full inverse
    assert (mod.perturb(dense) - mod.to_model_input(mod.apply_mask(dense))).abs().max() < 1e-6


@pytest.mark.filterwarnings("ignore:The length of signal is shorter")
@pytest.mark.parametrize("n_fft, hop, win, length", [(256, 64, 256, 4000), (63, 20, 63, 700), (64, 16, 48, 997),
                                                     (32, 8, 32, 100)])  # the last: samples past the last frame
def test_weighted_synthesis_is_torch_istft_and_its_gradient_the_adjoint(n_fft, hop, win, length):
    wav = torch.randn(2, 1, length, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    window = torch.hann_window(win, dtype=torch.float64)
    left = (n_fft - win) // 2
    full_window = torch.nn.functional.pad(window, (left, n_fft - win - left))
    frames = 6 if length == 100 else None  # a few frames for a waveform longer than they cover
    spec = torch.stft(wav[:, 0], n_fft, hop, win, window, center=True, return_complex=True).unsqueeze(1)[..., :frames]
    phase = spec.angle()
    synthesis = WeightedSynthesis(torch.polar(torch.ones_like(phase), phase), full_window, hop, length)
    weights = spec.abs().repeat(3, 1, 1, 1) * torch.rand(6, 1, 1, spec.shape[-1], dtype=torch.float64)
    expected = torch.istft(torch.polar(weights, phase.repeat(3, 1, 1, 1))[:, 0], n_fft, hop, win, window,
                           center=True, length=length)
    torch.testing.assert_close(synthesis(weights)[:, 0], expected, atol=1e-12, rtol=0)
    offset = torch.randn(2, 1, length, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    shifted = WeightedSynthesis(torch.polar(torch.ones_like(phase), phase), full_window, hop, length, offset=offset)
    torch.testing.assert_close(shifted(weights), expected.view(3, 2, 1, -1).add(offset).view(6, 1, -1), atol=1e-12, rtol=0)
    small = weights[:2, :, :, :4].clone().requires_grad_(True)
    short = WeightedSynthesis(torch.polar(torch.ones_like(phase[..., :4]), phase[..., :4]), full_window, hop, 60)
    assert torch.autograd.gradcheck(short, (small,))


@pytest.mark.parametrize("perturbation", ["zero", "mean", "noise:10", "time-blur:4"])
@pytest.mark.parametrize("n_mels", [None, 24])
def test_masks_under_autograd_give_the_inverse_stft_of_the_blend_and_its_gradient(perturbation, n_mels):
    """With a fixed baseline the waveform is synthesised from the mask directly (one inverse STFT of the mask plus
    the baseline's waveform): it must equal torch.istft of the blended magnitude with the input's phase."""
    wav = tone_in_noise(batch=2, seed=5).repeat(1, 2, 1)  # 2 inputs x 2 channels
    mod = Spectrogram(wav, SR, n_fft=256, hop_length=64, n_mels=n_mels, perturbation=perturbation)
    masks = torch.rand(4, *mod.grid_shape, generator=torch.Generator().manual_seed(6), requires_grad=True)
    waves = mod.perturb(masks)
    blended = mod.apply_mask(masks)  # (4, 2, freq, frames)
    spec = torch.polar(blended, mod.phase.repeat(2, 1, 1, 1)).reshape(8, *blended.shape[2:])
    expected = torch.istft(spec, 256, 64, window=torch.hann_window(256), center=True,
                           length=wav.shape[-1]).view(4, 2, -1)
    torch.testing.assert_close(waves, expected, atol=2e-5, rtol=0)
    weights = torch.randn_like(waves)
    grad, = torch.autograd.grad((waves * weights).sum(), masks)
    expected_grad, = torch.autograd.grad((expected * weights).sum(), masks)
    torch.testing.assert_close(grad, expected_grad, atol=1e-4, rtol=1e-4)


def test_one_waveform_check_for_modalities_and_metrics():
    from avxai.checks import check_positive_int, check_sample_rate, check_waveform

    wave = torch.randn(1, 1, 400) * 0.1
    assert check_waveform(wave, 8000) is wave
    with pytest.raises(ValueError, match="batch, channels, time"):
        check_waveform(wave[0, 0], 8000)
    assert check_waveform(wave[0, 0], name="target", batched=False, min_rms=None) is not None  # any (..., time)
    assert check_waveform(torch.zeros(400), batched=False, min_rms=None) is not None  # a silent part may be checked
    with pytest.raises(ValueError, match="silent"):
        check_waveform(torch.zeros(1, 1, 400), 8000)
    with pytest.raises(TypeError, match="floating point"):
        check_waveform(torch.ones(1, 1, 400, dtype=torch.int16), 8000)
    with pytest.raises(ValueError, match="target contains 1 NaN"):
        check_waveform(torch.tensor([0.1, float("nan")]), name="target", batched=False)
    with pytest.raises(ValueError, match="sample_rate must be a positive integer in Hz"):
        check_sample_rate(16000.0)
    with pytest.raises(ValueError, match=r"steps must be a positive int \(what\), got True"):
        check_positive_int(True, "steps", "what")

"""What a long input costs around the method: the STFT, the re-synthesis and the media computed a few frames at a
time (equal to the whole-signal computation), and no spectrum-sized cache held twice (tiny inputs, small chunks)."""

import pytest
import torch

import avxai.modalities.stft as stft_module
import avxai.modalities.synthesis as synthesis_module
from avxai import Spectrogram
from avxai.engine import mask_media
from avxai.modalities.stft import stft_magnitude_phase
from avxai.modalities.synthesis import chunked_inverse_stft
from toys.models import tone_in_noise

SR = 16000


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few frames, so that a tiny input is cut into many of them."""
    monkeypatch.setattr(synthesis_module, "CHUNK_ELEMENTS", 7 * 256)
    monkeypatch.setattr(stft_module, "CHUNK_FRAMES_ELEMENTS", 5 * 256)


@pytest.mark.parametrize("n_fft, hop, win, length", [(256, 64, 256, 4000), (400, 160, 320, 4001), (63, 20, 63, 700)])
def test_chunked_stft_is_torch_stft_in_its_layout(n_fft, hop, win, length):
    wav = torch.randn(2, 3, length, generator=torch.Generator().manual_seed(0))
    window = torch.hann_window(win)
    spec = torch.stft(wav.reshape(6, length), n_fft, hop, win, window, center=True, return_complex=True)
    magnitude, phase = stft_magnitude_phase(wav, n_fft, hop, window, chunk_elements=3 * n_fft)  # 1 frame per chunk
    assert torch.equal(magnitude.reshape(6, *spec.shape[1:]), spec.abs())
    # the same phase up to its sign at +-pi (a real bin's imaginary part of -0.0 or +0.0, FFT by FFT)
    unit = torch.polar(torch.ones_like(phase), phase).reshape(6, *spec.shape[1:])
    torch.testing.assert_close(unit, torch.polar(torch.ones_like(spec.real), spec.angle()), atol=1e-6, rtol=0)
    assert magnitude.stride()[-2:] == (1, n_fft // 2 + 1)  # frame by frame, as torch.stft(...).abs() is


@pytest.mark.parametrize("n_fft, hop, win, length, frames", [(256, 64, 256, 4000, None), (64, 16, 48, 997, None),
                                                             (32, 8, 32, 100, 6)])  # the last: samples past the frames
@pytest.mark.filterwarnings("ignore:The length of signal is shorter")
def test_chunked_inverse_stft_equals_torch_istft(n_fft, hop, win, length, frames):
    wav = torch.randn(2, 1, length, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    window = torch.hann_window(win, dtype=torch.float64)
    left = (n_fft - win) // 2
    full_window = torch.nn.functional.pad(window, (left, n_fft - win - left))
    spec = torch.stft(wav[:, 0], n_fft, hop, win, window, center=True, return_complex=True)[..., :frames]
    expected = torch.istft(spec, n_fft, hop, win, window, center=True, length=length)
    for chunk in (n_fft, 5 * n_fft, 10 ** 9):  # one frame per chunk, a few, all at once
        got = chunked_inverse_stft(lambda a, b: spec[:, None, :, a:b], spec.shape[-1], full_window, hop, length,
                                   rows=2, chunk_elements=chunk)
        torch.testing.assert_close(got[:, 0], expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("perturbation", ["zero", "mean", "pyramid-tf:4"])
def test_chunked_media_equal_the_whole_inverse_stft(small_chunks, monkeypatch, perturbation):
    wav = tone_in_noise(batch=2, seed=2).repeat(1, 2, 1)  # 2 inputs x 2 channels
    mod = Spectrogram(wav, SR, n_fft=256, hop_length=64, perturbation=perturbation)
    keep = (torch.rand(2, *mod.grid_shape, generator=torch.Generator().manual_seed(3)) > 0.5).float()
    media = mask_media(mod, {"preserved": keep, "deleted": 1.0 - keep})
    window = torch.hann_window(256)
    for name, mask in (("original", torch.ones_like(keep)), ("preserved", keep), ("deleted", 1.0 - keep)):
        spec = torch.polar(mod.apply_mask(mask), mod.phase).reshape(4, *mod.grid_shape)
        expected = torch.istft(spec, 256, 64, window=window, center=True, length=wav.shape[-1]).view(2, 2, -1)
        kind, audio, rate = media[name]
        assert kind == "audio" and rate == SR
        torch.testing.assert_close(audio, expected, atol=2e-6, rtol=0)
    # a short input (the default chunks) goes through the re-synthesis plan, the same waveforms
    monkeypatch.setattr(synthesis_module, "CHUNK_ELEMENTS", 1 << 22)
    assert mod._plans_fit()
    torch.testing.assert_close(mask_media(mod, {"preserved": keep})["preserved"][1], media["preserved"][1],
                               atol=2e-6, rtol=0)
    # the same through the differentiable synthesis (what extremal's loop uses)
    masks = keep.repeat(2, 1, 1).requires_grad_(True)
    torch.testing.assert_close(mod.perturb(masks).detach(), torch.no_grad(mod.perturb)(masks), atol=2e-6, rtol=0)


def _held_bytes(*objects) -> tuple[int, list[str]]:
    """Bytes of the distinct tensor storages held as attributes of ``objects`` (views of one storage count once)."""
    seen, total, names = set(), 0, []
    for obj in objects:
        for name, value in vars(obj).items():
            values = value.values() if isinstance(value, dict) else [value]
            for v in values:
                if isinstance(v, torch.Tensor) and v.untyped_storage().data_ptr() not in seen:
                    seen.add(v.untyped_storage().data_ptr())
                    total += v.untyped_storage().nbytes()
                    names.append(name)
    return total, names


def test_an_occlusion_run_keeps_magnitude_phase_and_one_waveform_not_copies_of_the_spectrum(small_chunks):
    """(small_chunks: the 1-s input counts as long; a short one builds the faster re-synthesis plans.)"""
    wav = tone_in_noise(seconds=1.0)
    mod = Spectrogram(wav, SR, n_fft=512, hop_length=128)  # "zero": silence
    spectrum = mod.representation.numel() * mod.representation.element_size()
    waveform = wav.numel() * wav.element_size()
    assert mod._prepared.difference is mod.representation  # x - 0 is x, not a copy
    assert all(s == 0 for s, n in zip(mod._prepared.baseline.stride(), mod._prepared.baseline.shape) if n > 1)  # a broadcast zero
    mask = torch.ones(4, *mod.grid_shape)
    mask[:, 10:40, 20:30] = 0
    with torch.inference_mode():
        mod.perturb(mask)  # occlusion's local re-synthesis
        mod.model_input()  # the unmasked input (through the chunked inverse STFT)
        mod.media(mod.representation)
    held, names = _held_bytes(mod, mod._prepared)
    assert "_synthesis_plans" not in vars(mod) and "_blend_plan" not in vars(mod)  # only built for gradients
    # magnitude + phase, the input and the unmasked waveforms, the window envelope (padded waveform length)
    assert held <= 2 * spectrum + 3 * waveform + 4 * (512 + 128 * mod.grid_shape[1]) + 4096, names
    masks = torch.rand(2, *mod.grid_shape, requires_grad=True)
    mod.perturb(masks)  # extremal: the differentiable synthesis holds the phasor and its adjoint, once
    held_grad, _ = _held_bytes(mod, mod._prepared, mod._blend_plan)
    assert held_grad - held <= 4 * spectrum + 2 * waveform + 4096, held_grad - held  # + the window


def test_av_occlusion_windows_stay_0_2_s_on_short_clips_and_at_most_32_along_a_long_one():
    from avxai.methods.occlusion import OcclusionConfig, occlusion_windows
    from avxai.modalities.audio_visual import AudioVisual, AVSpectrogram
    from avxai.modalities.base import MAX_OCCLUSION_STEPS
    from avxai.modalities.video import FaceVideo

    def clip(seconds):
        frames = int(seconds * 25)
        wav = torch.randn(1, 1, frames * 320, generator=torch.Generator().manual_seed(0)) * 0.1
        spec = AVSpectrogram(wav, 8000, n_fft=256, hop_length=80)
        return AudioVisual(spec, FaceVideo(torch.rand(1, frames, 3, 8, 8), 25.0, perturbation="mean-time"))

    short = clip(2.0)
    assert short.spectrogram.occlusion_window()[0][1] == 20 and short.video.occlusion_window()[0][0] == 5  # 0.2 s
    assert short.spectrogram.occlusion_note() is None and short.video.occlusion_note() is None
    long = clip(60.0)
    (_, frames), _ = long.spectrogram.occlusion_window()
    (video_frames, _, _), _ = long.video.occlusion_window()
    assert -(-long.spectrogram.grid_shape[1] // frames) <= MAX_OCCLUSION_STEPS
    assert -(-long.video.num_frames // video_frames) == MAX_OCCLUSION_STEPS and video_frames == 47  # 1.88 s
    assert "1.88 s" in long.spectrogram.occlusion_note() and "1.88 s" in long.video.occlusion_note()
    windows, _ = occlusion_windows(long, OcclusionConfig())
    assert len(windows) == MAX_OCCLUSION_STEPS * (16 + 16)  # 16 bands of 16 bins (hop 8); 4 x 4 patches of the crop
    given, _ = occlusion_windows(long, OcclusionConfig(window=(16, 20, 5, 2, 2), stride=(8, 20, 5, 2, 2)))
    assert len(given) == 4816 + 4800  # a window the user gives is used as given: 0.2 s over 60 s

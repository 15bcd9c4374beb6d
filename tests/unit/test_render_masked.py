"""Saved media of masked inputs (engine.mask_media) rendered a few frames at a time (modalities.render): the same
waveforms as the whole perturbed spectrum's inverse STFT, for every perturbation a spectrogram takes, without
building that spectrum where the perturbation has a fixed baseline (tiny inputs, small chunks)."""

import pytest
import torch

import avxai.modalities.synthesis as synthesis_module
from avxai import Spectrogram
from avxai.engine import mask_media
from avxai.memory import MasksAsInput
from avxai.modalities.audio_visual import AudioVisual, AVSpectrogram
from avxai.modalities.render import render_masked
from avxai.modalities.video import FaceVideo
from toys.models import tone_in_noise

SR = 16000
FIXED = ["zero", "const:0.05", "mean", "mean-time", "noise:5", "floor", "floor-noise", "time-blur", "freq-blur"]
MASK_DEPENDENT = ["pyramid-time", "pyramid-tf", "freeze"]  # need the whole input: the former path


@pytest.fixture(params=[False, True], ids=["chunks", "default"])
def chunks(request, monkeypatch):
    """A few frames per chunk (the 0.25-s input is cut into many), or the default (all at once)."""
    if not request.param:
        monkeypatch.setattr(synthesis_module, "CHUNK_ELEMENTS", 7 * 256)


def _masks(shape, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(n, *shape, generator=g)
    m[:, :, : shape[1] // 3] = 1.0  # untouched frames, a hard-zero stretch and soft values elsewhere
    m[:, :, shape[1] // 2: shape[1] // 2 + 5] = 0.0
    return m


@pytest.mark.parametrize("perturbation", FIXED + MASK_DEPENDENT)
@pytest.mark.parametrize("n_mels", [None, 16])
def test_rendered_media_equal_the_whole_perturbed_spectrums(chunks, perturbation, n_mels):
    wav = torch.cat([tone_in_noise(0.25, SR, seed=s) for s in (0, 1)])  # a batch of two
    spec = Spectrogram(wav, SR, n_fft=256, hop_length=64, n_mels=n_mels, perturbation=perturbation)
    masks = _masks(spec.grid_shape, 4)  # 4 rows: input i % 2
    want, rate = spec.media(spec.apply_mask(masks))["audio"]
    got, got_rate = render_masked(spec, masks)["audio"]
    assert got_rate == rate == SR and got.shape == want.shape == (4, 1, wav.shape[-1])
    assert torch.allclose(got, want, atol=1e-6 * float(want.abs().max()), rtol=0), (got - want).abs().max()


@pytest.mark.parametrize("perturbation", FIXED)
def test_a_fixed_baseline_renders_without_the_whole_perturbed_spectrum(chunks, perturbation, monkeypatch):
    spec = Spectrogram(tone_in_noise(0.25, SR), SR, n_fft=256, hop_length=64,
                       perturbation=perturbation)
    keep = _masks(spec.grid_shape, 1)
    want = mask_media(spec, {"preserved": keep, "deleted": 1.0 - keep})

    def whole(mask):
        raise AssertionError("the whole perturbed spectrum was built")

    monkeypatch.setattr(spec, "apply_mask", whole)
    got = mask_media(MasksAsInput(spec), {"preserved": keep, "deleted": 1.0 - keep})  # through a delegating view
    assert list(got) == ["original", "preserved", "deleted"]
    for key in got:
        assert got[key][0] == "audio" and got[key][2] == SR
        assert torch.allclose(got[key][1], want[key][1], atol=1e-6, rtol=0), key


def test_an_audio_visual_input_renders_its_audio_in_chunks_and_its_video_as_before(chunks):
    wav = tone_in_noise(0.4, 8000)
    av = AudioVisual(AVSpectrogram(wav, 8000, n_fft=256, hop_length=80, perturbation="mean"),
                     FaceVideo(torch.rand(1, 10, 3, 8, 8, generator=torch.Generator().manual_seed(0)), 25.0,
                               perturbation="mean-time"))
    keep = torch.rand(2, *av.grid_shape, generator=torch.Generator().manual_seed(2))
    want = av.media(av.apply_mask(keep))
    got = render_masked(av, keep)
    assert set(got) == set(want) == {"audio", "video"}
    for kind in got:
        assert torch.allclose(got[kind][0], want[kind][0], atol=1e-6, rtol=0), kind
        assert got[kind][1:] == want[kind][1:]

"""Tasks as a library: each task's problem built from Python with in-memory tensors and toy models; the modality,
its STFT (one rule: given, else the model's own, else ~32 ms / n_fft // 4) and the scorer are the right ones."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import avxai
from avxai.faces import FaceTrack
from avxai.io.video import VideoClip
from avxai.modalities.audio_visual import AudioVisual, FixedAudio, FixedVideo
from avxai.modalities.video import FaceVideo
from avxai.scorers import SDR, SISDR, ClassLogit, ClassLogProbability, SpeakerCosine
from avxai.tasks import TASKS, default_stft, stft_for
from avxai.tasks.av_enhancement import AVEnhancementOptions
from avxai.tasks.enhancement import EnhancementOptions
from avxai.tasks.separation import SeparationOptions
from avxai.tasks.speaker import SpeakerOptions


def tone(seconds: float, rate: int, freq: float = 440.0, channels: int = 1) -> torch.Tensor:
    """A sine ``(channels, time)`` at ``rate`` Hz."""
    t = torch.arange(int(seconds * rate)) / rate
    return (0.3 * torch.sin(2 * math.pi * freq * t)).repeat(channels, 1)


class ToyEmbedder(nn.Module):
    def forward(self, x):  # (n, 1, time) -> (n, 2): energy of the two halves
        half = x.shape[-1] // 2
        return torch.stack([x[..., :half].pow(2).mean((1, 2)), x[..., half:].pow(2).mean((1, 2))], dim=1) + 1e-3


class ToySpeaker(nn.Module):
    """16 kHz, no STFT of its own: (n, 1, time) -> logits (n, 2)."""

    sample_rate = 16000

    def __init__(self):
        super().__init__()
        self.embed = ToyEmbedder()

    def embedder(self):
        return self.embed

    def forward(self, x):
        return self.embed(x).log()


class ToyEnhancer(nn.Module):
    """8 kHz with its own STFT (256 / 64): halves its input."""

    sample_rate, n_fft, hop_length = 8000, 256, 64

    def forward(self, x):
        return 0.5 * x


class ToySeparator(nn.Module):
    sample_rate, num_sources = 8000, 2

    def forward(self, x):
        return torch.cat([0.7 * x, 0.3 * x], dim=1)


class ToyAV(nn.Module):
    sample_rate, fps, crop_size, n_fft, hop_length = 8000, 25.0, 16, 256, 80

    def forward(self, wav, video=None):
        if video is None:  # AudioVisual passes (waveform, video) as one pair
            wav, video = wav
        return wav * video.mean(dim=(1, 2, 3, 4)).view(-1, 1, 1)


def test_import_avxai_is_enough_to_build_a_speaker_problem():
    wav = tone(1.0, 16000)
    problem = avxai.tasks.speaker.build(ToySpeaker(), avxai.tasks.speaker.SpeakerOptions(input=wav,
                                                                                        sample_rate=16000))
    assert isinstance(problem.modality, avxai.Spectrogram) and isinstance(problem.scorer, ClassLogit)
    assert problem.scorer.target is None  # the predicted class
    # no STFT of its own at 16 kHz: ~32 ms with a quarter hop
    assert (problem.modality.n_fft, problem.modality.hop_length) == (512, 128) == default_stft(16000)
    assert problem.modality.waveform.shape == (1, 1, 16000)
    assert problem.metadata["input"] == "tensor (1, 16000)"


def test_speaker_options_pick_the_score_grid_and_verification(tmp_path):
    model = ToySpeaker()
    wav = tone(1.0, 16000)
    problem = TASKS["speaker"].build(model, SpeakerOptions(input=wav, sample_rate=16000, target=1,
                                                           score="log-probability", n_mels=32, hop_length=160))
    assert isinstance(problem.scorer, ClassLogProbability) and problem.scorer.target.tolist() == [1]
    assert problem.modality.grid_shape[0] == 32 and problem.modality.hop_length == 160
    batch = TASKS["speaker"].build(model, SpeakerOptions(input=wav.repeat(2, 1, 1), sample_rate=16000,
                                                         target=(0, 1)))
    assert batch.modality.batch_size == 2 and batch.scorer.target.tolist() == [0, 1]
    verify = TASKS["speaker"].build(model, SpeakerOptions(input=wav, sample_rate=16000, enroll=tone(1.0, 16000, 300)))
    assert isinstance(verify.scorer, SpeakerCosine) and verify.model is model.embed
    with pytest.raises(ValueError, match="give one or the other"):
        TASKS["speaker"].build(model, SpeakerOptions(input=wav, sample_rate=16000, enroll=wav, target=0))
    with pytest.raises(ValueError, match="is not a speaker-identification score"):
        TASKS["speaker"].build(model, SpeakerOptions(input=wav, sample_rate=16000, score="sdr"))


def test_tensor_inputs_check_rate_and_channels():
    model = ToySpeaker()
    with pytest.raises(ValueError, match="give its sample_rate"):
        TASKS["speaker"].build(model, SpeakerOptions(input=tone(1.0, 16000)))
    with pytest.raises(ValueError, match="at 8000 Hz but the model takes 16000 Hz; pass resample=True"):
        TASKS["speaker"].build(model, SpeakerOptions(input=tone(1.0, 8000), sample_rate=8000))
    resampled = TASKS["speaker"].build(model, SpeakerOptions(input=tone(1.0, 8000), sample_rate=8000, resample=True))
    assert resampled.modality.waveform.shape[-1] == 16000
    stereo = tone(1.0, 16000, channels=2)
    with pytest.raises(ValueError, match="2 channels but the model takes mono audio; pass mono=True"):
        TASKS["speaker"].build(model, SpeakerOptions(input=stereo, sample_rate=16000))
    mono = TASKS["speaker"].build(model, SpeakerOptions(input=stereo, sample_rate=16000, mono=True))
    assert mono.modality.waveform.shape == (1, 1, 16000)


def test_enhancement_problem_uses_the_models_stft_and_the_reference():
    model, noisy, clean = ToyEnhancer(), tone(1.0, 8000) + 0.01 * torch.randn(1, 8000), tone(1.0, 8000)
    problem = TASKS["enhancement"].build(model, EnhancementOptions(input=noisy, sample_rate=8000, reference=clean,
                                                                   score="si-sdr"))
    assert isinstance(problem.scorer, SISDR) and problem.scorer.reference.shape == (1, 1, 8000)
    assert (problem.modality.n_fft, problem.modality.hop_length) == (256, 64) == stft_for(model, 8000)
    assert torch.equal(problem.extras["target"], clean[0])
    assert problem.metadata["score_against"] == "reference"
    own = TASKS["enhancement"].build(model, EnhancementOptions(input=noisy, sample_rate=8000, n_fft=128))
    assert isinstance(own.scorer, SDR) and own.scorer.reference is None and own.extras["target"] is None
    assert (own.modality.n_fft, own.modality.hop_length) == (128, 64)  # the given n_fft, the model's hop
    with pytest.raises(ValueError, match="same recording length"):
        TASKS["enhancement"].build(model, EnhancementOptions(input=noisy, sample_rate=8000, reference=clean[:, :-10]))


def test_separation_problem_scores_the_chosen_source():
    model, mix = ToySeparator(), tone(1.0, 8000, 300) + tone(1.0, 8000, 1200)
    sources = torch.cat([tone(1.0, 8000, 300), tone(1.0, 8000, 1200)])  # (2, time)
    problem = TASKS["separation"].build(model, SeparationOptions(input=mix, sample_rate=8000, reference=sources,
                                                                 source=1))
    assert isinstance(problem.scorer, SDR) and problem.scorer.source == 1
    assert problem.scorer.reference.shape == (1, 2, 8000) and torch.equal(problem.extras["target"], sources[1])
    assert (problem.modality.n_fft, problem.modality.hop_length) == (256, 64)  # ~32 ms at 8 kHz, no STFT of its own
    with pytest.raises(ValueError, match="--source 3 does not exist: 2 reference"):  # counted from 1
        TASKS["separation"].build(model, SeparationOptions(input=mix, sample_rate=8000, reference=sources, source=2))
    with pytest.raises(ValueError, match="the model separates 2 sources"):
        TASKS["separation"].build(model, SeparationOptions(input=mix, sample_rate=8000, source=2))


def _clip_and_track(frames: int = 10, size: int = 16) -> tuple[VideoClip, FaceTrack]:
    pixels = (torch.rand(frames, 32, 32, 3) * 255).to(torch.uint8)
    audio = tone(frames / 25.0, 8000)
    clip = VideoClip(frames=pixels, fps=25.0, audio=audio, sample_rate=8000)
    nan = torch.full((frames, 4), float("nan"))
    track = FaceTrack(boxes=torch.tensor([[8.0, 8.0, 24.0, 24.0]]).repeat(frames, 1),
                      detected=torch.ones(frames, dtype=torch.bool), crops=torch.rand(frames, 3, size, size),
                      frame_size=(32, 32), raw_boxes=nan, landmarks=torch.full((frames, 5, 2), float("nan")),
                      probs=torch.ones(frames))
    return clip, track


@pytest.mark.parametrize("stream, model_type, modality_type", [("av", ToyAV, AudioVisual),
                                                               ("video", FixedAudio, FaceVideo),
                                                               ("audio", FixedVideo, avxai.Spectrogram)])
def test_av_problem_for_each_stream_from_a_clip_in_memory(stream, model_type, modality_type):
    clip, track = _clip_and_track()
    problem = TASKS["av-enhancement"].build(ToyAV(), AVEnhancementOptions(
        input=clip, track=track, reference=clip.audio, stream=stream, score="si-sdr", shares=stream == "av"))
    assert isinstance(problem.model, model_type) and isinstance(problem.modality, modality_type)
    assert isinstance(problem.scorer, SISDR) and problem.scorer.reference.shape == (1, 1, clip.audio.shape[-1])
    assert problem.metadata["perturbations"] == {"audio": "zero", "video": "mean-time"}
    assert (problem.metadata["av_shares"] is not None) == (stream == "av")
    assert problem.extras["track"] is track and problem.metadata["face_detection_rate"] == 1.0
    if stream == "audio":  # the model's own STFT
        assert (problem.modality.n_fft, problem.modality.hop_length) == (256, 80)


def test_options_are_frozen_and_tasks_take_only_their_own():
    options = SpeakerOptions(input=tone(1.0, 16000), sample_rate=16000)
    with pytest.raises(AttributeError):
        options.target = 3
    with pytest.raises(TypeError, match="build takes EnhancementOptions, got SpeakerOptions"):
        TASKS["enhancement"].build(ToyEnhancer(), options)

"""Grad-CAM on an audio-visual input: one layer per stream (named, or the last convolution that reads only that
stream and keeps the most of its grid), each stream's map on its own grid, joined.

The toy model's score reads a known T-F region and a known mouth box only (its convolutions have no bias, so
their outputs are 0 outside the region's 1-cell halo); Grad-CAM must put the mass of each stream's map there.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from toys.problems import (
    CROP,
    FPS,
    FRAMES,
    HOP,
    N_FFT,
    SPEC_REGION,
    SR,
    VIDEO_REGION,
    AVRegion,
    FaceRegion,
    region_mask,
    spec_grid_shape,
    toy_crops,
    toy_waveform,
)

from avxai import ClassLogit, Spectrogram
from avxai.config import build_config
from avxai.methods.gradcam import GradCAMConfig, gradcam
from avxai.modalities.audio_visual import AudioVisual
from avxai.modalities.video import FaceVideo

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
BATCH = 2
SPEC_TRUTH = region_mask(spec_grid_shape(), SPEC_REGION)
VIDEO_TRUTH = region_mask((FRAMES, CROP, CROP), VIDEO_REGION)


def _positive_conv(cls, *args, **kw):
    conv = cls(*args, bias=False, **kw)
    with torch.no_grad():
        conv.weight.abs_()
    return conv


class ConvAV(nn.Module):
    """An AV model of convolutions: audio ``conv1 -> conv2`` over (freq, frames) then a 1-D ``temporal`` conv;
    video ``conv`` on every frame ``(n * frames, C, h, w)`` then a 1-D ``temporal`` conv; ``fuse`` reads both.
    Only ``SPEC_REGION`` of the magnitude and ``VIDEO_REGION`` of the frames reach the score (gates)."""

    sample_rate, fps = SR, FPS

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.register_buffer("spec_gate", SPEC_TRUTH.clone())
        self.register_buffer("video_gate", VIDEO_TRUTH.clone())
        self.audio = nn.ModuleDict({"conv1": _positive_conv(nn.Conv2d, 1, 3, 3, padding=1),
                                    "conv2": _positive_conv(nn.Conv2d, 3, 4, 3, padding=1),
                                    "temporal": _positive_conv(nn.Conv1d, 4, 4, 3, padding=1)})
        self.video = nn.ModuleDict({"conv": _positive_conv(nn.Conv2d, 1, 4, 3, padding=1),
                                    "temporal": _positive_conv(nn.Conv1d, 4, 4, 3, padding=1)})
        self.fuse = _positive_conv(nn.Conv1d, 8, 2, 1)

    def forward(self, pair):
        waveform, video = pair
        spec = torch.stft(waveform[:, 0], N_FFT, HOP, window=torch.hann_window(N_FFT, dtype=waveform.dtype),
                          center=True, return_complex=True).abs() * self.spec_gate
        a = self.audio["conv2"](F.gelu(self.audio["conv1"](spec.unsqueeze(1))))  # (n, 4, freq, frames)
        a = self.audio["temporal"](a.mean(dim=2))  # (n, 4, frames)
        n, t, _, h, w = video.shape
        grey = (video.mean(dim=2) * self.video_gate).reshape(n * t, 1, h, w)
        v = self.video["conv"](grey).mean(dim=(2, 3)).view(n, t, 4).transpose(1, 2)  # (n, 4, frames)
        v = self.video["temporal"](v)
        both = torch.cat([F.adaptive_avg_pool1d(a, t), v], dim=1)
        return torch.stack([self.fuse(both).sum(dim=(1, 2)), torch.zeros(n)], dim=1)


def av_input() -> AudioVisual:
    return AudioVisual(Spectrogram(toy_waveform(BATCH), SR, n_fft=N_FFT, hop_length=HOP, perturbation="zero"),
                       FaceVideo(toy_crops(BATCH), FPS, perturbation="zero"))


def grow(truth, k):
    """The region grown by a k x k convolution's reach over the last two axes (frames stay)."""
    x = truth.reshape(-1, 1, *truth.shape[-2:])
    return F.max_pool2d(x, k, stride=1, padding=k // 2).reshape(truth.shape)


def share(attribution, truth):
    mass = attribution.abs().double()
    return float((mass * truth).sum() / mass.sum())


def test_default_layers_are_each_streams_last_full_grid_convolution_and_the_maps_find_the_regions():
    modality = av_input()
    e = gradcam(ConvAV(), modality, ClassLogit(0), GradCAMConfig())
    # not the 1-D temporal convolutions (time only), not "fuse" (it reads both streams)
    assert e.metadata["layers"] == {"audio": "audio.conv2", "video": "video.conv"}
    assert e.metadata["activation_shape"]["video"] == [BATCH, 4, FRAMES, CROP, CROP]  # per-frame maps, per clip
    assert tuple(e.attribution.shape) == (BATCH, *modality.grid_shape)
    for i in range(BATCH):
        audio, video = modality.split_mask(e.attribution[i:i + 1])
        for part, truth in ((audio[0], SPEC_TRUTH), (video[0], VIDEO_TRUTH)):
            assert float(part.max()) == pytest.approx(1.0)  # each stream's map divided by its maximum
            uniform = float(truth.mean())
            assert share(part, truth) >= uniform + 0.5 * (1 - uniform)  # as tests/unit/methods/test_method_problems
        # all of it within the layers' receptive field around the region (two 3x3 convs on audio, one on video)
        assert share(audio[0], grow(SPEC_TRUTH, 5)) > 0.999 and share(video[0], grow(VIDEO_TRUTH, 3)) > 0.999


def test_named_layers_per_part_and_one_layer_alone():
    modality = av_input()
    both = gradcam(AVRegion(), modality, ClassLogit(0),
                   GradCAMConfig(layer={"audio": "audio.features", "video": "video.clip_features"}))
    audio, video = modality.split_mask(both.attribution[:1])
    assert share(audio[0], SPEC_TRUTH) > 0.99 and share(video[0], VIDEO_TRUTH) > 0.99
    # one name: that layer's stream; the other stream's map is 0
    one = gradcam(ConvAV(), modality, ClassLogit(0), GradCAMConfig(layer="video.conv"))
    audio, video = modality.split_mask(one.attribution)
    assert one.metadata["layers"] == {"video": "video.conv"} and float(audio.abs().sum()) == 0.0
    assert share(video[0], grow(VIDEO_TRUTH, 3)) > 0.999
    # a partial mapping: the other stream gets its default
    part = gradcam(ConvAV(), modality, ClassLogit(0), GradCAMConfig(layer={"audio": "audio.conv1"}))
    assert part.metadata["layers"] == {"audio": "audio.conv1", "video": "video.conv"}


def test_clear_errors_name_the_fix():
    modality = av_input()
    with pytest.raises(ValueError, match=r"AVRegion has no convolution that reads only the audio input.*layer="):
        gradcam(AVRegion(), modality, ClassLogit(0), GradCAMConfig())
    with pytest.raises(ValueError, match=r"'fuse' reads 2 of the parts' inputs; name one layer per part"):
        gradcam(ConvAV(), modality, ClassLogit(0), GradCAMConfig(layer="fuse"))
    with pytest.raises(ValueError, match=r"name part\(s\) \['face'\]; this audio-visual input has parts"):
        gradcam(ConvAV(), modality, ClassLogit(0), GradCAMConfig(layer={"face": "video.conv"}))
    with pytest.raises(ValueError, match="apply to a composite"):
        gradcam(FaceRegion(), FaceVideo(toy_crops(1), FPS), ClassLogit(0), GradCAMConfig(layer={"video": "x"}))
    with pytest.raises(ValueError, match="layer must be a dotted module name"):
        GradCAMConfig(layer={"audio": ""})


def test_per_frame_layer_on_a_face_video_and_the_command_line_mapping():
    video = FaceVideo(toy_crops(BATCH), FPS, perturbation="zero")
    e = gradcam(FaceRegion(), video, ClassLogit(0), GradCAMConfig(layer="frame_features"))  # (n * frames, 4, h, w)
    assert e.metadata["activation_shape"] == [BATCH, 4, FRAMES, CROP, CROP]
    assert share(e.attribution[0], VIDEO_TRUTH) > 0.99
    config = build_config(GradCAMConfig, sets=["layer={audio: audio.front.2, video: visual.trunk.3}"])
    assert config.layer == {"audio": "audio.front.2", "video": "visual.trunk.3"}


class OneStream(nn.Module):
    """``ConvAV`` with the audio held fixed: explains the face video alone (as the AV task's ``--stream video``)."""

    fps = FPS

    def __init__(self):
        super().__init__()
        self.model = ConvAV()
        self.waveform = toy_waveform(BATCH)

    def forward(self, video):
        return self.model((self.waveform, video))


def test_default_layer_of_one_stream_is_its_spatial_convolution_not_the_fusion():
    video = FaceVideo(toy_crops(BATCH), FPS, perturbation="zero")
    e = gradcam(OneStream(), video, ClassLogit(0), GradCAMConfig())
    # the audio convolutions do not read the video; "fuse" and the temporal conv keep time only
    assert e.metadata["layer"] == "model.video.conv" and e.metadata["activation_axes"] == ["time", "height", "width"]
    assert share(e.attribution[0], grow(VIDEO_TRUTH, 3)) > 0.999

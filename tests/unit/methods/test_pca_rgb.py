"""PCA-RGB (Sound of Pixels) on a tiny audio-visual model whose per-pixel and per-T-F-bin features are known."""

import numpy as np
import pytest
import torch
from torch import nn

from avxai.explanation import Explanation
from avxai.methods.pca_rgb import PCAEmbedding, PCARGBConfig, fit_dataset_embedding, get_layer, layer_features, pca_rgb
from avxai.explanation import split_explanation
from avxai.modalities.audio_visual import AudioVisual, FixedAudio
from avxai.modalities.spectrogram import Spectrogram
from avxai.modalities.video import FaceVideo
from avxai.scorers.classification import ClassLogit

SR, FPS, T, S = 8000, 25.0, 4, 16


class TinyAV(nn.Module):
    """Per-pixel face features = (R, G, B, R - B) (a 1x1 convolution named ``visual.trunk``), per-T-F-bin
    audio features = (log magnitude, its square, 1) (``audio.front``); logits from their means."""

    sample_rate = SR
    pca_layers = {"video": "visual.trunk", "audio": "audio.front"}

    def __init__(self):
        super().__init__()
        self.visual = nn.Module()
        self.visual.trunk = nn.Conv2d(3, 4, 1, bias=False)
        self.audio = nn.Module()
        self.audio.front = nn.Conv2d(2, 3, 1)
        with torch.no_grad():
            self.visual.trunk.weight.copy_(torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, -1]],
                                                        dtype=torch.float32)[:, :, None, None])
            self.audio.front.weight.copy_(torch.tensor([[1, 0], [0, 1], [0, 0]], dtype=torch.float32)[:, :, None, None])
            self.audio.front.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))

    def forward(self, waveform, video=None):
        if video is None:
            waveform, video = waveform
        n, t = video.shape[:2]
        v = self.visual.trunk(video.reshape(n * t, *video.shape[2:])).reshape(n, -1).mean(dim=1)
        spec = torch.stft(waveform[:, 0], 64, 32, window=torch.hann_window(64), return_complex=True).abs()
        logmag = torch.log(spec + 1e-3).unsqueeze(1)
        a = self.audio.front(torch.cat([logmag, logmag ** 2], dim=1)).mean(dim=(1, 2, 3))
        return torch.stack([v + a, torch.zeros_like(v)], dim=1)


def two_colour_video(region_fraction_rows=8, seed=0):
    """Red face pixels in the lower ``region_fraction_rows`` rows (the "mouth"), blue elsewhere, plus noise."""
    g = torch.Generator().manual_seed(seed)
    video = torch.zeros(1, T, 3, S, S)
    video[:, :, 2] = 0.9
    video[:, :, :, S - region_fraction_rows:] = torch.tensor([0.9, 0.0, 0.0])[:, None, None]
    return (video + 0.05 * torch.rand(video.shape, generator=g)).clamp(0, 1)


def waveform(seed=1):
    g = torch.Generator().manual_seed(seed)
    n = int(T / FPS * SR)
    t = torch.arange(n) / SR
    return (0.2 * torch.sin(2 * np.pi * 800 * t) + 0.02 * torch.randn(1, 1, n, generator=g)).float()


def region():
    m = torch.zeros(T, S, S, dtype=torch.bool)
    m[:, S - 8:] = True
    return m


def test_video_pixels_with_the_same_features_get_the_same_colour():
    video = FaceVideo(two_colour_video(), FPS, perturbation="zero")
    model = FixedAudio(TinyAV(), waveform())
    expl = pca_rgb(model, video, ClassLogit(0))
    rgb = expl.arrays["rgb_video"]
    assert rgb.shape == (1, T, 3, S, S) and float(rgb.min()) >= 0 and float(rgb.max()) <= 1
    attribution = expl.attribution[0]  # first component on the grid
    inside, outside = attribution[region()], attribution[~region()]
    assert abs(float(inside.mean() - outside.mean())) > 0.8  # the first component separates red from blue
    assert float(inside.std()) < 0.2 and float(outside.std()) < 0.2
    assert expl.metadata["layers"] == {"video": "model.visual.trunk"}  # the wrapper's path to the layer
    assert not get_layer(model, "model.visual.trunk")._forward_hooks  # the hook was released
    # robust percentile scaling: about 1 % of the vectors at each end of every component
    flat = rgb[0].permute(1, 0, 2, 3).reshape(3, -1)
    assert ((flat <= 0) | (flat >= 1)).float().mean(dim=1).max() < 0.05


def test_dataset_embedding_gives_consistent_colours_across_clips():
    model = FixedAudio(TinyAV(), waveform())
    clip_a = two_colour_video(8)
    clip_b = clip_a.clone()
    clip_b[:, :, :, S - 8:S - 2] = torch.tensor([0.0, 0.0, 0.9])[:, None, None]  # fewer red rows, same other pixels
    same = torch.zeros(S, dtype=torch.bool)
    same[: S - 8] = True
    same[S - 2:] = True  # rows whose pixels are identical in both clips
    a, b = FaceVideo(clip_a, FPS), FaceVideo(clip_b, FPS)
    emb = fit_dataset_embedding(model, "model.visual.trunk", [a, b])
    ra = pca_rgb(model, a, ClassLogit(0), PCARGBConfig(embedding=emb)).arrays["rgb_video"][0]
    rb = pca_rgb(model, b, ClassLogit(0), PCARGBConfig(embedding=emb)).arrays["rgb_video"][0]
    assert torch.allclose(ra[:, :, same], rb[:, :, same], atol=1e-6)  # same features, same colours
    assert (ra[:, :, S - 1] - ra[:, :, 0]).abs().mean() > 0.3  # red and blue pixels differ
    # fitted per clip, the same pixels get other colours in the two clips
    pa, pb = (pca_rgb(model, v, ClassLogit(0)).arrays["rgb_video"][0] for v in (a, b))
    assert (pa[:, :, same] - pb[:, :, same]).abs().max() > 0.1
    # the embedding round-trips through JSON-able dicts
    again = PCAEmbedding.from_dict(emb.to_dict())
    feats = layer_features(model, "model.visual.trunk", a.model_input())
    assert torch.allclose(again.transform(feats), emb.transform(feats), atol=1e-6)


def test_audio_visual_input_embeds_both_streams_and_saves(tmp_path):
    spec = Spectrogram(waveform(), SR, n_fft=64, hop_length=32)
    av = AudioVisual(spec, FaceVideo(two_colour_video(), FPS))
    expl = pca_rgb(TinyAV(), av, ClassLogit(0))
    assert set(expl.arrays) == {"rgb_video", "rgb_audio"}
    assert expl.arrays["rgb_audio"].shape == (1, 3, *spec.grid_shape)
    assert expl.attribution.shape == (1, av.grid_shape[0])
    out = expl.save(tmp_path / "pca")
    assert (out / "figure.png").exists() and (out / "pca_rgb.mp4").exists()
    back = Explanation.load(out)
    assert torch.allclose(back.arrays["rgb_audio"], expl.arrays["rgb_audio"])
    import matplotlib.pyplot as plt

    plt.close(back.plot())
    parts = split_explanation(back)  # each part keeps its own colours (the paper figures draw them per part)
    assert set(parts["video"].arrays) == {"rgb_video"} and set(parts["audio"].arrays) == {"rgb_audio"}
    assert torch.equal(parts["audio"].arrays["rgb_audio"], back.arrays["rgb_audio"])


def test_bad_layers_and_settings_are_named():
    model = TinyAV()
    with pytest.raises(ValueError, match="no layer 'visual.nope'.*visual.trunk"):
        get_layer(model, "visual.nope")
    with pytest.raises(ValueError, match="percentiles"):
        PCARGBConfig(percentiles=(50, 10))
    with pytest.raises(TypeError, match="PCAEmbedding"):
        PCARGBConfig(embedding="colours")
    video = FaceVideo(two_colour_video(), FPS)
    with pytest.raises(ValueError, match="cannot place features"):
        pca_rgb(FixedAudio(model, waveform()), video, ClassLogit(0), PCARGBConfig(layer="model.audio.front"))
    with pytest.raises(ValueError, match="at least 3 channels"):
        PCAEmbedding.fit(torch.rand(1, 2, 5, 5))


def test_a_1d_layer_on_a_spectrogram_gives_one_colour_per_frame(tmp_path):
    """A TDNN speaker model's frame features (batch, C, frames): the colours are a time strip, the attribution
    is the first component spread over every band, and the figure draws."""
    from avxai.models.speaker import SpeakerNet

    torch.manual_seed(0)
    model = SpeakerNet(n_speakers=3, channels=16, embedding_dim=8, n_mels=20)
    wav = torch.randn(1, 1, 8000, generator=torch.Generator().manual_seed(1)) * 0.1
    spec = Spectrogram(wav, 16000, n_fft=256, hop_length=64)
    expl = pca_rgb(model, spec, ClassLogit(0), PCARGBConfig(layer="tdnn.2"))
    rgb = expl.arrays["rgb_audio"]
    assert rgb.dim() == 3 and rgb.shape[:2] == (1, 3) and 0 <= float(rgb.min()) and float(rgb.max()) <= 1
    attribution = expl.attribution[0]
    assert attribution.shape == spec.grid_shape and torch.allclose(attribution, attribution[:1].expand_as(attribution))
    out = expl.save(tmp_path / "tdnn")
    assert (out / "figure.png").stat().st_size > 5_000


def test_one_embedding_for_two_streams_is_refused_and_the_fit_is_recorded_per_stream():
    spec = Spectrogram(waveform(), SR, n_fft=64, hop_length=32)
    av = AudioVisual(spec, FaceVideo(two_colour_video(), FPS))
    model = TinyAV()
    video_emb = fit_dataset_embedding(FixedAudio(model, waveform()), "model.visual.trunk",
                                      [FaceVideo(two_colour_video(), FPS)])
    with pytest.raises(ValueError, match="one PCAEmbedding was given for 2 feature layers"):
        pca_rgb(model, av, ClassLogit(0), PCARGBConfig(embedding=video_emb))
    expl = pca_rgb(model, av, ClassLogit(0), PCARGBConfig(embedding={"video": video_emb}))
    assert expl.metadata["fitted_on"] == {"video": "config.embedding", "audio": "each input"}

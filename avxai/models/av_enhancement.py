"""Audio-visual speech enhancement: the target talker's face tells which voice of a mixture to keep.

mixture waveform -> STFT -> log magnitude -> audio subnet (a 2-D conv front end over time-frequency,
then the frequency axis folded into channels) -> per STFT frame features;
face crops -> visual subnet (a torchvision MobileNetV3-small or ResNet-18 trunk, not pretrained, applied
to every frame; spatial mean; a temporal convolution) -> per video frame features, interpolated to the
STFT frame times; both concatenated -> temporal convolution + bidirectional GRU -> sigmoid T-F mask
-> mask * mixture STFT (mixture phase) -> inverse STFT of the input's length.

Layers by name (for hooks, e.g. :mod:`avxai.methods.pca_rgb`): ``audio.front`` gives per-T-F-bin features
``(n, channels, freq, frames)``; ``visual.trunk.<k>`` per-pixel features ``(n * frames, channels, h, w)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from avxai.models.registry import Architecture, from_config, register

__all__ = ["AVEnhancerConfig", "AVEnhancer", "ARCHITECTURE", "DEFAULT_AV_ENHANCER_CHECKPOINT", "load_av_enhancer",
           "BACKBONES"]

BACKBONES = ("mobilenet_v3_small", "resnet18")
_MAX_BLOCKS = {"mobilenet_v3_small": 13, "resnet18": 4}


@dataclass(frozen=True)
class AVEnhancerConfig:
    """Hyper-parameters of :class:`AVEnhancer`.

    sample_rate : Hz of the audio the model takes.
    fps : frames per second of the face video the model takes.
    n_fft, hop_length : STFT in samples (Hann window, centred frames).
    crop_size : side of the square face crops in pixels.
    visual_backbone : ``"mobilenet_v3_small"`` (lightweight) or ``"resnet18"`` (baseline), ``weights=None``.
    visual_blocks : how much of the backbone's trunk is used: MobileNetV3-small's first ``k`` of 13
        feature blocks, or ResNet-18's stem plus its first ``k`` of 4 stages.
    visual_dim : visual features per frame.
    audio_channels : channels of the 2-D time-frequency front end.
    audio_dim : audio features per STFT frame.
    hidden : channels of the fusion network (the GRU has ``hidden // 2`` units per direction).
    """

    sample_rate: int = 8000
    fps: float = 25.0
    n_fft: int = 256
    hop_length: int = 80
    crop_size: int = 64
    visual_backbone: str = "mobilenet_v3_small"
    visual_blocks: int = 4
    visual_dim: int = 64
    audio_channels: int = 8
    audio_dim: int = 128
    hidden: int = 128

    def __post_init__(self):
        if isinstance(self.sample_rate, bool) or not isinstance(self.sample_rate, int) or self.sample_rate < 1:
            raise ValueError(f"sample_rate must be a positive int (Hz), got {self.sample_rate!r}")
        if not (isinstance(self.fps, (int, float)) and self.fps > 0):
            raise ValueError(f"fps must be > 0, got {self.fps!r}")
        if self.n_fft < 8 or not 1 <= self.hop_length <= self.n_fft:
            raise ValueError(f"need n_fft >= 8 and 1 <= hop_length <= n_fft, got {self.n_fft}, {self.hop_length}")
        if self.crop_size < 16 or self.crop_size % 2:
            raise ValueError(f"crop_size must be an even number >= 16 pixels (face crops are saved as h264 video, "
                             f"which needs even sizes), got {self.crop_size}")
        if self.visual_backbone not in BACKBONES:
            raise ValueError(f"visual_backbone must be one of {BACKBONES}, got {self.visual_backbone!r}")
        top = _MAX_BLOCKS[self.visual_backbone]
        if not 1 <= self.visual_blocks <= top:
            raise ValueError(f"visual_blocks must be in 1..{top} for {self.visual_backbone}, got {self.visual_blocks}")
        for name in ("visual_dim", "audio_channels", "audio_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden < 2 or self.hidden % 2:
            raise ValueError(f"hidden must be an even number >= 2 (two GRU directions), got {self.hidden}")


def _trunk(backbone: str, blocks: int) -> nn.Sequential:
    import torchvision  # noqa: PLC0415  (a heavy import, about a second: only AV models need it)

    if backbone == "mobilenet_v3_small":
        return torchvision.models.mobilenet_v3_small(weights=None).features[:blocks]
    net = torchvision.models.resnet18(weights=None)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return nn.Sequential(stem, *[net.layer1, net.layer2, net.layer3, net.layer4][:blocks])


class VisualNet(nn.Module):
    """Per-frame face features. Shape: ``(n, frames, 3, S, S)`` in [0, 1] -> ``(n, dim, frames)``.

    The trunk keeps torchvision's BatchNorm layers; in evaluation mode they are fixed per-channel affine
    maps, so every frame is processed on its own. (The training recipe re-estimates their statistics
    after training: the frames of a clip are strongly correlated and the running averages lag behind.)
    """

    def __init__(self, backbone: str, blocks: int, dim: int, crop_size: int):
        super().__init__()
        self.trunk = _trunk(backbone, blocks)
        with torch.no_grad():
            channels = self.trunk.eval()(torch.zeros(1, 3, crop_size, crop_size)).shape[1]
        self.trunk.train()
        self.proj = nn.Linear(channels, dim)
        self.temporal = nn.Conv1d(dim, dim, 5, padding=2)
        self.act = nn.GELU()

    def forward(self, video: Tensor) -> Tensor:
        n, t = video.shape[:2]
        x = (video.reshape(n * t, *video.shape[2:]) - 0.45) / 0.25
        f = self.trunk(x).mean(dim=(2, 3)).view(n, t, -1)
        f = self.act(self.proj(f)).transpose(1, 2)  # (n, dim, frames)
        return f + self.act(self.temporal(f))


class AudioNet(nn.Module):
    """Per-frame features of a log magnitude. Shape: ``(n, freq, frames)`` -> ``(n, dim, frames)``;
    ``front`` gives ``(n, channels, freq, frames)``."""

    def __init__(self, freqs: int, channels: int, dim: int):
        super().__init__()
        self.front = nn.Sequential(nn.Conv2d(1, channels, 5, padding=2), nn.GELU(),
                                   nn.Conv2d(channels, channels, 5, padding=(2, 4), dilation=(1, 2)), nn.GELU())
        self.proj = nn.Conv1d(channels * freqs, dim, 1)
        self.act = nn.GELU()

    def forward(self, logmag: Tensor) -> Tensor:
        f = self.front(logmag.unsqueeze(1))
        n, c, fr, t = f.shape
        return self.act(self.proj(f.reshape(n, c * fr, t)))


class AVEnhancer(nn.Module):
    """Audio-visual enhancement by T-F masking; the face of the target talker selects the voice.

    ``forward(waveform, video)`` or ``forward((waveform, video))`` (the pair an
    :class:`avxai.modalities.audio_visual.AudioVisual` modality gives).

    Shape: waveform ``(n, 1, time)`` at ``sample_rate``, video ``(n, frames, 3, S, S)`` in [0, 1] at ``fps``
    with ``frames ~ time * fps / sample_rate`` (within one frame) and ``S = crop_size`` -> enhanced waveform
    ``(n, 1, time)``.
    """

    #: default layers of :mod:`avxai.methods.pca_rgb`: per-pixel face features, per-T-F-bin audio features
    pca_layers = {"video": "visual.trunk.1", "audio": "audio.front"}

    def __init__(self, config: AVEnhancerConfig | None = None):
        super().__init__()
        self.config = config or AVEnhancerConfig()
        c = self.config
        self.sample_rate, self.fps = c.sample_rate, float(c.fps)
        self.n_fft, self.hop_length, self.crop_size = c.n_fft, c.hop_length, c.crop_size
        freqs = c.n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        self.audio = AudioNet(freqs, c.audio_channels, c.audio_dim)
        self.visual = VisualNet(c.visual_backbone, c.visual_blocks, c.visual_dim, c.crop_size)
        self.fuse = nn.Conv1d(c.audio_dim + c.visual_dim, c.hidden, 3, padding=1)
        self.gru = nn.GRU(c.hidden, c.hidden // 2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(c.hidden, freqs)
        self.act = nn.GELU()

    # -- checks -------------------------------------------------------------------------------------
    def check_inputs(self, waveform: Any, video: Any) -> None:
        """Raise ``ValueError`` / ``TypeError`` naming what is wrong with the inputs and how to fix it."""
        if not isinstance(waveform, Tensor) or waveform.dim() != 3 or waveform.shape[1] != 1:
            shape = tuple(waveform.shape) if isinstance(waveform, Tensor) else type(waveform).__name__
            raise ValueError(f"AVEnhancer takes a mono waveform (n, 1, time) at {self.sample_rate} Hz, got {shape}")
        if not isinstance(video, Tensor) or video.dim() != 5 or video.shape[2] != 3:
            shape = tuple(video.shape) if isinstance(video, Tensor) else type(video).__name__
            raise ValueError(f"AVEnhancer takes face crops (n, frames, 3, {self.crop_size}, {self.crop_size}) in "
                             f"[0, 1] at {self.fps:g} fps, got {shape}")
        if not waveform.is_floating_point() or not video.is_floating_point():
            raise TypeError(f"waveform and video must be float tensors, got {waveform.dtype} and {video.dtype}; "
                            "convert uint8 frames with x.float() / 255")
        if waveform.shape[0] != video.shape[0]:
            raise ValueError(f"{waveform.shape[0]} waveforms but {video.shape[0]} videos; give one video per waveform")
        if tuple(video.shape[-2:]) != (self.crop_size, self.crop_size):
            raise ValueError(f"the model was trained on {self.crop_size}x{self.crop_size} face crops, got "
                             f"{tuple(video.shape[-2:])}; track with FaceTracker(crop_size={self.crop_size})")
        if waveform.shape[-1] < self.n_fft:
            raise ValueError(f"the waveform has {waveform.shape[-1]} samples; at least n_fft={self.n_fft} are needed")
        expected = waveform.shape[-1] * self.fps / self.sample_rate
        if abs(video.shape[1] - expected) > 1.0 + 1e-6:
            raise ValueError(
                f"the video has {video.shape[1]} frames but {waveform.shape[-1]} samples at {self.sample_rate} Hz last "
                f"{expected:.2f} frames at the model's {self.fps:g} fps: the audio is not at {self.sample_rate} Hz, the "
                f"video is not at {self.fps:g} fps, or the streams are not aligned (resample / re-encode, or trim)")

    # -- pieces -------------------------------------------------------------------------------------
    def stft(self, waveform: Tensor) -> Tensor:
        """Complex STFT. Shape: ``(n, 1, time) -> (n, freq, frames)``."""
        return torch.stft(waveform.reshape(waveform.shape[0], -1), self.n_fft, self.hop_length,
                          window=self.window.to(waveform.dtype), center=True, return_complex=True)

    def frame_positions(self, stft_frames: int, video_frames: int, device=None) -> tuple[Tensor, Tensor, Tensor]:
        """For every STFT frame, the two video frames around its centre time and the weight of the second.

        STFT frame ``j`` is centred at ``j * hop / sample_rate`` s; video frame ``t`` covers
        ``[t / fps, (t + 1) / fps)``, centre ``(t + 0.5) / fps``. Shape: ``(stft_frames,)`` each.
        """
        pos = torch.arange(stft_frames, dtype=torch.float64, device=device) * self.hop_length * self.fps
        pos = (pos / self.sample_rate - 0.5).clamp(0, video_frames - 1)
        lo = pos.floor().long().clamp(max=video_frames - 1)
        hi = (lo + 1).clamp(max=video_frames - 1)
        return lo, hi, (pos - lo)

    def mask(self, waveform: Tensor, video: Tensor | None = None) -> Tensor:
        """The T-F mask in [0, 1]. Shape: ``(n, freq, frames)``."""
        if video is None and isinstance(waveform, (tuple, list)):
            waveform, video = waveform
        self.check_inputs(waveform, video)
        return self._mask(self.stft(waveform), video)

    def _mask(self, spec: Tensor, video: Tensor) -> Tensor:
        logp = torch.log(spec.real.pow(2) + spec.imag.pow(2) + 1e-10)
        logp = (logp - logp.mean(dim=(1, 2), keepdim=True)) / 10.0  # invariant to the input gain
        a = self.audio(logp)  # (n, audio_dim, frames)
        v = self.visual(video.to(logp.dtype))  # (n, visual_dim, video frames)
        lo, hi, w = self.frame_positions(a.shape[-1], v.shape[-1], device=a.device)
        w = w.to(v.dtype)
        v = v[..., lo] * (1 - w) + v[..., hi] * w  # (n, visual_dim, frames)
        h = self.act(self.fuse(torch.cat([a, v], dim=1))).transpose(1, 2)
        h, _ = self.gru(h)
        return torch.sigmoid(self.head(h)).transpose(1, 2)

    def forward(self, waveform: Tensor, video: Tensor | None = None) -> Tensor:
        if video is None and isinstance(waveform, (tuple, list)):
            if len(waveform) != 2:
                raise ValueError(f"AVEnhancer takes (waveform, video); got a sequence of {len(waveform)} items")
            waveform, video = waveform
        if video is None:
            raise ValueError("AVEnhancer needs the face video too: model(waveform, video) or model((waveform, video))")
        self.check_inputs(waveform, video)
        spec = self.stft(waveform)
        out = torch.istft(spec * self._mask(spec, video), self.n_fft, self.hop_length,
                          window=self.window.to(waveform.dtype), center=True, length=waveform.shape[-1])
        return out.unsqueeze(1)


#: the registry row: ``load_model("av-enhancer")`` is the bundled audio-visual enhancer
ARCHITECTURE = register(Architecture(
    "av-enhancer", from_config(AVEnhancer, AVEnhancerConfig),
    "avxai's reference audio-visual enhancer (8 kHz audio + 25 fps face crops)",
    bundled="av_enhancement/av_enhancer.pt", recipe="recipes/av_enhancement/train.py",
))
DEFAULT_AV_ENHANCER_CHECKPOINT = ARCHITECTURE.bundled_path()
load_av_enhancer = ARCHITECTURE.load  # the older name of load_model(path, architecture="av-enhancer")

"""A small time-frequency masking network for speech enhancement (the reference enhancement model).

noisy waveform -> STFT -> log power (gain-normalised) -> dilated 1-D convolutions over frames
(frequency bins as channels) -> sigmoid mask in [0, 1] -> mask * noisy STFT (noisy phase kept)
-> inverse STFT of the input's length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avxai.models.registry import Architecture, from_config, register

__all__ = ["EnhancerConfig", "MaskingEnhancer", "ARCHITECTURE", "DEFAULT_ENHANCER_CHECKPOINT", "load_enhancer"]


@dataclass(frozen=True)
class EnhancerConfig:
    """Hyper-parameters of :class:`MaskingEnhancer`.

    sample_rate : Hz the model is trained for.
    n_fft, hop_length : STFT in samples (Hann window of ``n_fft``, centred frames).
    hidden : channels of the convolution stack.
    kernel_size : frames per convolution (odd).
    dilations : one residual block per entry, its dilation in frames.
    """

    sample_rate: int = 8000
    n_fft: int = 256
    hop_length: int = 64
    hidden: int = 96
    kernel_size: int = 3
    dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2, 4, 8)

    def __post_init__(self):
        if self.sample_rate < 1:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {self.sample_rate}")
        if self.n_fft < 8 or not 1 <= self.hop_length <= self.n_fft:
            raise ValueError(f"need n_fft >= 8 and 1 <= hop_length <= n_fft, got {self.n_fft}, {self.hop_length}")
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1 channel, got {self.hidden}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1 frame, got {self.kernel_size}")
        if not self.dilations or any(int(d) < 1 for d in self.dilations):
            raise ValueError(f"dilations must be a non-empty tuple of ints >= 1, got {self.dilations}")
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))


class _Block(nn.Module):
    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation,
                              padding=dilation * (kernel_size - 1) // 2)
        self.norm = nn.GroupNorm(1, channels)
        self.act = nn.PReLU(channels)
        self.proj = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.proj(self.act(self.norm(self.conv(x))))


class MaskingEnhancer(nn.Module):
    """T-F masking speech enhancer.

    Shape: noisy waveform ``(batch, 1, time)`` -> enhanced waveform ``(batch, 1, time)``; the mask
    (``mask(x)``) is ``(batch, n_fft // 2 + 1, frames)`` in [0, 1].
    """

    def __init__(self, config: EnhancerConfig | None = None):
        super().__init__()
        self.config = config or EnhancerConfig()
        c = self.config
        self.sample_rate = c.sample_rate
        self.n_fft, self.hop_length = c.n_fft, c.hop_length
        freqs = c.n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        self.inp = nn.Conv1d(freqs, c.hidden, 1)
        self.blocks = nn.Sequential(*[_Block(c.hidden, c.kernel_size, d) for d in c.dilations])
        self.out = nn.Conv1d(c.hidden, freqs, 1)

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[1] != 1:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"MaskingEnhancer takes a mono waveform (batch, 1, time), got {shape}")
        if x.shape[-1] < self.n_fft:
            raise ValueError(f"the input has {x.shape[-1]} samples; at least n_fft={self.n_fft} are needed")

    def stft(self, x: Tensor) -> Tensor:
        """Complex STFT. Shape: ``(batch, 1, time) -> (batch, freq, frames)``."""
        return torch.stft(x.reshape(x.shape[0], -1), self.n_fft, self.hop_length, window=self.window.to(x.dtype),
                          center=True, return_complex=True)

    def mask_from_stft(self, spec: Tensor) -> Tensor:
        """Mask in [0, 1] from a complex STFT. Shape: ``(batch, freq, frames) -> (batch, freq, frames)``."""
        logp = torch.log(spec.real.pow(2) + spec.imag.pow(2) + 1e-10)
        logp = logp - logp.mean(dim=(1, 2), keepdim=True)  # invariant to the input gain
        return torch.sigmoid(self.out(self.blocks(self.inp(logp / 10.0))))

    def mask(self, x: Tensor) -> Tensor:
        """The T-F mask the model applies to ``x``. Shape: ``(batch, 1, time) -> (batch, freq, frames)``."""
        self._check(x)
        return self.mask_from_stft(self.stft(x))

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        spec = self.stft(x)
        out = torch.istft(spec * self.mask_from_stft(spec), self.n_fft, self.hop_length,
                          window=self.window.to(x.dtype), center=True, length=x.shape[-1])
        return out.unsqueeze(1)


#: the registry row: ``load_model("enhancer")`` is the bundled enhancer
ARCHITECTURE = register(Architecture(
    "enhancer", from_config(MaskingEnhancer, EnhancerConfig), "avxai's reference speech enhancer (T-F masking, 8 kHz)",
    bundled="enhancement/enhancer.pt", recipe="recipes/enhancement/train.py",
))
DEFAULT_ENHANCER_CHECKPOINT = ARCHITECTURE.bundled_path()
load_enhancer = ARCHITECTURE.load  # the older name of load_model(path, architecture="enhancer")

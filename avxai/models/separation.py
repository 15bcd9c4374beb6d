"""Speech separation with torchaudio's ConvTasNet, behind a wrapper that states its sample rate and shapes.

Two registry rows: ``"convtasnet"`` (``ConvTasNet(**kwargs)`` with torchaudio's defaults, e.g. for weights you
trained elsewhere) and ``"separator"`` (avxai's small reference ConvTasNet, :class:`SeparatorConfig`). Both
checkpoints hold ConvTasNet's own keys (``encoder.weight``, ``mask_generator...``), not the wrapper's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from operator import attrgetter
from typing import Any

from torch import Tensor, nn
from torchaudio.models import ConvTasNet

from avxai.models.registry import Architecture, register

__all__ = ["SeparatorConfig", "Separator", "small_convtasnet", "build_convtasnet", "build_separator", "ARCHITECTURE",
           "DEFAULT_SEPARATOR_CHECKPOINT", "load_separator"]


@dataclass(frozen=True)
class SeparatorConfig:
    """A small :class:`torchaudio.models.ConvTasNet` (names as in torchaudio) and its sample rate.

    sample_rate : Hz the model is trained for.
    num_sources : separated outputs.
    enc_kernel_size : encoder window in samples (stride is half of it).
    enc_num_feats : encoder basis size.
    msk_kernel_size, msk_num_feats, msk_num_hidden_feats, msk_num_layers, msk_num_stacks : the TCN mask
        estimator (kernel, bottleneck channels, hidden channels, blocks per stack, stacks).
    """

    sample_rate: int = 8000
    num_sources: int = 2
    enc_kernel_size: int = 32
    enc_num_feats: int = 128
    msk_kernel_size: int = 3
    msk_num_feats: int = 64
    msk_num_hidden_feats: int = 128
    msk_num_layers: int = 4
    msk_num_stacks: int = 2

    def __post_init__(self):
        if self.sample_rate < 1:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {self.sample_rate}")
        if self.num_sources < 1:
            raise ValueError(f"num_sources must be >= 1, got {self.num_sources}")
        if self.enc_kernel_size < 2 or self.enc_kernel_size % 2:
            raise ValueError(f"enc_kernel_size must be even and >= 2 samples (stride = half), got {self.enc_kernel_size}")
        for name in ("enc_num_feats", "msk_kernel_size", "msk_num_feats", "msk_num_hidden_feats", "msk_num_layers",
                     "msk_num_stacks"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def convtasnet_kwargs(self) -> dict:
        """Keyword arguments of :class:`torchaudio.models.ConvTasNet`."""
        return {k: v for k, v in asdict(self).items() if k != "sample_rate"}


class Separator(nn.Module):
    """A separation network with a known sample rate and a checked ``(batch, 1, time)`` input.

    Parameters
    ----------
    network : module mapping ``(batch, 1, time)`` to ``(batch, sources, time)`` (torchaudio's ConvTasNet does).
    sample_rate : Hz.
    num_sources : the number of outputs ``network`` returns.

    Shape: mixture ``(batch, 1, time)`` -> sources ``(batch, num_sources, time)``.
    """

    def __init__(self, network: nn.Module, sample_rate: int, num_sources: int):
        super().__init__()
        if not isinstance(network, nn.Module):
            raise TypeError(f"network must be a torch.nn.Module, got {type(network).__name__}")
        for name, value in (("sample_rate", sample_rate), ("num_sources", num_sources)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.network = network
        self.sample_rate = sample_rate
        self.num_sources = num_sources

    def forward(self, mixture: Tensor) -> Tensor:
        if not isinstance(mixture, Tensor) or mixture.dim() != 3 or mixture.shape[1] != 1:
            shape = tuple(mixture.shape) if isinstance(mixture, Tensor) else type(mixture).__name__
            raise ValueError(f"{type(self).__name__} takes a mono mixture (batch, 1, time), got {shape}")
        out = self.network(mixture)
        if out.dim() != 3 or out.shape[1] != self.num_sources:
            raise ValueError(f"the separation network returned shape {tuple(out.shape)}; expected "
                             f"(batch, {self.num_sources}, time)")
        return out[..., :mixture.shape[-1]]


def build_convtasnet(sample_rate: int = 8000, **convtasnet_kwargs: Any) -> Separator:
    """``ConvTasNet(**convtasnet_kwargs)`` (random weights) behind a :class:`Separator` at ``sample_rate`` Hz.

    Shape: mixture ``(batch, 1, time)`` -> sources ``(batch, num_sources, time)``.
    """
    network = ConvTasNet(**convtasnet_kwargs)
    return Separator(network, sample_rate, int(convtasnet_kwargs.get("num_sources", 2)))


def small_convtasnet(config: SeparatorConfig | None = None) -> nn.Module:
    """A :class:`torchaudio.models.ConvTasNet` built from ``config`` (random weights)."""
    return ConvTasNet(**(config or SeparatorConfig()).convtasnet_kwargs())


def build_separator(**kwargs: Any) -> Separator:
    """avxai's small ConvTasNet, ``SeparatorConfig(**kwargs)`` (random weights): the registry's builder."""
    return build_convtasnet(**asdict(SeparatorConfig(**kwargs)))


register(Architecture(
    "convtasnet", build_convtasnet, "torchaudio's ConvTasNet (its keyword arguments plus sample_rate, default 8000)",
    weights=attrgetter("network"),
))
#: the registry row: ``load_model("separator")`` is the bundled separator
ARCHITECTURE = register(Architecture(
    "separator", build_separator, "avxai's reference two-speaker separator (a small ConvTasNet, 8 kHz)",
    bundled="separation/convtasnet.pt", recipe="recipes/separation/train.py", weights=attrgetter("network"),
))
DEFAULT_SEPARATOR_CHECKPOINT = ARCHITECTURE.bundled_path()
load_separator = ARCHITECTURE.load  # the older name of load_model(path, architecture="separator")

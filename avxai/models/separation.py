"""Speech separation: a small torchaudio ConvTasNet and a wrapper that states its sample rate and shapes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["SeparatorConfig", "Separator", "small_convtasnet", "DEFAULT_SEPARATOR_CHECKPOINT", "save_separator",
           "load_separator"]

#: the bundled reference separator (written by ``recipes/separation/train.py``)
DEFAULT_SEPARATOR_CHECKPOINT = Path(__file__).resolve().parents[2] / "assets" / "separation" / "convtasnet.pt"


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


def small_convtasnet(config: SeparatorConfig | None = None) -> nn.Module:
    """A :class:`torchaudio.models.ConvTasNet` built from ``config`` (random weights)."""
    from torchaudio.models import ConvTasNet

    return ConvTasNet(**(config or SeparatorConfig()).convtasnet_kwargs())


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
        self.network = network
        self.sample_rate = int(sample_rate)
        self.num_sources = int(num_sources)

    def forward(self, mixture: Tensor) -> Tensor:
        if not isinstance(mixture, Tensor) or mixture.dim() != 3 or mixture.shape[1] != 1:
            shape = tuple(mixture.shape) if isinstance(mixture, Tensor) else type(mixture).__name__
            raise ValueError(f"{type(self).__name__} takes a mono mixture (batch, 1, time), got {shape}")
        out = self.network(mixture)
        if out.dim() != 3 or out.shape[1] != self.num_sources:
            raise ValueError(f"the separation network returned shape {tuple(out.shape)}; expected "
                             f"(batch, {self.num_sources}, time)")
        return out[..., :mixture.shape[-1]]


def save_separator(model: Separator, config: SeparatorConfig, path: "str | Path", **extra) -> Path:
    """Write the ConvTasNet state dict (torchaudio keys) to ``path`` and ``{"model": config, **extra}`` beside it."""
    from avxai.models.checkpoint import save_checkpoint

    return save_checkpoint(model.network, path, {"model": asdict(config), **extra})


def load_separator(path: "str | Path | None" = None) -> Separator:
    """The separator at checkpoint ``path`` (default: the bundled one), rebuilt from the JSON beside it, in eval mode."""
    from avxai.models.checkpoint import load_checkpoint_config, load_state_dict_checked

    path = Path(path) if path is not None else DEFAULT_SEPARATOR_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"separator checkpoint {path} is missing; create it with "
                                "`python recipes/separation/train.py` or pass the path of yours")
    raw = load_checkpoint_config(path)["model"]
    known = {f.name for f in fields(SeparatorConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"the config beside {path} has fields {unknown} that SeparatorConfig does not know")
    config = SeparatorConfig(**raw)
    network = small_convtasnet(config)
    load_state_dict_checked(network, path)
    return Separator(network, config.sample_rate, config.num_sources).eval()

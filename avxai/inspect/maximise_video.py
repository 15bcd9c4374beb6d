"""Activation maximisation on face-crop video: what frames does a unit of a visual subnet want?

The counterpart of :mod:`avxai.inspect.maximise` for a face video ``(n, frames, 3, S, S)`` in [0, 1] (the
:class:`~avxai.modalities.FaceVideo` crops a model takes): the video is ``sigmoid(U)`` of free logits ``U``,
started at mid grey (``U = 0``) with ``start_jitter`` of seeded noise per start, and gradient ascent (Adam)
maximises ``objective / scale - regularisers`` (``scale``: the objective's mean absolute value at the start).
As in Feichtenhofer et al. (2018) the spatial and the temporal regularisers are separate named fields:

- ``l2``: the mean squared distance from mid grey;
- ``tv_space``: total variation over height and width, ``mean |dU| ** tv_power`` of the video (not the logits);
- ``tv_time`` with ``temporal``: ``"slow"`` penalises frame-to-frame change; ``"fast"`` penalises the slow
  drift instead (the video's moving average over ``modulation_frames`` frames around its time mean).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avxai.hygiene import evaluation_mode, model_device
from avxai.methods.optimisers import Adam

__all__ = ["VideoMaximiseConfig", "MaximisedVideo", "maximise_video"]


@dataclass(frozen=True)
class VideoMaximiseConfig:
    """Settings of :func:`maximise_video` (every regulariser is a field; see the module's docstring)."""

    frames: int = 8
    steps: int = 100
    lr: float = 0.1
    starts: int = 2
    seed: int = 0
    start_jitter: float = 0.1
    l2: float = 0.1
    tv_space: float = 0.1
    tv_time: float = 0.1
    tv_power: float = 1.0
    temporal: Literal["slow", "fast"] = "slow"
    modulation_frames: int = 5

    def __post_init__(self):
        for name in ("frames", "steps", "starts", "modulation_frames"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name in ("lr", "tv_power"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name in ("l2", "tv_space", "tv_time", "start_jitter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        if self.temporal not in ("slow", "fast"):
            raise ValueError(f"temporal must be 'slow' or 'fast', got {self.temporal!r}")


@dataclass
class MaximisedVideo:
    """``video`` ``(starts, frames, 3, S, S)`` in [0, 1], ``history`` ``(steps, starts)`` and metadata."""

    video: np.ndarray
    history: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)


def _regularisers(video: Tensor, config: VideoMaximiseConfig) -> Tensor:
    p = config.tv_power
    terms = config.l2 * (video - 0.5).pow(2).mean(dim=(1, 2, 3, 4))
    dh = (video[..., 1:, :] - video[..., :-1, :]).abs().pow(p).mean(dim=(1, 2, 3, 4))
    dw = (video[..., 1:] - video[..., :-1]).abs().pow(p).mean(dim=(1, 2, 3, 4))
    terms = terms + config.tv_space * (dh + dw)
    if video.shape[1] > 1:
        if config.temporal == "slow":
            dt = (video[:, 1:] - video[:, :-1]).abs().pow(p).mean(dim=(1, 2, 3, 4))
        else:
            n, t = video.shape[:2]
            flat = video.reshape(n, t, -1).transpose(1, 2)  # (n, pixels, frames)
            k = min(config.modulation_frames, t)
            slow = F.avg_pool1d(flat, k, stride=1, padding=k // 2, count_include_pad=False)[..., :t]
            dt = (slow - flat.mean(dim=-1, keepdim=True)).pow(2).mean(dim=(1, 2))
        terms = terms + config.tv_time * dt
    return terms


def maximise_video(model: nn.Module, objective: Callable[[nn.Module, Tensor], Tensor], crop_size: int,
                   config: VideoMaximiseConfig = VideoMaximiseConfig()) -> MaximisedVideo:
    """Regularised gradient ascent of ``objective(model, video (n, frames, 3, S, S)) -> (n,)`` on the video.

    Shape: result ``video`` ``(starts, frames, 3, crop_size, crop_size)`` in [0, 1].
    """
    if isinstance(crop_size, bool) or not isinstance(crop_size, int) or crop_size < 2:
        raise ValueError(f"crop_size must be an int >= 2 pixels, got {crop_size!r}")
    device = model_device(model)
    g = torch.Generator().manual_seed(config.seed)
    shape = (config.starts, config.frames, 3, crop_size, crop_size)
    logits = (config.start_jitter * torch.randn(shape, generator=g)).to(device).requires_grad_(True)
    optimiser = Adam(logits.data, lr=config.lr)
    history = []
    with evaluation_mode(model):
        with torch.no_grad():
            start = objective(model, torch.sigmoid(logits))
        scale = max(float(start.abs().mean()), 1e-6)
        for _ in range(config.steps):
            video = torch.sigmoid(logits)
            value = objective(model, video)
            loss = (-value / scale + _regularisers(video, config)).sum()
            (grad,) = torch.autograd.grad(loss, logits)
            optimiser.step(grad)
            history.append(value.detach().cpu().numpy())
        with torch.no_grad():
            video = torch.sigmoid(logits)
            final = objective(model, video)
    meta = {"objective": getattr(objective, "describe", {}), "config": asdict(config), "objective_scale": scale,
            "start_score": start.cpu().tolist(), "final_score": final.cpu().tolist(), "crop_size": crop_size}
    return MaximisedVideo(video.detach().cpu().numpy(), np.stack(history), meta)

"""Activation maximisation on the spectrogram: what input does a unit, a class or an embedding direction want?

The input is a log-magnitude spectrogram ``Z`` ``(freq, frames)``; the model hears ``istft(exp(Z) * phase)``
with a fixed random phase per start (seeded), so any model that takes a waveform can be optimised. Gradient
ascent (Adam, :class:`avxai.methods.optimisers.Adam`) maximises ``objective / scale - regularisers``; ``scale``
is the objective's mean absolute value at the start, so the regulariser weights below are relative to the
objective's own scale, whatever its units.
Every regulariser is a named field (Simonyan et al. 2014; Mahendran & Vedaldi 2016; the separate spatial and
temporal terms and the slow-vs-fast knob of Feichtenhofer et al. 2018 become separate frequency and time terms):

- ``l2``: the mean energy ``mean(exp(2 Z))`` relative to the start's (pulls cells the objective does not need
  back to silence);
- ``tv_freq``: total variation of ``Z`` along frequency, ``mean |Z[f+1] - Z[f]| ** tv_power``;
- ``tv_time`` with ``temporal``: ``"slow"`` penalises ``|Z[t+1] - Z[t]| ** tv_power`` (a result that changes
  slowly); ``"fast"`` penalises the slow modulations instead, the energy of ``Z``'s moving average over
  ``modulation_frames`` frames around its time mean (a result free to change quickly, not to drift).

``starts`` optimisations start from a neutral flat spectrum at ``start_db`` (re the largest magnitude allowed,
``max_amplitude``) with ``start_jitter`` nats of seeded noise, so that several facets can appear (Nguyen et
al. 2016); magnitudes are capped at that of a sine of ``max_amplitude``. The result is made audible by
Griffin-Lim (stated in the metadata), and the objective is measured again on that audio.
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
from avxai.inspect.probe import capture, default_channel_dim, unit_score
from avxai.inspect.spectral import GRIFFIN_LIM, default_stft, griffin_lim, istft_with_phase
from avxai.methods.optimisers import Adam
from avxai.models.contract import embedder_of

__all__ = ["MaximiseConfig", "Maximised", "maximise", "unit_objective", "class_objective", "direction_objective"]

Objective = Callable[[nn.Module, Tensor], Tensor]


@dataclass(frozen=True)
class MaximiseConfig:
    """Settings of :func:`maximise` (every regulariser is a field; see the module's docstring)."""

    seconds: float = 2.0
    n_fft: int | None = None
    hop_length: int | None = None
    steps: int = 150
    lr: float = 0.1
    starts: int = 3
    seed: int = 0
    start_db: float = -40.0
    start_jitter: float = 0.5
    max_amplitude: float = 0.5
    l2: float = 0.1
    tv_freq: float = 0.05
    tv_time: float = 0.05
    tv_power: float = 1.0
    temporal: Literal["slow", "fast"] = "slow"
    modulation_frames: int = 9
    griffin_lim_iters: int = 64

    def __post_init__(self):
        for name in ("steps", "starts", "modulation_frames", "griffin_lim_iters"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name in ("seconds", "lr", "max_amplitude", "tv_power"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        for name in ("l2", "tv_freq", "tv_time", "start_jitter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        if not (isinstance(self.start_db, (int, float)) and math.isfinite(self.start_db) and self.start_db <= 0):
            raise ValueError(f"start_db must be <= 0 dB (re the largest magnitude allowed), got {self.start_db!r}")
        if self.temporal not in ("slow", "fast"):
            raise ValueError(f"temporal must be 'slow' or 'fast', got {self.temporal!r}")


@dataclass
class Maximised:
    """The result: ``log_magnitude`` ``(starts, freq, frames)`` (natural log), ``audio`` ``(starts, 1, samples)``
    by Griffin-Lim, ``history`` ``(steps, starts)`` of the objective, ``freqs_hz``, ``times_s`` and metadata
    (the objective on the optimised input and on the Griffin-Lim audio, per start)."""

    log_magnitude: np.ndarray
    audio: Tensor
    history: np.ndarray
    freqs_hz: np.ndarray
    times_s: np.ndarray
    sample_rate: int
    metadata: dict[str, Any] = field(default_factory=dict)

    def mean_spectrum_db(self) -> np.ndarray:
        """``(starts, freq)``: the time-averaged power of each start, dB re the loudest bin of all."""
        power = np.exp(2 * self.log_magnitude).mean(axis=-1)
        return 10 * np.log10(np.maximum(power, 1e-30) / power.max())


def _batched(values: Tensor, n: int) -> Tensor:
    """A per-row score ``(rows,)`` of a layer run ``rows = n * k`` times per forward pass -> ``(n,)``."""
    return values.reshape(n, -1).mean(dim=1)


def unit_objective(model: nn.Module, layer: str, unit: int, channel_dim: int | None = None,
                   call: Callable[[nn.Module, Tensor], Any] | None = None) -> Objective:
    """The mean activation of channel ``unit`` of ``layer`` (over its positions, and over the rows a layer runs
    per input, such as partial utterances or video frames). ``call(net, x)`` runs the model on the optimised input
    (default ``net(x)``; e.g. ``lambda net, video: net(audio, video)`` for an audio-visual model)."""
    cdim = default_channel_dim(model, layer) if channel_dim is None else channel_dim

    def objective(net: nn.Module, x: Tensor) -> Tensor:
        with capture(net, layer) as cap:
            net(x) if call is None else call(net, x)
        return _batched(unit_score(cap.output, unit, cdim), x.shape[0])
    objective.describe = {"target": "unit", "layer": layer, "unit": unit, "channel_dim": cdim}
    return objective


def class_objective(index: int) -> Objective:
    """Output column ``index`` of a model returning ``(batch, classes)`` (a logit)."""
    def objective(net: nn.Module, wav: Tensor) -> Tensor:
        out = net(wav)
        if not isinstance(out, Tensor) or out.dim() != 2 or not 0 <= index < out.shape[1]:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"--class {index} needs a model returning (batch, classes) with more than {index} "
                             f"classes, got output {shape}")
        return out[:, index]
    objective.describe = {"target": "class", "class": index}
    return objective


def direction_objective(model: nn.Module, direction: Tensor) -> Objective:
    """The cosine between the model's embedding (``model.embedder()``, else its output) and ``direction`` ``(dim,)``."""
    embedder = embedder_of(model)
    embedder = model if embedder is None else embedder
    d = F.normalize(direction.detach().reshape(1, -1).float(), dim=-1)

    def objective(net: nn.Module, wav: Tensor) -> Tensor:
        emb = embedder(wav)
        if emb.dim() != 2 or emb.shape[1] != d.shape[1]:
            raise ValueError(f"the embedding direction has {d.shape[1]} dimensions but the model embeds to "
                             f"{tuple(emb.shape)}")
        return F.cosine_similarity(emb, d.to(emb.device), dim=-1)
    objective.describe = {"target": "direction", "dim": int(d.shape[1])}
    return objective


def _regularisers(z: Tensor, config: MaximiseConfig, energy0: float) -> dict[str, Tensor]:
    p = config.tv_power
    terms = {"l2": config.l2 * torch.exp(2 * z).mean(dim=(1, 2)) / energy0,
             "tv_freq": config.tv_freq * (z[:, 1:] - z[:, :-1]).abs().pow(p).mean(dim=(1, 2))}
    if config.temporal == "slow":
        terms["tv_time"] = config.tv_time * (z[:, :, 1:] - z[:, :, :-1]).abs().pow(p).mean(dim=(1, 2))
    else:
        k = min(config.modulation_frames, z.shape[-1])
        slow = F.avg_pool1d(z, k, stride=1, padding=k // 2, count_include_pad=False)[..., :z.shape[-1]]
        terms["tv_time"] = config.tv_time * (slow - z.mean(dim=-1, keepdim=True)).pow(2).mean(dim=(1, 2))
    return terms


def maximise(model: nn.Module, objective: Objective, sample_rate: int,
             config: MaximiseConfig = MaximiseConfig()) -> Maximised:
    """Regularised gradient ascent of ``objective(model, waveform (n, 1, time)) -> (n,)`` on the spectrogram.

    Shape: result ``log_magnitude`` ``(starts, freq, frames)``, ``audio`` ``(starts, 1, seconds * sample_rate)``.
    """
    n_fft, hop = default_stft(sample_rate, config.n_fft, config.hop_length)
    length = int(round(config.seconds * sample_rate))
    if length < n_fft:
        raise ValueError(f"seconds={config.seconds} gives {length} samples, fewer than n_fft={n_fft}")
    device = model_device(model)
    frames = length // hop + 1
    g = torch.Generator().manual_seed(config.seed)
    cap = config.max_amplitude * n_fft / 4  # the STFT magnitude of a sine of max_amplitude (Hann window)
    z0 = math.log(cap) + config.start_db / 20 * math.log(10)
    shape = (config.starts, n_fft // 2 + 1, frames)
    z = (z0 + config.start_jitter * torch.randn(shape, generator=g)).to(device).requires_grad_(True)
    phase = (2 * math.pi * torch.rand(shape, generator=g)).to(device)
    energy0 = math.exp(2 * z0)
    optimiser = Adam(z.data, lr=config.lr)  # avxai's in-place Adam: torch.optim's first use imports torch._dynamo
    history = []
    with evaluation_mode(model):
        def score(logmag: Tensor) -> Tensor:
            wav = istft_with_phase(torch.exp(logmag.clamp(max=math.log(cap))), phase, n_fft, hop, length)
            return objective(model, wav)

        with torch.no_grad():
            start = score(z)
        scale = max(float(start.abs().mean()), 1e-6)
        for _ in range(config.steps):
            value = score(z)
            terms = _regularisers(z, config, energy0)
            loss = (-value / scale + sum(terms.values())).sum()
            (grad,) = torch.autograd.grad(loss, z)
            optimiser.step(grad)
            history.append(value.detach().cpu().numpy())
            with torch.no_grad():
                z.clamp_(max=math.log(cap))
        with torch.no_grad():
            final = score(z)
            mag = torch.exp(z.detach())
            audio = griffin_lim(mag.cpu(), n_fft, hop, length, config.griffin_lim_iters, config.seed)
            heard = objective(model, audio.to(device))
    logmag = z.detach().cpu().numpy()
    flat = logmag.reshape(config.starts, -1)
    corr = np.corrcoef(flat) if config.starts > 1 else np.ones((1, 1))
    meta = {"objective": getattr(objective, "describe", {}), "config": asdict(config), "n_fft": n_fft,
            "hop_length": hop, "sample_rate": sample_rate, "objective_scale": scale,
            "start_score": start.cpu().tolist(), "final_score": final.cpu().tolist(),
            "griffin_lim_score": heard.cpu().tolist(), "phase": "fixed random phase per start during the ascent",
            "audio": GRIFFIN_LIM + f", {config.griffin_lim_iters} iterations",
            "start_correlation": corr.tolist()}
    return Maximised(logmag, audio, np.stack(history), np.fft.rfftfreq(n_fft, 1.0 / sample_rate),
                     np.arange(frames) * hop / sample_rate, sample_rate, meta)

"""The budgeted training loop: a budget in steps, CPU and wall seconds; the warm-up cosine schedule that decays over
it; the loop's hyper-parameters (:class:`TrainingConfig`, extended by each recipe's ``TrainConfig``); the step loop
itself; and the re-estimation of BatchNorm statistics after training.

The budget's ``progress`` in [0, 1] is how much of it is spent (the largest share of the three), and the schedule
decays over it, so a run stopped by its time budget still ends at a small learning rate.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Budget", "LoopResult", "TrainingConfig", "recalibrate_batch_norm", "train_steps", "warmup_cosine"]


@dataclass(frozen=True)
class Budget:
    """When a training loop stops: after ``steps`` optimiser steps, ``max_cpu_s`` CPU seconds of this process
    or ``max_wall_s`` wall seconds, whichever comes first (``math.inf`` = no limit). CPU seconds keep the
    schedule independent of how busy a shared machine is; the wall clock guards a stalled run."""

    steps: int
    max_cpu_s: float = math.inf
    max_wall_s: float = math.inf

    def __post_init__(self):
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"Budget.steps must be an int >= 1, got {self.steps!r}")
        if not (self.max_cpu_s > 0 and self.max_wall_s > 0):
            raise ValueError(f"max_cpu_s and max_wall_s must be > 0 seconds (math.inf for no limit), got "
                             f"{self.max_cpu_s}, {self.max_wall_s}")

    def progress(self, step: int, cpu_s: float, wall_s: float) -> float:
        """The spent share of the budget: ``max(step / steps, cpu_s / max_cpu_s, wall_s / max_wall_s)``;
        the loop stops at 1."""
        return max(step / self.steps, cpu_s / self.max_cpu_s, wall_s / self.max_wall_s)


def warmup_cosine(step: int, progress: float, *, lr: float, warmup_steps: int) -> float:
    """Learning rate at ``step`` (0-based) with ``progress`` of the budget spent: a linear warm-up over
    ``warmup_steps`` steps times a cosine decay from ``lr`` to 0 over the budget,
    ``lr * min(1, (step + 1) / warmup_steps) * (1 + cos(pi * progress)) / 2``."""
    return lr * min(1.0, (step + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class TrainingConfig:
    """The loop's hyper-parameters; a recipe's ``TrainConfig`` extends it with its data and model fields.

    The defaults here are generic: each recipe's ``config.yaml`` sets its own values.
    """

    seed: int = 0  # data draws and parameter initialisation
    steps: int = 1000  # optimiser steps (the time budget may stop the run earlier)
    batch_size: int = 8  # examples per step
    lr: float = 0.002  # peak learning rate of the warm-up cosine schedule (AdamW)
    weight_decay: float = 0.0001  # AdamW's decoupled weight decay
    warmup_steps: int = 20  # linear warm-up, in steps
    clip_grad_norm: float = 5.0  # gradient norm clip (0 = none)
    log_every: int = 50  # steps between loss lines (and rows of the history)
    max_cpu_s: float | None = None  # CPU seconds of this process (None = no limit); the schedule ends early
    max_wall_s: float | None = None  # wall seconds (None = no limit): a guard on a busy shared machine
    threads: int = 1  # torch threads: one ran the small models 5-30x faster per step than two on a busy 2-core box

    def __post_init__(self):
        for name in ("steps", "batch_size", "warmup_steps", "log_every", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0 or self.clip_grad_norm < 0:
            raise ValueError(f"need lr > 0, weight_decay >= 0 and clip_grad_norm >= 0, got {self.lr}, "
                             f"{self.weight_decay}, {self.clip_grad_norm}")
        self.budget()  # checks the time limits

    def budget(self) -> Budget:
        def limit(seconds: float | None) -> float:
            return math.inf if seconds is None else seconds
        return Budget(self.steps, limit(self.max_cpu_s), limit(self.max_wall_s))

    def warmup_cosine(self, step: int, progress: float) -> float:
        """:func:`warmup_cosine` with this config's ``lr`` and ``warmup_steps``."""
        return warmup_cosine(step, progress, lr=self.lr, warmup_steps=self.warmup_steps)

    def optimizer(self, model: nn.Module) -> torch.optim.AdamW:
        return torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def fit(self, model: nn.Module, next_batch: Callable[[], Sequence[Tensor]],
            loss_fn: Callable[[Tensor, Tensor], Tensor], *, loss_label: str = "") -> "LoopResult":
        """:func:`train_steps` with this config: AdamW (:meth:`optimizer`), the budget, the warm-up cosine
        schedule, gradient clipping and the log interval."""
        return train_steps(model, self.optimizer(model), next_batch, loss_fn, self.budget(), lr_at=self.warmup_cosine,
                           clip_grad_norm=self.clip_grad_norm, log_every=self.log_every, loss_label=loss_label)


@dataclass
class LoopResult:
    """What :func:`train_steps` did: ``steps`` done, seconds spent (wall and CPU) and the logged rows."""

    steps: int
    wall_s: float
    cpu_s: float
    history: list[dict] = field(default_factory=list)


def _log_step(label: str, steps: int) -> Callable[[int, float, float], dict]:
    name = f"loss ({label})" if label else "loss"

    def log(step: int, loss: float, seconds: float) -> dict:
        print(f"step {step}/{steps} {name} {loss:.2f} ({seconds:.0f} s)", flush=True)
        return {"step": step, "loss": round(loss, 3), "seconds": round(seconds, 1)}
    return log


def train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, next_batch: Callable[[], Sequence[Tensor]],
                loss_fn: Callable[[Tensor, Tensor], Tensor], budget: Budget, *,
                lr_at: Callable[[int, float], float] | None = None,
                scheduler: torch.optim.lr_scheduler.LRScheduler | None = None, clip_grad_norm: float = 0.0,
                log_every: int = 50, loss_label: str = "",
                on_log: Callable[[int, float, float], dict] | None = None) -> LoopResult:
    """Train ``model`` until ``budget`` is spent; returns the steps done, the seconds and the logged rows.

    Each step: the budget's progress is measured (the loop stops at 1), ``lr_at(step, progress)`` sets every
    parameter group's learning rate, ``next_batch()`` gives ``(*inputs, target)``, the loss is
    ``loss_fn(model(*inputs), target)``, gradients are clipped to ``clip_grad_norm`` (0 = not), the optimiser
    steps, then ``scheduler`` (a torch scheduler, for a schedule that does not follow the budget). Every
    ``log_every`` steps and at the last one, ``on_log(step, mean loss since the last row, wall seconds)``
    returns the history row (default: prints ``step N/M loss (<loss_label>) <mean> (<seconds> s)`` and returns
    ``{"step", "loss", "seconds"}``).
    """
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1 step, got {log_every}")
    log = on_log or _log_step(loss_label, budget.steps)
    history, losses, step = [], [], 0
    t1, c1 = time.perf_counter(), time.process_time()
    while step < budget.steps:
        progress = budget.progress(step, time.process_time() - c1, time.perf_counter() - t1)
        if progress >= 1.0:
            print(f"time budget reached after {step} steps (max_cpu_s={budget.max_cpu_s}, "
                  f"max_wall_s={budget.max_wall_s})", flush=True)
            break
        if lr_at is not None:
            lr = lr_at(step, progress)
            for group in optimizer.param_groups:
                group["lr"] = lr
        model.train()
        *inputs, target = next_batch()
        loss = loss_fn(model(*inputs), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm:
            nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
        step += 1
        if step % log_every == 0 or step == budget.steps:
            history.append(log(step, float(np.mean(losses)), time.perf_counter() - t1))
            losses = []
    return LoopResult(step, time.perf_counter() - t1, time.process_time() - c1, history)


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, next_batch: Callable[[], Sequence[Tensor]], batches: int) -> int:
    """Re-estimate every BatchNorm layer's running statistics on ``batches`` training batches, weights untouched.

    When the weights move fast (and the frames of a clip are strongly correlated), the running averages kept
    during training (momentum 0.01 in torchvision's MobileNetV3) lag behind the batch statistics the model was
    trained with, and the model in evaluation mode loses much of what it learned. The statistics are reset and
    averaged over whole batches (cumulative average); ``next_batch()`` gives ``(*inputs, target)``. Leaves the
    model in eval mode; returns the number of BatchNorm layers updated.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average over the batches below
    model.train()
    for _ in range(batches):
        *inputs, _target = next_batch()
        model(*inputs)
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    model.eval()
    return len(layers)


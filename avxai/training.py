"""Training loops for the reference models: a budgeted step loop, its learning-rate schedule, losses,
held-out scoring and the recipe plumbing (options, seeds, metrics file) shared by ``recipes/*/train.py``.

A recipe keeps what is its own (data, model, loss choice, its ``TrainConfig``: this module's
:class:`TrainingConfig` plus the model's and the data's fields) and calls::

    cfg, args = parse_train_args(TrainConfig, argv, doc=__doc__, config=HERE / "config.yaml", out=..., assets=...,
                                 debug=DEBUG_OVERRIDES)
    rng = start_run(cfg.seed, cfg.threads)
    run = train_steps(model, cfg.optimizer(model), lambda: make_batch(rng), neg_snr, cfg.budget(),
                      lr_at=cfg.warmup_cosine, clip_grad_norm=cfg.clip_grad_norm, log_every=cfg.log_every)
    ckpt, reloaded = save_and_reload(model, path, architecture="enhancer", kwargs=model.config, extra={...})

The loop's budget is in optimiser steps, CPU seconds of this process and wall seconds, whichever ends first;
``progress`` in [0, 1] is how much of it is spent, and the warm-up cosine schedule decays over it, so a run
stopped by its time budget still ends at a small learning rate.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from avxai.config import build_config
from avxai.models.registry import load_model, save_model
from avxai.scorers.sdr import bss_sdr, si_sdr

__all__ = [
    "Budget", "LoopResult", "TrainingConfig", "add_train_arguments", "best_permutation", "check_reproduced",
    "count_parameters", "neg_si_sdr", "neg_snr", "parse_train_args", "pit_neg_si_sdr", "recalibrate_batch_norm",
    "run_batched", "save_and_reload", "sdr_rows", "start_run", "sub_config", "summarise", "train_config",
    "train_steps", "warmup_cosine", "write_metrics",
]

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# budget and schedule
# ---------------------------------------------------------------------------------------------
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

    def __post_init__(self):
        for name in ("steps", "batch_size", "warmup_steps", "log_every"):
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


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------
def neg_snr(estimate: Tensor, clean: Tensor) -> Tensor:
    """Minus the SNR (dB) of ``estimate`` against ``clean``, mean over the batch (1e-8 guards both powers).

    Shape: ``(batch, channels, time)`` x 2 -> ``()``.
    """
    err = (estimate - clean).pow(2).sum(-1)
    return -(10 * torch.log10((clean.pow(2).sum(-1) + 1e-8) / (err + 1e-8))).mean()


def neg_si_sdr(estimate: Tensor, reference: Tensor) -> Tensor:
    """Minus the SI-SDR (dB, :func:`avxai.scorers.sdr.si_sdr`), mean over every leading axis.

    Shape: ``(..., time)`` x 2 -> ``()``.
    """
    return -si_sdr(estimate, reference).mean()


def _permutation_scores(estimate: Tensor, sources: Tensor) -> tuple[Tensor, Tensor]:
    """SI-SDR of every estimate channel against every source under each permutation: ``(batch, P, S)``, and the
    permutations ``(P, S)``."""
    if estimate.shape != sources.shape or estimate.dim() != 3:
        raise ValueError(f"estimate and sources must both be (batch, sources, time), got {tuple(estimate.shape)} "
                         f"and {tuple(sources.shape)}")
    pairwise = si_sdr(estimate.unsqueeze(1), sources.unsqueeze(2))  # (batch, ref s, est c)
    n = sources.shape[1]
    perms = torch.tensor(list(itertools.permutations(range(n))))
    return pairwise[:, torch.arange(n), perms], perms


def pit_neg_si_sdr(estimate: Tensor, sources: Tensor) -> Tensor:
    """Permutation-invariant loss: minus the mean SI-SDR (dB) under the best permutation per example.

    Shape: ``(batch, S, time)`` x 2 -> ``()``.
    """
    scores, _ = _permutation_scores(estimate, sources)
    return -scores.mean(-1).max(dim=1).values.mean()


def best_permutation(estimate: Tensor, sources: Tensor) -> Tensor:
    """``estimate`` reordered so that channel k matches source k (best total SI-SDR).

    Shape: ``(batch, S, time)`` x 2 -> ``(batch, S, time)``.
    """
    scores, perms = _permutation_scores(estimate, sources)
    best = perms[scores.sum(-1).argmax(1)]  # (batch, S)
    return torch.stack([estimate[b, best[b]] for b in range(estimate.shape[0])])


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def run_batched(model: nn.Module, *inputs: Tensor, batch: int) -> Tensor:
    """``model(*inputs)`` in chunks of ``batch`` rows, concatenated. Shape: rows of each input -> rows."""
    n = inputs[0].shape[0]
    return torch.cat([model(*(x[i:i + batch] for x in inputs)) for i in range(0, n, batch)])


def sdr_rows(estimate: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    """BSS-eval SDR and SI-SDR (dB) of each row, in float64. Shape: ``(n, time)`` x 2 -> ``(n,)``, ``(n,)``."""
    est, ref = estimate.double(), reference.double()
    return bss_sdr(est, ref), si_sdr(est, ref)


def summarise(rows: Mapping[str, Tensor], groups: Sequence | None = None) -> dict:
    """Mean of each row (rounded to 0.01) over all items, or per group label when ``groups`` (one label per
    item) is given: ``{label: {name: mean}}`` in first-seen order."""
    def mean(sel: np.ndarray) -> dict:
        return {k: round(float(v[torch.from_numpy(sel)].mean()), 2) for k, v in rows.items()}
    if groups is None:
        return mean(np.ones(len(next(iter(rows.values()))), bool))
    labels = np.array(list(groups))
    return {str(g): mean(labels == g) for g in dict.fromkeys(labels.tolist())}


def check_reproduced(name: str, reloaded: float, trained: float, tolerance: float) -> None:
    """Raise ``RuntimeError`` when the reloaded checkpoint's score ``name`` is more than ``tolerance`` from the
    trained model's (the checkpoint would not be the model that was measured)."""
    if abs(reloaded - trained) > tolerance:
        raise RuntimeError(f"the reloaded checkpoint scores {name} = {reloaded}, the trained model {trained} "
                           f"(tolerance {tolerance}): the saved file does not reproduce the trained model")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def sub_config(cls: type[T], config: Any) -> T:
    """The ``cls`` dataclass (e.g. a model's config) from the same-named fields of ``config`` (a recipe's flat
    ``TrainConfig`` that extends it)."""
    return cls(**{f.name: getattr(config, f.name) for f in fields(cls) if f.init})


# ---------------------------------------------------------------------------------------------
# recipe plumbing
# ---------------------------------------------------------------------------------------------
def add_train_arguments(parser: argparse.ArgumentParser, *, config: Path, out: Path, assets: str,
                        length: str = "steps") -> None:
    """The options every training recipe shares: ``--config``, ``--<length>`` (``steps`` or ``epochs``),
    ``--seed``, ``--out``, ``--assets`` (``assets`` names the default folder in the help), ``--debug``, ``--set``."""
    parser.add_argument("--config", type=Path, default=config, help="YAML file of TrainConfig fields")
    parser.add_argument(f"--{length}", type=int, help=f"override {length}")
    parser.add_argument("--seed", type=int, help="override seed (data, initialisation)")
    parser.add_argument("--out", type=Path, default=out, help="recipe output folder")
    parser.add_argument("--assets", type=Path, help=f"where the checkpoint and demo media go (default {assets}, or "
                                                    "<out>/assets with --debug)")
    parser.add_argument("--debug", action="store_true", help="tiny run that finishes in seconds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, value parsed as YAML (repeatable)")


def train_config(parser: argparse.ArgumentParser, args: argparse.Namespace, cls: type[T], *,
                 debug_overrides: Mapping[str, Any], assets: Path, length: str = "steps") -> T:
    """The recipe's config from ``--config``, the debug overrides (with ``--debug``), ``--set`` and
    ``--<length>`` / ``--seed``, in that order (:func:`avxai.config.build_config`); a problem is a
    ``parser.error`` naming it. Sets ``args.assets`` to ``assets`` (``<out>/assets`` with ``--debug``) when it
    was not given."""
    try:
        cfg = build_config(cls, file=args.config, values=debug_overrides if args.debug else None, sets=args.set,
                           shortcuts={length: getattr(args, length), "seed": args.seed})
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    if args.assets is None:
        args.assets = args.out / "assets" if args.debug else assets
    return cfg


def parse_train_args(cls: type[T], argv: Sequence[str] | None, *, doc: str | None, config: Path, out: Path,
                     assets: Path, debug: Mapping[str, Any], length: str = "steps",
                     extra: Callable[[argparse.ArgumentParser], None] | None = None
                     ) -> tuple[T, argparse.Namespace]:
    """A recipe's command line: :func:`add_train_arguments` (plus ``extra(parser)``) parsed into ``cls`` by
    :func:`train_config`; ``assets`` is the default assets folder (its last two parts name it in the help)."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(p, config=config, out=out, assets="/".join(assets.parts[-2:]), length=length)
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    return train_config(p, args, cls, debug_overrides=debug, assets=assets, length=length), args


def start_run(seed: int, threads: int) -> np.random.Generator:
    """Set torch's intra-op threads and parameter-initialisation seed; returns the data generator
    ``np.random.default_rng([seed, 0])`` that a recipe draws its batches from."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    return np.random.default_rng([seed, 0])


def save_and_reload(model: nn.Module, path: Path, *, architecture: str, kwargs: Any,
                    extra: Mapping[str, Any]) -> tuple[Path, nn.Module]:
    """Save ``model`` through the registry (:func:`avxai.models.registry.save_model`: ``path`` and its JSON with
    ``"architecture"``, ``"model": kwargs`` and ``extra``) and load the written file back as a user will
    (:func:`~avxai.models.registry.load_model`, eval mode). Returns the checkpoint path and the reloaded model."""
    ckpt = save_model(model, path, architecture=architecture, kwargs=kwargs, extra=extra)
    return ckpt, load_model(ckpt)


def write_metrics(path: Path, metrics: Mapping[str, Any]) -> Path:
    """``metrics`` as indented JSON at ``path`` (its folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path

"""What a training recipe (``recipes/*/train.py``) runs around its loop: the command line and config
(:func:`parse_train_args`, on :func:`avxai.config.build_config`), seeds and threads, timing, saving through the model
registry and the metrics file."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, TypeVar

import numpy as np
import torch
from torch import nn

from avxai.config import build_config
from avxai.models.registry import load_model, save_model
from avxai.training.loop import LoopResult

__all__ = ["add_train_arguments", "parse_train_args", "report_run", "save_and_reload", "start_run", "sub_config",
           "timed", "train_config", "write_metrics"]

T = TypeVar("T")


def sub_config(cls: type[T], config: Any) -> T:
    """The ``cls`` dataclass (e.g. a model's config) from the same-named fields of ``config`` (a recipe's flat
    ``TrainConfig`` that extends it)."""
    return cls(**{f.name: getattr(config, f.name) for f in fields(cls) if f.init})


def add_train_arguments(parser: argparse.ArgumentParser, *, config: Path, out: Path, assets: str,
                        length: str = "steps") -> None:
    """The options every training recipe shares: ``--config``, ``--<length>`` (``steps`` or ``epochs``),
    ``--seed``, ``--threads``, ``--out``, ``--assets`` (``assets`` names the default folder in the help), ``--debug``,
    ``--set``."""
    parser.add_argument("--config", type=Path, default=config, help="YAML file of TrainConfig fields")
    parser.add_argument(f"--{length}", type=int, help=f"override {length}")
    parser.add_argument("--seed", type=int, help="override seed (data, initialisation)")
    parser.add_argument("--threads", type=int, help="override threads (torch intra-op threads)")
    parser.add_argument("--out", type=Path, default=out, help="recipe output folder")
    parser.add_argument("--assets", type=Path, help=f"where the checkpoint and demo media go (default {assets}, or "
                                                    "<out>/assets with --debug)")
    parser.add_argument("--debug", action="store_true", help="tiny run that finishes in seconds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, value parsed as YAML (repeatable)")


def train_config(parser: argparse.ArgumentParser, args: argparse.Namespace, cls: type[T], *,
                 debug_overrides: Mapping[str, Any], assets: Path, length: str = "steps") -> T:
    """The recipe's config from ``--config``, the debug overrides (with ``--debug``), ``--set`` and
    ``--<length>`` / ``--seed`` / ``--threads``, in that order (:func:`avxai.config.build_config`); a problem is a
    ``parser.error`` naming it. Sets ``args.assets`` to ``assets`` (``<out>/assets`` with ``--debug``) when it
    was not given."""
    try:
        cfg = build_config(cls, file=args.config, values=debug_overrides if args.debug else None, sets=args.set,
                           shortcuts={length: getattr(args, length), "seed": args.seed, "threads": args.threads})
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    if args.assets is None:
        args.assets = args.out / "assets" if args.debug else assets
    return cfg


def parse_train_args(cls: type[T], argv: Sequence[str] | None, recipe: Path, *, doc: str | None,
                     debug: Mapping[str, Any], length: str = "steps",
                     extra: Callable[[argparse.ArgumentParser], None] | None = None
                     ) -> tuple[T, argparse.Namespace]:
    """The command line of the recipe in folder ``recipe`` (``recipes/<name>``): :func:`add_train_arguments`
    (plus ``extra(parser)``) parsed into ``cls`` by :func:`train_config`, with the defaults ``recipe/config.yaml``,
    ``--out avxai-out/<name>_train`` and ``--assets avxai/assets/<name>``."""
    repo, name = recipe.parents[1], recipe.name
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_train_arguments(p, config=recipe / "config.yaml", out=repo / "avxai-out" / f"{name}_train",
                        assets=f"avxai/assets/{name}", length=length)
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    return train_config(p, args, cls, debug_overrides=debug, assets=repo / "avxai" / "assets" / name, length=length), args


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


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and the wall seconds it took."""
    t0 = time.perf_counter()
    return fn(), time.perf_counter() - t0


def write_metrics(path: Path, metrics: Mapping[str, Any]) -> Path:
    """``metrics`` as indented JSON at ``path`` (its folder is created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path


def report_run(out: Path, metrics: dict[str, Any], *, run: LoopResult, config: Any, data_s: float,
               ckpt: Path) -> dict[str, Any]:
    """Finish a recipe's run: add ``checkpoint_bytes``, the loop's ``history`` and the ``config`` (a dataclass) to
    ``metrics``, write them to ``<out>/metrics.json`` and print the closing line (parameters, steps, seconds,
    threads, checkpoint). Returns ``metrics``."""
    metrics.update(checkpoint_bytes=ckpt.stat().st_size, history=run.history, config=asdict(config))
    path = write_metrics(out / "metrics.json", metrics)
    print(f"\n{metrics['n_parameters']} parameters, {run.steps} steps in {run.wall_s:.0f} s wall, {run.cpu_s:.0f} "
          f"CPU-s on {torch.get_num_threads()} thread(s) (+{data_s:.0f} s data); checkpoint "
          f"{metrics['checkpoint_bytes'] / 2**20:.2f} MiB at {ckpt}; metrics in {path}")
    return metrics

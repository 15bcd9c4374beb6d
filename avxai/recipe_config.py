"""Recipe configs: a YAML mapping onto a frozen dataclass, with ``--set KEY=VALUE`` overrides.

Every training recipe keeps its hyper-parameters in a frozen dataclass mirrored by its ``config.yaml``;
these two helpers are the shared path from the file and the command line to that dataclass.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml

T = TypeVar("T")


def apply_overrides(values: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Set ``KEY=VALUE`` items (the value parsed as YAML) in ``values``; returns it.

    Raises ``ValueError`` for an item without ``=``.
    """
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        values[key.strip()] = yaml.safe_load(text)
    return values


def config_from_dict(cls: type[T], values: Mapping[str, Any]) -> T:
    """``cls(**values)`` for a dataclass whose fields all have defaults: lists become tuples where the default
    is a tuple, other values take the default's type; an unknown key raises ``ValueError`` listing the valid ones."""
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; valid keys are {sorted(names)}")
    out = {}
    for key, value in values.items():
        default = names[key].default
        out[key] = tuple(value) if isinstance(default, tuple) else type(default)(value)
    return cls(**out)




def add_train_arguments(parser, *, config: Path, out: Path, assets: str, length: str = "steps") -> None:
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


def train_config(parser, args, cls: type[T], *, debug_overrides: Mapping[str, Any], assets: Path,
                 length: str = "steps") -> T:
    """The recipe's config from ``--config``, the debug overrides (with ``--debug``), ``--set`` and
    ``--<length>`` / ``--seed``, in that order; any problem is a ``parser.error`` naming it. Also sets
    ``args.assets`` to ``assets`` (``<out>/assets`` with ``--debug``) when it was not given."""
    if not args.config.is_file():
        parser.error(f"config file {args.config} does not exist")
    values = yaml.safe_load(args.config.read_text()) or {}
    if args.debug:
        values.update(debug_overrides)
    try:
        apply_overrides(values, args.set)
        for key in (length, "seed"):
            if getattr(args, key) is not None:
                values[key] = getattr(args, key)
        cfg = config_from_dict(cls, values)
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    if args.assets is None:
        args.assets = args.out / "assets" if args.debug else assets
    return cfg


__all__ = ["add_train_arguments", "apply_overrides", "config_from_dict", "train_config"]

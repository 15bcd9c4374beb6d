"""Recipe configs: a YAML mapping onto a frozen dataclass, with ``--set KEY=VALUE`` overrides.

Every training recipe keeps its hyper-parameters in a frozen dataclass mirrored by its ``config.yaml``;
these two helpers are the shared path from the file and the command line to that dataclass.
"""

from __future__ import annotations

from dataclasses import fields
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


__all__ = ["apply_overrides", "config_from_dict"]

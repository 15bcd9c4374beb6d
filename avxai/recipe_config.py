"""Deprecated: the training recipes' config helpers now live in :mod:`avxai.training` (on
:func:`avxai.config.build_config`). Kept only until every ``recipes/*/train.py`` imports from there."""

from __future__ import annotations

from typing import Any, Mapping, TypeVar

from avxai.config import build_config
from avxai.training import add_train_arguments, train_config

T = TypeVar("T")


def config_from_dict(cls: type[T], values: Mapping[str, Any]) -> T:
    """``cls`` from a mapping of its fields (:func:`avxai.config.build_config` with ``values``)."""
    return build_config(cls, values=values)


__all__ = ["add_train_arguments", "config_from_dict", "train_config"]

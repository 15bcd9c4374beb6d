"""One config loader: a YAML file, a dict, ``FIELD=VALUE`` overrides and command-line shortcuts onto a frozen
dataclass, with every value checked against the field's annotation.

Used by ``avxai explain`` (method configs), the audit, the recipes and the training recipes::

    cfg = build_config(OcclusionConfig, file="c.yaml", section="occlusion", sets=["window=[16, 8]"],
                       shortcuts={"stride": (8, 4), "areas": None})

Later sources win: ``file`` < ``values`` < ``sets`` < ``shortcuts``. YAML lists become tuples (configs are
frozen). A value that does not fit its field raises ``ValueError`` naming where it came from, the field and
the expected type, e.g. ``--set window=2.5: window expects a tuple of ints, an int or None, got 2.5``.
A field's ``metadata={"note": "..."}`` is added to that sentence in brackets ("one per grid axis").
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml

from avxai.safety import read_regular

__all__ = ["build_config", "describe_type", "parse_sets"]

T = TypeVar("T")

_NAMES = {int: "an int", float: "a number", bool: "true or false", str: "a string", type(None): "None",
          Path: "a path", dict: "a mapping", list: "a list", tuple: "a tuple"}
_PLURALS = {int: "ints", float: "numbers", bool: "booleans", str: "strings", Path: "paths", type(None): "None"}


class _Mismatch(Exception):
    """A value does not fit a type (internal: turned into a ValueError naming the field)."""


def describe_type(tp: Any) -> str:
    """``tuple[int, ...] | None`` -> ``"a tuple of ints or None"`` (for error messages)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "anything"
    if origin in (typing.Union, types.UnionType):
        names = [describe_type(a) for a in args]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a tuple of {_plural(args[0])}"
        if args and all(a == args[0] for a in args):
            return f"a tuple of {len(args)} {_plural(args[0])}"
        return "a tuple (" + ", ".join(describe_type(a) for a in args) + ")" if args else "a tuple"
    if origin in (list, dict) or origin is not None and isinstance(origin, type):
        return _NAMES.get(origin, f"a {getattr(origin, '__name__', origin)}")
    return _NAMES.get(tp, f"a {getattr(tp, '__name__', tp)}")


def _plural(tp: Any) -> str:
    return _PLURALS.get(tp, describe_type(tp))


def _convert(tp: Any, value: Any, lenient: bool) -> Any:
    """``value`` as type ``tp`` (lists -> tuples, ints -> floats, with ``lenient`` also numeric strings ->
    floats: PyYAML reads ``1e-3`` as a string); raises :class:`_Mismatch`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any or tp is object:
        return _freeze(value)
    if origin in (typing.Union, types.UnionType):
        for loose in (False, True) if lenient else (False,):  # an exact fit first, then a converted one
            for member in args:
                try:
                    return _convert(member, value, loose)
                except _Mismatch:
                    continue
        raise _Mismatch
    if origin is typing.Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _Mismatch
    if tp in (type(None), bool, str):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if lenient and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise _Mismatch from None
        raise _Mismatch
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise _Mismatch
    if origin is tuple or tp is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        if not args:
            return tuple(_freeze(v) for v in value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, lenient) for v in value)
        if len(value) != len(args):
            raise _Mismatch
        return tuple(_convert(a, v, lenient) for a, v in zip(args, value))
    if origin is list or tp is list:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        return [_convert(args[0], v, lenient) if args else v for v in value]
    if origin in (dict, Mapping) or tp in (dict, Mapping) or origin is typing.Mapping:
        if not isinstance(value, Mapping):
            raise _Mismatch
        return dict(value)
    check = origin if isinstance(origin, type) else tp
    if isinstance(check, type):
        if isinstance(value, check):
            return value
        raise _Mismatch
    return value  # an annotation this loader does not know (a TypeVar, a string it could not resolve): as given


def _freeze(value: Any) -> Any:
    """Lists become tuples, recursively (configs are frozen and hashable where they can be)."""
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


def parse_sets(sets: Iterable[str], flag: str = "--set") -> dict[str, tuple[Any, str]]:
    """``["FIELD=VALUE", ...]`` -> ``{field: (YAML value, "--set FIELD=VALUE")}``; dashes in names become
    underscores. Raises ``ValueError`` for an item without ``=``."""
    out: dict[str, tuple[Any, str]] = {}
    for item in sets:
        key, eq, text = str(item).partition("=")
        if not eq or not key.strip():
            raise ValueError(f"{flag} takes FIELD=VALUE (the value in YAML), got {item!r}")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"{flag} {item}: the value is not valid YAML ({str(err).splitlines()[0]})") from None
        out[key.strip().replace("-", "_")] = (value, f"{flag} {item.strip()}")
    return out


def _read_file(file: "str | Path", section: str | None, cls: type) -> dict[str, Any]:
    path = Path(file)
    if not path.exists():
        raise ValueError(f"config file {path} does not exist")
    data = read_regular(path, what="config file", kind="text")  # a directory or a FIFO is refused unread
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"config file {path} is not UTF-8 text; save it as UTF-8 YAML") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ValueError(f"config file {path} is not valid YAML{where}: {what}; fix the syntax") from None
    doc = {} if doc is None else doc
    if not isinstance(doc, dict):
        raise ValueError(f"config file {path} must hold a mapping of {cls.__name__} fields, got "
                         f"{type(doc).__name__}")
    if section is not None and isinstance(doc.get(section), dict):
        return doc[section]
    return doc


def build_config(cls: type[T], *, file: "str | Path | None" = None, section: str | None = None,
                 values: Mapping[str, Any] | None = None, sets: Iterable[str] = (),
                 shortcuts: Mapping[str, Any] | None = None) -> T:
    """The frozen dataclass ``cls`` from a YAML ``file``, a ``values`` dict, ``sets`` and ``shortcuts``.

    Parameters
    ----------
    cls : a dataclass whose fields all have defaults (a method config, a recipe config, ...).
    file : YAML file holding a mapping of fields, or a mapping of fields under the key ``section``
        (used when that key holds a mapping; otherwise the whole file is the mapping).
    values : fields as a dict (e.g. a recipe's debug overrides).
    sets : ``"FIELD=VALUE"`` strings, the value in YAML (``--set``); dashes in names become underscores.
    shortcuts : command-line flags that name a field (``{"window": (16, 8), "areas": None}``); ``None``
        values are skipped, and a flag for a field ``cls`` does not have raises.

    Raises ``ValueError`` naming the source (file, ``--set`` item, flag), the field and the expected type
    for a value that does not fit, and listing the fields for an unknown one.
    """
    if not dataclasses.is_dataclass(cls) or not isinstance(cls, type):
        raise TypeError(f"build_config takes a dataclass type, got {cls!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: values are passed as given, lists as tuples
        hints = {}
    given: dict[str, tuple[Any, str]] = {}
    if file is not None:
        given.update({k: (v, f"config file {file}") for k, v in _read_file(file, section, cls).items()})
    given.update({k: (v, "") for k, v in (values or {}).items()})
    given.update(parse_sets(sets))
    for key, value in (shortcuts or {}).items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if key not in fields:
            raise ValueError(f"{flag} does not apply to {cls.__name__} (it has no field {key!r}); its fields are "
                             f"{', '.join(sorted(fields))}")
        given[key] = (value, flag)
    unknown = sorted(set(given) - set(fields))
    if unknown:
        where = "; ".join(f"{k} (from {given[k][1]})" if given[k][1] else k for k in unknown)
        close = [m for k in unknown for m in difflib.get_close_matches(k, list(fields), n=1)]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"{cls.__name__} has no field {where}{hint}; its fields are {', '.join(sorted(fields))}")
    kwargs = {}
    for key, (value, source) in given.items():
        tp = hints.get(key, Any)
        try:
            kwargs[key] = _convert(tp, value, lenient=True)
        except _Mismatch:
            note = fields[key].metadata.get("note")
            expects = describe_type(tp) + (f" ({note})" if note else "")
            prefix = f"{source}: " if source else ""
            raise ValueError(f"{prefix}{key} expects {expects}, got {value!r}") from None
    return cls(**kwargs)

"""``package.module:factory`` specs: a model the user builds in code, called with ``key=value`` arguments.

>>> model = load_factory("mylab.models:build_vad", {"hidden": 32, "sample_rate": 16000})

On the command line: ``--model mylab.models:build_vad --model-arg hidden=32 --model-arg sample_rate=16000``
(values are YAML: ``hidden=32`` is an int, ``sizes=[1,2]`` a list). The module is imported (it must be
importable: installed, or on ``PYTHONPATH``), the factory (a function or class, a dotted attribute path after
the colon) is called with the arguments, and the result is wrapped with :func:`avxai.wrap` when it does not
state its ``sample_rate`` itself. The adapter's own arguments are taken out first: ``output``, ``features`` (a
front end for a model on features: ``features={kind: logmel, n_mels: 40, hop_length: 160}``), ``frame_hop_s``,
``mono``, ``embedding`` (the output is a speaker embedding: the model states ``embedder()``) always,
``sample_rate`` unless the factory accepts it (then it gets it too).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from typing import Any, Callable, Mapping

from torch import nn

from avxai.models.contract import agreed_sample_rate, sample_rate_of
from avxai.models.spec import SpecKind, register_spec_kind
from avxai.models.wrap import wrap

__all__ = ["load_factory", "parse_factory_spec", "FACTORY_SPEC", "ADAPTER_ARGS", "SPEC_KIND"]

#: ``package.module:attr.path``
FACTORY_SPEC = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<attr>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
#: arguments read by the adapter, not given to the factory (``sample_rate`` is given when the factory takes it)
ADAPTER_ARGS = ("sample_rate", "output", "features", "frame_hop_s", "mono", "embedding")


def parse_factory_spec(spec: str) -> tuple[str, str]:
    """``"package.module:factory"`` -> ``("package.module", "factory")``; anything else: ``ValueError``."""
    match = FACTORY_SPEC.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise ValueError(f"{spec!r} is not a factory spec; write package.module:factory (e.g. mylab.models:build)")
    return match["module"], match["attr"]


def _resolve(spec: str) -> Callable[..., Any]:
    module_name, attr = parse_factory_spec(spec)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"cannot import module {module_name!r} of factory {spec} ({err}); install it or put its "
                         "folder on PYTHONPATH") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"module {module_name!r} has no {attr!r}; check the name after the colon in {spec}")
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{spec} is a {type(target).__name__}, not a callable factory; name a function or class "
                        "that returns the model")
    return target


def _takes(factory: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: give it only what it is given
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def load_factory(spec: str, args: Mapping[str, Any] | None = None) -> nn.Module:
    """Import ``package.module``, call ``factory(**args)``, and return the model in eval mode.

    ``args``: the factory's keyword arguments plus the adapter's (:data:`ADAPTER_ARGS`). A result that does not
    state its ``sample_rate`` is wrapped with :func:`avxai.wrap` (then ``sample_rate`` is required); ``output``,
    ``features``, ``frame_hop_s``, ``mono`` or ``embedding`` also wrap it. A factory that raises: one
    ``ValueError`` naming it and its error.

    Shape: whatever the model takes; a wrapped model takes a waveform ``(batch, channels, time)``.
    """
    args = dict(args or {})
    factory = _resolve(spec)
    adapter = {k: args.pop(k) for k in ADAPTER_ARGS if k in args}
    if "sample_rate" in adapter and _takes(factory, "sample_rate"):
        args["sample_rate"] = adapter["sample_rate"]
    try:
        model = factory(**args)
    except Exception as err:  # the user's code: one line naming the factory, never its traceback
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"factory {spec} raised {type(err).__name__}: {first}; fix the arguments "
                         f"({', '.join(f'{k}={v!r}' for k, v in args.items()) or 'none given'})") from None
    if not isinstance(model, nn.Module):
        raise TypeError(f"factory {spec} returned a {type(model).__name__}, not a torch.nn.Module; make it return "
                        "the model")
    needs_wrap = sample_rate_of(model) is None or any(adapter.get(k) not in (None, False) for k in ADAPTER_ARGS[1:])
    if needs_wrap:
        if adapter.get("sample_rate") is None and sample_rate_of(model) is None:
            raise ValueError(f"the model of factory {spec} does not state its sample rate; pass sample_rate= "
                             "(--model-arg sample_rate=HZ) or set model.sample_rate in the factory")
        model = wrap(model, sample_rate=adapter.get("sample_rate"), output=adapter.get("output"),
                     features=adapter.get("features"), frame_hop_s=adapter.get("frame_hop_s"),
                     mono=bool(adapter.get("mono", False)), embedding=bool(adapter.get("embedding", False)))
    else:
        agreed_sample_rate(sample_rate_of(model), adapter.get("sample_rate"), who=f"the model of factory {spec}",
                           missing="")
    return model.eval()


def _matches(spec: str) -> bool:
    """``package.module:factory`` whose top-level package can be found (looked up, not imported)."""
    match = FACTORY_SPEC.match(spec) if isinstance(spec, str) else None
    if match is None:
        return False
    try:
        return importlib.util.find_spec(match["module"].split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


#: the spec kind: ``--model package.module:factory --model-arg key=value ...``
SPEC_KIND = register_spec_kind(SpecKind(
    "factory", _matches, load_factory,
    example="mylab.models:build --model-arg hidden=32 --model-arg sample_rate=16000 (a function or class you "
            "wrote, called with the model arguments)"))

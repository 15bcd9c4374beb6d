"""TorchScript files as models avxai explains (``torch.jit.load`` only: no arbitrary object is unpickled).

>>> model = load_torchscript("enhancer.ts", sample_rate=16000)
>>> vad = load_torchscript("silero_vad.jit", sr=16000, chunk=512)   # a chunked, stateful VAD

Extra arguments of the scripted ``forward`` (a VAD's ``sr``) are given as keyword arguments, on the command line
as model arguments: ``--model vad.jit --model-arg sr=16000 --model-arg chunk=512``. ``chunk`` makes it a
:class:`~avxai.models.chunked.Chunked` model (frames of ``chunk`` samples, its ``reset_states()`` called before
every call). The spec kind ``"torchscript"`` accepts an existing ``.ts`` / ``.jit`` / ``.pt`` / ``.pth`` file that
is a TorchScript archive (a zip with ``code/`` and ``constants.pkl``, checked without loading it).
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from avxai.models.chunked import Chunked
from avxai.models.spec import SpecKind, register_spec_kind
from avxai.models.wrap import wrap

__all__ = ["load_torchscript", "is_torchscript_file", "SUFFIXES", "SPEC_KIND"]

#: file suffixes the ``"torchscript"`` spec kind looks at
SUFFIXES = (".ts", ".jit", ".pt", ".pth")
#: forward arguments that also say the model's sample rate
RATE_ARGS = ("sr", "sample_rate")


def is_torchscript_file(path: "str | Path") -> bool:
    """Whether ``path`` is a TorchScript archive: a zip holding ``code/`` and ``constants.pkl`` (not loaded)."""
    try:
        if not Path(path).is_file() or not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in names) and \
        any("/code/" in n or n.startswith("code/") for n in names)


def _script_load(path: Path) -> torch.jit.ScriptModule:
    if not path.is_file():
        raise FileNotFoundError(f"TorchScript file {path} does not exist; pass the path of a file written by "
                                "torch.jit.script(model).save(path)")
    if not is_torchscript_file(path):
        raise ValueError(f"{path} is not a TorchScript file (no code/ and constants.pkl inside); export the model "
                         "with torch.jit.script(model).save(path), or load a state dict with its architecture")
    try:
        with warnings.catch_warnings():  # torch's deprecation notice of TorchScript says nothing about this model
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ValueError(f"{path} could not be loaded as TorchScript ({first}); export it again with "
                         "torch.jit.script(model).save(path)") from None


def _check_forward_args(module: torch.jit.ScriptModule, given: dict[str, Any], name: str) -> None:
    """The scripted ``forward``'s arguments after the input: every one without a default given, none unknown."""
    try:
        params = module.forward.schema.arguments[2:]  # after self and the input
    except (AttributeError, RuntimeError):  # no schema to read: the call itself will tell
        return
    names = [p.name for p in params]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"TorchScript model {name} has no forward argument {unknown[0]!r}; its forward takes "
                         f"{', '.join(names) or 'only the input'}")
    missing = [p.name for p in params if not p.has_default_value() and p.name not in given]
    if missing:
        raise ValueError(f"TorchScript model {name} needs the forward argument{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(missing)}; give {' '.join(f'--model-arg {m}=VALUE' for m in missing)} "
                         f"({', '.join(f'{m}=...' for m in missing)} in Python)")


def load_torchscript(path: "str | Path", *, sample_rate: int | None = None, output: Any = None,
                     chunk: int | None = None, reset: str | None = "reset_states", mono: bool | None = None,
                     features: Any = None, embedding: bool = False, **forward_kwargs: Any) -> nn.Module:
    """A TorchScript file as a waveform model (eval mode) stating its ``sample_rate``.

    sample_rate : Hz; defaults to a ``sr`` / ``sample_rate`` forward argument, then to the scripted module's own
        ``sample_rate`` attribute; none of them: an error asking for it.
    output : what avxai scores in the output (see :func:`avxai.models.wrap.select_output`).
    chunk : samples per call of a chunked model: a :class:`~avxai.models.chunked.Chunked` model returning frames
        ``(batch, frames, ...)``, with ``reset`` (the scripted method clearing its state, if it has one) called
        before every call.
    mono : give the model ``(batch, time)`` (default for a chunked model) or ``(batch, channels, time)``.
    features : a front end for a scripted model on features (see :func:`avxai.wrap`; not with ``chunk``).
    embedding : the output is an embedding ``(batch, dim)`` (speaker verification): see :func:`avxai.wrap`.
    forward_kwargs : extra arguments of every call of the scripted ``forward`` (e.g. ``sr=16000``).

    Shape: waveform ``(batch, channels, time)`` -> the model's output (frames ``(batch, frames, ...)`` with
    ``chunk``).
    """
    module = _script_load(Path(path))
    _check_forward_args(module, forward_kwargs, Path(path).name)
    rate = sample_rate
    for key in RATE_ARGS:
        if rate is None and isinstance(forward_kwargs.get(key), int):
            rate = forward_kwargs[key]
    if rate is None:
        rate = getattr(module, "sample_rate", None)
    if rate is None:
        raise ValueError(f"TorchScript model {Path(path).name} does not state its sample rate; pass sample_rate= "
                         "(--model-arg sample_rate=HZ)")
    if chunk is not None:
        if features is not None:
            raise ValueError("features and chunk do not go together; a chunked model takes waveform chunks")
        if reset is not None and not callable(getattr(module, reset, None)):
            reset = None  # a stateless scripted model: nothing to clear
        model: nn.Module = Chunked(module, chunk=chunk, sample_rate=rate, reset=reset, forward_kwargs=forward_kwargs,
                                   output=output, mono=True if mono is None else mono)
    else:
        model = wrap(module, sample_rate=rate, output=output, features=features, mono=bool(mono),
                     forward_kwargs=forward_kwargs, embedding=embedding)
    return model.eval()


def _matches(spec: str) -> bool:
    return Path(spec).suffix.lower() in SUFFIXES and is_torchscript_file(spec)


def _load(spec: str, args: dict) -> nn.Module:
    return load_torchscript(spec, **args)


#: the spec kind: ``--model model.ts [--model-arg sr=16000 --model-arg chunk=512]``
SPEC_KIND = register_spec_kind(SpecKind(
    "torchscript", _matches, _load,
    example="vad.jit --model-arg sr=16000 --model-arg chunk=512 (a TorchScript file; forward arguments and "
            "sample_rate, output, chunk as model arguments)"))

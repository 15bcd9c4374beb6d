"""One grammar for ``--model SPEC``: every form a model can be named in, and the one resolver of them all.

A *spec kind* says which specs it accepts (``matches``) and how to load one (``load(spec, args)``); the kinds
form an ordered table, :data:`SPEC_KINDS`, and the first kind that matches a spec loads it. Built in here:

===================  ===========================================================  ==============================
kind                 accepts                                                      example
===================  ===========================================================  ==============================
``name``             a registered architecture's bundled checkpoint, or an        ``speakernet``, ``resemblyzer``
                     architecture that brings its own weights
``checkpoint``       an avxai checkpoint: a file with its ``.json`` beside it     ``runs/enhancer.pt``
===================  ===========================================================  ==============================

An adapter module adds its kind on import with :func:`register_spec_kind` (a TorchScript file, a
``package.module:factory``, a HuggingFace or SpeechBrain folder, ...), so a new form is one file and one row. A
checkpoint without its JSON is named with ``architecture=`` (``--architecture``). ``args`` (``--model-arg
key=value``, YAML values: :func:`parse_model_args`) go to the kind's loader: constructor arguments of a registered
architecture, arguments of a factory, options of an adapter.

:func:`resolve_model` turns a spec into a model in eval mode (a module passes through); a spec no kind accepts, a
missing file and a missing optional dependency each raise one line naming the fix. :func:`model_source` is the
same model as something that travels to audit workers: a :class:`~avxai.models.registry.ModelBlob` (the checkpoint
bytes) for avxai's own kinds, a :class:`ModelSpec` (the spec and its arguments, resolved again in each worker) for
the others.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from torch import nn

from avxai.config import parse_sets
from avxai.models.contract import sample_rate_of
from avxai.models.registry import ARCHITECTURES, ModelBlob, build_cached, get_architecture
from avxai.models.state import config_path

__all__ = ["SpecKind", "SPEC_KINDS", "register_spec_kind", "get_spec_kind", "spec_kind_of", "resolve_model",
           "parse_model_args", "describe_spec_kinds", "spec_forms", "ModelSpec", "model_source", "BLOB_KINDS"]


@dataclass(frozen=True)
class SpecKind:
    """One form of ``--model SPEC``.

    name : short key (``"torchscript"``), shown in errors and listings.
    matches : ``matches(spec) -> bool``; cheap, never raises, and ``False`` for what its loader cannot take (a
        kind whose optional dependency is missing still matches: the resolver then names the extra).
    load : ``load(spec, args) -> nn.Module`` (eval mode, stating its ``sample_rate``); ``args`` the parsed
        ``--model-arg`` values. Raises ``ValueError``/``TypeError``/``FileNotFoundError`` with one sentence, or
        ``ImportError`` when ``extra`` is missing.
    extra : the pip extra the loader needs (``"hf"`` -> ``pip install avxai[hf]``), or ``None``.
    example : one example spec, with a few words (``"vad.jit (a TorchScript file)"``), for help and errors.
    """

    name: str
    matches: Callable[[str], bool]
    load: Callable[[str, dict], nn.Module]
    extra: str | None = None
    example: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or self.name != self.name.strip().lower():
            raise ValueError(f"a spec kind name must be a non-empty lower-case string, got {self.name!r}")
        if not callable(self.matches) or not callable(self.load):
            raise TypeError(f"spec kind {self.name!r}: matches and load must be callable")


#: the spec kinds in the order they are tried; filled by :func:`register_spec_kind`
SPEC_KINDS: list[SpecKind] = []
#: the kinds whose models travel to audit workers as checkpoint bytes (:class:`ModelBlob`)
BLOB_KINDS = ("name", "checkpoint")


def register_spec_kind(kind: SpecKind, *, before: str | None = None, replace: bool = False) -> SpecKind:
    """Add ``kind`` to :data:`SPEC_KINDS` (at the end, or just before the kind named ``before``); return it.

    A name already registered raises unless ``replace=True`` (which keeps its place in the order).
    """
    if not isinstance(kind, SpecKind):
        raise TypeError(f"register_spec_kind takes a SpecKind, got {type(kind).__name__}")
    names = [k.name for k in SPEC_KINDS]
    if kind.name in names:
        if not replace:
            raise ValueError(f"spec kind {kind.name!r} is already registered; pass replace=True to overwrite")
        SPEC_KINDS[names.index(kind.name)] = kind
        return kind
    if before is not None:
        if before not in names:
            raise ValueError(f"no spec kind {before!r} to insert before; known: {', '.join(names)}")
        SPEC_KINDS.insert(names.index(before), kind)
    else:
        SPEC_KINDS.append(kind)
    return kind


def get_spec_kind(name: str) -> SpecKind:
    """The registered kind called ``name``, or a ``ValueError`` listing the known ones."""
    for kind in SPEC_KINDS:
        if kind.name == name:
            return kind
    raise ValueError(f"unknown spec kind {name!r}; known: {', '.join(k.name for k in SPEC_KINDS)}")


def spec_kind_of(spec: str) -> SpecKind | None:
    """The first kind of :data:`SPEC_KINDS` that accepts ``spec``, or ``None``."""
    for kind in SPEC_KINDS:
        try:
            if kind.matches(spec):
                return kind
        except (OSError, ValueError):  # a matcher that peeks into a file it cannot read: not this kind
            continue
    return None


def spec_forms() -> str:
    """The accepted forms with an example each, on one line (for errors)."""
    return "; ".join(f"{k.name}: {k.example}" if k.example else k.name for k in SPEC_KINDS)


def describe_spec_kinds() -> str:
    """One line per kind: its name, example and extra (for ``--help``)."""
    return "\n".join(f"{k.name}: {k.example}" + (f" (needs avxai[{k.extra}])" if k.extra else "")
                     for k in SPEC_KINDS)


def parse_model_args(items: Iterable[str] | None, flag: str = "--model-arg") -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: value}`` with YAML values (``n=3`` -> 3, ``x=[1,2]`` -> [1, 2]).

    Dashes in keys become underscores; an item without ``=`` or a key given twice raises ``ValueError``.
    """
    items = [str(item) for item in items or []]
    for item in items:
        if "=" not in item or not item.partition("=")[0].strip():
            raise ValueError(f"{flag} takes KEY=VALUE (the value in YAML, e.g. {flag} sample_rate=16000), got {item!r}")
    keys = [str(item).partition("=")[0].strip().replace("-", "_") for item in items]
    twice = sorted({k for k in keys if keys.count(k) > 1 and k})
    if twice:
        raise ValueError(f"{flag} {twice[0]}=... is given more than once; give each key once")
    return {key: value for key, (value, _) in parse_sets(items, flag=flag).items()}


# ---------------------------------------------------------------------------------------------
# the built-in kinds: a registered name, an avxai checkpoint
# ---------------------------------------------------------------------------------------------
def _is_name(spec: str) -> bool:
    return spec in ARCHITECTURES and not Path(spec).exists()


def _named_blob(spec: str, args: Mapping[str, Any]) -> ModelBlob:
    arch = get_architecture(spec)
    if arch.bundled:
        return ModelBlob.from_path(spec, kwargs=args)
    if not arch.needs_checkpoint:
        return ModelBlob.from_path(None, architecture=spec, kwargs=args)
    raise ValueError(f"{spec!r} is an architecture without bundled weights; pass its checkpoint: --model PATH "
                     f"--architecture {spec} (in Python: resolve_model(path, architecture={spec!r}))")


def _is_checkpoint(spec: str) -> bool:
    path = Path(spec)
    return path.suffix != ".json" and path.is_file() and config_path(path).is_file()


def _load_name(spec: str, args: dict) -> nn.Module:
    return _named_blob(spec, args).create()


def _load_checkpoint(spec: str, args: dict) -> nn.Module:
    return ModelBlob.from_path(spec, kwargs=args).create()


register_spec_kind(SpecKind(
    "name", _is_name, _load_name,
    example="speakernet, enhancer, separator, av-enhancer, resemblyzer (a bundled or built-in model)"))
register_spec_kind(SpecKind(
    "checkpoint", _is_checkpoint, _load_checkpoint,
    example="runs/model.pt (an avxai checkpoint with runs/model.json beside it; without the JSON add "
            "--architecture NAME)"))


# ---------------------------------------------------------------------------------------------
# the resolver
# ---------------------------------------------------------------------------------------------
def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def _unknown(spec: str) -> Exception:
    path = Path(spec)
    forms = f"accepted forms: {spec_forms()}"
    if path.is_file():
        json_note = (f"it is no avxai checkpoint (no {config_path(path).name} beside it: name its architecture, e.g. "
                     f"--architecture ecapa-tdnn for SpeechBrain's embedding_model.ckpt (known: "
                     f"{', '.join(ARCHITECTURES)}), or write the JSON) and no TorchScript archive (torch.jit.save); "
                     if path.suffix != ".json" else "it is a JSON config, pass the checkpoint beside it; ")
        return ValueError(f"model file {spec} is of no form avxai knows: {json_note}{forms}")
    if path.is_dir():
        return ValueError(f"model folder {spec} is of no form avxai knows (a HuggingFace folder holds config.json, "
                          f"a SpeechBrain folder hyperparams.yaml); {forms}")
    looks_like_path = len(path.parts) > 1 or bool(path.suffix) and ":" not in spec
    if looks_like_path:
        return FileNotFoundError(f"model file {spec} does not exist; give an existing file or folder, or one of the "
                                 f"{forms}")
    return ValueError(f"unknown model {spec!r}; {forms}")


def model_folder(folder: Any, args: Mapping[str, Any], *, loader: str, known: Iterable[str], holds: str) -> Path:
    """``folder`` as an existing directory, after refusing arguments the ``loader`` does not take (for the adapters
    of model folders: HuggingFace, SpeechBrain). ``holds`` says what the folder should hold."""
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise ValueError(f"{loader} takes no argument {', '.join(unknown)}; known: {', '.join(known)}")
    if not isinstance(folder, (str, Path)):
        raise TypeError(f"folder must be a path, got {type(folder).__name__}")
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"model folder {folder} does not exist; pass the folder holding {holds}")
    return folder


def _check_loaded(model: Any, what: str) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{what} gave a {type(model).__name__}, not a torch.nn.Module; make it return the module")
    if sample_rate_of(model) is None:
        raise ValueError(f"{what} does not state its sample rate; pass it with --model-arg sample_rate=HZ "
                         "(sample_rate= in Python) or set model.sample_rate")
    return model


def _load_with(kind: SpecKind, spec: str, args: dict) -> nn.Module:
    try:
        model = kind.load(spec, dict(args))
    except ImportError as err:
        if "pip install avxai[" in str(err):  # already names its extra (a registered architecture's build)
            raise ImportError(_first_line(err)) from None
        extra = kind.extra or "the missing package"
        raise ImportError(f"model {spec!r} ({kind.name}) needs an optional dependency that is not installed: "
                          f"pip install avxai[{extra}] ({_first_line(err)})") from None
    except (ValueError, TypeError, FileNotFoundError):
        raise
    except Exception as err:  # anything else from inside torch or the adapter: one line, never a traceback
        raise ValueError(f"model {spec!r} could not be loaded as {kind.name} ({kind.example}): "
                         f"{type(err).__name__}: {_first_line(err)}") from None
    return _check_loaded(model, f"model {spec!r} ({kind.name})").eval()


def resolve_model(spec: "str | Path | nn.Module | None" = None, *, architecture: str | None = None,
                  args: Mapping[str, Any] | None = None, default: "str | None" = None) -> nn.Module:
    """The model a spec names, in eval mode (a module passes through): one resolver for every ``--model SPEC``.

    spec : a module (returned as it is; it must state its ``sample_rate``), a spec string or path (see
        :data:`SPEC_KINDS`: a bundled name, an avxai checkpoint, and what the adapter modules add), or ``None``
        (``default``, else the architecture's bundled or built-in model).
    architecture : what a checkpoint without its JSON is (a registered name; ``--architecture``); with no spec,
        that architecture's bundled or built-in model.
    args : ``--model-arg`` values (:func:`parse_model_args`), handed to the kind's loader.
    default : the spec used when ``spec`` and ``architecture`` are both ``None`` (a task's reference model).

    Raises one line for a spec no kind accepts (listing the accepted forms with examples), a missing file,
    a missing optional dependency (``ImportError`` naming ``pip install avxai[EXTRA]``) or a failing loader.
    """
    args = dict(args or {})
    if isinstance(spec, nn.Module):
        if architecture is not None or args:
            raise ValueError("architecture and model arguments apply to a model spec, not to a module you built: "
                             "build the module with them instead")
        return _check_loaded(spec, f"the {type(spec).__name__} module")
    spec = _spec_text(spec, architecture, default, accepts="a spec string, a path or a torch.nn.Module")
    if architecture is not None:
        get_architecture(architecture)
        if spec is None:  # the architecture's bundled or built-in model
            return _load_with(get_spec_kind("name"), architecture, args)
        checkpoint = get_spec_kind("checkpoint")
        with_architecture = SpecKind("checkpoint", checkpoint.matches, lambda s, a: ModelBlob.from_path(
            s, architecture=architecture, kwargs=a).create(), example=checkpoint.example)
        return _load_with(with_architecture, spec, args)
    kind = spec_kind_of(spec)
    if kind is None:
        raise _unknown(spec)
    return _load_with(kind, spec, args)


# ---------------------------------------------------------------------------------------------
# a model for the audit's workers
# ---------------------------------------------------------------------------------------------


def _digest_path(path: Path, h: "hashlib._Hash") -> None:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        h.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)


@dataclass(frozen=True)
class ModelSpec:
    """A model named by its spec and arguments, resolved again in each process that builds it.

    For the kinds whose weights are not an avxai checkpoint (a TorchScript file, a factory, a HuggingFace or
    SpeechBrain folder): picklable and small; every worker needs the spec's files at the same (absolute) path, and
    a factory's module importable. ``digest`` covers the spec, the arguments and the bytes of the file or folder
    (so a changed model is a new audit).
    """

    spec: str
    args: tuple = ()
    digest: str = ""
    kind: str = field(default="", compare=False)

    @property
    def path(self) -> str:
        """The spec (what the audit's summary names as the model)."""
        return self.spec

    def create(self) -> nn.Module:
        """A new model from the spec (:func:`resolve_model`)."""
        return resolve_model(self.spec, args=dict(self.args))

    def build(self) -> nn.Module:
        """The model (:meth:`create`), cached per process by digest (one model at a time)."""
        return build_cached(self.digest, self.create)


def _spec_text(spec: "str | Path | None", architecture: str | None, default: str | None, accepts: str) -> str | None:
    """``spec`` as text (``default`` when neither a spec nor an architecture is given); ``None`` with an architecture
    alone (its bundled or built-in model)."""
    if spec is None and architecture is None:
        spec = default
        if spec is None:
            raise ValueError(f"no model given; name one with --model SPEC ({spec_forms()})")
    if isinstance(spec, Path):
        spec = str(spec)
    if spec is not None and not isinstance(spec, str):
        raise TypeError(f"the model must be {accepts}, got {type(spec).__name__}")
    return spec


def model_source(spec: "str | Path | None" = None, *, architecture: str | None = None,
                 args: Mapping[str, Any] | None = None, default: str | None = None) -> "ModelBlob | ModelSpec":
    """The model ``spec`` names (as :func:`resolve_model`), as something a worker process builds with ``build()``.

    Bundled names and avxai checkpoints: a :class:`~avxai.models.registry.ModelBlob` (the checkpoint bytes travel,
    no worker needs the file). Every other kind: a :class:`ModelSpec` (the spec and its arguments; each worker
    resolves it, so the files must be readable there at the same path).
    """
    args = dict(args or {})
    spec = _spec_text(spec, architecture, default, accepts="a spec string or a path")
    if architecture is not None:
        get_architecture(architecture)
        return ModelBlob.from_path(spec, architecture=architecture, kwargs=args) if spec is not None \
            else _named_blob(architecture, args)
    kind = spec_kind_of(spec)
    if kind is None:
        raise _unknown(spec)
    if kind.name == "name":
        return _named_blob(spec, args)
    if kind.name == "checkpoint":
        return ModelBlob.from_path(spec, kwargs=args)
    if Path(spec).exists():  # absolute: a worker (a Ray task) may run in another working directory
        spec = str(Path(spec).resolve())
    h = hashlib.sha256(json.dumps({"spec": spec, "args": args}, sort_keys=True, default=repr).encode())
    if Path(spec).exists():
        _digest_path(Path(spec), h)
    return ModelSpec(spec=spec, args=tuple(sorted(args.items())), digest=h.hexdigest(), kind=kind.name)

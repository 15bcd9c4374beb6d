"""One registry of model architectures, one way to save a model and one way to load it.

A checkpoint is a state dict ``x.pt`` (tensors only) with ``x.json`` beside it::

    {"architecture": "enhancer", "model": {constructor keyword arguments}, ...anything else (metrics, ...)}

:func:`save_model` writes both; :func:`load_model` reads them back (``torch.load(..., weights_only=True)``, a
strict key and shape check), builds ``ARCHITECTURES[architecture].build(**model)`` and returns it in eval mode.
:class:`ModelBlob` is the same checkpoint in memory (config + bytes + digest), for sending a model to workers.

A model family is one file that defines its module and calls :func:`register` once (one row), imported by
``avxai/models/__init__.py``. Example::

    register(Architecture("enhancer", from_config(MaskingEnhancer, EnhancerConfig), "avxai's T-F masking enhancer",
                          bundled="enhancement/enhancer.pt"))

``load_model("enhancer")`` then loads the bundled checkpoint, ``load_model("my/enhancer.pt")`` any checkpoint
written by ``save_model(model, "my/enhancer.pt", architecture="enhancer", kwargs=...)``, and
``load_model("embedding_model.ckpt", architecture="ecapa-tdnn")`` a checkpoint without a JSON (the
architecture's default arguments).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from torch import nn

from avxai.models.contract import sample_rate_of
from avxai.models.state import (
    ASSETS_DIR, config_path, load_state_dict_checked, read_config, read_state, state_mismatch, write_checkpoint,
)

__all__ = ["Architecture", "ARCHITECTURES", "register", "get_architecture", "from_config", "save_model", "load_model",
           "ModelBlob", "build_cached", "DEFAULT_ARCHITECTURE", "LOAD_OPTIONS", "describe_architectures"]

#: the architecture of ``load_model()`` without arguments, and of a JSON without ``"architecture"`` (written
#: before the registry existed)
DEFAULT_ARCHITECTURE = "speakernet"
#: entries of a JSON's ``"model"`` that say how to read the checkpoint, not how to build the model
LOAD_OPTIONS = ("key", "strip_prefix")


@dataclass(frozen=True)
class Architecture:
    """A model family: how to build it, and where its weights live.

    name : the registry key (``"speakernet"``), also written into every checkpoint's JSON.
    build : ``build(**kwargs) -> nn.Module`` with random weights; the module must state ``sample_rate``
        (see :mod:`avxai.models.contract`). ``kwargs`` come from the JSON (lists, not tuples).
    description : one line for listings and errors.
    extra : the pip extra that ``build`` needs (``"speechbrain"`` -> ``pip install avxai[speechbrain]``); an
        ``ImportError`` while building then becomes one line naming it.
    bundled : the checkpoint under ``avxai/assets/`` that ``load_model(name)`` loads, if any.
    recipe : the script that writes the bundled checkpoint (named when it is missing).
    weights : the part of the model whose state dict a checkpoint holds (default: the model itself), e.g. the
        inner network of a wrapper that adds a sample rate.
    needs_checkpoint : ``False`` for a model that brings its own weights (an adapter of a pretrained package):
        ``load_model(architecture=name)`` then builds it without a checkpoint.
    """

    name: str
    build: Callable[..., nn.Module]
    description: str
    extra: str | None = None
    bundled: str | None = None
    recipe: str | None = None
    weights: Callable[[nn.Module], nn.Module] | None = None
    needs_checkpoint: bool = True

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or self.name != self.name.strip().lower():
            raise ValueError(f"an architecture name must be a non-empty lower-case string, got {self.name!r}")
        if not callable(self.build):
            raise TypeError(f"build of architecture {self.name!r} must be callable, got {type(self.build).__name__}")

    def create(self, **kwargs: Any) -> nn.Module:
        """``build(**kwargs)`` (random weights, training mode), checked to state its ``sample_rate``."""
        try:
            model = self.build(**kwargs)
        except ImportError as err:
            if self.extra is None:
                raise
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ImportError(f"architecture {self.name!r} needs the optional dependency {self.extra!r}, which is "
                              f"not installed: pip install avxai[{self.extra}] ({reason})") from None
        except TypeError as err:
            raise ValueError(f"{self.name} cannot be built with these arguments: {err}") from None
        if not isinstance(model, nn.Module):
            raise TypeError(f"build of architecture {self.name!r} returned {type(model).__name__}, not an nn.Module")
        sample_rate_of(model, required=True)
        return model

    def weights_of(self, model: nn.Module) -> nn.Module:
        """The module whose state dict the checkpoint holds."""
        return self.weights(model) if self.weights is not None else model

    def bundled_path(self) -> Path | None:
        """``avxai/assets/<bundled>``, or ``None`` when the architecture has no bundled checkpoint."""
        return ASSETS_DIR / self.bundled if self.bundled else None

    def load(self, spec: "str | Path | None" = None, **kwargs: Any) -> nn.Module:
        """``load_model(spec, architecture=self.name)``: default the bundled checkpoint; ``kwargs`` over the JSON's."""
        return load_model(spec, architecture=self.name, kwargs=kwargs)


def from_config(model_cls: Callable[[Any], nn.Module], config_cls: Callable[..., Any]) -> Callable[..., nn.Module]:
    """The builder of a model configured by a dataclass: ``build(**kwargs) = model_cls(config_cls(**kwargs))``."""
    def build(**kwargs: Any) -> nn.Module:
        return model_cls(config_cls(**kwargs))

    build.__name__ = build.__qualname__ = f"build_{getattr(model_cls, '__name__', 'model')}"
    return build


#: name -> :class:`Architecture`; filled by :func:`register` in each model family's module
ARCHITECTURES: dict[str, Architecture] = {}


def register(architecture: Architecture, *, replace: bool = False) -> Architecture:
    """Add ``architecture`` to :data:`ARCHITECTURES` (``replace=True`` to overwrite a name); return it."""
    if not isinstance(architecture, Architecture):
        raise TypeError(f"register takes an Architecture, got {type(architecture).__name__}")
    if architecture.name in ARCHITECTURES and not replace:
        raise ValueError(f"architecture {architecture.name!r} is already registered; pass replace=True to overwrite")
    ARCHITECTURES[architecture.name] = architecture
    return architecture


def get_architecture(name: str) -> Architecture:
    """``ARCHITECTURES[name]``, or a ``ValueError`` listing the known names."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def describe_architectures() -> str:
    """One line per registered architecture: name, description, and the extra it needs."""
    return "\n".join(f"{a.name}: {a.description}" + (f" (needs avxai[{a.extra}])" if a.extra else "")
                     for a in ARCHITECTURES.values())


# ---------------------------------------------------------------------------------------------
# saving
# ---------------------------------------------------------------------------------------------
def _plain(kwargs: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(kwargs) and not isinstance(kwargs, type):
        kwargs = dataclasses.asdict(kwargs)
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"kwargs must be a dict (or dataclass) of constructor arguments, got {type(kwargs).__name__}")
    return json.loads(json.dumps(dict(kwargs)))  # tuples become lists, as the JSON will hold them


def save_model(model: nn.Module, path: str | Path, *, architecture: str, kwargs: Any,
               extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``model``'s weights to ``path`` (``.pt``) and ``{"architecture", "model": kwargs, **extra}`` beside it.

    ``kwargs`` (a dict or a config dataclass) must rebuild ``model``: ``ARCHITECTURES[architecture].build(**kwargs)``
    is built and its keys and shapes compared with ``model``'s. ``extra``: other JSON entries (metrics, training
    settings). Returns the checkpoint path; :func:`load_model` reads it back.
    """
    arch = get_architecture(architecture)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    try:
        plain = _plain(kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"kwargs must be JSON-serialisable constructor arguments: {err}") from None
    extra = dict(extra or {})
    clash = sorted({"architecture", "model"} & set(extra))
    if clash:
        raise ValueError(f"extra must not hold {clash}: save_model writes them from architecture= and kwargs=")
    weights = arch.weights_of(model)
    problem = state_mismatch(arch.weights_of(arch.create(**plain)), weights.state_dict())
    if problem:
        raise ValueError(f"kwargs do not rebuild this {type(model).__name__} as architecture {arch.name!r} "
                         f"({problem}); "
                         "pass the constructor arguments the model was built with")
    return write_checkpoint(weights, path, {**extra, "architecture": arch.name, "model": plain})


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------
_BUILT: dict[str, nn.Module] = {}


def build_cached(digest: str, create: Callable[[], nn.Module]) -> nn.Module:
    """``create()``, cached per process by ``digest``, one model at a time (an audit worker builds one model)."""
    model = _BUILT.get(digest)
    if model is None:
        model = create()
        _BUILT.clear()
        _BUILT[digest] = model
    return model


def _missing_file(path: Path, arch: Architecture | None) -> FileNotFoundError:
    hint = ""
    if arch is not None and arch.recipe and arch.bundled_path() == path.resolve():
        hint = f"; create it with `python {arch.recipe}`"
        if not ASSETS_DIR.is_dir():
            hint = (f"; the assets folder {ASSETS_DIR} is missing from this install: reinstall avxai (the wheel "
                    "carries the bundled models)")
    elif arch is not None and arch.recipe:
        hint = f"; pass the path of yours or train one with `python {arch.recipe}`"
    return FileNotFoundError(f"model checkpoint {path} does not exist{hint}")


@dataclass(frozen=True)
class ModelBlob:
    """A checkpoint in memory: its config (the JSON, with ``"architecture"`` and ``"model"``), the bytes of its
    state dict, and the SHA-256 of both. Picklable and small, so it travels to worker processes and Ray nodes;
    :meth:`build` makes the model there (cached per process), so no worker needs the file.
    """

    path: str
    config: dict = field(hash=False, compare=False)
    state: bytes = field(repr=False)
    digest: str = ""
    #: the JSON the config was read from; ``None`` when the architecture's default arguments are used
    config_file: str | None = None

    @property
    def architecture(self) -> str:
        """The registry name this checkpoint is built with."""
        return self.config["architecture"]

    @classmethod
    def from_path(cls, spec: "str | Path | None" = None, *, architecture: str | None = None,
                  kwargs: Mapping[str, Any] | None = None) -> "ModelBlob":
        """Read a checkpoint (not built yet): a bundled name, a ``.pt`` path with its JSON, or a path and
        ``architecture``.

        ``spec=None``: the bundled checkpoint of ``architecture`` (default ``"speakernet"``). A bundled name
        (``"speakernet"``, ``"enhancer"``, ``"separator"``, ``"av-enhancer"``) loads ``avxai/assets/``. A path loads the
        file with the JSON beside it; without a JSON, ``architecture`` names what to build (its defaults).
        ``kwargs``: constructor arguments (and :data:`LOAD_OPTIONS`) over the JSON's ``"model"``, e.g. for a
        checkpoint without a JSON: ``kwargs={"lin_neurons": 256, "strip_prefix": "module."}``.
        """
        blob = cls._read(spec, architecture)
        if kwargs:
            config = {**blob.config, "model": {**blob.config["model"], **_plain(kwargs)}}
            blob = dataclasses.replace(blob, config=config, digest=_digest(blob.state, config))
        return blob

    @classmethod
    def _read(cls, spec: "str | Path | None", architecture: str | None) -> "ModelBlob":
        arch = get_architecture(architecture) if architecture is not None else None
        if spec is None:
            arch = arch or get_architecture(DEFAULT_ARCHITECTURE)
            if arch.bundled:
                spec = arch.bundled_path()
            elif not arch.needs_checkpoint:
                return cls._own_weights(arch)
            else:
                raise ValueError(f"architecture {arch.name!r} has no bundled checkpoint; pass the path of one, e.g. "
                                 f"load_model('model.pt', architecture={arch.name!r})")
        elif isinstance(spec, str) and spec in ARCHITECTURES and not Path(spec).exists():
            named = ARCHITECTURES[spec]
            if arch is not None and arch.name != named.name:
                raise ValueError(f"model {spec!r} is a {named.name!r} model but architecture={arch.name!r} was given; "
                                 "drop one of them")
            if not named.bundled and not named.needs_checkpoint:
                return cls._own_weights(named)  # e.g. "resemblyzer": the weights ship in its pip package
            if not named.bundled:
                raise ValueError(f"architecture {spec!r} has no bundled checkpoint; pass the path of one with "
                                 f"architecture={spec!r}")
            arch, spec = named, named.bundled_path()
        if not isinstance(spec, (str, Path)):
            raise TypeError(f"the model must be a bundled name or a checkpoint path, got {type(spec).__name__}")
        path = Path(spec)
        if not path.is_file():
            if isinstance(spec, str) and not path.suffix and len(path.parts) == 1:
                raise ValueError(f"unknown model {spec!r}: neither a file nor a bundled model (bundled: "
                                 f"{', '.join(a.name for a in ARCHITECTURES.values() if a.bundled)})")
            if path.is_dir():
                raise ValueError(f"{path} is a folder; pass the checkpoint file inside it")
            raise _missing_file(path, arch)
        if path.suffix == ".json":
            raise ValueError(f"{path} is the config; pass the checkpoint beside it ({path.with_suffix('.pt').name})")
        config, config_file = _config_of(path, arch)
        state = path.read_bytes()
        return cls(path=str(path), config=config, state=state, digest=_digest(state, config), config_file=config_file)

    @classmethod
    def _own_weights(cls, arch: Architecture) -> "ModelBlob":
        """A model that brings its own weights (an adapter of a pretrained package): only its name travels."""
        config = {"architecture": arch.name, "model": {}}
        return cls(path=f"<{arch.name}>", config=config, state=b"", digest=_digest(b"", config))

    def create(self) -> nn.Module:
        """A new model built from the config, with the checkpoint's weights, in eval mode."""
        arch = get_architecture(self.architecture)
        kwargs = dict(self.config.get("model") or {})
        options = {k: kwargs.pop(k) for k in LOAD_OPTIONS if k in kwargs}
        try:
            model = arch.create(**kwargs)
        except ValueError as err:
            how = (f"the config {self.config_file} does not fit" if self.config_file else
                   f"{self.path} has no JSON beside it, so {arch.name}'s default arguments were used")
            raise ValueError(f"{how}: {err}") from None
        if self.state:
            state = read_state(self.state, where=self.path, **options)
            fix = None if self.config_file else (
                f"{Path(self.path).name} has no JSON beside it, so {arch.name}'s default arguments were used: write "
                f'{config_path(self.path).name} beside it, {{"architecture": "{arch.name}", "model": {{...}}}}')
            load_state_dict_checked(arch.weights_of(model), state, where=self.path, fix=fix)
        return model.eval()

    def build(self) -> nn.Module:
        """The model (:meth:`create`), cached per process by digest (one model at a time)."""
        return build_cached(self.digest, self.create)


def _config_of(path: Path, arch: Architecture | None) -> tuple[dict[str, Any], str | None]:
    json_path = config_path(path)
    if json_path.is_file():
        config = read_config(json_path)
        found = config.get("architecture")
        if found is not None and not isinstance(found, str):
            raise ValueError(f"the 'architecture' of {json_path} must be a string, got {found!r}")
        if arch is not None and found is not None and found != arch.name:
            raise ValueError(f"{json_path} describes a {found!r} model but architecture {arch.name!r} was given; drop "
                             "the architecture or fix the JSON's \"architecture\"")
        name = found or (arch.name if arch is not None else DEFAULT_ARCHITECTURE)
        get_architecture(name)
        config.setdefault("model", {})
        config["architecture"] = name
        return config, str(json_path)
    if arch is None:
        raise ValueError(
            f"{path} has no {json_path.name} beside it, so its architecture is unknown: name it (load_model(path, "
            f"architecture=...) or --architecture, e.g. --architecture ecapa-tdnn; known: {', '.join(ARCHITECTURES)})"
            f' or write {json_path.name}, e.g. {{"architecture": "ecapa-tdnn", "model": {{"sample_rate": 16000}}}}')
    return {"architecture": arch.name, "model": {}}, None


def _digest(state: bytes, config: Mapping[str, Any]) -> str:
    return hashlib.sha256(state + json.dumps(config, sort_keys=True).encode()).hexdigest()


def load_model(spec: "str | Path | None" = None, *, architecture: str | None = None,
               kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """A model in eval mode: a bundled name, a checkpoint path with its JSON, or a checkpoint plus ``architecture``.

    See :meth:`ModelBlob.from_path` for ``spec`` and ``kwargs``. A checkpoint that does not fit the architecture raises
    ``ValueError`` listing the missing, unexpected and mis-shaped keys; a missing optional dependency raises
    ``ImportError`` naming the pip extra.

    Example
    -------
    >>> model = load_model("speakernet")          # the bundled speaker model
    >>> model = load_model("runs/enhancer.pt")    # written by save_model
    >>> model = load_model("embedding_model.ckpt", architecture="ecapa-tdnn", kwargs={"lin_neurons": 192})
    """
    return ModelBlob.from_path(spec, architecture=architecture, kwargs=kwargs).create()

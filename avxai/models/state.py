"""Checkpoint files: a state dict ``.pt`` (tensors only) with a JSON config beside it.

The low level under :mod:`avxai.models.registry`: read a state dict with ``torch.load(..., weights_only=True)``,
load it strictly with every mismatching key listed, read and write the JSON beside a checkpoint.
"""

from __future__ import annotations

import importlib.resources
import io
import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

__all__ = ["ASSETS_DIR", "config_path", "read_config", "load_checkpoint_config", "read_state", "state_mismatch",
           "load_state_dict_checked", "write_checkpoint"]

#: ``avxai/assets``: bundled models, configs and demo media, shipped inside the package (the wheel carries them) and
#: read through :mod:`importlib.resources`; the training recipes write there in a source checkout.
ASSETS_DIR = Path(str(importlib.resources.files("avxai").joinpath("assets")))
_SHOW = 5


def config_path(path: str | Path) -> Path:
    """The JSON config that belongs to checkpoint ``path`` (same name, ``.json`` suffix)."""
    return Path(path).with_suffix(".json")


def read_config(path: str | Path) -> dict[str, Any]:
    """The JSON config at ``path`` (a mapping; its ``"model"`` entry, when present, a mapping too)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"the model config {path} is not valid JSON ({err}); fix or delete it") from None
    if not isinstance(doc, dict):
        raise ValueError(f"the model config {path} must be a JSON object, got {type(doc).__name__}")
    if "model" in doc and not isinstance(doc["model"], dict):
        raise ValueError(f"the 'model' entry of {path} must be an object of constructor arguments, "
                         f"got {type(doc['model']).__name__}")
    return doc


def load_checkpoint_config(path: str | Path) -> dict[str, Any]:
    """The JSON config beside checkpoint ``path`` (its metrics, training settings, ``"model"`` arguments)."""
    cfg = config_path(path)
    if not cfg.is_file():
        raise FileNotFoundError(f"no config {cfg} beside checkpoint {path}; save checkpoints with save_model")
    return read_config(cfg)


def _why(err: Exception) -> str:
    """The reason torch gives for a failed weights-only load, without its advice to load unsafely."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip() and "weights_only" not in line]
    return (lines[0] if lines else type(err).__name__)[:200]


def read_state(source: "str | Path | bytes | Mapping[str, Any]", *, where: str | None = None, key: str | None = None,
               strip_prefix: str | None = None) -> dict[str, Tensor]:
    """A state dict of tensors from a ``.pt`` file, its bytes, or an in-memory dict.

    Files and bytes are read with ``torch.load(map_location='cpu', weights_only=True)``. ``key`` picks an entry
    of a dict checkpoint; without it a ``'state_dict'`` or ``'model'`` entry is unwrapped. ``strip_prefix``
    removes a prefix from every key (e.g. ``"module."`` of a DataParallel checkpoint). ``where`` names the
    source in errors.
    """
    if isinstance(source, (str, Path)):
        where = where or str(source)
        if not Path(source).is_file():
            raise FileNotFoundError(f"checkpoint {source} does not exist")
        source = Path(source).read_bytes()
    if isinstance(source, (bytes, bytearray)):
        where = where or "the given checkpoint bytes"
        try:
            state = torch.load(io.BytesIO(source), map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 (any unreadable file); torch's advice to load unsafely is left out
            raise ValueError(f"could not read checkpoint {where} as a weights-only state dict ({_why(err)}); avxai "
                             "loads tensors only: save the weights with torch.save(model.state_dict(), path)") from None
    else:
        state, where = source, where or "the given state dict"
    if key is not None:
        if not isinstance(state, Mapping) or key not in state:
            keys = sorted(state)[:10] if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"checkpoint {where} has no entry {key!r}; its top-level keys are {keys}")
        state = state[key]
    elif isinstance(state, Mapping):
        for wrapper in ("state_dict", "model"):
            if wrapper in state and isinstance(state[wrapper], Mapping):
                state = state[wrapper]
                break
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{where} is not a state dict of tensors (nor a dict with 'state_dict' or 'model')")
    if strip_prefix:
        state = {(k[len(strip_prefix):] if k.startswith(strip_prefix) else k): v for k, v in state.items()}
    return dict(state)


def _describe(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def state_mismatch(module: nn.Module, state: Mapping[str, Tensor]) -> str | None:
    """What keeps ``state`` from loading strictly into ``module`` (missing, unexpected, mis-shaped keys), or None."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys: {_describe(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {_describe(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches: {_describe(shapes)}")
    return "; ".join(parts) or None


def load_state_dict_checked(model: nn.Module, path_or_state: "str | Path | bytes | Mapping[str, Any]", *,
                            where: str | None = None, fix: str | None = None) -> nn.Module:
    """Load a state dict into ``model`` strictly; on any mismatch raise ``ValueError`` listing the keys.

    ``path_or_state``: anything :func:`read_state` reads; ``where`` names it and ``fix`` says what to do in the
    error (default: build the model with the config saved beside the checkpoint). Returns ``model``.
    """
    if isinstance(path_or_state, (str, Path)):
        where = where or str(path_or_state)
    state = read_state(path_or_state, where=where)
    problem = state_mismatch(model, state)
    if problem:
        raise ValueError(f"checkpoint {where or 'the given state dict'} does not match {type(model).__name__}: "
                         f"{problem}. {fix or 'Build the model with the config saved beside the checkpoint.'}")
    model.load_state_dict(state, strict=True)
    return model


def write_checkpoint(module: nn.Module, path: str | Path, doc: Mapping[str, Any]) -> Path:
    """Write ``module.state_dict()`` (detached, contiguous) to ``path`` (``.pt``) and ``doc`` beside it (``.json``).

    Returns the checkpoint path.
    """
    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"checkpoint path must end in .pt (the config goes beside it as .json), got {path}")
    try:
        text = json.dumps(dict(doc), indent=2, sort_keys=True)
    except TypeError as err:
        raise ValueError(f"config must be JSON-serialisable (numbers, strings, lists, dicts): {err}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    torch.save(state, path)
    config_path(path).write_text(text + "\n")
    return path

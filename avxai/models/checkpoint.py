"""Checkpoints: a state dict ``.pt`` with a JSON config beside it, loaded with key and shape checks.

``save_checkpoint(model, "x/speaker_net.pt", config)`` writes ``x/speaker_net.pt`` (``state_dict`` only,
loadable with ``weights_only=True``) and ``x/speaker_net.json`` (``{"model": constructor kwargs, ...}``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from avxai.models.speaker import SpeakerNet

__all__ = [
    "ASSETS_DIR", "DEFAULT_SPEAKER_CHECKPOINT", "config_path", "load_checkpoint_config",
    "load_speaker_model", "load_state_dict_checked", "save_checkpoint",
]

#: ``<repo>/assets``: bundled models and demo audio (not part of the installed package).
ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
DEFAULT_SPEAKER_CHECKPOINT = ASSETS_DIR / "speaker" / "speaker_net.pt"
_SHOW = 5


def config_path(path: str | Path) -> Path:
    """The JSON config that belongs to checkpoint ``path`` (same name, ``.json`` suffix)."""
    return Path(path).with_suffix(".json")


def save_checkpoint(model: nn.Module, path: str | Path, config: Mapping[str, Any] | None = None) -> Path:
    """Write ``model.state_dict()`` to ``path`` and a JSON config beside it.

    The JSON is ``config`` with a ``"model"`` entry holding the constructor kwargs; when ``config`` has
    no ``"model"`` entry, ``model.config`` is used. Tensors are saved contiguous and detached.
    Returns the checkpoint path.
    """
    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"checkpoint path must end in .pt (the config goes beside it as .json), got {path}")
    doc = dict(config or {})
    if "model" not in doc:
        if not isinstance(getattr(model, "config", None), dict):
            raise ValueError("pass config={'model': constructor kwargs}: the model has no .config dict to save")
        doc["model"] = dict(model.config)
    try:
        text = json.dumps(doc, indent=2, sort_keys=True)
    except TypeError as err:
        raise ValueError(f"config must be JSON-serialisable (numbers, strings, lists, dicts): {err}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, path)
    config_path(path).write_text(text + "\n")
    return path


def _describe(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def load_state_dict_checked(model: nn.Module, path_or_state: str | Path | Mapping[str, Any]) -> nn.Module:
    """Load a state dict into ``model`` strictly; on any mismatch raise ``ValueError`` listing the keys.

    ``path_or_state`` is a ``.pt`` file (read with ``torch.load(map_location='cpu', weights_only=True)``)
    or an in-memory dict; a dict with a ``'state_dict'`` or ``'model'`` entry is unwrapped first.
    Returns ``model``.
    """
    if isinstance(path_or_state, (str, Path)):
        path = Path(path_or_state)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # re-raised with the file name; the original is chained
            raise ValueError(f"could not read checkpoint {path} as a weights-only state dict: {err}") from err
        where = str(path)
    else:
        state, where = path_or_state, "the given state dict"
    if isinstance(state, Mapping):
        for key in ("state_dict", "model"):
            if key in state and isinstance(state[key], Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{where} is not a state dict of tensors (nor a dict with 'state_dict' or 'model')")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_describe(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {_describe(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches: {_describe(shapes)}")
        raise ValueError(
            f"checkpoint {where} does not match {type(model).__name__}: " + "; ".join(parts)
            + ". Build the model with the config saved beside the checkpoint."
        )
    model.load_state_dict(state, strict=True)
    return model


def load_checkpoint_config(path: str | Path) -> dict[str, Any]:
    """Read the JSON config beside checkpoint ``path``."""
    cfg = config_path(path)
    if not cfg.is_file():
        raise FileNotFoundError(f"no config {cfg} beside checkpoint {path}; save checkpoints with save_checkpoint")
    doc = json.loads(cfg.read_text())
    if not isinstance(doc.get("model"), dict):
        raise ValueError(f"{cfg} has no 'model' dict of constructor arguments")
    return doc


def load_speaker_model(path: str | Path | None = None) -> SpeakerNet:
    """The bundled speaker model (``assets/speaker/speaker_net.pt``) or the checkpoint at ``path``, in eval mode.

    The architecture is rebuilt from the JSON config beside the checkpoint.
    """
    if path is None:
        if not ASSETS_DIR.is_dir():
            raise FileNotFoundError(
                f"the assets folder {ASSETS_DIR} is missing: the bundled models live in the source tree, not in "
                "an installed wheel; run from a clone (pip install -e .) or pass path= to a checkpoint"
            )
        path = DEFAULT_SPEAKER_CHECKPOINT
        if not path.is_file():
            raise FileNotFoundError(f"bundled speaker model {path} is missing; create it with "
                                    "`python recipes/speaker/train.py`")
    doc = load_checkpoint_config(path)
    try:
        model = SpeakerNet(**doc["model"])
    except TypeError as err:
        raise ValueError(f"config beside {path} does not fit SpeakerNet: {err}") from None
    load_state_dict_checked(model, path)
    return model.eval()

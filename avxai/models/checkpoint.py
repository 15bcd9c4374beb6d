"""The checkpoint functions of the speaker model from before the registry, kept for old callers.

New code: :func:`avxai.models.registry.save_model` and :func:`avxai.models.registry.load_model`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from torch import nn

from avxai.models.registry import DEFAULT_ARCHITECTURE, get_architecture
from avxai.models.speaker import ARCHITECTURE as SPEAKERNET
from avxai.models.state import ASSETS_DIR, config_path, load_state_dict_checked, read_config

__all__ = [
    "ASSETS_DIR", "DEFAULT_SPEAKER_CHECKPOINT", "config_path", "load_checkpoint_config",
    "load_speaker_model", "load_state_dict_checked", "save_checkpoint",
]

DEFAULT_SPEAKER_CHECKPOINT = SPEAKERNET.bundled_path()


def save_checkpoint(model: nn.Module, path: str | Path, config: Mapping[str, Any] | None = None) -> Path:
    """``save_model`` with the old signature: ``config`` holds ``"model"`` (default ``model.config``), optionally
    ``"architecture"`` (default ``"speakernet"``), and other JSON entries."""
    doc = dict(config or {})
    arch = get_architecture(doc.pop("architecture", DEFAULT_ARCHITECTURE))
    return arch.save(model, path, kwargs=doc.pop("model", None), **doc)


def load_checkpoint_config(path: str | Path) -> dict[str, Any]:
    """The JSON config beside checkpoint ``path``."""
    cfg = config_path(path)
    if not cfg.is_file():
        raise FileNotFoundError(f"no config {cfg} beside checkpoint {path}; save checkpoints with save_model")
    return read_config(cfg)


#: ``load_model(path, architecture="speakernet")``: default the bundled speaker model, in eval mode
load_speaker_model = SPEAKERNET.load

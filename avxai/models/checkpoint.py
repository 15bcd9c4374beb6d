"""Older names of the speaker model's checkpoint functions, kept for old callers.

New code: :func:`avxai.models.registry.load_model` (``load_model("speakernet")``) and
:func:`avxai.models.registry.save_model`; the file helpers live in :mod:`avxai.models.state`.
"""

from __future__ import annotations

from avxai.models.speaker import ARCHITECTURE as SPEAKERNET
from avxai.models.state import ASSETS_DIR, config_path, load_checkpoint_config, load_state_dict_checked

__all__ = ["ASSETS_DIR", "DEFAULT_SPEAKER_CHECKPOINT", "config_path", "load_checkpoint_config", "load_speaker_model",
           "load_state_dict_checked"]

DEFAULT_SPEAKER_CHECKPOINT = SPEAKERNET.bundled_path()
load_speaker_model = SPEAKERNET.load  # the older name of load_model(path, architecture="speakernet")

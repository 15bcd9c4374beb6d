"""Reference models and their loaders."""

from avxai.models.checkpoint import (
    load_checkpoint_config,
    load_speaker_model,
    load_state_dict_checked,
    save_checkpoint,
)
from avxai.models.speaker import SpeakerEmbedder, SpeakerNet

__all__ = [
    "SpeakerEmbedder", "SpeakerNet", "load_checkpoint_config", "load_speaker_model", "load_state_dict_checked",
    "save_checkpoint",
]

"""Reference models and their loaders."""

from avxai.models.checkpoint import (
    load_checkpoint_config,
    load_speaker_model,
    load_state_dict_checked,
    save_checkpoint,
)
from avxai.models.speaker import SpeakerEmbedder, SpeakerNet
from avxai.models.enhancement import EnhancerConfig, MaskingEnhancer, load_enhancer, save_enhancer
from avxai.models.separation import Separator, SeparatorConfig, load_separator, save_separator, small_convtasnet
from avxai.models.loaders import load_checkpoint, load_convtasnet, load_ecapa_tdnn, load_hdemucs, load_module

__all__ = [
    "SpeakerEmbedder", "SpeakerNet", "load_checkpoint_config", "load_speaker_model", "load_state_dict_checked",
    "save_checkpoint",
    "EnhancerConfig", "MaskingEnhancer", "load_enhancer", "save_enhancer",
    "Separator", "SeparatorConfig", "load_separator", "save_separator", "small_convtasnet",
    "load_checkpoint", "load_convtasnet", "load_ecapa_tdnn", "load_hdemucs", "load_module",
]

"""Models: the contract avxai asks of a model, one registry of architectures, the reference models.

``load_model("speakernet")`` / ``load_model("path/model.pt")`` load a model; ``save_model`` writes one;
:data:`ARCHITECTURES` lists what can be built (each family module registers its row on import, below).
"""

from avxai.models.contract import (
    ModelContract, crop_size_of, embedder_of, fps_of, num_sources_of, pca_layers_of, sample_rate_of, stft_of,
)
from avxai.models.registry import (
    ARCHITECTURES, Architecture, ModelBlob, describe_architectures, get_architecture, load_model, register, save_model,
)
from avxai.models.state import load_checkpoint_config, load_state_dict_checked
# one grammar for --model SPEC (adapter modules below register their spec kinds into it on import)
from avxai.models.spec import (
    SPEC_KINDS, ModelSpec, SpecKind, model_source, parse_model_args, register_spec_kind, resolve_model,
)
# the model families: importing each registers its architecture (load_enhancer etc.: older names of load_model)
from avxai.models.speaker import SpeakerEmbedder, SpeakerNet
from avxai.models.enhancement import EnhancerConfig, MaskingEnhancer, load_enhancer
from avxai.models.separation import Separator, SeparatorConfig, load_separator, small_convtasnet
from avxai.models.hdemucs import HDemucsSeparator
from avxai.models.ecapa import EcapaEmbedder
from avxai.models.resemblyzer import ResemblyzerEmbedder
from avxai.models.av_enhancement import AVEnhancer, AVEnhancerConfig, load_av_enhancer
from avxai.models.checkpoint import load_speaker_model
# any module you built, and the torchaudio / SpeechBrain architectures built from keyword arguments
from avxai.models.loaders import (
    SampleRateWrapper, load_checkpoint, load_convtasnet, load_ecapa_tdnn, load_hdemucs, load_module, with_sample_rate,
)
# generic adapters: any module (wrap, torch front ends), chunked models, TorchScript files, package.module:factory
from avxai.models.wrap import Wrapped, select_output, wrap
from avxai.models.features import MFCC, Fbank, FrontEnd, LogMel, MelSpectrogram
from avxai.models.chunked import Chunked
from avxai.models.torchscript import load_torchscript
from avxai.models.factory import load_factory
from avxai.models.wav2vec2 import Wav2Vec2Pooled
# local folders of HuggingFace transformers and SpeechBrain models (their packages load with a folder)
from avxai.models.hf import HFAudioModel, HFSpeakerEmbedder, load_hf
from avxai.models.speechbrain_folder import (
    SpeechBrainEmbedder, SpeechBrainEnhancer, SpeechBrainModel, SpeechBrainSeparator, load_speechbrain,
)

__all__ = [
    "ModelContract", "sample_rate_of", "stft_of", "fps_of", "crop_size_of", "num_sources_of", "embedder_of",
    "pca_layers_of",
    "ARCHITECTURES", "Architecture", "ModelBlob", "register", "get_architecture", "describe_architectures",
    "load_model", "save_model", "load_state_dict_checked", "load_checkpoint_config",
    "SPEC_KINDS", "SpecKind", "register_spec_kind", "resolve_model", "parse_model_args", "model_source", "ModelSpec",
    "SpeakerEmbedder", "SpeakerNet", "EnhancerConfig", "MaskingEnhancer", "Separator", "SeparatorConfig",
    "small_convtasnet", "HDemucsSeparator", "EcapaEmbedder", "ResemblyzerEmbedder", "AVEnhancer", "AVEnhancerConfig",
    "SampleRateWrapper", "load_module", "load_checkpoint", "with_sample_rate",
    "wrap", "Wrapped", "select_output", "FrontEnd", "MelSpectrogram", "LogMel", "MFCC", "Fbank", "Chunked",
    "load_torchscript", "load_factory", "Wav2Vec2Pooled",
    "load_hf", "HFAudioModel", "HFSpeakerEmbedder", "load_speechbrain", "SpeechBrainModel", "SpeechBrainEmbedder",
    "SpeechBrainSeparator", "SpeechBrainEnhancer",
    "load_speaker_model", "load_enhancer", "load_separator", "load_av_enhancer",
    "load_convtasnet", "load_ecapa_tdnn", "load_hdemucs",
]

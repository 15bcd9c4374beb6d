"""Tiny SpeechBrain model folders with random weights (nothing downloads): ``hyperparams.yaml`` + ``.ckpt`` files.

Each builder writes the folder a SpeechBrain ``from_hparams(source=..., savedir=folder)`` would leave: a
``hyperparams.yaml`` whose pretrainer paths name a HuggingFace repository (as the published folders do; the files
are in the folder, so nothing is fetched) and one ``<name>.ckpt`` per loadable, written with ``torch.save`` from
modules built by the same YAML under ``torch.manual_seed(seed)``. Each returns those modules (``hparams``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hyperpyyaml import load_hyperpyyaml  # noqa: E402

#: a tiny ECAPA-TDNN (24 mel bands, 8-dimensional embeddings, 3 training speakers) behind the Fbank of
#: spkrec-ecapa-voxceleb and a sentence-level mean normalisation
ECAPA = """\
sample_rate: 16000
n_mels: 24
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
    sample_rate: !ref <sample_rate>
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [16, 16, 16, 16, 48]
    lin_neurons: 8
    attention_channels: 8
    se_channels: 8
classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 8
    out_neurons: 3
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    classifier: !ref <classifier>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        classifier: !ref <classifier>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
"""

#: a tiny Sepformer (16 channels, one transformer layer each way, chunks of 25 frames, 2 sources) at 8 kHz
SEPFORMER = """\
sample_rate: 8000
num_spks: 2
N: 16
intra: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: !ref <N>
    nhead: 1
    d_ffn: 32
    dropout: 0
    use_positional_encoding: True
    norm_before: True
inter: !new:speechbrain.lobes.models.dual_path.SBTransformerBlock
    num_layers: 1
    d_model: !ref <N>
    nhead: 1
    d_ffn: 32
    dropout: 0
    use_positional_encoding: True
    norm_before: True
encoder: !new:speechbrain.lobes.models.dual_path.Encoder
    kernel_size: 16
    out_channels: !ref <N>
masknet: !new:speechbrain.lobes.models.dual_path.Dual_Path_Model
    num_spks: !ref <num_spks>
    in_channels: !ref <N>
    out_channels: !ref <N>
    num_layers: 1
    K: 25
    intra_model: !ref <intra>
    inter_model: !ref <inter>
    norm: ln
    linear_layer_after_inter_intra: False
    skip_around_intra: True
decoder: !new:speechbrain.lobes.models.dual_path.Decoder
    in_channels: !ref <N>
    out_channels: 1
    kernel_size: 16
    stride: 8
    bias: False
modules:
    encoder: !ref <encoder>
    decoder: !ref <decoder>
    masknet: !ref <masknet>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        encoder: !ref <encoder>
        masknet: !ref <masknet>
        decoder: !ref <decoder>
"""

#: metricgan-plus-voicebank's STFT (32 ms windows, 16 ms hop, 512 bins) and its generator with one BLSTM layer
ENHANCER = """\
sample_rate: 16000
compute_stft: !new:speechbrain.processing.features.STFT
    sample_rate: !ref <sample_rate>
    win_length: 32
    hop_length: 16
    n_fft: 512
    window_fn: !name:torch.hamming_window
compute_istft: !new:speechbrain.processing.features.ISTFT
    sample_rate: !ref <sample_rate>
    win_length: 32
    hop_length: 16
    window_fn: !name:torch.hamming_window
spectral_magnitude: !name:speechbrain.processing.features.spectral_magnitude
    power: 0.5
resynth: !name:speechbrain.processing.signal_processing.resynthesize
    stft: !ref <compute_stft>
    istft: !ref <compute_istft>
enhance_model: !new:speechbrain.lobes.models.MetricGAN.EnhancementGenerator
    input_size: 257
    hidden_size: 200
    num_layers: 1
    dropout: 0
modules:
    enhance_model: !ref <enhance_model>
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        enhance_model: !ref <enhance_model>
"""


def write_folder(folder: "str | Path", yaml: str, *, seed: int = 0) -> dict[str, Any]:
    """Write ``yaml`` as ``folder/hyperparams.yaml`` and each pretrainer loadable's random weights as ``.ckpt``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "hyperparams.yaml").write_text(yaml)
    torch.manual_seed(seed)
    hparams = load_hyperpyyaml(yaml)
    for name, module in hparams["pretrainer"].loadables.items():
        torch.save(module.state_dict(), folder / f"{name}.ckpt")
    return hparams


def ecapa_folder(folder: "str | Path", *, seed: int = 0) -> dict[str, Any]:
    """A tiny ``EncoderClassifier`` folder (16 kHz)."""
    return write_folder(folder, ECAPA, seed=seed)


def sepformer_folder(folder: "str | Path", *, seed: int = 0) -> dict[str, Any]:
    """A tiny ``SepformerSeparation`` folder (8 kHz, 2 sources)."""
    return write_folder(folder, SEPFORMER, seed=seed)


def enhancer_folder(folder: "str | Path", *, seed: int = 0) -> dict[str, Any]:
    """A small ``SpectralMaskEnhancement`` folder (16 kHz, n_fft 512, hop 256 samples)."""
    return write_folder(folder, ENHANCER, seed=seed)

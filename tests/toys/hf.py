"""Tiny HuggingFace transformers audio models with random weights, saved into a local folder (nothing downloads).

Each builder writes ``config.json``, ``model.safetensors`` and ``preprocessor_config.json`` (a
``Wav2Vec2FeatureExtractor``) with ``save_pretrained`` and returns the model (eval mode) and its feature extractor,
so that a test can compare avxai's adapter with the model called directly on the extractor's processing.
Each model has hidden size 16, one transformer layer and a two-layer conv stack (stride 20: 50 frames a second at
16 kHz); building and saving one takes well under a second once transformers is imported.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import transformers  # noqa: E402  (after the offline switches)

SAMPLE_RATE = 16000
#: the shared small encoder: hidden 16, 1 layer, 2 heads, conv stack stride 5 * 4 = 20 samples
TINY = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=(16, 16),
            conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
            hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
            layerdrop=0.0)


def _save(model: torch.nn.Module, folder: Path, *, do_normalize: bool, sampling_rate: int | None,
          return_attention_mask: bool) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    extractor = transformers.Wav2Vec2FeatureExtractor(sampling_rate=sampling_rate or SAMPLE_RATE,
                                                      do_normalize=do_normalize,
                                                      return_attention_mask=return_attention_mask)
    extractor.save_pretrained(str(folder))
    if sampling_rate is None:  # a folder whose preprocessor config lacks the rate
        path = folder / "preprocessor_config.json"
        config = json.loads(path.read_text())
        del config["sampling_rate"]
        path.write_text(json.dumps(config))
    return extractor


def wavlm_xvector_folder(folder: "str | Path", *, seed: int = 0, do_normalize: bool = True,
                         sampling_rate: int | None = SAMPLE_RATE) -> tuple[torch.nn.Module, Any]:
    """A tiny ``WavLMForXVector`` (embeddings of 8 dimensions, 3 training speakers) saved into ``folder``."""
    config = transformers.WavLMConfig(**TINY, tdnn_dim=(16, 16), tdnn_kernel=(3, 1), tdnn_dilation=(1, 1),
                                      xvector_output_dim=8, classifier_proj_size=8, num_labels=3)
    torch.manual_seed(seed)
    model = transformers.WavLMForXVector(config).eval()
    return model, _save(model, Path(folder), do_normalize=do_normalize, sampling_rate=sampling_rate,
                        return_attention_mask=True)


def wav2vec2_classifier_folder(folder: "str | Path", *, seed: int = 0, num_labels: int = 4,
                               do_normalize: bool = True) -> tuple[torch.nn.Module, Any]:
    """A tiny ``Wav2Vec2ForSequenceClassification`` (``num_labels`` classes) saved into ``folder``."""
    config = transformers.Wav2Vec2Config(**TINY, classifier_proj_size=8, num_labels=num_labels,
                                         id2label={i: f"class{i}" for i in range(num_labels)},
                                         label2id={f"class{i}": i for i in range(num_labels)})
    torch.manual_seed(seed)
    model = transformers.Wav2Vec2ForSequenceClassification(config).eval()
    return model, _save(model, Path(folder), do_normalize=do_normalize, sampling_rate=SAMPLE_RATE,
                        return_attention_mask=False)


def wav2vec2_frame_classifier_folder(folder: "str | Path", *, seed: int = 0,
                                     num_labels: int = 2) -> tuple[torch.nn.Module, Any]:
    """A tiny ``Wav2Vec2ForAudioFrameClassification`` (one logit per class every 20 samples) saved into ``folder``."""
    config = transformers.Wav2Vec2Config(**TINY, num_labels=num_labels)
    torch.manual_seed(seed)
    model = transformers.Wav2Vec2ForAudioFrameClassification(config).eval()
    return model, _save(model, Path(folder), do_normalize=True, sampling_rate=SAMPLE_RATE,
                        return_attention_mask=False)


def ast_classifier_folder(folder: "str | Path", *, seed: int = 0, num_labels: int = 3,
                          max_length: int = 64) -> tuple[torch.nn.Module, Any]:
    """A tiny ``ASTForAudioClassification`` (32 mel bins, ``max_length`` frames, 16 x 16 patches every 10) and its
    ``ASTFeatureExtractor`` saved into ``folder``."""
    config = transformers.ASTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                    patch_size=16, frequency_stride=10, time_stride=10, max_length=max_length,
                                    num_mel_bins=32, num_labels=num_labels, hidden_dropout_prob=0.0,
                                    attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    model = transformers.ASTForAudioClassification(config).eval()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    extractor = transformers.ASTFeatureExtractor(sampling_rate=SAMPLE_RATE, num_mel_bins=32, max_length=max_length)
    extractor.save_pretrained(str(folder))
    return model, extractor


def whisper_classifier_folder(folder: "str | Path", *, seed: int = 0, num_labels: int = 3,
                              chunk_length: int = 1) -> tuple[torch.nn.Module, Any]:
    """A tiny ``WhisperForAudioClassification`` (d_model 16, one encoder layer, 80 mel bins) on ``chunk_length``
    seconds (Whisper's own: 30) and its ``WhisperFeatureExtractor`` saved into ``folder``."""
    frames = chunk_length * SAMPLE_RATE // 160
    config = transformers.WhisperConfig(d_model=16, encoder_layers=1, encoder_attention_heads=2, decoder_layers=1,
                                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                                        num_mel_bins=80, max_source_positions=frames // 2, max_target_positions=8,
                                        num_labels=num_labels, classifier_proj_size=8, dropout=0.0)
    torch.manual_seed(seed)
    model = transformers.WhisperForAudioClassification(config).eval()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    extractor = transformers.WhisperFeatureExtractor(feature_size=80, sampling_rate=SAMPLE_RATE,
                                                     chunk_length=chunk_length)
    extractor.save_pretrained(str(folder))
    return model, extractor


def reference_output(model: torch.nn.Module, extractor: Any, waveform: torch.Tensor, field: str) -> torch.Tensor:
    """What the HF pipeline gives: the extractor on each mono row (numpy), then the model on its tensors.

    Shape: waveform ``(batch, 1, time)`` -> the output field, e.g. ``(batch, dim)``.
    """
    inputs = extractor(list(waveform[:, 0].float().numpy()), sampling_rate=extractor.sampling_rate,
                       return_tensors="pt")
    with torch.no_grad():
        return model(**inputs)[field]

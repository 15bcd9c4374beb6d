"""HuggingFace transformers audio models from a local folder (``save_pretrained``), behind avxai's contract.

Needs the optional dependency: ``pip install avxai[hf]``. Nothing is downloaded: the folder is read with
``local_files_only=True``. Supported heads (``architectures`` in ``config.json``), each with its default
``output`` (the ``ModelOutput`` field returned):

- ``*ForXVector`` (``WavLMForXVector``): ``embeddings`` ``(batch, dim)``; a speaker embedder (``embedder()``:
  verification cosine).
- ``*ForSequenceClassification``, ``*ForAudioClassification``: ``logits`` ``(batch, classes)``; class scores.
- ``*ForAudioFrameClassification``: ``logits`` ``(batch, frames, classes)``; frame scores (``frame_hop_s``).

The feature extractor (``preprocessor_config.json``) is rebuilt in torch, so gradients reach the waveform:
``Wav2Vec2FeatureExtractor`` (wav2vec2, HuBERT, WavLM, data2vec-audio, UniSpeech, SEW: the raw waveform, zero mean
and unit variance per utterance when ``do_normalize``) or ``ASTFeatureExtractor`` (the Audio Spectrogram
Transformer: Kaldi log-mel filter banks, padded to ``max_length`` frames, AudioSet ``mean`` / ``std``) or
``WhisperFeatureExtractor`` (``WhisperForAudioClassification``: log-mel of the input padded to ``chunk_length``
seconds). Its ``sampling_rate`` is the model's ``sample_rate`` (required). The model's dict-like ``ModelOutput`` is
reduced to the one tensor named by ``output``. Other extractors (SeamlessM4T's) are refused with one line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping

import torch
import torchaudio.compliance.kaldi as kaldi
from torch import Tensor, nn

from avxai.checks import check_sample_rate
from avxai.models.contract import agreed_sample_rate
from avxai.models.spec import SpecKind, model_folder, register_spec_kind

__all__ = ["HFAudioModel", "HFSpeakerEmbedder", "load_hf", "is_hf_folder", "HEADS", "FRONT_ENDS", "WaveformNorm",
           "KaldiFbank", "WhisperLogMel", "SPEC_KIND"]

#: architecture-name suffix -> (kind, default output field)
HEADS = {
    "ForXVector": ("speaker", "embeddings"),
    "ForSequenceClassification": ("classification", "logits"),
    "ForAudioClassification": ("classification", "logits"),
    "ForAudioFrameClassification": ("frame-classification", "logits"),
}
#: kind -> the tensor fields of its ``ModelOutput`` avxai can score (``hidden_states`` etc. are tuples; an
#: x-vector's ``logits`` are hidden states before its AM-softmax, ``xvector_output_dim`` wide, not class scores)
OUTPUTS = {"speaker": ("embeddings",), "classification": ("logits",), "frame-classification": ("logits",)}
#: the feature extractors avxai rebuilds in torch (:class:`WaveformNorm`, :class:`KaldiFbank`)
FRONT_ENDS = ("Wav2Vec2FeatureExtractor", "ASTFeatureExtractor", "WhisperFeatureExtractor")
#: model types whose folders without a ``feature_extractor_type`` use ``Wav2Vec2FeatureExtractor``
RAW_WAVEFORM_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "unispeech", "unispeech-sat", "sew", "sew-d",
                      "wav2vec2-conformer")
#: the epsilon of ``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm``
NORM_EPS = 1e-7
LOAD_ARGS = ("output", "sample_rate")


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"{path.parent} lacks {path.name} ({what}); write it with save_pretrained(folder)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not readable JSON ({err}); write it again with save_pretrained(folder)") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def is_hf_folder(spec: Any) -> bool:
    """Whether ``spec`` is a folder holding a transformers ``config.json`` (``model_type`` or ``architectures``).

    A SpeechBrain folder (``hyperparams.yaml``) is not one, even when it carries a ``config.json``.
    """
    if not isinstance(spec, (str, Path)):
        return False
    folder = Path(spec)
    if not (folder / "config.json").is_file() or (folder / "hyperparams.yaml").is_file():
        return False
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and ("model_type" in config or "architectures" in config)


def _head(config: Mapping[str, Any], folder: Path) -> tuple[str, str, str]:
    """``(class name, kind, default output)`` of the folder's model."""
    names = config.get("architectures")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{folder}/config.json names no 'architectures' (the model class); write the folder with "
                         "model.save_pretrained(folder)")
    for name in names:
        for suffix, (kind, output) in HEADS.items():
            if name.endswith(suffix):
                return name, kind, output
    raise ValueError(f"{folder} holds a {', '.join(names)}, not an audio head avxai can score; supported: "
                     f"{', '.join('*' + s for s in HEADS)} (e.g. WavLMForXVector, Wav2Vec2ForSequenceClassification)")


class WaveformNorm(nn.Module):
    """``Wav2Vec2FeatureExtractor`` in torch: the waveform, zero mean and unit variance per utterance when
    ``normalize`` (``do_normalize``; population variance, epsilon 1e-7).

    Shape: ``(batch, time)`` -> ``(batch, time)``.
    """

    input_name = "input_values"

    def __init__(self, normalize: bool = True):
        super().__init__()
        self.normalize = bool(normalize)

    def extra_repr(self) -> str:
        return f"normalize={self.normalize}"

    def forward(self, values: Tensor) -> Tensor:
        if not self.normalize:
            return values
        mean = values.mean(dim=-1, keepdim=True)
        var = values.var(dim=-1, unbiased=False, keepdim=True)
        return (values - mean) / torch.sqrt(var + NORM_EPS)


class KaldiFbank(nn.Module):
    """``ASTFeatureExtractor`` in torch: Kaldi log-mel filter banks (25 ms Hanning windows, 10 ms shift), padded
    with zeros or cut to ``max_length`` frames, then ``(fbank - mean) / (2 std)`` when ``normalize``.

    Shape: ``(batch, time)`` -> ``(batch, max_length, num_mel_bins)``.
    """

    input_name = "input_values"

    def __init__(self, sample_rate: int, num_mel_bins: int = 128, max_length: int = 1024, normalize: bool = True,
                 mean: float = -4.2677393, std: float = 4.5689974):
        super().__init__()
        self.sample_rate, self.num_mel_bins, self.max_length = sample_rate, int(num_mel_bins), int(max_length)
        self.normalize, self.mean, self.std = bool(normalize), float(mean), float(std)

    def extra_repr(self) -> str:
        return f"num_mel_bins={self.num_mel_bins}, max_length={self.max_length}, normalize={self.normalize}"

    def forward(self, values: Tensor) -> Tensor:
        rows = []
        for row in values:
            fbank = kaldi.fbank(row[None], sample_frequency=self.sample_rate, window_type="hanning",
                                num_mel_bins=self.num_mel_bins)  # (frames, num_mel_bins)
            fbank = fbank[:self.max_length]
            rows.append(nn.functional.pad(fbank, (0, 0, 0, self.max_length - fbank.shape[0])))
        fbanks = torch.stack(rows)
        return (fbanks - self.mean) / (self.std * 2) if self.normalize else fbanks


class WhisperLogMel(nn.Module):
    """``WhisperFeatureExtractor`` in torch: the waveform padded with zeros or cut to ``n_samples``, the power STFT
    (``n_fft``, ``hop_length``, Hann window, last frame dropped), the Slaney mel bank ``mel_filters``, log10 floored
    8 below the utterance's peak, then ``(x + 4) / 4``.

    Shape: ``(batch, time)`` -> ``(batch, mels, n_samples // hop_length)``.
    """

    input_name = "input_features"

    def __init__(self, mel_filters: Tensor, n_samples: int, n_fft: int = 400, hop_length: int = 160):
        super().__init__()
        self.n_samples, self.n_fft, self.hop_length = int(n_samples), int(n_fft), int(hop_length)
        self.register_buffer("mel_filters", torch.as_tensor(mel_filters, dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def extra_repr(self) -> str:
        return f"n_samples={self.n_samples}, n_fft={self.n_fft}, hop_length={self.hop_length}"

    def forward(self, values: Tensor) -> Tensor:
        values = values[:, :self.n_samples]
        values = nn.functional.pad(values, (0, self.n_samples - values.shape[-1]))
        stft = torch.stft(values, self.n_fft, self.hop_length, window=self.window, return_complex=True)
        power = torch.view_as_real(stft[..., :-1]).pow(2).sum(-1)  # |X|^2, differentiable at 0 (the padding)
        log_mel = torch.clamp(self.mel_filters.T @ power, min=1e-10).log10()
        log_mel = torch.maximum(log_mel, log_mel.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (log_mel + 4.0) / 4.0


def _front(folder: Path, model_type: Any, sample_rate: Any, transformers: Any) -> tuple[int, nn.Module]:
    """``(sample_rate, front end)`` from ``preprocessor_config.json``; ``sample_rate`` fills a missing rate."""
    pre = _read_json(folder / "preprocessor_config.json", "the feature extractor: sampling_rate, do_normalize")
    kind = pre.get("feature_extractor_type") or ("Wav2Vec2FeatureExtractor" if model_type in RAW_WAVEFORM_TYPES
                                                 else None)
    if kind not in FRONT_ENDS:
        raise ValueError(f"{folder}'s feature extractor {kind or '(unnamed)'} computes features avxai does not rebuild "
                         f"in torch (it does {', '.join(FRONT_ENDS)}); wrap the model with avxai.wrap and a torch "
                         "front end instead")
    rate = agreed_sample_rate(pre.get("sampling_rate"), sample_rate, who=f"{folder}/preprocessor_config.json",
                              stated_as="sampling_rate={} Hz", missing="add 'sampling_rate' (Hz) or pass "
                                                                       "sample_rate=RATE (--model-arg sample_rate=16000)")
    normalize = pre.get("do_normalize", True)
    if not isinstance(normalize, bool):
        raise ValueError(f"{folder}/preprocessor_config.json: do_normalize must be true or false, got {normalize!r}")
    if kind == "ASTFeatureExtractor":
        fields = {k: pre[k] for k in ("num_mel_bins", "max_length", "mean", "std") if k in pre}
        return rate, KaldiFbank(rate, normalize=normalize, **fields)
    if kind == "WhisperFeatureExtractor":
        n_fft, hop = pre.get("n_fft", 400), pre.get("hop_length", 160)
        mels = transformers.audio_utils.mel_filter_bank(
            num_frequency_bins=1 + n_fft // 2, num_mel_filters=pre.get("feature_size", 80), min_frequency=0.0,
            max_frequency=8000.0, sampling_rate=rate, norm="slaney", mel_scale="slaney")
        n_samples = pre.get("n_samples") or pre.get("chunk_length", 30) * rate
        return rate, WhisperLogMel(torch.from_numpy(mels), n_samples, n_fft=n_fft, hop_length=hop)
    return rate, WaveformNorm(normalize)


class HFAudioModel(nn.Module):
    """A transformers audio model on waveforms: the feature extractor's processing in torch, the model, one output.

    ``model`` : the transformers module (``WavLMForXVector``, ``Wav2Vec2ForSequenceClassification``, ...).
    ``output`` : the field of its ``ModelOutput`` to return (``"logits"``, ``"embeddings"``).
    ``front`` : the feature extractor in torch (:class:`WaveformNorm`, default: normalised per utterance, or
    :class:`KaldiFbank`, :class:`WhisperLogMel`); it makes the model's input (its ``input_name``).
    ``labels`` : the class names (``config.id2label``) in index order, when the config has them.
    ``frame_hop_s`` : seconds between output frames of a frame classifier (the conv stack's total stride over
    ``sample_rate``), else ``None``.

    Shape: waveform ``(batch, 1, time)`` at ``sample_rate`` Hz -> ``(batch, dim)`` (``logits``, ``embeddings``)
    or ``(batch, frames, classes)`` (frame classification).
    """

    def __init__(self, model: nn.Module, *, sample_rate: int, output: str, front: nn.Module | None = None,
                 frame_hop_s: float | None = None):
        super().__init__()
        self.model = model
        self.sample_rate = check_sample_rate(sample_rate)
        if not isinstance(output, str) or not output:
            raise ValueError(f"output must name a field of the model's output (e.g. 'logits'), got {output!r}")
        self.output = output
        self.front = WaveformNorm() if front is None else front
        self.frame_hop_s = frame_hop_s
        id2label = getattr(getattr(model, "config", None), "id2label", None) or {}
        self.labels = tuple(str(id2label[i]) for i in sorted(id2label, key=int))

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, output={self.output!r}"

    def features(self, waveform: Tensor) -> Tensor:
        """The model's ``input_values``: the front end on the mono waveform.

        Shape: ``(batch, 1, time)`` -> ``(batch, time)`` (raw waveform), ``(batch, frames, mels)`` (AST) or
    ``(batch, mels, frames)`` (Whisper).
        """
        if not isinstance(waveform, Tensor) or waveform.dim() != 3 or waveform.shape[1] != 1:
            shape = tuple(waveform.shape) if isinstance(waveform, Tensor) else type(waveform).__name__
            raise ValueError(f"{type(self.model).__name__} takes a mono waveform (batch, 1, time), got {shape}; "
                             "average the channels first (mono=True)")
        param = next(self.model.parameters(), None)
        return self.front(waveform[:, 0].to(param.dtype if param is not None else torch.float32))

    def forward(self, waveform: Tensor) -> Tensor:
        result = self.model(**{getattr(self.front, "input_name", "input_values"): self.features(waveform)})
        value = result.get(self.output) if isinstance(result, Mapping) else getattr(result, self.output, None)
        if not isinstance(value, Tensor):
            fields = [k for k, v in result.items() if isinstance(v, Tensor)] if isinstance(result, Mapping) else []
            raise ValueError(f"{type(self.model).__name__} returned no tensor {self.output!r}; pick one of its "
                             f"outputs with output=NAME (tensors: {', '.join(fields) or 'none'})")
        return value


class HFSpeakerEmbedder(HFAudioModel):
    """An x-vector head (``*ForXVector``): :class:`HFAudioModel` whose :meth:`embedder` returns the embeddings."""

    def embedder(self) -> HFAudioModel:
        """Itself when its output is ``"embeddings"``; else the same model returning ``"embeddings"``.

        Shape: waveform ``(batch, 1, time)`` -> embedding ``(batch, xvector_output_dim)``.
        """
        if self.output == "embeddings":
            return self
        return HFSpeakerEmbedder(self.model, sample_rate=self.sample_rate, output="embeddings", front=self.front)


def _transformers() -> Any:
    # the optional dependency is imported lazily: avxai works without it
    try:
        import transformers  # noqa: PLC0415
        import transformers.audio_utils  # noqa: PLC0415  (mel_filter_bank, for Whisper's front end)
    except ImportError as err:
        raise ImportError(f"HuggingFace models need the optional dependency transformers, which is not installed: "
                          f"pip install avxai[hf] ({err})") from None
    return transformers


def load_hf(folder: "str | Path", *, output: str | None = None, **args: Any) -> HFAudioModel:
    """A transformers audio model from a local folder written by ``save_pretrained`` (nothing is downloaded).

    ``folder`` holds ``config.json`` (``architectures``: a head of :data:`HEADS`), the weights and
    ``preprocessor_config.json`` (``sampling_rate``, ``do_normalize``). ``output`` picks the ``ModelOutput`` field
    (default: ``embeddings`` for x-vectors, ``logits`` otherwise). ``args``: ``sample_rate`` (Hz) when the
    preprocessor config lacks ``sampling_rate``. Returns the model in eval mode; an x-vector head is a speaker
    embedder (:class:`HFSpeakerEmbedder`).

    Shape: waveform ``(batch, 1, time)`` -> ``(batch, dim)`` or ``(batch, frames, classes)``.

    Example
    -------
    >>> model = load_hf("wavlm-base-plus-sv")      # WavLMForXVector: embeddings, embedder() is itself
    >>> model = load_hf("ser-folder", output="logits")
    """
    folder = model_folder(folder, args, loader="load_hf", known=LOAD_ARGS,
                          holds="what save_pretrained wrote (config.json, weights, preprocessor_config.json)")
    config = _read_json(folder / "config.json", "the model config")
    name, kind, default_output = _head(config, folder)
    if output is not None and output not in OUTPUTS[kind]:
        note = " (an x-vector's logits come before its AM-softmax: no class scores)" if kind == "speaker" else ""
        raise ValueError(f"{name} has no output {output!r} avxai can score{note}; pick one of "
                         f"{', '.join(OUTPUTS[kind])}")
    transformers = _transformers()
    rate, front = _front(folder, config.get("model_type"), args.get("sample_rate"), transformers)
    model_cls = getattr(transformers, name, None)
    if model_cls is None:
        raise ValueError(f"transformers {transformers.__version__} has no class {name} (named by {folder}/config.json);"
                         " upgrade transformers or save the model with this version")
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on every load
    try:
        model = model_cls.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{folder} does not load as {name} ({reason}); write it with model.save_pretrained(folder)"
                         ) from None
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()
    strides = config.get("conv_stride")
    hop = (math.prod(strides) / rate if kind == "frame-classification" and isinstance(strides, list) and strides
           else None)
    wrapper = HFSpeakerEmbedder if kind == "speaker" else HFAudioModel
    return wrapper(model, sample_rate=rate, output=output or default_output, front=front, frame_hop_s=hop).eval()


#: ``--model FOLDER`` for a HuggingFace folder; ``--model-arg output=NAME`` / ``sample_rate=HZ`` go to :func:`load_hf`
SPEC_KIND = register_spec_kind(SpecKind(
    "hf", is_hf_folder, lambda spec, args: load_hf(spec, **args), extra="hf",
    example="wavlm-sv/ (a HuggingFace transformers folder from save_pretrained: config.json, weights, "
            "preprocessor_config.json)"))

"""torchaudio's wav2vec2 family (wav2vec 2.0, HuBERT, WavLM) built from keyword arguments, with a local state dict
(registry rows ``"wav2vec2"`` and ``"wavlm"``).

What avxai scores: the mean over frames of the last layer, i.e.

* without a head (``aux_num_out=None``): the last hidden state averaged over frames, an utterance embedding
  ``(batch, encoder_embed_dim)`` (the model also serves as a speaker embedder: ``embedder()``);
* with a head (``aux_num_out=K``): torchaudio's own per-frame linear layer (``aux``) averaged over frames, class
  logits ``(batch, K)``.

The checkpoint is the state dict of torchaudio's ``Wav2Vec2Model`` (its own keys, e.g.
``torchaudio.pipelines.HUBERT_BASE.get_model().state_dict()`` saved once where it was downloaded); HuBERT has
wav2vec 2.0's architecture, so ``"wav2vec2"`` with the base defaults loads it. The defaults are the *base*
configuration (``wav2vec2_base``/``hubert_base``: group-norm extractor, 12 layers of 768). A tiny test model:
``encoder_embed_dim=16, encoder_num_layers=1, encoder_num_heads=2, encoder_ff_interm_features=32,
extractor_conv_layer_config=[[8, 10, 5], [8, 3, 2]], encoder_pos_conv_kernel=4, encoder_pos_conv_groups=2``.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Callable

from torch import Tensor, nn
from torchaudio.models import wav2vec2_model, wavlm_model

from avxai.checks import check_sample_rate
from avxai.models.registry import Architecture, register

__all__ = ["Wav2Vec2Pooled", "build_wav2vec2", "build_wavlm", "BASE", "ARCHITECTURES_ADDED"]

#: the base configuration of torchaudio's ``wav2vec2_base`` / ``hubert_base`` (dropouts 0: avxai explains)
BASE = dict(extractor_mode="group_norm", extractor_conv_layer_config=None, extractor_conv_bias=False,
            encoder_embed_dim=768, encoder_projection_dropout=0.0, encoder_pos_conv_kernel=128,
            encoder_pos_conv_groups=16, encoder_num_layers=12, encoder_num_heads=12, encoder_attention_dropout=0.0,
            encoder_ff_interm_features=3072, encoder_ff_interm_dropout=0.0, encoder_dropout=0.0,
            encoder_layer_norm_first=False, encoder_layer_drop=0.0, aux_num_out=None)
#: WavLM's relative position buckets (``wavlm_base``)
WAVLM = dict(encoder_num_buckets=320, encoder_max_distance=800)


class Wav2Vec2Pooled(nn.Module):
    """A torchaudio ``Wav2Vec2Model`` on avxai waveforms, its last layer averaged over frames.

    ``network`` is the torchaudio model (the checkpoint holds its state dict). Channels are mixed to mono.
    ``head`` says what the output is: ``"embedding"`` (the last hidden state's mean) or ``"logits"``
    (the mean of torchaudio's per-frame ``aux`` layer).

    Shape: waveform ``(batch, channels, time)`` -> ``(batch, encoder_embed_dim)`` or ``(batch, aux_num_out)``.
    """

    def __init__(self, network: nn.Module, sample_rate: int = 16000):
        super().__init__()
        self.network = network
        self.sample_rate = check_sample_rate(sample_rate, "sample_rate")
        self.head = "logits" if getattr(network, "aux", None) is not None else "embedding"

    @property
    def embedder(self) -> "Callable[[], nn.Module] | None":
        """``embedder()`` returns the model itself when it returns embeddings; ``None`` (not stated) with a head."""
        return (lambda: self) if self.head == "embedding" else None

    def forward(self, waveform: Tensor) -> Tensor:
        if not isinstance(waveform, Tensor) or waveform.dim() != 3:
            shape = tuple(waveform.shape) if isinstance(waveform, Tensor) else type(waveform).__name__
            raise ValueError(f"Wav2Vec2Pooled takes a waveform (batch, channels, time), got {shape}")
        frames, _ = self.network(waveform.mean(dim=1))  # (batch, frames, dim | aux_num_out)
        return frames.mean(dim=1)


def _builder(make: Callable[..., nn.Module], defaults: dict[str, Any]) -> Callable[..., Wav2Vec2Pooled]:
    def build(sample_rate: int = 16000, **kwargs: Any) -> Wav2Vec2Pooled:
        unknown = sorted(set(kwargs) - set(defaults))
        if unknown:
            raise TypeError(f"unexpected arguments {unknown}; {make.__name__} takes {', '.join(defaults)}")
        args = {**defaults, **kwargs}
        if args["extractor_conv_layer_config"] is not None:  # JSON lists -> the tuples torchaudio expects
            args["extractor_conv_layer_config"] = [tuple(layer) for layer in args["extractor_conv_layer_config"]]
        return Wav2Vec2Pooled(make(**args), sample_rate)

    return build


#: ``build_wav2vec2(sample_rate=16000, **wav2vec2_model kwargs)`` (random weights; defaults :data:`BASE`)
build_wav2vec2 = _builder(wav2vec2_model, BASE)
build_wav2vec2.__name__ = build_wav2vec2.__qualname__ = "build_wav2vec2"
#: ``build_wavlm(sample_rate=16000, **wavlm_model kwargs)`` (random weights; defaults :data:`BASE` + :data:`WAVLM`)
build_wavlm = _builder(wavlm_model, {**BASE, **WAVLM})
build_wavlm.__name__ = build_wavlm.__qualname__ = "build_wavlm"

#: the registry rows
ARCHITECTURES_ADDED = (
    register(Architecture(
        "wav2vec2", build_wav2vec2, "torchaudio's wav2vec 2.0 / HuBERT (wav2vec2_model arguments, base defaults; "
        "output: the last hidden state's mean over frames, or with aux_num_out the head's logits' mean)",
        weights=attrgetter("network"))),
    register(Architecture(
        "wavlm", build_wavlm, "torchaudio's WavLM (wavlm_model arguments, base defaults; output as wav2vec2)",
        weights=attrgetter("network"))),
)

"""Resemblyzer's pretrained GE2E speaker encoder as an avxai speaker embedder (registry row ``"resemblyzer"``).

Resemblyzer (Apache-2.0, ``pip install avxai[resemblyzer]``) ships the weights of its ``VoiceEncoder`` (a 3-layer
LSTM on 40 mel bands at 16 kHz, 256-d embeddings, trained with the GE2E loss) as ``pretrained.pt`` inside its
wheel. :class:`ResemblyzerEmbedder` loads them (``torch.load(weights_only=True)``; nothing is downloaded, nothing
of the package is imported) and reimplements in torch what ``VoiceEncoder.embed_utterance`` does in numpy and
librosa, so that the embedding has gradients to the waveform:

1. ``wav_to_mel_spectrogram``: librosa's mel *power* spectrogram (not log): 25 ms Hann windows (400 samples,
   periodic), 10 ms hop (160), centred frames with zero padding, ``|STFT|^2`` through 40 Slaney mel filters
   (0-8 kHz, Slaney-normalised).
2. ``compute_partial_slices(rate=1.3, min_coverage=0.75)``: partial utterances of 160 frames (1.6 s) every
   ``round(16000 / rate / 160)`` frames; the last one kept when it covers at least ``min_coverage``; the waveform
   zero-padded to the end of the last one.
3. each partial through the LSTM, the last layer's final hidden state through ``relu(linear(.))``, L2-normalised;
   the partial embeddings averaged and L2-normalised again.

Resemblyzer expects ``preprocess_wav`` output: the waveform raised to -30 dBFS if quieter (``normalize_volume``,
increase only) and long silences cut out by WebRTC's VAD (``trim_long_silences``). The volume step is a gain,
so it is kept here, differentiable (``normalize_volume=True``, default: an occluded, quieter input is raised as
``preprocess_wav`` would raise it). The VAD trimming is not: it is a discrete decision that deletes samples, so
the model's input would no longer line up with the explained waveform's time axis and no gradient could reach
the deleted samples. It is left to the data: give the model speech without long pauses (the bundled recordings in
``avxai/assets/real`` are cut that way), or run ``resemblyzer.preprocess_wav`` on the file before explaining it. On
``preprocess_wav`` output this module's embedding matches ``embed_utterance`` (cosine >= 0.9999, tested).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchaudio.functional import melscale_fbanks

from avxai.models.registry import Architecture, register

__all__ = ["ResemblyzerEmbedder", "build_resemblyzer", "partial_slices", "pretrained_path", "ARCHITECTURE"]

SAMPLE_RATE = 16000   # Hz (resemblyzer.hparams.sampling_rate)
N_FFT = 400           # samples: 25 ms windows (mel_window_length)
HOP = 160             # samples: 10 ms hop (mel_window_step)
N_MELS = 40           # mel_n_channels
PARTIAL_FRAMES = 160  # frames per partial utterance: 1.6 s (partials_n_frames)
HIDDEN = 256          # model_hidden_size = model_embedding_size
LAYERS = 3            # model_num_layers
TARGET_DBFS = -30.0   # audio_norm_target_dBFS
#: the quietest RMS the volume normalisation raises (-100 dBFS): silence stays silence instead of dividing by 0
MIN_RMS = 1e-5


def pretrained_path() -> Path:
    """``pretrained.pt`` inside the installed resemblyzer package (found without importing the package).

    Raises ``ImportError`` when resemblyzer is not installed (the registry turns it into ``pip install
    avxai[resemblyzer]``) and ``FileNotFoundError`` when the package lacks the file.
    """
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or spec.origin is None:
        raise ImportError("No module named 'resemblyzer'")
    path = Path(spec.origin).parent / "pretrained.pt"
    if not path.is_file():
        raise FileNotFoundError(f"resemblyzer is installed but {path} is missing; reinstall it: "
                                "pip install --force-reinstall resemblyzer==0.1.4")
    return path


def partial_slices(n_samples: int, rate: float = 1.3, min_coverage: float = 0.75) -> list[int]:
    """The first frame of each partial utterance, as ``VoiceEncoder.compute_partial_slices`` computes them.

    Each partial covers frames ``[start, start + 160)`` of the mel spectrogram, i.e. samples
    ``[160 * start, 160 * (start + 160))``.
    """
    if not 0 < min_coverage <= 1:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage!r}")
    n_frames = math.ceil((n_samples + 1) / HOP)
    step = round((SAMPLE_RATE / rate) / HOP)
    if not 0 < step <= PARTIAL_FRAMES:
        raise ValueError(f"rate must give partial utterances between every 10 ms and every 1.6 s (0.625 <= rate "
                         f"<= 100 per second), got {rate!r}")
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    coverage = (n_samples - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < min_coverage and len(starts) > 1:
        starts = starts[:-1]
    return starts


class ResemblyzerEmbedder(nn.Module):
    """Resemblyzer's ``VoiceEncoder`` on waveforms: mel front end, partial utterances, averaged embedding.

    rate, min_coverage : ``embed_utterance``'s partial-utterance settings (partials per second; the share of the
        last partial that must hold audio).
    normalize_volume : raise a waveform quieter than -30 dBFS to -30 dBFS (``preprocess_wav``'s first step,
        differentiable); ``False`` embeds the samples as given.

    The state dict holds the LSTM and the linear layer only (``lstm.*``, ``linear.*``: the names of
    ``VoiceEncoder``'s); the mel filters and window are fixed buffers. ``build_resemblyzer()`` loads the weights.

    Shape: waveform ``(batch, 1, time)`` at 16 kHz -> embedding ``(batch, 256)``, unit L2 norm.
    """

    sample_rate = SAMPLE_RATE

    def __init__(self, rate: float = 1.3, min_coverage: float = 0.75, normalize_volume: bool = True):
        super().__init__()
        partial_slices(PARTIAL_FRAMES * HOP, rate, min_coverage)  # checks both
        if not isinstance(normalize_volume, bool):
            raise TypeError(f"normalize_volume must be True or False, got {normalize_volume!r}")
        self.rate = float(rate)
        self.min_coverage = float(min_coverage)
        self.normalize_volume = normalize_volume
        self.lstm = nn.LSTM(N_MELS, HIDDEN, LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN, HIDDEN)
        fbank = melscale_fbanks(N_FFT // 2 + 1, 0.0, SAMPLE_RATE / 2, N_MELS, SAMPLE_RATE, norm="slaney",
                                mel_scale="slaney")  # (freq, mel), librosa.filters.mel's defaults
        self.register_buffer("mel_filters", fbank.T.contiguous(), persistent=False)  # (mel, freq)
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True), persistent=False)

    def embedder(self) -> "ResemblyzerEmbedder":
        """Itself: it already returns embeddings (the interface of :meth:`avxai.models.SpeakerNet.embedder`)."""
        return self

    def extra_repr(self) -> str:
        return f"rate={self.rate}, min_coverage={self.min_coverage}, normalize_volume={self.normalize_volume}"

    def volume(self, wav: Tensor) -> Tensor:
        """``preprocess_wav``'s ``normalize_volume(wav, -30, increase_only=True)``, per waveform.

        Shape: ``(batch, time)`` -> ``(batch, time)``.
        """
        rms = wav.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(MIN_RMS)
        gain = (10.0 ** (TARGET_DBFS / 20.0) / rms).clamp_min(1.0)  # increase only
        return wav * gain

    def mel(self, wav: Tensor) -> Tensor:
        """``resemblyzer.audio.wav_to_mel_spectrogram``: the mel power spectrogram (not log).

        Shape: ``(batch, time)`` -> ``(batch, frames, 40)`` with ``frames = 1 + time // 160``.
        """
        spec = torch.stft(wav, N_FFT, HOP, window=self.window, center=True, pad_mode="constant",
                          return_complex=True)  # (batch, freq, frames)
        power = spec.real.pow(2) + spec.imag.pow(2)  # |X|^2 without the gradient singularity of abs() at 0
        return torch.matmul(self.mel_filters, power).transpose(1, 2)

    def partials(self, mels: Tensor) -> Tensor:
        """The embedding of each partial utterance.

        Shape: ``(batch, partials, 160, 40)`` -> ``(batch, partials, 256)``, each of unit L2 norm.
        """
        batch, count = mels.shape[:2]
        _, (hidden, _) = self.lstm(mels.reshape(batch * count, PARTIAL_FRAMES, N_MELS))
        raw = F.relu(self.linear(hidden[-1]))
        return F.normalize(raw, dim=-1).reshape(batch, count, -1)

    def forward(self, waveform: Tensor) -> Tensor:
        if not isinstance(waveform, Tensor) or waveform.dim() != 3 or waveform.shape[1] != 1:
            shape = tuple(waveform.shape) if isinstance(waveform, Tensor) else type(waveform).__name__
            raise ValueError(f"ResemblyzerEmbedder takes a mono waveform (batch, 1, time) at 16 kHz, got {shape}")
        wav = waveform[:, 0].float()
        if self.normalize_volume:
            wav = self.volume(wav)
        starts = partial_slices(wav.shape[-1], self.rate, self.min_coverage)
        end = (starts[-1] + PARTIAL_FRAMES) * HOP
        if end >= wav.shape[-1]:
            wav = F.pad(wav, (0, end - wav.shape[-1]))
        mels = self.mel(wav)
        index = torch.tensor(starts, device=mels.device)[:, None] + torch.arange(PARTIAL_FRAMES, device=mels.device)
        partials = self.partials(mels[:, index])  # (batch, partials, 256)
        return F.normalize(partials.mean(dim=1), dim=-1)


def build_resemblyzer(sample_rate: int = SAMPLE_RATE, rate: float = 1.3, min_coverage: float = 0.75,
                      normalize_volume: bool = True, pretrained: bool = True) -> ResemblyzerEmbedder:
    """The embedder with resemblyzer's pretrained weights (``pretrained=False``: random weights, no package needed).

    ``sample_rate`` is accepted only as 16000 (the rate the weights were trained at), so that a config naming
    it is checked rather than ignored.

    Shape: waveform ``(batch, 1, time)`` at 16 kHz -> embedding ``(batch, 256)``.
    """
    if sample_rate != SAMPLE_RATE:
        raise ValueError(f"Resemblyzer's encoder takes {SAMPLE_RATE} Hz audio, got sample_rate={sample_rate!r}; "
                         "drop the argument and resample the audio instead (--resample)")
    model = ResemblyzerEmbedder(rate=rate, min_coverage=min_coverage, normalize_volume=normalize_volume)
    if pretrained:
        path = pretrained_path()
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint.get("model_state") if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            raise ValueError(f"{path} holds no 'model_state'; reinstall resemblyzer==0.1.4")
        # GE2E's similarity_weight / similarity_bias train the loss only; VoiceEncoder drops them the same way
        model.load_state_dict({k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))})
    return model.eval()


#: the registry row: ``load_model(architecture="resemblyzer")`` builds it with the wheel's weights
ARCHITECTURE = register(Architecture(
    "resemblyzer", build_resemblyzer, "Resemblyzer's pretrained GE2E speaker encoder (VoiceEncoder, 256-d, "
    "16 kHz; weights from the resemblyzer wheel)", extra="resemblyzer", needs_checkpoint=False,
))

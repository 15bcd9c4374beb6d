"""Audio-visual modality: one explanation over a spectrogram and a face video at once.

An :class:`AudioVisual` is a :class:`~avxai.modalities.composite.CompositeModality` with two parts,
``audio`` (a :class:`Spectrogram`, grid ``(freq, time)`` at the STFT frame rate) and ``video`` (a
:class:`FaceVideo`, grid ``(time, height, width)`` at the video frame rate), on a 1-D joint grid
``("joint",)`` of ``N_audio + N_video`` cells. A joint mask ``(n, N)`` is split into the two part masks,
each applied by its part with the part's own perturbation, and the model gets the pair
``(waveform (n, 1, time), video (n, frames, 3, S, S))``. Occlusion slides its windows within a part;
extremal perturbation makes one smooth-mask generator per part and weighs the parts by ``part_weights``
in its area constraint (see :mod:`avxai.methods.parts`).

An explanation of an :class:`AudioVisual` has a joint ``(batch, N)`` attribution (and ``(batch, K, N)``
masks); :func:`avxai.explanation.split_explanation` cuts it back into an audio and a video explanation.
:func:`avxai.metrics.shares.modality_shares` scores the model with each stream masked and gives the
share of the evidence each stream carries.

The model takes one argument, the pair; :class:`avxai.models.av_enhancement.AVEnhancer` accepts both
``model(waveform, video)`` and ``model((waveform, video))``; wrap other two-argument models with
:class:`PairInput`. To explain one stream alone, hold the other fixed with :class:`FixedAudio` (explain a
:class:`FaceVideo`) or :class:`FixedVideo` (explain a :class:`Spectrogram`). From a file:
:func:`avxai.tasks.av_enhancement.build_av_problem` reads the clip, tracks the face and builds all three.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

from avxai.checks import check_av_alignment
from avxai.modalities.base import occlusion_time_cells, occlusion_time_note
from avxai.modalities.composite import CompositeModality
from avxai.modalities.spectrogram import Spectrogram
from avxai.modalities.video import FaceVideo
from avxai.models.contract import crop_size_of, fps_of, pca_layers_of, sample_rate_of
from avxai.perturbations import tile_batch

__all__ = ["AudioVisual", "AVSpectrogram", "AVRepresentation", "PairInput", "FixedAudio", "FixedVideo", "PART_NAMES"]

PART_NAMES = ("audio", "video")


class AVRepresentation(NamedTuple):
    """Perturbed representations of both streams: audio ``(n, channels, freq, frames)`` (STFT magnitude),
    video ``(n, 3, frames, S, S)``."""

    audio: Tensor
    video: Tensor

    @property
    def dtype(self) -> torch.dtype:
        return self.audio.dtype

    @property
    def device(self) -> torch.device:
        return self.audio.device

    def numel(self) -> int:
        """Elements of both streams (what memory estimates count)."""
        return self.audio.numel() + self.video.numel()

    def element_size(self) -> int:
        return self.audio.element_size()


class PairInput(nn.Module):
    """Wrap a model ``model(waveform, video)`` so that it takes the pair ``model((waveform, video))``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.sample_rate, self.fps = sample_rate_of(model), fps_of(model)  # the wrapped model's contract

    def forward(self, pair):
        return self.model(*pair)


class _OneStreamFixed(nn.Module):
    """Base of :class:`FixedAudio` / :class:`FixedVideo`: an AV model with one input held fixed."""

    def __init__(self, model: nn.Module, fixed: Tensor, what: str):
        super().__init__()
        if not isinstance(fixed, Tensor) or not fixed.is_floating_point():
            raise TypeError(f"the fixed {what} must be a float tensor, got {type(fixed).__name__}")
        self.model = model
        self.fixed = fixed.detach()
        self.sample_rate, self.fps, self.crop_size = sample_rate_of(model), fps_of(model), crop_size_of(model)
        layers = pca_layers_of(model)
        if layers:  # the wrapped model's layers live under "model."
            self.pca_layers = {k: f"model.{v}" for k, v in layers.items()}

    def _rows(self, n: int) -> Tensor:
        """The fixed input for ``n`` rows (row ``i`` -> input ``i % batch``, as the modalities order them)."""
        return tile_batch(self.fixed, n)


class FixedAudio(_OneStreamFixed):
    """An AV model ``model(waveform, video)`` with the waveform held fixed: ``forward(video)``.

    Explains the face video alone (a :class:`FaceVideo` modality) while the model hears the unperturbed
    sound. Shape: waveform ``(batch, 1, time)``; ``forward((n, frames, 3, S, S))``, ``n`` a multiple of ``batch``.
    """

    def __init__(self, model: nn.Module, waveform: Tensor):
        super().__init__(model, waveform, "waveform")

    def forward(self, video: Tensor):
        return self.model(self._rows(video.shape[0]).to(video.dtype), video)


class FixedVideo(_OneStreamFixed):
    """An AV model ``model(waveform, video)`` with the face video held fixed: ``forward(waveform)``.

    Explains the spectrogram alone (a :class:`Spectrogram` modality) while the model sees the unperturbed
    face. Shape: video ``(batch, frames, 3, S, S)``; ``forward((n, 1, time))``, ``n`` a multiple of ``batch``.
    """

    def __init__(self, model: nn.Module, video: Tensor):
        super().__init__(model, video, "video")

    def forward(self, waveform: Tensor):
        return self.model(waveform, self._rows(waveform.shape[0]).to(waveform.dtype))


class AVSpectrogram(Spectrogram):
    """The audio stream of an audio-visual explanation: a :class:`Spectrogram` whose occlusion windows are
    ``seconds`` long (about a syllable) and ``bins`` frequency bins tall, hopping by the whole window in time and
    half of it in frequency; the default of a plain spectrogram (1/16 of each axis, half-window hops) makes
    about 1,000 windows whatever the clip, which with the face video's held an AV explanation at minutes."""

    def occlusion_window(self, seconds: float = 0.2, bins: int = 16) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(window, stride) in cells. Used by :class:`~avxai.methods.occlusion.Occlusion` when no window is given.
        On a clip longer than ``MAX_OCCLUSION_STEPS`` windows (6.4 s at 0.2 s) the windows take
        ``1 / MAX_OCCLUSION_STEPS`` of it (:func:`~avxai.modalities.base.occlusion_time_cells`)."""
        f, t = self.grid_shape
        frames = occlusion_time_cells(seconds, self.sample_rate / self.hop_length, t)
        height = max(1, min(f, bins))
        return (height, frames), (max(1, height // 2), frames)

    def occlusion_note(self, seconds: float = 0.2) -> str | None:
        """What the plan says when the suggested time windows grew past ``seconds`` (a long clip), else ``None``."""
        rate = self.sample_rate / self.hop_length
        return occlusion_time_note(self.occlusion_window(seconds)[0][1], rate, seconds)


class AudioVisual(CompositeModality):
    """A spectrogram and a face video of the same clips, masked on one joint grid (see the module docstring).

    Parameters
    ----------
    spectrogram : the audio stream (any :class:`Spectrogram`; its perturbation is the audio baseline).
    video : the face crops (:class:`FaceVideo`; its perturbation is the video baseline).
    part_weights : weight of (audio, video) in an extremal area constraint (equal by default).
    check_alignment : raise when the streams' durations differ by more than one video frame.

    Shape: grid ``(N,)``, ``N = freq * frames_audio + frames_video * S * S``; model input
    ``(waveform (n, channels, time), video (n, frames, 3, S, S))``.
    """

    kind = "audio-visual"
    representation_class = AVRepresentation

    def __init__(self, spectrogram: Spectrogram, video: FaceVideo, *,
                 part_weights: Sequence[float] = (1.0, 1.0), check_alignment: bool = True):
        if not isinstance(spectrogram, Spectrogram):
            raise TypeError(f"spectrogram must be an avxai Spectrogram, got {type(spectrogram).__name__}")
        if not isinstance(video, FaceVideo):
            raise TypeError(f"video must be an avxai FaceVideo, got {type(video).__name__}")
        if spectrogram.batch_size != video.batch_size:
            raise ValueError(f"{spectrogram.batch_size} waveforms but {video.batch_size} videos; give one video "
                             "per waveform")
        weights = tuple(float(w) for w in part_weights)
        if len(weights) != 2 or any(not w > 0 for w in weights):
            raise ValueError(f"part_weights must be two positive numbers (audio, video), got {part_weights}")
        if check_alignment:
            check_av_alignment(video.num_frames, video.fps, spectrogram.waveform.shape[-1], spectrogram.sample_rate)
        self.spectrogram, self.video = spectrogram, video
        super().__init__((spectrogram, video), PART_NAMES, part_weights=weights)

    def parts(self) -> tuple[Spectrogram, FaceVideo]:
        """The sub-modalities, audio first."""
        return self.spectrogram, self.video

    def to_model_input(self, representation: AVRepresentation) -> tuple[Tensor, Tensor]:
        """``(waveform (n, channels, time), video (n, frames, 3, S, S))``."""
        audio, video = representation
        return self.spectrogram.to_model_input(audio), self.video.to_model_input(video)

    @property
    def fps(self) -> float:
        return self.video.fps

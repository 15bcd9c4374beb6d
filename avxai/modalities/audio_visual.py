"""Audio-visual modality: one explanation over a spectrogram and a face video at once.

Design
------
The core :class:`~avxai.modalities.base.Modality` has one grid; the two streams have two grids of
different dimension and rate (``(freq, time)`` at the STFT frame rate, ``(time, height, width)`` at the
video frame rate). :class:`AudioVisual` keeps both as *parts* and exposes

* a **1-D joint grid** ``("joint",)`` of ``N_audio + N_video`` cells: the flattened spectrogram grid
  followed by the flattened video grid. A joint mask ``(n, N)`` is split into the two part masks
  (:meth:`AudioVisual.split_mask`), each applied by its part with the part's own perturbation, and the
  model gets the pair ``(waveform (n, 1, time), video (n, frames, 3, S, S))`` (:meth:`to_model_input`).
  Everything that only needs ``grid_shape``, ``apply_mask`` / ``perturb`` and ``batch_size`` (the
  batched engine, scorers, :func:`modality_shares`) runs on it unchanged.
* the optional **parts hook** (``parts()``, ``join_masks``, ``split_mask``, ``part_weights``; see
  :mod:`avxai.methods.parts`) for methods that need each part's N-D structure: occlusion slides its
  windows within a part, extremal perturbation makes one smooth-mask generator per part and constrains
  the joint area with the parts weighted by ``part_weights`` (equal by default, whatever their cell
  counts), so that one optimisation decides how much of the kept evidence lies in each stream.
* :meth:`AudioVisual.upsample` takes per-part coarse masks (a list) to the joint grid.

An explanation of an :class:`AudioVisual` has a joint ``(batch, N)`` attribution (and ``(batch, K, N)``
masks); :func:`split_explanation` cuts it back into an audio and a video explanation (from the saved
metadata alone, so it also works on a loaded explanation). Coordinates are kept per part under
``"audio/<axis>"`` and ``"video/<axis>"``.

The model takes one argument, the pair; :class:`avxai.models.av_enhancement.AVEnhancer` accepts both
``model(waveform, video)`` and ``model((waveform, video))``; wrap other two-argument models with
:class:`PairInput`. To explain one stream alone, hold the other fixed with :class:`FixedAudio` (explain a
:class:`FaceVideo`) or :class:`FixedVideo` (explain a :class:`Spectrogram`). From a file:
:func:`avxai.tasks.av_enhancement.build_av_problem` reads the clip, tracks the face and builds all three.

:func:`modality_shares` answers the coarser question "how much does each stream carry": the score with
only the audio masked, only the video masked, both and neither, and the Shapley value of each stream.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from avxai.modalities.base import Modality
from avxai.modalities.spectrogram import Spectrogram
from avxai.modalities.video import FaceVideo
from avxai.models.contract import crop_size_of, fps_of, pca_layers_of, sample_rate_of

__all__ = ["AudioVisual", "AVRepresentation", "PairInput", "FixedAudio", "FixedVideo", "ModalityShares", "modality_shares",
           "split_explanation", "PART_NAMES"]

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
        from avxai.perturbations import tile_batch

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


class AudioVisual(Modality):
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
    axes = ("joint",)

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
            from avxai.io.video import check_av_alignment

            check_av_alignment(video.num_frames, video.fps, spectrogram.waveform.shape[-1], spectrogram.sample_rate)
        self.spectrogram, self.video = spectrogram, video
        self.part_weights = weights
        self.representation = AVRepresentation(spectrogram.representation, video.representation)
        self.perturbation = (spectrogram.perturbation, video.perturbation)
        self._sizes = [int(np.prod(p.grid_shape)) for p in self.parts()]

    # -- parts hook -------------------------------------------------------------------------------
    def parts(self) -> tuple[Spectrogram, FaceVideo]:
        """The sub-modalities, audio first."""
        return self.spectrogram, self.video

    @property
    def info(self):
        raise ValueError("an AudioVisual modality has one perturbation per part: set it on the parts "
                         "(Spectrogram(..., perturbation=...), FaceVideo(..., perturbation=...)) instead of "
                         "overriding it in the method's config")

    def split_mask(self, mask: Tensor) -> list[Tensor]:
        """Joint masks ``(n, N)`` -> ``[audio (n, freq, frames), video (n, frames, S, S)]``."""
        if mask.dim() != 2 or mask.shape[1] != sum(self._sizes):
            raise ValueError(f"joint masks must be (n, {sum(self._sizes)}) for this audio-visual grid, got "
                             f"{tuple(mask.shape)}")
        pieces = mask.split(self._sizes, dim=1)
        return [p.reshape(mask.shape[0], *part.grid_shape) for p, part in zip(pieces, self.parts())]

    def join_masks(self, masks: Sequence[Tensor]) -> Tensor:
        """``[audio (n, freq, frames), video (n, frames, S, S)]`` -> joint masks ``(n, N)``."""
        if len(masks) != 2:
            raise ValueError(f"give one mask per part (audio, video), got {len(masks)}")
        n = masks[0].shape[0]
        for m, part, name in zip(masks, self.parts(), PART_NAMES):
            if tuple(m.shape[1:]) != tuple(part.grid_shape) or m.shape[0] != n:
                raise ValueError(f"the {name} mask must be (n, {', '.join(map(str, part.grid_shape))}) with the same "
                                 f"n as the other part, got {tuple(m.shape)}")
        return torch.cat([m.reshape(n, -1) for m in masks], dim=1)

    # -- grid ---------------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return self.spectrogram.batch_size

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return (sum(self._sizes),)

    def grid(self) -> Tensor:
        """Joint display values ``(batch, N)``: the spectrogram's magnitude, then the video's luminance."""
        return self.join_masks([p.grid() for p in self.parts()])

    def upsample(self, coarse: "Tensor | Sequence[Tensor]") -> Tensor:
        """Per-part coarse masks ``[(n, *coarse_audio), (n, *coarse_video)]`` -> joint masks ``(n, N)``
        (each part interpolated to its grid); a joint ``(n, N)`` mask is returned as is."""
        if isinstance(coarse, Tensor):
            if coarse.dim() == 2 and coarse.shape[1] == self.grid_shape[0]:
                return coarse
            raise ValueError(f"AudioVisual.upsample takes one coarse mask per part, [audio (n, f, t), video (n, t, h, w)]"
                             f", or a joint (n, {self.grid_shape[0]}) mask; got a tensor {tuple(coarse.shape)}")
        return self.join_masks([part.upsample(c) for part, c in zip(self.parts(), coarse)])

    def apply_mask(self, mask: Tensor) -> AVRepresentation:
        """Perturbed representations of both streams from joint masks ``(n, N)`` (1 = keep)."""
        self.check_mask(mask)
        audio, video = self.split_mask(mask)
        return AVRepresentation(self.spectrogram.apply_mask(audio), self.video.apply_mask(video))

    def to_model_input(self, representation: AVRepresentation) -> tuple[Tensor, Tensor]:
        """``(waveform (n, channels, time), video (n, frames, 3, S, S))``."""
        audio, video = representation
        return self.spectrogram.to_model_input(audio), self.video.to_model_input(video)

    # -- description --------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.spectrogram.sample_rate

    @property
    def fps(self) -> float:
        return self.video.fps

    def coordinates(self) -> dict[str, np.ndarray]:
        coords = {"joint": np.arange(self.grid_shape[0], dtype=float)}
        for name, part in zip(PART_NAMES, self.parts()):
            coords.update({f"{name}/{axis}": v for axis, v in part.coordinates().items()})
        return coords

    def units(self) -> dict[str, str]:
        units = {"joint": "cell"}
        for name, part in zip(PART_NAMES, self.parts()):
            units.update({f"{name}/{axis}": u for axis, u in part.units().items()})
        return units

    def media(self, representation: AVRepresentation) -> dict[str, Any]:
        audio, video = representation
        return {**self.spectrogram.media(audio), **self.video.media(video)}

    def metadata(self) -> dict[str, Any]:
        return {"kind": self.kind, "axes": list(self.axes), "grid_shape": list(self.grid_shape),
                "batch_size": self.batch_size, "part_names": list(PART_NAMES), "part_sizes": list(self._sizes),
                "part_weights": list(self.part_weights),
                "parts": {name: part.metadata() for name, part in zip(PART_NAMES, self.parts())}}


# ---------------------------------------------------------------------------------------------
# explanations of a joint grid
# ---------------------------------------------------------------------------------------------
def split_explanation(explanation) -> dict[str, Any]:
    """Cut an explanation of an :class:`AudioVisual` input into ``{"audio": ..., "video": ...}`` explanations
    over each part's grid (attribution, grid, masks, coordinates, units, the part's media and arrays, e.g.
    ``rgb_video``; scores shared)."""
    from avxai.explanation import Explanation

    meta = explanation.metadata.get("modality", {})
    if meta.get("kind") != AudioVisual.kind:
        raise ValueError(f"split_explanation needs an explanation of an audio-visual input, got modality kind "
                         f"{meta.get('kind')!r}")
    sizes = meta["part_sizes"]
    out = {}
    start = 0
    for name, size in zip(meta["part_names"], sizes):
        pmeta = meta["parts"][name]
        shape = tuple(pmeta["grid_shape"])
        sl = slice(start, start + size)
        start += size

        def cut(t: Tensor | None, lead: int) -> Tensor | None:
            if t is None:
                return None
            return t[..., sl].reshape(*t.shape[:lead], *shape)

        prefix = f"{name}/"
        media = {k[: -len(name) - 1]: v for k, v in explanation.media.items() if k.endswith(f"_{name}")}
        media.update({k: v for k, v in explanation.media.items() if v[0] == name})  # single-kind media
        metadata = copy.deepcopy(explanation.metadata)
        metadata["modality"] = pmeta
        metadata["part"] = name
        out[name] = Explanation(
            method=explanation.method,
            attribution=cut(explanation.attribution, 1),
            grid=cut(explanation.grid, 1),
            axes=tuple(pmeta["axes"]),
            coordinates={k[len(prefix):]: v for k, v in explanation.coordinates.items() if k.startswith(prefix)},
            units={k[len(prefix):]: v for k, v in explanation.units.items() if k.startswith(prefix)},
            masks=cut(explanation.masks, 2),
            areas=explanation.areas,
            scores=dict(explanation.scores),
            history=dict(explanation.history),
            media=media,
            metadata=metadata,
            arrays={k: v for k, v in explanation.arrays.items() if k.endswith(f"_{name}")},  # e.g. rgb_video
        )
    return out


# ---------------------------------------------------------------------------------------------
# how much each stream carries
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModalityShares:
    """Scores with each stream masked (replaced by its part's baseline) and the share of each stream.

    ``audio`` and ``video`` are the Shapley values of the two-player game whose value is the score with
    only the given streams kept: ``audio = ((unmasked - audio_masked) + (video_masked - both_masked)) / 2``,
    likewise for video; ``audio + video = unmasked - both_masked``. ``audio_share = audio / (|audio| +
    |video|)`` (in [-1, 1]; the two shares sum to 1 when both values are positive). ``interaction`` =
    ``unmasked - audio_masked - video_masked + both_masked`` (0 when the streams add up).

    Shape: every tensor ``(batch,)``, in the scorer's ``units``.
    """

    unmasked: Tensor
    audio_masked: Tensor
    video_masked: Tensor
    both_masked: Tensor
    audio: Tensor
    video: Tensor
    audio_share: Tensor
    video_share: Tensor
    interaction: Tensor
    units: str = ""
    scorer: dict = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable: lists per input."""
        out = {k: getattr(self, k).tolist() for k in ("unmasked", "audio_masked", "video_masked", "both_masked",
                                                      "audio", "video", "audio_share", "video_share", "interaction")}
        out.update(units=self.units, scorer=self.scorer)
        return out


def modality_shares(model: nn.Module, av: AudioVisual, scorer, batch_size: int = 4) -> ModalityShares:
    """Score the model with neither, only the audio, only the video, and both streams masked (each replaced by
    its part's perturbation baseline) and return the share of evidence each stream carries.

    The scorer is prepared on the unmasked output (as methods do); the model runs in evaluation mode.
    """
    from avxai.explanation import to_jsonable
    from avxai.hygiene import evaluation_mode
    from avxai.engine import check_model_rate, evaluate_masks, prepare_scorer

    if not isinstance(av, AudioVisual):
        raise TypeError(f"modality_shares needs an AudioVisual modality, got {type(av).__name__}")
    check_model_rate(model, av)
    b = av.batch_size
    n_audio = av._sizes[0]
    dtype = av.representation.dtype
    rows = torch.ones(4, b, av.grid_shape[0], dtype=dtype)
    rows[1, :, :n_audio] = 0.0  # audio masked
    rows[2, :, n_audio:] = 0.0  # video masked
    rows[3] = 0.0  # both masked
    with evaluation_mode(model):
        prepared, _ = prepare_scorer(model, av, scorer)
        scores = evaluate_masks(model, av, prepared, rows.reshape(4 * b, -1), batch_size=max(b, batch_size))
    none, a_m, v_m, both = scores.view(4, b).to(torch.float64).unbind(0)
    audio = 0.5 * ((none - a_m) + (v_m - both))
    video = 0.5 * ((none - v_m) + (a_m - both))
    total = (audio.abs() + video.abs()).clamp_min(1e-12)
    return ModalityShares(unmasked=none, audio_masked=a_m, video_masked=v_m, both_masked=both, audio=audio,
                          video=video, audio_share=audio / total, video_share=video / total,
                          interaction=none - a_m - v_m + both, units=getattr(prepared, "units", ""),
                          scorer=to_jsonable(prepared.describe()))

"""How much each stream of an audio-visual input carries: the model scored with each stream masked.

:func:`modality_shares` scores the model with neither, only the audio, only the video and both streams
replaced by their part's perturbation baseline, and gives the Shapley value and share of each stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from avxai.engine import check_model_rate, evaluate_masks, prepare_scorer
from avxai.explanation import to_jsonable
from avxai.hygiene import evaluation_mode
from avxai.modalities.audio_visual import AudioVisual
from avxai.scorers.base import Scorer

__all__ = ["ModalityShares", "modality_shares"]


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


def modality_shares(model: nn.Module, av: AudioVisual, scorer: Scorer, batch_size: int = 4) -> ModalityShares:
    """Score the model with neither, only the audio, only the video, and both streams masked (each replaced by
    its part's perturbation baseline) and return the share of evidence each stream carries.

    The scorer is prepared on the unmasked output (as methods do); the model runs in evaluation mode.
    """
    if not isinstance(av, AudioVisual):
        raise TypeError(f"modality_shares needs an AudioVisual modality, got {type(av).__name__}")
    check_model_rate(model, av)
    b = av.batch_size
    n_audio = av.part_sizes[0]
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

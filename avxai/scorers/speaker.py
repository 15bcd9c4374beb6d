"""Speaker-verification score: cosine similarity of the output embedding to an enrollment embedding."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from avxai.models.contract import sample_rate_of
from avxai.scorers.base import Scorer, as_tensor_output, rows_for

__all__ = ["SpeakerCosine"]


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:200]


class SpeakerCosine(Scorer):
    """Cosine similarity between the model's embedding of the (perturbed) test input and the enrollment.

    Parameters
    ----------
    embedder : callable waveform ``(batch, 1, time)`` -> embedding ``(batch, dim)``; used once to embed
        an enrollment waveform (it is normally the model being explained).
    enrollment : an enrollment waveform ``(batch, 1, time)`` (or ``(1, 1, time)`` for every input); several
        utterances of one speaker as a list of waveforms ``(1, 1, time_k)`` (lengths may differ): their
        embeddings are L2-normalised and averaged (the mean of the unit embeddings, as a speaker model's
        enrollment of several sessions); or enrollment embeddings ``(batch, dim)``.
    sample_rate : Hz of the enrollment waveform(s). When the embedder states its ``sample_rate``, a waveform
        enrollment must give it and match it (as the input must): a mismatch is refused, not silently scored.
    min_samples : the shortest enrollment accepted (samples); an enrollment the embedder cannot embed (too short
        for its windows) raises naming its length.

    Shape: model output ``(n, dim)`` -> ``(n,)`` cosine in [-1, 1].
    """

    units = "cosine"

    def __init__(self, embedder: Callable[[Tensor], Tensor] | None,
                 enrollment: "Tensor | Sequence[Tensor]", *, sample_rate: int | None = None, min_samples: int = 1):
        self.utterances = 1
        if isinstance(enrollment, (list, tuple)):
            if not enrollment:
                raise ValueError("the list of enrollment utterances is empty; give at least one waveform")
            waves = [self._waveform(w, k) for k, w in enumerate(enrollment)]
            if any(w.shape[0] != 1 for w in waves):
                raise ValueError("each enrollment utterance in a list must be one waveform (1, 1, time)")
            self._check_rate(embedder, sample_rate)
            units = [F.normalize(self._embed(embedder, w, sample_rate, min_samples, f"enrollment utterance {k}"),
                                 dim=-1) for k, w in enumerate(waves)]
            embedding = torch.cat(units).mean(dim=0, keepdim=True)
            self.utterances = len(waves)
        elif not isinstance(enrollment, Tensor):
            raise TypeError(f"enrollment must be a tensor (waveform or embedding) or a list of waveforms, got "
                            f"{type(enrollment).__name__}")
        elif enrollment.dim() == 3:
            self._check_rate(embedder, sample_rate)
            embedding = self._embed(embedder, enrollment, sample_rate, min_samples, "enrollment")
        elif enrollment.dim() == 2:
            embedding = enrollment.detach()
        else:
            raise ValueError(f"enrollment must be a waveform (batch, 1, time), a list of them, or embeddings "
                             f"(batch, dim), got {tuple(enrollment.shape)}")
        if not torch.isfinite(embedding).all() or (embedding.norm(dim=-1) == 0).any():
            raise ValueError("the enrollment embedding is zero or not finite; the embedder failed on the enrollment")
        self.enrollment = embedding
        self.sample_rate = sample_rate

    @staticmethod
    def _waveform(wave: Any, k: int) -> Tensor:
        if not isinstance(wave, Tensor) or not wave.is_floating_point():
            raise TypeError(f"enrollment utterance {k} must be a float waveform tensor, got "
                            f"{type(wave).__name__ if not isinstance(wave, Tensor) else wave.dtype}")
        if wave.dim() == 1:
            wave = wave.view(1, 1, -1)
        elif wave.dim() == 2:
            wave = wave.unsqueeze(0)
        if wave.dim() != 3 or wave.shape[1] != 1:
            raise ValueError(f"enrollment utterance {k} must be a mono waveform (1, 1, time), got "
                             f"{tuple(wave.shape)}")
        return wave

    @staticmethod
    def _check_rate(embedder: Any, sample_rate: int | None) -> None:
        if embedder is None:
            raise ValueError("an enrollment waveform needs an embedder to turn it into an embedding")
        if sample_rate is not None and (isinstance(sample_rate, bool) or not isinstance(sample_rate, int)
                                        or sample_rate <= 0):
            raise ValueError(f"sample_rate must be a positive int (Hz), got {sample_rate!r}")
        expected = sample_rate_of(embedder)
        if expected is None:
            return
        if sample_rate is None:
            raise ValueError(f"give the enrollment's sample_rate (Hz): the embedder takes {expected} Hz, and an "
                             "enrollment at another rate would be scored silently wrong")
        if sample_rate != expected:
            raise ValueError(f"the enrollment is at {sample_rate} Hz but the model takes {expected} Hz; resample it "
                             "(--resample on the command line) before scoring")

    @staticmethod
    def _embed(embedder: Callable, wave: Tensor, sample_rate: int | None, min_samples: int, what: str) -> Tensor:
        length = wave.shape[-1]
        at = f" ({length / sample_rate:.3f} s)" if sample_rate else ""
        if not torch.isfinite(wave).all() or wave.pow(2).mean().sqrt() < 1e-5:
            raise ValueError(f"the {what} waveform is silent or contains NaN; check the enrollment file")
        if length < min_samples:
            raise ValueError(f"the {what} is too short: {length} samples{at}, at least {min_samples} are needed")
        try:
            with torch.inference_mode():
                embedding = as_tensor_output(embedder(wave), "SpeakerCosine embedder").detach().clone()
        except (RuntimeError, IndexError) as err:  # a window or kernel longer than the audio, inside the model
            raise ValueError(f"the embedder cannot embed the {what} of {length} samples{at}: it is probably too "
                             f"short for the model's windows; give a longer enrollment ({_first_line(err)})") from None
        if embedding.dim() != 2 or embedding.shape[0] != wave.shape[0]:
            raise ValueError(f"the embedder must return embeddings (batch, dim), got shape {tuple(embedding.shape)}")
        if not torch.isfinite(embedding).all() or (embedding.norm(dim=-1) == 0).any():
            raise ValueError(f"the embedding of the {what} ({length} samples{at}) is zero or not finite; it may be "
                             "too short or too quiet for the model: give a longer enrollment")
        return embedding

    def __call__(self, output: Any) -> Tensor:
        emb = as_tensor_output(output, "SpeakerCosine")
        if emb.dim() != 2 or emb.shape[1] != self.enrollment.shape[1]:
            raise ValueError(
                f"SpeakerCosine expects embeddings (n, {self.enrollment.shape[1]}) from the model, got shape "
                f"{tuple(emb.shape)}; explain the model's embedder, not its classifier"
            )
        enroll = rows_for(self.enrollment.to(emb.dtype), emb.shape[0])
        return F.cosine_similarity(emb, enroll, dim=1)

    def describe(self) -> dict[str, Any]:
        info = {**super().describe(), "enrollment_utterances": self.utterances}
        if self.utterances > 1:
            info["enrollment"] = "mean of the L2-normalised embeddings of the utterances"
        return info

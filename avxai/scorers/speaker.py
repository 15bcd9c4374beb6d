"""Speaker-verification score: cosine similarity of the output embedding to an enrollment embedding."""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from avxai.scorers.base import Scorer, as_tensor_output, rows_for


class SpeakerCosine(Scorer):
    """Cosine similarity between the model's embedding of the (perturbed) test input and the enrollment.

    Parameters
    ----------
    embedder : callable waveform ``(batch, 1, time)`` -> embedding ``(batch, dim)``; used once to embed
        an enrollment waveform (it is normally the model being explained).
    enrollment : an enrollment waveform ``(batch, 1, time)`` (or ``(1, 1, time)`` for every input), or
        enrollment embeddings ``(batch, dim)``.

    Shape: model output ``(n, dim)`` -> ``(n,)`` cosine in [-1, 1].
    """

    units = "cosine"

    def __init__(self, embedder: Callable[[Tensor], Tensor] | None, enrollment: Tensor):
        if not isinstance(enrollment, Tensor):
            raise TypeError(f"enrollment must be a tensor (waveform or embedding), got {type(enrollment).__name__}")
        if enrollment.dim() == 3:
            if embedder is None:
                raise ValueError("an enrollment waveform needs an embedder to turn it into an embedding")
            if not torch.isfinite(enrollment).all() or enrollment.pow(2).mean().sqrt() < 1e-5:
                raise ValueError("the enrollment waveform is silent or contains NaN; check the enrollment file")
            with torch.inference_mode():
                embedding = as_tensor_output(embedder(enrollment), "SpeakerCosine embedder").detach().clone()
        elif enrollment.dim() == 2:
            embedding = enrollment.detach()
        else:
            raise ValueError(
                f"enrollment must be a waveform (batch, 1, time) or embeddings (batch, dim), got {tuple(enrollment.shape)}"
            )
        if not torch.isfinite(embedding).all() or (embedding.norm(dim=-1) == 0).any():
            raise ValueError("the enrollment embedding is zero or not finite; the embedder failed on the enrollment")
        self.enrollment = embedding

    def __call__(self, output: Any) -> Tensor:
        emb = as_tensor_output(output, "SpeakerCosine")
        if emb.dim() != 2 or emb.shape[1] != self.enrollment.shape[1]:
            raise ValueError(
                f"SpeakerCosine expects embeddings (n, {self.enrollment.shape[1]}) from the model, got shape "
                f"{tuple(emb.shape)}; explain the model's embedder, not its classifier"
            )
        enroll = rows_for(self.enrollment.to(emb.dtype), emb.shape[0])
        return F.cosine_similarity(emb, enroll, dim=1)

"""Embedding maps: utterances (or separated sources) as points, projected to 2-D, with their separation measured.

:func:`embed` gives one vector per waveform: the model's embedder (``model.embedder()``, the speaker models'
contract) or, with ``layer``, a named layer's output averaged over its positions (frames, bins, pixels).
:func:`embedding_map` projects them with PCA, t-SNE (scikit-learn) and UMAP (``umap-learn``, where installed;
otherwise skipped with a note), and measures how well each labelling separates them: the silhouette score
(scikit-learn, cosine distance, in [-1, 1]; higher = tighter, better separated groups). An auditor compares the
silhouette by speaker with the silhouette by condition: a verification model should cluster by speaker, not by
channel. :func:`nearest` lists the nearest neighbours of a query utterance (cosine similarity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from avxai.hygiene import evaluation_mode, model_device
from avxai.inspect.probe import capture, default_channel_dim
from avxai.models.contract import embedder_of

__all__ = ["EmbeddingMap", "embed", "project", "silhouette", "nearest", "embedding_map", "PROJECTIONS"]

PROJECTIONS = ("pca", "tsne", "umap")


def _pool(features: Tensor, channel_dim: int) -> Tensor:
    """``(batch, ..., C, ...)`` -> ``(batch, C)``: the mean over every non-channel axis."""
    if features.dim() == 2:
        return features
    moved = features.movedim(channel_dim, 1)
    return moved.reshape(moved.shape[0], moved.shape[1], -1).mean(dim=2)


def embed(model: nn.Module, waveforms: Sequence[Tensor], *, layer: str | None = None,
          channel_dim: int | None = None) -> np.ndarray:
    """One embedding per waveform: ``model.embedder()`` output, or ``layer``'s output pooled over positions.

    Each waveform runs on its own (utterances may differ in length). A model without an embedder and no
    ``layer`` embeds with its output (flattened).

    Shape: ``N`` waveforms ``(1, channels, time)`` -> ``(N, dim)`` float64.
    """
    if not waveforms:
        raise ValueError("embed needs at least one waveform")
    device = model_device(model)
    rows = []
    with evaluation_mode(model), torch.no_grad():
        if layer is None:
            net = embedder_of(model)
            net = model if net is None else net
            for wav in waveforms:
                out = net(wav.to(device))
                out = out[0] if isinstance(out, (tuple, list)) else out
                rows.append(out.reshape(out.shape[0], -1)[0].double().cpu())
        else:
            cdim = default_channel_dim(model, layer) if channel_dim is None else channel_dim
            with capture(model, layer) as cap:
                for wav in waveforms:
                    cap.outputs.clear()
                    model(wav.to(device))
                    rows.append(_pool(cap.output, cdim)[0].double().cpu())
    return torch.stack(rows).numpy()


def project(x: np.ndarray, method: str = "pca", *, seed: int = 0) -> tuple[np.ndarray | None, str]:
    """``(N, dim)`` -> ``(N, 2)`` by ``"pca"``, ``"tsne"`` or ``"umap"``, and a note (``None``: not available)."""
    if method not in PROJECTIONS:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {method!r}")
    n = x.shape[0]
    if n < 3:
        raise ValueError(f"an embedding map needs at least 3 utterances, got {n}")
    if method == "pca":
        from sklearn.decomposition import PCA  # optional dependency (scikit-learn)
        pca = PCA(n_components=2, random_state=seed).fit(x)
        share = float(pca.explained_variance_ratio_.sum())
        return pca.transform(x), f"PCA (scikit-learn), the 2 components explain {100 * share:.1f}% of the variance"
    if method == "tsne":
        from sklearn.manifold import TSNE  # optional dependency (scikit-learn)
        perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
        tsne = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed)
        out = tsne.fit_transform(x)
        return out, f"t-SNE (scikit-learn, cosine, perplexity {perplexity:g}, seed {seed})"
    try:
        import umap  # optional dependency (umap-learn)
    except ImportError:
        return None, "UMAP skipped: umap-learn is not installed (pip install umap-learn)"
    out = umap.UMAP(n_components=2, metric="cosine", random_state=seed).fit_transform(x)
    return np.asarray(out), f"UMAP (umap-learn, cosine, seed {seed})"


def silhouette(x: np.ndarray, labels: Sequence[str]) -> float | None:
    """Silhouette score (scikit-learn, cosine distance) of ``labels``; ``None`` with fewer than 2 groups or no
    group of two."""
    from sklearn.metrics import silhouette_score  # optional dependency (scikit-learn)
    groups = set(labels)
    if not 2 <= len(groups) <= len(labels) - 1:
        return None
    return float(silhouette_score(x, list(labels), metric="cosine"))


def nearest(x: np.ndarray, query: int, k: int = 5) -> list[tuple[int, float]]:
    """The ``k`` rows nearest to row ``query`` by cosine similarity, as ``(index, cosine)``, most similar first."""
    if not 0 <= query < x.shape[0]:
        raise ValueError(f"query must be an utterance index in [0, {x.shape[0]}), got {query!r}")
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    cos = unit @ unit[query]
    order = [int(i) for i in np.argsort(-cos, kind="stable") if i != query][:k]
    return [(i, float(cos[i])) for i in order]


@dataclass
class EmbeddingMap:
    """Embeddings, their 2-D projections, their labels and the silhouette of each labelling.

    embeddings : ``(N, dim)``. labels : labelling name (``"speaker"``, ``"condition"``, ``"source"``) -> N labels.
    projections : method -> ``(N, 2)`` (methods that were not available are absent; see ``notes``).
    silhouettes : labelling name -> score (``None``: not defined for that labelling).
    names : N names (file and window) of the utterances.
    """

    embeddings: np.ndarray
    labels: dict[str, list[str]]
    names: list[str]
    projections: dict[str, np.ndarray] = field(default_factory=dict)
    silhouettes: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"embeddings": self.embeddings}
        out.update({f"projection_{k}": v for k, v in self.projections.items()})
        return out

    def metadata(self) -> dict[str, Any]:
        return {"utterances": len(self.names), "dim": int(self.embeddings.shape[1]), "names": self.names,
                "labels": self.labels, "silhouette": self.silhouettes, "projections": self.notes,
                "silhouette_metric": "cosine (sklearn.metrics.silhouette_score)"}


def embedding_map(embeddings: np.ndarray, labels: Mapping[str, Sequence[str]], names: Sequence[str], *,
                  projections: Sequence[str] = PROJECTIONS, seed: int = 0) -> EmbeddingMap:
    """Project ``embeddings`` ``(N, dim)`` and measure the silhouette of each labelling (N labels each)."""
    n = embeddings.shape[0]
    for key, values in labels.items():
        if len(values) != n:
            raise ValueError(f"labelling {key!r} has {len(values)} labels for {n} embeddings")
    if len(names) != n:
        raise ValueError(f"{len(names)} names for {n} embeddings")
    result = EmbeddingMap(embeddings, {k: [str(v) for v in vs] for k, vs in labels.items()}, [str(s) for s in names])
    for method in projections:
        points, note = project(embeddings, method, seed=seed)
        result.notes[method] = note
        if points is not None:
            result.projections[method] = points
    result.silhouettes = {k: silhouette(embeddings, vs) for k, vs in result.labels.items()}
    return result

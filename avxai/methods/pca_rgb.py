"""PCA-to-RGB embedding of a layer's per-pixel (or per time-frequency bin) features (Sound of Pixels).

A forward hook on a named layer (a dotted module path such as ``"visual.trunk.1"``; released
afterwards) records its features on the unperturbed input. Every pixel of every frame (or every
time-frequency bin) is a feature vector over the channels; PCA projects them onto 3 components, each
scaled to [0, 1] by robust percentiles (1st to 99th by default), which gives an RGB image: pixels with
similar features get similar colours. Fitting the PCA on one clip colours that clip; fitting it once on a
data set (:func:`fit_dataset_embedding`, passed as ``PCARGBConfig(embedding=...)``) gives every clip the
same colours for the same features.

The explanation's ``attribution`` is the first component (in [0, 1]) resampled to the modality's grid;
``arrays["rgb_<stream>"]`` holds the RGB images at the layer's resolution: ``rgb_video``
``(batch, frames, 3, h, w)`` for per-pixel face features, ``rgb_audio`` ``(batch, 3, freq, frames)`` for
per-T-F-bin features (``rgb_grid`` for another modality); video RGB is also saved as the ``pca_rgb``
video. The scorer is not used (the score of the unperturbed input is still recorded).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avxai.explanation import Explanation
from avxai.engine import mask_media
from avxai.hygiene import evaluation_mode
from avxai.methods.base import Method, MethodConfig, new_explanation
from avxai.modalities.base import Modality
from avxai.modalities.composite import CompositeModality
from avxai.modalities.spectrogram import Spectrogram
from avxai.modalities.video import FaceVideo
from avxai.models.contract import pca_layers_of
from avxai.scorers.base import Scorer

__all__ = ["PCAEmbedding", "PCARGBConfig", "PCARGB", "pca_rgb", "layer_features", "get_layer", "fit_dataset_embedding",
           "default_layers"]


#: feature vectors projected at a time (float64 work buffers of this many rows, whatever the clip's length)
PROJECT_CHUNK = 1 << 16


class PCAEmbedding:
    """A 3-component PCA of feature vectors with per-component robust ranges, mapping features to RGB.

    Attributes: ``mean (C,)``, ``components (3, C)`` (unit rows, sign fixed so that each row's largest
    loading is positive), ``low (3,)``, ``high (3,)`` (the ``percentiles`` of the projections on the fit data).

    Shape: features ``(n, C, *spatial)`` (channels second) -> ``(n, 3, *spatial)``.
    """

    def __init__(self, mean: Tensor, components: Tensor, low: Tensor, high: Tensor,
                 percentiles: tuple[float, float] = (1.0, 99.0)):
        self.mean = mean.double()
        self.components = components.double()
        self.low, self.high = low.double(), high.double()
        self.percentiles = (float(percentiles[0]), float(percentiles[1]))

    def __repr__(self) -> str:
        return (f"PCAEmbedding(channels={self.mean.numel()}, percentiles={self.percentiles}, "
                f"explained={getattr(self, 'explained', None)})")

    @staticmethod
    def vectors(features: Tensor) -> Tensor:
        """``(n, C, *spatial)`` -> ``(n * prod(spatial), C)`` feature vectors in the features' own dtype (a long
        clip's features are never copied to float64 whole: :meth:`fit` samples, :meth:`project` goes by chunks)."""
        if not isinstance(features, Tensor) or features.dim() < 2:
            raise ValueError(f"features must be a tensor (n, channels, *spatial), got "
                             f"{tuple(getattr(features, 'shape', ())) or type(features).__name__}")
        return features.detach().movedim(1, -1).reshape(-1, features.shape[1])

    @classmethod
    def fit(cls, features: "Tensor | Sequence[Tensor]", percentiles: tuple[float, float] = (1.0, 99.0),
            max_vectors: int = 200_000, seed: int = 0) -> "PCAEmbedding":
        """Fit on one feature tensor or a list of them (a data set), each ``(n, C, *spatial)``, same ``C``.

        At most ``max_vectors`` vectors (drawn with ``seed``) enter the fit; only they are copied to float64.
        """
        items = [features] if isinstance(features, Tensor) else list(features)
        if not items:
            raise ValueError("fit needs at least one feature tensor")
        vecs = [cls.vectors(f) for f in items]
        channels = {v.shape[1] for v in vecs}
        if len(channels) != 1:
            raise ValueError(f"all feature tensors must have the same number of channels, got {sorted(channels)}")
        if channels.pop() < 3:
            raise ValueError("PCA to RGB needs features with at least 3 channels")
        lo, hi = (float(p) for p in percentiles)
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
        sizes = [v.shape[0] for v in vecs]
        total = sum(sizes)
        if total > max_vectors:  # draw the sample's indices first, then copy only those vectors
            gen = torch.Generator().manual_seed(int(seed))
            pick = torch.randperm(total, generator=gen)[:max_vectors]
            starts = torch.tensor([0] + sizes).cumsum(0)
            x = torch.cat([v[pick[(pick >= a) & (pick < b)] - a].double()
                           for v, a, b in zip(vecs, starts[:-1].tolist(), starts[1:].tolist())])
        else:
            x = torch.cat([v.double() for v in vecs])
        if x.shape[0] < 3:
            raise ValueError(f"PCA needs at least 3 feature vectors, got {x.shape[0]}")
        mean = x.mean(dim=0)
        _, s, vh = torch.linalg.svd(x - mean, full_matrices=False)
        comps = vh[:3]
        idx = comps.abs().argmax(dim=1)
        comps = comps * torch.sign(comps[torch.arange(3), idx]).unsqueeze(1)
        proj = (x - mean) @ comps.T
        q = torch.tensor([lo / 100.0, hi / 100.0], dtype=torch.float64)
        bounds = torch.quantile(proj, q, dim=0)  # (2, 3)
        emb = cls(mean, comps, bounds[0], bounds[1], (lo, hi))
        var = s.pow(2)
        emb.explained = [round(float(v), 4) for v in (var[:3] / var.sum().clamp_min(1e-30))]
        return emb

    def project(self, features: Tensor) -> Tensor:
        """Raw principal-component scores ``(n, 3, *spatial)`` float32, computed :data:`PROJECT_CHUNK` vectors at
        a time in float64."""
        if features.shape[1] != self.mean.numel():
            raise ValueError(f"the features have {features.shape[1]} channels but the embedding was fit on "
                             f"{self.mean.numel()}; use features of the same layer")
        x = self.vectors(features)
        proj = torch.empty(x.shape[0], 3, dtype=torch.float32)
        for start in range(0, x.shape[0], PROJECT_CHUNK):
            proj[start:start + PROJECT_CHUNK] = ((x[start:start + PROJECT_CHUNK].double() - self.mean)
                                                 @ self.components.T).float()
        return proj.reshape(features.shape[0], *features.shape[2:], 3).movedim(-1, 1)

    def transform(self, features: Tensor) -> Tensor:
        """RGB in [0, 1]: each component scaled by its fitted percentile range, clipped. ``(n, 3, *spatial)``."""
        proj = self.project(features)
        shape = (1, 3) + (1,) * (proj.dim() - 2)
        span = (self.high - self.low).clamp_min(1e-12).float().view(shape)
        return ((proj - self.low.float().view(shape)) / span).clamp(0, 1)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "components": self.components.tolist(), "low": self.low.tolist(),
                "high": self.high.tolist(), "percentiles": list(self.percentiles),
                "explained": getattr(self, "explained", None)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PCAEmbedding":
        emb = cls(torch.tensor(d["mean"]), torch.tensor(d["components"]), torch.tensor(d["low"]),
                  torch.tensor(d["high"]), tuple(d["percentiles"]))
        emb.explained = d.get("explained")
        return emb


def get_layer(model: nn.Module, path: str) -> nn.Module:
    """The submodule at dotted ``path`` (``"visual.trunk.1"``); ``ValueError`` listing close names otherwise."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"layer must be a dotted module path such as 'visual.trunk.1', got {path!r}")
    names = dict(model.named_modules())
    if path not in names:
        prefix = path.rsplit(".", 1)[0] if "." in path else ""
        near = [n for n in names if n and n.startswith(prefix)][:12]
        raise ValueError(f"{type(model).__name__} has no layer {path!r}; layers there include {near}")
    return names[path]


@contextlib.contextmanager
def _hook(layer: nn.Module, store: list) -> Iterator[None]:
    def grab(_module, _inputs, output):
        store.append(output[0] if isinstance(output, (tuple, list)) else output)

    handle = layer.register_forward_hook(grab)
    try:
        yield
    finally:
        handle.remove()


@torch.inference_mode()
def layer_features(model: nn.Module, layer: str, inputs: Any) -> Tensor:
    """The output of ``layer`` (dotted path) when ``model(inputs)`` runs; the hook is removed afterwards."""
    store: list = []
    with _hook(get_layer(model, layer), store):
        model(inputs)
    if not store:
        raise ValueError(f"layer {layer!r} did not run in the model's forward pass; pick a layer on the path "
                         "from the input to the output")
    feats = store[-1]
    if not isinstance(feats, Tensor):
        raise ValueError(f"layer {layer!r} returned {type(feats).__name__}, not a tensor of features")
    return feats.detach()


@dataclass(frozen=True)
class PCARGBConfig(MethodConfig):
    """PCA-RGB settings.

    layer : dotted path of the module whose output is embedded; ``None``: the model's ``pca_layers``
        entries for the modality (``"video"`` for a face video, ``"audio"`` for a spectrogram, both for an
        audio-visual input).
    percentiles : robust range of each component, mapped to [0, 1].
    embedding : a :class:`PCAEmbedding` fitted on a data set (consistent colours across clips; see
        :func:`fit_dataset_embedding`), or a dict ``{"video": ..., "audio": ...}`` of them for an
        audio-visual input; ``None`` fits one per input (per clip).
    """

    layer: str | None = None
    percentiles: tuple[float, float] = (1.0, 99.0)
    embedding: Any = None

    def __post_init__(self):
        p = tuple(float(v) for v in self.percentiles)
        if len(p) != 2 or not 0.0 <= p[0] < p[1] <= 100.0:
            raise ValueError(f"percentiles must be (low, high) with 0 <= low < high <= 100, got {self.percentiles}")
        object.__setattr__(self, "percentiles", p)
        if self.layer is not None and (not isinstance(self.layer, str) or not self.layer):
            raise ValueError(f"layer must be a dotted module path such as 'visual.trunk.1' or None, got {self.layer!r}")
        emb = self.embedding
        values = emb.values() if isinstance(emb, dict) else [emb]
        if emb is not None and not all(isinstance(e, PCAEmbedding) for e in values):
            raise TypeError("embedding must be a fitted PCAEmbedding, a dict of them per stream ('video', 'audio'), "
                            f"or None; got {type(emb).__name__}")


def arrange_features(features: Tensor, modality: Modality) -> tuple[str, Tensor]:
    """Which stream the features belong to and the features per input.

    Returns ``("video", (batch, frames, C, h, w))`` for a face video's per-frame maps (the layer sees
    ``(batch * frames, C, h, w)``), ``("audio", (batch, C, freq, frames))`` for time-frequency maps of a
    spectrogram or ``("audio", (batch, C, frames))`` for a 1-D (TDNN) layer's frames, ``("grid", (batch, C,
    *spatial))`` for maps with as many axes as a plain modality's grid.
    """
    b = modality.batch_size
    video = _part(modality, FaceVideo)
    if video is not None and features.dim() == 4 and features.shape[0] == b * video.num_frames:
        return "video", features.reshape(b, video.num_frames, *features.shape[1:])
    if video is not None and features.dim() == 5 and tuple(features.shape[:2]) == (b, video.num_frames):
        return "video", features
    if features.dim() in (3, 4) and features.shape[0] == b and _part(modality, Spectrogram) is not None:
        return "audio", features  # (batch, C, freq, frames), or (batch, C, frames) of a 1-D (TDNN) layer
    if video is None and not isinstance(modality, CompositeModality) and features.shape[0] == b and features.dim() == 2 + len(modality.grid_shape):
        return "grid", features
    raise ValueError(f"cannot place features of shape {tuple(features.shape)} on this {modality.kind} input: "
                     "expected per-frame maps (batch * frames, C, h, w) of a face video, time-frequency maps "
                     "(batch, C, freq, frames) of a spectrogram, or (batch, C, *grid) maps; pick such a layer")


def _part(modality: Modality, cls: type) -> Modality | None:
    """The modality itself, or its first part, when it is a ``cls``; else ``None``."""
    parts = modality.parts() if isinstance(modality, CompositeModality) else (modality,)
    return next((p for p in parts if isinstance(p, cls)), None)


def default_layers(model: nn.Module, modality: Modality, layer: str | None) -> list[str]:
    """The layers to embed: ``[layer]`` when given, else the model's ``pca_layers`` (stream -> dotted layer path;
    streams ``"audio"``, ``"video"``, or ``"grid"`` for any other modality) for the modality's streams."""
    if layer is not None:
        return [layer]
    defaults = pca_layers_of(model) or {}
    keys = [k for k, cls in (("audio", Spectrogram), ("video", FaceVideo)) if _part(modality, cls) is not None]
    keys = keys or ["grid"]  # any other modality: the stream arrange_features calls "grid"
    if any(k not in defaults for k in keys):
        raise ValueError(f"no layer given and {type(model).__name__} names no default for the "
                         f"{'/'.join(keys) or modality.kind} stream (model.pca_layers = {defaults}); pass "
                         "PCARGBConfig(layer='dotted.module.path') (--set layer=... on the command line)")
    return [defaults[k] for k in keys]


def _items(stream: str, per_input: Tensor) -> list[Tensor]:
    """Features of each input as one ``(n, C, *spatial)`` set of vectors (a clip's frames are one set)."""
    return [per_input[i] if stream == "video" else per_input[i:i + 1] for i in range(per_input.shape[0])]


def fit_dataset_embedding(model: nn.Module, layer: str, modalities: Sequence[Modality],
                          percentiles: tuple[float, float] = (1.0, 99.0), max_vectors: int = 200_000,
                          seed: int = 0) -> PCAEmbedding:
    """One :class:`PCAEmbedding` of ``layer`` fitted on the features of every input of ``modalities`` (a data
    set), for consistent colours across clips (``PCARGBConfig(embedding=...)``). The model runs in
    evaluation mode on the unperturbed inputs."""
    feats = []
    with evaluation_mode(model):
        for modality in modalities:
            stream, per_input = arrange_features(layer_features(model, layer, modality.model_input()), modality)
            feats += _items(stream, per_input)
    return PCAEmbedding.fit(feats, percentiles, max_vectors=max_vectors, seed=seed)


class PCARGB(Method):
    """PCA of a layer's per-pixel / per-T-F-bin features, shown as RGB (Zhao et al., Sound of Pixels, 2018).

    Without ``config.embedding`` the PCA is fitted per input (per clip), so an input's colours do not
    depend on the rest of the batch; with one, every input uses it (consistent colours across clips).
    An audio-visual input without ``config.layer`` embeds both default layers (face pixels and T-F bins).

    Shape: attribution ``(batch, *grid)`` in [0, 1] (first component of each stream on its part of the
    grid); ``arrays["rgb_video"]`` ``(batch, frames, 3, h, w)``, ``arrays["rgb_audio"]`` ``(batch, 3, freq,
    frames)`` (or ``arrays["rgb_grid"]``) at the layer's resolution.
    """

    name = "pca-rgb"
    config_class = PCARGBConfig

    def explain(self, model: nn.Module, modality: Modality, scorer: Scorer, config: PCARGBConfig,
                unmasked: Tensor) -> Explanation:
        b = modality.batch_size
        on_parts: dict[int, Tensor] = {}  # id(part) -> first component on the part's grid (batch, *grid)
        arrays, layers, fitted, fitted_on = {}, {}, {}, {}
        media = mask_media(modality, {})
        chosen = default_layers(model, modality, config.layer)
        if isinstance(config.embedding, PCAEmbedding) and len(chosen) > 1:
            raise ValueError(f"one PCAEmbedding was given for {len(chosen)} feature layers ({', '.join(chosen)}); an "
                             "embedding fits one layer's features: pass {'audio': ..., 'video': ...}, or one layer")
        for layer in chosen:
            feats = layer_features(model, layer, modality.model_input())
            stream, per_input = arrange_features(feats, modality)
            if stream in layers:
                raise ValueError(f"layers {layers[stream]!r} and {layer!r} both give {stream} features; give one")
            items = _items(stream, per_input)
            given = config.embedding.get(stream) if isinstance(config.embedding, dict) else config.embedding
            fitted_on[stream] = "config.embedding" if given is not None else "each input"
            embeddings = [given] * b if given is not None else [PCAEmbedding.fit(x, config.percentiles) for x in items]
            rgb = torch.stack([e.transform(x) if stream == "video" else e.transform(x)[0]
                               for e, x in zip(embeddings, items)])  # video (b, frames, 3, h, w); else (b, 3, *spatial)
            if stream == "video":
                part = _part(modality, FaceVideo)
                _, height, width = part.grid_shape
                on_part = F.interpolate(rgb[:, :, 0], size=(height, width), mode="bilinear", align_corners=False)
                rgb_video = F.interpolate(rgb.flatten(0, 1), size=part.crop_size, mode="nearest").view(
                    b, -1, 3, *part.crop_size)  # at the crop size: h264 needs even sizes
                media["pca_rgb"] = ("video", rgb_video, part.fps)
            else:
                # the layer's axes resampled onto the grid (a mel grid: by band index, approximately)
                part = _part(modality, Spectrogram) if stream == "audio" else modality
                if stream == "audio" and rgb.dim() == 3:  # a 1-D layer: frames only, the same for every band
                    on_part = F.interpolate(rgb[:, :1], size=part.grid_shape[-1], mode="linear",
                                            align_corners=False)[:, 0]
                    on_part = on_part.unsqueeze(1).expand(b, *part.grid_shape).contiguous()
                else:
                    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(part.grid_shape)]
                    on_part = F.interpolate(rgb[:, :1], size=part.grid_shape, mode=mode, align_corners=False)[:, 0]
            on_parts[id(part)] = on_part
            arrays[f"rgb_{stream}"] = rgb
            layers[stream] = layer
            fitted[stream] = [e.to_dict() for e in (embeddings[:1] if given is not None else embeddings)]
        if isinstance(modality, CompositeModality):  # a part without embedded features gets 0
            dtype = next(iter(on_parts.values())).dtype
            attribution = modality.join_masks([on_parts.get(id(p), torch.zeros(b, *p.grid_shape, dtype=dtype))
                                               for p in modality.parts()])
        else:
            attribution = on_parts[id(modality)]
        return new_explanation(
            self.name, modality, attribution.to(modality.grid().dtype), media=media, arrays=arrays,
            metadata={"layers": layers, "feature_streams": sorted(layers),
                      "fitted_on": fitted_on,  # per stream: a dict may leave a stream to be fitted per input
                      "embeddings": fitted},
        )


pca_rgb = PCARGB()

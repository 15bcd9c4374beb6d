"""PCA-to-RGB figure: the first three principal components of a layer's features as colour (per frame of a
face video, or one time-frequency image), from the ``pca-rgb`` method's arrays."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from avxai.explanation import Explanation
from avxai.viz.style import COLUMN_WIDTH, PAGE_WIDTH


def rgb_frames(expl: Explanation, index: int) -> tuple[np.ndarray, bool]:
    """RGB images ``(frames, h, w, 3)`` in [0, 1] of input ``index`` and whether they are time-frequency maps.

    From the ``pca-rgb`` method's arrays (:mod:`avxai.methods.pca_rgb`): ``rgb_video`` ``(batch, frames, 3, h, w)``
    for per-pixel face features, else ``rgb_audio`` ``(batch, 3, freq, frames)`` or ``rgb_grid``
    ``(batch, 3, *grid)``; else from an attribution with an axis of size 3 (an RGB attribution saved by other code).
    """
    arrays = expl.arrays
    if "rgb_video" in arrays:
        return np.moveaxis(arrays["rgb_video"][index].float().numpy(), 1, -1), False  # (frames, h, w, 3)
    key = next((k for k in ("rgb_audio", "rgb_grid") if k in arrays), None)
    if key is not None:
        rgb = arrays[key][index].float().numpy()
        if rgb.shape[0] != 3:
            raise ValueError(f"arrays[{key!r}] of input {index} has shape {rgb.shape}; expected (3, *grid)")
        rgb = np.moveaxis(rgb, 0, -1)  # (*grid, 3)
        if rgb.ndim == 2:  # one axis (time): a strip
            return rgb[None, None], True
        if rgb.ndim == 3:  # (freq, frames): one time-frequency image
            return rgb[None], True
        return rgb, False  # (time, h, w, 3)
    attr = expl.attribution[index].numpy()
    axes_names = list(expl.axes)
    comp = next((i for i, a in enumerate(axes_names) if a in ("component", "rgb", "channel") and attr.shape[i] == 3),
                None)
    if comp is None:
        comp = next((i for i, s in enumerate(attr.shape) if s == 3), None)
    if comp is None:
        raise ValueError(f"a PCA-to-RGB figure needs arrays rgb_video, rgb_audio or rgb_grid (the pca-rgb method) or an attribution axis of "
                         f"size 3, got axes {axes_names} {attr.shape}")
    rgb = np.moveaxis(attr, comp, -1)
    if rgb.ndim == 3:
        rgb = rgb[None]
    lo, hi = np.percentile(rgb, 1), np.percentile(rgb, 99)
    return np.clip((rgb - lo) / max(hi - lo, 1e-12), 0, 1), False


def has_rgb(expl: Explanation) -> bool:
    """Whether the explanation has colours to show (a part whose features were not embedded has none)."""
    return any(k.startswith("rgb_") for k in expl.arrays) or 3 in expl.attribution.shape[1:]


def figure_pca_rgb(expl: Explanation, index: int = 0, frames: int = 8):
    """PCA-to-RGB embedding: the first three principal components of a layer's features as colour (per frame,
    or one time-frequency image)."""
    rgb, spectral = rgb_frames(expl, index)
    rgb = np.clip(rgb, 0.0, 1.0)
    n = min(frames, rgb.shape[0])
    idx = np.linspace(0, rgb.shape[0] - 1, n).round().astype(int)
    if spectral:
        fig, axes = plt.subplots(1, 1, figsize=(COLUMN_WIDTH, 1.8), squeeze=False, constrained_layout=True)
        axes[0, 0].imshow(rgb[0], origin="lower", aspect="auto", interpolation="nearest")
        axes[0, 0].set_xlabel("layer frame (index)")
        axes[0, 0].set_ylabel("layer frequency bin (index)" if rgb.shape[1] > 1 else "")
    else:
        fig, axes = plt.subplots(1, n, figsize=(PAGE_WIDTH if n > 2 else COLUMN_WIDTH, 1.4), squeeze=False,
                                 constrained_layout=True)
        fps = (expl.metadata.get("modality") or {}).get("fps") if isinstance(expl.metadata.get("modality"), dict) \
            else None
        for j, f in enumerate(idx):
            axes[0, j].imshow(rgb[f], interpolation="nearest")
            axes[0, j].set_xticks([])
            axes[0, j].set_yticks([])
            if n > 1:
                axes[0, j].set_title(f"{f / fps:.2f} s" if fps else f"frame {f + 1}")
    layer = expl.metadata.get("layer")
    fig.suptitle("first three principal components as RGB" + (f" (layer {layer})" if layer else ""))
    return fig

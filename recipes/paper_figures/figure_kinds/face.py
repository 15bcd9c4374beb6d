"""Face-video figure: heat-map strips over frames of a ``(time, height, width)`` explanation."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from avxai.explanation import Explanation
from avxai.viz.style import CMAPS, PAGE_WIDTH
from figure_kinds.labels import attribution_label, input_labels


def figure_face_strip(expl: Explanation, index: int = 0, frames: int = 8):
    """Frames of a ``(time, height, width)`` explanation: grey input with the heat map on top, and the map alone.

    Shape: ``expl.attribution`` and ``expl.grid`` are ``(batch, time, height, width)``.
    """
    attr = expl.attribution[index].numpy()
    grid = expl.grid[index].numpy()
    n = min(frames, attr.shape[0])
    idx = np.linspace(0, attr.shape[0] - 1, n).round().astype(int)
    fps = expl.metadata.get("modality", {}).get("fps") if isinstance(expl.metadata.get("modality"), dict) else None
    heat = np.clip(attr, 0, None) if (attr >= 0).mean() > 0.5 else np.abs(attr)
    vmax = max(float(heat.max()), 1e-12)
    fig, axes = plt.subplots(2, n, figsize=(PAGE_WIDTH, PAGE_WIDTH / n * 1.75 + 0.4), squeeze=False,
                             constrained_layout=True)
    for j, f in enumerate(idx):
        axes[0, j].imshow(grid[f], cmap="gray")
        axes[0, j].imshow(heat[f], cmap=CMAPS["heat"], alpha=0.55, vmin=0, vmax=vmax)
        im = axes[1, j].imshow(heat[f], cmap=CMAPS["heat"], vmin=0, vmax=vmax)
        axes[0, j].set_title(f"{f / fps:.2f} s" if fps else f"frame {f}")
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes[:, -1].tolist(), label=attribution_label(expl), shrink=0.8)
    fig.suptitle(f"{expl.method}: {input_labels(expl)[index]}")
    return fig

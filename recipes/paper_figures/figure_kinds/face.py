"""Face-video figure: map strips over frames of a ``(time, height, width)`` explanation."""

from __future__ import annotations

import numpy as np

from avxai.explanation import Explanation
from avxai.viz.style import PAGE_WIDTH, new_figure
from avxai.viz.video import heat_norm, heat_overlay, is_time_only
from figure_kinds.labels import attribution_label, title_of


def figure_face_strip(expl: Explanation, index: int = 0, frames: int = 8):
    """Frames of a ``(time, height, width)`` explanation: the grey frame, and the map over it in the one
    signed colour map (negative values kept: blue, the score rises when the cell is removed; zero is white
    and transparent). A time-only map (constant over each frame) is drawn as a curve instead.

    Shape: ``expl.attribution`` and ``expl.grid`` are ``(batch, time, height, width)``.
    """
    attr = expl.attribution[index].numpy()
    grid = expl.grid[index].numpy()
    n = min(frames, attr.shape[0])
    idx = np.linspace(0, attr.shape[0] - 1, n).round().astype(int)
    fps = expl.metadata.get("modality", {}).get("fps") if isinstance(expl.metadata.get("modality"), dict) else None
    label = attribution_label(expl)
    if is_time_only(attr):
        fig = new_figure(PAGE_WIDTH, 2.0)
        ax = fig.subplots()
        t = np.arange(attr.shape[0]) / fps if fps else np.arange(1, attr.shape[0] + 1)
        ax.plot(t, attr.reshape(attr.shape[0], -1)[:, 0], color="k")
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_xlabel("time (s)" if fps else "frame")
        ax.set_ylabel(label)
        fig.suptitle(title_of(expl, index, extra="a time-only map (the same over the whole face)"))
        return fig
    norm = heat_norm(attr)
    cell = (PAGE_WIDTH - 0.8) / n
    fig = new_figure(PAGE_WIDTH, 2 * cell * grid.shape[1] / grid.shape[2] + 0.75)
    axes = fig.subplots(2, n, squeeze=False)
    lo, hi = float(grid.min()), float(grid.max())
    mappable = None
    for j, f in enumerate(idx):
        axes[0, j].imshow(grid[f], cmap="gray", vmin=lo, vmax=hi)
        grey = (grid[f] - lo) / max(hi - lo, 1e-12)
        mappable = heat_overlay(axes[1, j], grey, attr[f], norm)
        axes[0, j].set_title(f"{f / fps:.2f} s" if fps else f"frame {f + 1}")
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(mappable, ax=axes[:, -1].tolist(), label=label.replace(" when", "\nwhen"), fraction=0.08)
    fig.suptitle(title_of(expl, index))
    return fig

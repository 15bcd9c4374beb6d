"""Attribution maps over 1-D (time), 2-D (frequency x time) and 3-D grids (frames x height x width, or planes
such as (delta, mel, time)); the layout follows the grid's axis names (:func:`avxai.viz.layout.grid_layout`).

One sign convention: the attribution is the score drop when a cell is removed (red = the cell supports the
score, blue = removing it raises the score, white = 0), in the scorer's units, drawn with one signed map.
"""

from __future__ import annotations

import numpy as np
import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

from avxai.viz.axes import draw_segment_edges, draw_turns, show_plane, time_of, to_db  # noqa: E402
from avxai.viz.labels import attribution_label, title_of  # noqa: E402
from avxai.viz.layout import grid_layout, is_spectral  # noqa: E402
from avxai.viz.style import CMAPS, PAGE_WIDTH, SIGNED_CMAP, new_figure, signed_norm, styled  # noqa: E402

__all__ = ["plot_attribution", "to_db", "diverging_norm"]

#: kept for callers of the old name: :func:`avxai.viz.style.signed_norm`
diverging_norm = signed_norm


@styled
def plot_attribution(explanation, index: int = 0, title: str | None = None):
    """Input, attribution map and its time profile for one input of an explanation, at the page width.

    2-D grids: the spectrogram in dB, the attribution (score drop when removed, scorer's units) and the
    attribution summed over frequency against time, with the labelled turns as boundary lines. 1-D grids:
    the input and the attribution as curves. ``(time, height, width)`` grids: a strip of frames with the map.
    Other 3-D grids (e.g. a mel + delta grid ``(delta, mel, time)``): one row per plane.
    """
    attr = explanation.attribution[index].detach().cpu().numpy()
    grid = explanation.grid[index].detach().cpu().numpy()
    segments = explanation.metadata.get("segments")
    title = title or title_of(explanation, index)
    label = attribution_label(explanation)
    layout = grid_layout(explanation.axes)
    if layout == "plane":
        fig = new_figure(PAGE_WIDTH, 4.6)
        axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 3, 1.6]})
        spectral = is_spectral(explanation.axes[0], explanation.units)
        im = show_plane(axes[0], explanation, grid, "magnitude" if spectral else "value", xlabel=False)
        fig.colorbar(im, ax=axes[0], label="level (dB re max)" if spectral else "input value", pad=0.01,
                     fraction=0.04)
        im = show_plane(axes[1], explanation, attr, "signed", xlabel=False)
        fig.colorbar(im, ax=axes[1], label=label, pad=0.01, fraction=0.04)
        t = time_of(explanation, explanation.axes[1], attr.shape[1])
        axes[2].plot(t, attr.sum(axis=0), color="k", lw=0.9)
        axes[2].axhline(0, color="0.5", lw=0.5)
        units = label.split("(")[-1].rstrip(")") if label.endswith(")") else ""
        axes[2].set_ylabel("sum over freq." + (f"\n({units})" if units else ""))
        axes[2].set_xlabel(f"time ({explanation.units.get(explanation.axes[1], 'frame')})")
        fig.colorbar(im, ax=axes[2], pad=0.01, fraction=0.04).ax.set_visible(False)  # align with the maps
        for ax in axes:
            draw_turns(ax, segments, labels=ax is axes[0])
            draw_segment_edges(ax, explanation)
        fig.suptitle(title)
        return fig
    if layout == "curve":
        t_axis = explanation.axes[0]
        t = time_of(explanation, t_axis, attr.shape[0])
        fig = new_figure(PAGE_WIDTH, 3.0)
        axes = fig.subplots(2, 1, sharex=True)
        axes[0].plot(t, grid, color="k", lw=0.8)
        axes[0].set_ylabel("input")
        cmap = plt.get_cmap(SIGNED_CMAP)
        axes[1].bar(t, attr, width=(t[1] - t[0]) if len(t) > 1 else 1.0, color=cmap(signed_norm(attr)(attr)),
                    edgecolor="none")
        axes[1].axhline(0, color="0.5", lw=0.5)
        axes[1].set_ylabel(label)
        axes[1].set_xlabel(f"{t_axis} ({explanation.units.get(t_axis, 'cell')})")
        for ax in axes:
            draw_turns(ax, segments, labels=ax is axes[0])
            draw_segment_edges(ax, explanation)
        fig.suptitle(title)
        return fig
    if layout == "planes":
        return _plot_planes(explanation, attr, grid, title, label)
    if layout == "frames":
        n = min(8, attr.shape[0])
        frames = np.linspace(0, attr.shape[0] - 1, n).round().astype(int)
        fig = new_figure(PAGE_WIDTH, PAGE_WIDTH / n * 2 + 0.7)
        axes = fig.subplots(2, n, squeeze=False)
        norm = signed_norm(attr)
        for j, f in enumerate(frames):
            axes[0, j].imshow(grid[f], cmap="gray")
            im = axes[1, j].imshow(attr[f], cmap=CMAPS["attribution"], norm=norm)
            axes[0, j].set_title(f"frame {f + 1}")
            for ax in axes[:, j]:
                ax.axis("off")
        fig.colorbar(im, ax=axes[:, -1].tolist(), label=label, fraction=0.05)
        fig.suptitle(title)
        return fig
    raise ValueError(f"cannot plot an attribution over axes {tuple(explanation.axes)}")


def _plot_planes(explanation, attr: np.ndarray, grid: np.ndarray, title: str, label: str):
    """One row per index of the first axis: the plane (dB for a frequency axis) and its attribution."""
    plane_axes = tuple(explanation.axes[1:])
    spectral = is_spectral(plane_axes[0], explanation.units)
    n = attr.shape[0]
    fig = new_figure(PAGE_WIDTH, 1.5 * n + 0.9)
    axes = fig.subplots(n, 2, sharex=True, squeeze=False)
    norm = signed_norm(attr)
    for k in range(n):
        last = k == n - 1
        left = show_plane(axes[k, 0], explanation, grid[k], "magnitude" if spectral else "value", plane_axes,
                          xlabel=last)
        axes[k, 0].set_title(f"{explanation.axes[0]} {k + 1}", loc="left")
        right = show_plane(axes[k, 1], explanation, attr[k], "signed", plane_axes, norm=norm, ylabel=False,
                           xlabel=last)
    fig.colorbar(left, ax=axes[:, 0].tolist(), label="level (dB re max)" if spectral else "input value",
                 fraction=0.05, pad=0.01)
    fig.colorbar(right, ax=axes[:, 1].tolist(), label=label, fraction=0.05, pad=0.01)
    fig.suptitle(title)
    return fig

"""Figure of an extremal-perturbation explanation, as in the slides it started from: the input drawn once,
then per area a column with the mask (min / max / area) over the input x mask (maxPos / maxScore / target /
targetScore of the model on it, or the preserved score), and the area-growth curve under the input."""

from __future__ import annotations

import numpy as np
import matplotlib

matplotlib.use("Agg", force=False)
from matplotlib.colors import Normalize  # noqa: E402

from avxai.viz.axes import draw_segment_edges, draw_turns, show_plane, time_of, to_db  # noqa: E402
from avxai.viz.growth import draw_growth  # noqa: E402
from avxai.viz.pooling import pool_columns  # noqa: E402
from avxai.viz.labels import title_of, units_of, value_text  # noqa: E402
from avxai.viz.layout import grid_layout, is_spectral  # noqa: E402
from avxai.viz.style import CMAPS, COLUMN_WIDTH, OKABE_ITO, PAGE_WIDTH, WIDTHS, new_figure, styled  # noqa: E402

__all__ = ["plot_extremal"]


def _model_line(explanation, index: int, k: int) -> str:
    """``maxPos / maxScore`` and ``target / targetScore`` of the model on the preserved input (class outputs),
    else the preserved score."""
    s = explanation.scores
    if all(name in s for name in ("max_class", "max_score", "target", "target_score")):
        return (f"maxPos {int(s['max_class'][index, k])}\nmaxScore {float(s['max_score'][index, k]):.2f}\n"
                f"target {int(s['target'][index, k])}\ntargetScore {float(s['target_score'][index, k]):.2f}")
    if "preserved" in s:
        return f"preserved {value_text(float(s['preserved'][index, k]), units_of(explanation))}"
    return ""


def _mask_line(mask: np.ndarray, area: float) -> str:
    return f"area {area:g}\nkept {mask.mean():.3f}\nmin {mask.min():.2f} / max {mask.max():.2f}"


def _title(ax, text: str) -> None:
    ax.set_title(text, fontsize=7, linespacing=1.1)


@styled
def plot_extremal(explanation, index: int = 0, title: str | None = None, width: float = PAGE_WIDTH):
    """The input once, then one column per area: mask above, input x mask below, and the area growth.

    2-D grids (frequency x time) in dB re the input's maximum, frequency in Hz (mel bands too); 1-D grids as
    curves; ``(time, height, width)`` grids at the frame where the mask keeps the most; other 3-D grids
    (planes such as ``(delta, mel, time)``) at the plane where the masks keep the most. Labelled turns
    (``metadata["segments"]``) are boundary lines with their labels above the input. One colour bar per
    quantity (level in dB, mask). ``width``: 3.4 or 7.0 in.
    """
    if explanation.masks is None:
        raise ValueError("this explanation holds no masks; plot_extremal needs an extremal-perturbation result")
    if width not in WIDTHS:
        raise ValueError(f"width must be {COLUMN_WIDTH} or {PAGE_WIDTH} in (the print widths), got {width}")
    masks = explanation.masks[index].detach().cpu().numpy()  # (K, *grid)
    grid = explanation.grid[index].detach().cpu().numpy()
    areas = explanation.areas or [float(m.mean()) for m in masks]
    k = masks.shape[0]
    segments = explanation.metadata.get("segments")
    title = title or title_of(explanation, index)
    layout = grid_layout(explanation.axes)
    plane_axes = tuple(explanation.axes[-2:])
    where = ""
    if layout == "planes":  # the plane where the masks keep the most, as a 2-D grid
        plane = int(masks.sum(axis=(0, 2, 3)).argmax())
        grid, masks, layout = grid[plane], masks[:, plane], "plane"
        where = f"{explanation.axes[0]} {plane + 1}"
    if layout not in ("plane", "curve", "frames"):
        raise ValueError(f"cannot plot masks over axes {tuple(explanation.axes)}")
    fig = new_figure(width, 1.55 * 2 + 0.9 if width == PAGE_WIDTH else 1.2 * 2 + 1.0)
    spec = fig.add_gridspec(2, k + 1, width_ratios=[1.25] + [1] * k)
    axes = np.empty((2, k + 1), dtype=object)
    for r in range(2):
        for c in range(k + 1):
            if not (r == 1 and c == 0):
                axes[r, c] = fig.add_subplot(spec[r, c])
    if layout == "plane":
        spectral = is_spectral(plane_axes[0], explanation.units)
        # a plane wider than the figure is pooled to its width first (avxai.viz.pooling: levels by the maximum)
        shown = to_db(pool_columns(grid, "max")) if spectral else pool_columns(grid, "mean")
        norm = Normalize(float(shown.min()), float(shown.max()))
        kind = "db" if spectral else "value"
        im_level = show_plane(axes[0, 0], explanation, shown, kind, plane_axes, norm=norm)
        axes[0, 0].set_title("input" + (f", {where}" if where else ""), loc="left", pad=10 if segments else 4)
        draw_turns(axes[0, 0], segments, labels=True)
        draw_segment_edges(axes[0, 0], explanation)
        for i in range(k):
            kept = pool_columns(grid * masks[i], "max" if spectral else "mean")
            if spectral:  # dB re the input's maximum (not the kept part's), same floor
                kept = np.maximum(20 * np.log10(np.maximum(kept, 1e-12) / max(float(grid.max()), 1e-12)),
                                  float(shown.min()))
            im_mask = show_plane(axes[0, i + 1], explanation, masks[i], "mask", plane_axes, ylabel=i == 0,
                                 xlabel=False)
            _title(axes[0, i + 1], _mask_line(masks[i], areas[i]))
            show_plane(axes[1, i + 1], explanation, kept, kind, plane_axes, norm=norm, ylabel=i == 0)
            _title(axes[1, i + 1], _model_line(explanation, index, i))
            for ax in axes[:, i + 1]:
                ax.set_ylabel("")  # the input's frequency axis, labelled once
            for ax in axes[:, i + 1]:
                draw_turns(ax, segments, labels=False)
                draw_segment_edges(ax, explanation)
        fig.colorbar(im_mask, ax=axes[0, -1], label="mask (1 = kept)", fraction=0.08, pad=0.04)
        fig.colorbar(im_level, ax=axes[1, -1], label="level (dB re\ninput max)" if spectral else "input value",
                     fraction=0.08, pad=0.04)
    elif layout == "curve":
        t_axis = explanation.axes[0]
        t = time_of(explanation, t_axis, grid.shape[0])
        x_label = f"{t_axis} ({explanation.units.get(t_axis, 'cell')})"
        axes[0, 0].plot(t, grid, color="k", lw=0.8)
        axes[0, 0].set_title("input", loc="left", pad=10 if segments else 4)
        axes[0, 0].set_xlabel(x_label)
        draw_turns(axes[0, 0], segments, labels=True)
        draw_segment_edges(axes[0, 0], explanation)
        for i in range(k):
            axes[0, i + 1].plot(t, masks[i], color=OKABE_ITO[3], lw=0.9)
            axes[0, i + 1].set_ylim(-0.05, 1.05)
            _title(axes[0, i + 1], _mask_line(masks[i], areas[i]))
            axes[1, i + 1].plot(t, grid * masks[i], color="k", lw=0.8)
            _title(axes[1, i + 1], _model_line(explanation, index, i))
            axes[1, i + 1].set_xlabel(x_label)
            for ax in axes[:, i + 1]:
                draw_turns(ax, segments, labels=False)
                draw_segment_edges(ax, explanation)
        axes[0, 1].set_ylabel("mask (1 = kept)")
        axes[1, 1].set_ylabel("input x mask")
    else:  # frames: each area at the frame where its mask keeps the most
        lo, hi = float(grid.min()), float(grid.max())
        axes[0, 0].imshow(grid[int(masks.reshape(k, grid.shape[0], -1).sum(axis=(0, 2)).argmax())], cmap="gray",
                          vmin=lo, vmax=hi)
        axes[0, 0].set_title("input", loc="left")
        for i in range(k):
            frame = int(masks[i].reshape(masks[i].shape[0], -1).sum(axis=1).argmax())
            im_mask = axes[0, i + 1].imshow(masks[i][frame], cmap=CMAPS["mask"], vmin=0, vmax=1)
            _title(axes[0, i + 1], _mask_line(masks[i], areas[i]) + f"\nframe {frame + 1}")
            axes[1, i + 1].imshow(grid[frame] * masks[i][frame], cmap="gray", vmin=lo, vmax=hi)
            _title(axes[1, i + 1], _model_line(explanation, index, i))
        for ax in axes.ravel():
            if ax is not None:
                ax.set_xticks([])
                ax.set_yticks([])
        fig.colorbar(im_mask, ax=axes[0, -1], label="mask (1 = kept)", fraction=0.08, pad=0.04)
    growth_ax = fig.add_subplot(spec[1, 0])
    if explanation.scores.get("area_growth") is not None:
        draw_growth(growth_ax, explanation, indices=[index], labels=[""] * explanation.batch_size)
        growth_ax.set_title("area growth", loc="left")
    else:
        growth_ax.axis("off")
    fig.suptitle(title)
    return fig


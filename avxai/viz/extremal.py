"""Figure of an extremal-perturbation explanation: one row per area (input, mask, kept input) and the area curve."""

from __future__ import annotations

import numpy as np
import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

from avxai.viz.attribution import SEGMENT_COLOURS, draw_segments, extent_2d, to_db  # noqa: E402
from avxai.viz.layout import grid_layout, is_spectral  # noqa: E402


def _model_line(explanation, index: int, k: int) -> str:
    """``maxPos / maxScore / target / targetScore`` of the model on the preserved input (class outputs),
    else the preserved score."""
    s = explanation.scores
    if all(name in s for name in ("max_class", "max_score", "target", "target_score")):
        return (f"maxPos {int(s['max_class'][index, k])} / maxScore {float(s['max_score'][index, k]):.2f}\n"
                f"target {int(s['target'][index, k])} / targetScore {float(s['target_score'][index, k]):.2f}")
    if "preserved" in s:
        units = explanation.metadata.get("scorer", {}).get("units", "")
        return f"score {float(s['preserved'][index, k]):.3g} {units}".rstrip()
    return ""


def _mask_line(mask: np.ndarray, area: float) -> str:
    return f"min {mask.min():.2f} / max {mask.max():.2f}\narea {mask.mean():.3f} (asked {area:g})"


def _label_segments(ax, segments) -> None:
    ymax = ax.get_ylim()[1]
    for seg in segments or []:
        ax.text((seg["start_s"] + seg["end_s"]) / 2, ymax, seg["label"], ha="center", va="top", fontsize=9,
                fontweight="bold", color=SEGMENT_COLOURS.get(seg["label"], "w"))  # inside: clear of the title


def _growth_panel(ax, explanation, index: int) -> None:
    growth = explanation.scores.get("area_growth")
    areas = explanation.metadata.get("growth_areas") or explanation.areas
    if growth is None or areas is None:
        ax.axis("off")
        return
    ax.plot(areas, growth[index].detach().cpu().numpy(), "o-", color="k")
    ax.axhline(1.0, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("area (fraction of the grid kept)")
    ax.set_ylabel("preserved / unmasked score")
    ax.set_title("area growth")
    ax.grid(alpha=0.3)


def plot_extremal(explanation, index: int = 0, title: str | None = None, width: float = 13.0):
    """Per area one row: input, mask, input x mask; titled with the mask's min / max / area and the model's
    top class / score and target / target score on the preserved input; then the area-growth curve.

    2-D grids (frequency x time) in dB; 1-D grids as curves; ``(time, height, width)`` grids at the frame
    where the mask keeps the most; other 3-D grids (planes such as ``(delta, mel, time)``) at the plane where
    the masks keep the most, drawn as a 2-D grid. Labelled segments (``metadata["segments"]``) are shaded on time axes.
    Images carry colour bars (dB re the input's maximum; mask value, 1 = keep). ``width`` in inches (7 for a
    two-column paper's page width); the height follows.
    """
    if explanation.masks is None:
        raise ValueError("this explanation holds no masks; plot_extremal needs an extremal-perturbation result")
    masks = explanation.masks[index].detach().cpu().numpy()  # (K, *grid)
    grid = explanation.grid[index].detach().cpu().numpy()
    areas = explanation.areas or [float(m.mean()) for m in masks]
    k = masks.shape[0]
    segments = explanation.metadata.get("segments")
    meta = explanation.metadata
    title = title or (f"extremal ({meta.get('variant', '')}, {meta.get('perturbation', '')}): "
                      f"{meta.get('scorer', {}).get('scorer', '')}")
    layout = grid_layout(explanation.axes)
    plane_axes = tuple(explanation.axes[-2:])
    if layout == "planes":  # the plane where the masks keep the most, as a 2-D grid
        plane = int(masks.sum(axis=(0, 2, 3)).argmax())
        grid, masks, layout = grid[plane], masks[:, plane], "plane"
        title = f"{title} ({explanation.axes[0]} {plane})"
    if not width > 0:
        raise ValueError(f"width must be > 0 inches, got {width}")
    fig = plt.figure(figsize=(width, (2.6 * k + 2.8) * width / 13.0), constrained_layout=True)
    spec = fig.add_gridspec(k + 1, 3, height_ratios=[1] * k + [0.9])
    if layout == "plane":
        extent, f_label, t_label = extent_2d(explanation, plane_axes)
        spectral = is_spectral(plane_axes[0], explanation.units)
        shown = to_db(grid) if spectral else grid
        vmin, vmax = float(shown.min()), float(shown.max())
        for i in range(k):
            kept = grid * masks[i]
            if spectral:  # dB relative to the input's maximum (not the kept part's), same floor
                kept = np.maximum(20 * np.log10(np.maximum(kept, 1e-12) / max(float(grid.max()), 1e-12)), vmin)
            value = "dB re max" if spectral else "input value"
            panels = [(shown, "magma", "input" + (" (dB)" if spectral else ""), (vmin, vmax), value),
                      (masks[i], "viridis", _mask_line(masks[i], areas[i]), (0.0, 1.0), "mask (1 = keep)"),
                      (kept, "magma", _model_line(explanation, index, i), (vmin, vmax), value)]
            for j, (img, cmap, text, (lo, hi), bar) in enumerate(panels):
                ax = fig.add_subplot(spec[i, j])
                im = ax.imshow(img, origin="lower", aspect="auto", extent=extent, cmap=cmap, vmin=lo, vmax=hi)
                fig.colorbar(im, ax=ax, label=bar if i == k - 1 else None, pad=0.01, fraction=0.05)
                ax.set_title(text, fontsize=8)
                ax.set_ylabel(f_label if j == 0 else "")
                ax.set_xlabel(t_label if i == k - 1 else "")
                draw_segments(ax, segments)
                if i == 0 and j == 0:
                    _label_segments(ax, segments)
    elif layout == "curve":
        t_axis = explanation.axes[0]
        t = np.asarray(explanation.coordinates.get(t_axis, np.arange(grid.shape[0])))
        for i in range(k):
            for j, (curve, text) in enumerate([(grid, "input"), (masks[i], _mask_line(masks[i], areas[i])),
                                               (grid * masks[i], _model_line(explanation, index, i))]):
                ax = fig.add_subplot(spec[i, j])
                ax.plot(t, curve, color="k" if j != 1 else "tab:green", lw=0.9)
                if j == 1:
                    ax.set_ylim(-0.05, 1.05)
                ax.set_title(text, fontsize=8)
                ax.set_xlabel(f"{t_axis} ({explanation.units.get(t_axis, 'cell')})" if i == k - 1 else "")
                draw_segments(ax, segments)
    elif layout == "frames":
        for i in range(k):
            frame = int(masks[i].reshape(masks[i].shape[0], -1).sum(axis=1).argmax())
            for j, (img, cmap, text, lim) in enumerate([
                    (grid[frame], "gray", f"input, frame {frame}", (None, None)),
                    (masks[i][frame], "viridis", _mask_line(masks[i], areas[i]), (0.0, 1.0)),
                    (grid[frame] * masks[i][frame], "gray", _model_line(explanation, index, i), (None, None))]):
                ax = fig.add_subplot(spec[i, j])
                im = ax.imshow(img, cmap=cmap, vmin=lim[0], vmax=lim[1])
                ax.set_title(text, fontsize=8)
                ax.axis("off")
                if j == 1:
                    fig.colorbar(im, ax=ax, label="mask (1 = keep)" if i == k - 1 else None, pad=0.01,
                                 fraction=0.05)
    else:
        plt.close(fig)
        raise ValueError(f"cannot plot masks over axes {tuple(explanation.axes)}")
    _growth_panel(fig.add_subplot(spec[k, :]), explanation, index)
    fig.suptitle(title, fontsize=10)
    return fig


__all__ = ["plot_extremal"]

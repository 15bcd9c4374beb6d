"""Attribution maps over 1-D (time), 2-D (frequency x time) and 3-D grids (frames x height x width, or planes
such as (delta, mel, time)); the layout follows the grid's axis names (:func:`avxai.viz.layout.grid_layout`)."""

from __future__ import annotations

import numpy as np
import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from avxai.viz.layout import grid_layout, is_spectral  # noqa: E402

SEGMENT_COLOURS = {"A": "tab:green", "B": "tab:orange"}


def to_db(magnitude: np.ndarray, floor_db: float = -80.0) -> np.ndarray:
    """Magnitude -> dB relative to the maximum, floored at ``floor_db``."""
    ref = max(float(np.max(magnitude)), 1e-12)
    return np.maximum(20 * np.log10(np.maximum(magnitude, 1e-12) / ref), floor_db)


def diverging_norm(values: np.ndarray) -> TwoSlopeNorm:
    """A colour norm centred on 0 (blue = against, red = for the result)."""
    bound = max(float(np.abs(values).max()), 1e-12)
    return TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)


def draw_segments(ax, segments) -> None:
    """Shade labelled time segments (dicts with start_s, end_s, label) and draw their boundaries."""
    for seg in segments or []:
        colour = SEGMENT_COLOURS.get(seg["label"], "tab:grey")
        ax.axvspan(seg["start_s"], seg["end_s"], color=colour, alpha=0.12, lw=0)
        for x in (seg["start_s"], seg["end_s"]):
            ax.axvline(x, color="k", lw=0.8, ls="--", alpha=0.7)


def extent_2d(explanation, axes: "tuple[str, str] | None" = None) -> tuple[list[float], str, str]:
    """imshow extent and axis labels of a (freq|mel, time) plane: the explanation's last two axes, or ``axes``."""
    f_axis, t_axis = tuple(explanation.axes[-2:]) if axes is None else axes
    t = np.asarray(explanation.coordinates.get(t_axis, np.arange(explanation.grid.shape[-1])))
    f = np.asarray(explanation.coordinates.get(f_axis, np.arange(explanation.grid.shape[-2])))
    dt = (t[1] - t[0]) if len(t) > 1 else 1.0
    units = explanation.units
    if f_axis == "mel":  # mel bands are not evenly spaced in Hz: show band index, label in Hz
        extent = [t[0] - dt / 2, t[-1] + dt / 2, -0.5, len(f) - 0.5]
        f_label = "mel band"
    else:
        df = (f[1] - f[0]) if len(f) > 1 else 1.0
        extent = [t[0] - dt / 2, t[-1] + dt / 2, f[0] - df / 2, f[-1] + df / 2]
        f_label = f"frequency ({units.get(f_axis, 'bin')})"
    return extent, f_label, f"time ({units.get(t_axis, 'frame')})"


def plot_attribution(explanation, index: int = 0, title: str | None = None):
    """Input, attribution map and its time profile for one input of an explanation.

    2-D grids: spectrogram in dB, the attribution as a diverging heat map (score units; red = the
    region supports the result), and the attribution summed over frequency against time with the
    labelled segments. 1-D grids: the two curves. ``(time, height, width)`` grids: a strip of frames with
    the heat map. Other 3-D grids (e.g. a mel + delta grid ``(delta, mel, time)``): one row per plane.
    """
    attr = explanation.attribution[index].detach().cpu().numpy()
    grid = explanation.grid[index].detach().cpu().numpy()
    units = explanation.metadata.get("scorer", {}).get("units", "")
    segments = explanation.metadata.get("segments")
    title = title or f"{explanation.method}: {explanation.metadata.get('scorer', {}).get('scorer', '')}"
    layout = grid_layout(explanation.axes)
    if layout == "plane":
        extent, f_label, t_label = extent_2d(explanation)
        fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True,
                                 gridspec_kw={"height_ratios": [3, 3, 1.4]}, constrained_layout=True)
        im = axes[0].imshow(to_db(grid), origin="lower", aspect="auto", extent=extent, cmap="magma")
        fig.colorbar(im, ax=axes[0], label="magnitude (dB re max)")
        axes[0].set_ylabel(f_label)
        axes[0].set_title(title)
        im = axes[1].imshow(attr, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r",
                            norm=diverging_norm(attr))
        fig.colorbar(im, ax=axes[1], label=f"score drop ({units})" if units else "attribution")
        axes[1].set_ylabel(f_label)
        t = np.asarray(explanation.coordinates.get(explanation.axes[1], np.arange(attr.shape[1])))
        profile = attr.sum(axis=0)
        axes[2].plot(t, profile, color="k", lw=1)
        axes[2].axhline(0, color="grey", lw=0.5)
        axes[2].set_ylabel("sum over\nfrequency")
        axes[2].set_xlabel(t_label)
        fig.colorbar(im, ax=axes[2]).remove()
        for ax in axes:
            draw_segments(ax, segments)
        if segments:
            ymax = axes[0].get_ylim()[1]
            for seg in segments:
                axes[0].text((seg["start_s"] + seg["end_s"]) / 2, ymax, seg["label"], ha="center", va="top",
                             fontsize=10, fontweight="bold", color=SEGMENT_COLOURS.get(seg["label"], "w"))  # inside
        return fig
    if layout == "curve":
        t_axis = explanation.axes[0]
        t = np.asarray(explanation.coordinates.get(t_axis, np.arange(attr.shape[0])))
        fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True, constrained_layout=True)
        axes[0].plot(t, grid, color="k", lw=0.8)
        axes[0].set_title(title)
        axes[1].bar(t, attr, width=(t[1] - t[0]) if len(t) > 1 else 1.0,
                    color=np.where(attr >= 0, "tab:red", "tab:blue"))
        axes[1].set_ylabel(f"attribution ({units})" if units else "attribution")
        axes[1].set_xlabel(f"{t_axis} ({explanation.units.get(t_axis, 'cell')})")
        for ax in axes:
            draw_segments(ax, segments)
        return fig
    if layout == "planes":
        return _plot_planes(explanation, attr, grid, title, units)
    if layout == "frames":
        n = min(8, attr.shape[0])
        frames = np.linspace(0, attr.shape[0] - 1, n).round().astype(int)
        fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.6), constrained_layout=True, squeeze=False)
        norm = diverging_norm(attr)
        for j, f in enumerate(frames):
            axes[0, j].imshow(grid[f], cmap="gray")
            im = axes[1, j].imshow(attr[f], cmap="RdBu_r", norm=norm)
            axes[0, j].set_title(f"frame {f}", fontsize=8)
            for ax in axes[:, j]:
                ax.axis("off")
        fig.colorbar(im, ax=axes[1, :].tolist(), label=f"attribution ({units})" if units else "attribution")
        fig.suptitle(title)
        return fig
    raise ValueError(f"cannot plot an attribution over axes {tuple(explanation.axes)}")


def _plot_planes(explanation, attr: np.ndarray, grid: np.ndarray, title: str, units: str):
    """One row per index of the first axis: the plane (dB for a frequency axis) and its attribution."""
    plane_axes = tuple(explanation.axes[1:])
    extent, f_label, t_label = extent_2d(explanation, plane_axes)
    spectral = is_spectral(plane_axes[0], explanation.units)
    n = attr.shape[0]
    fig, axes = plt.subplots(n, 2, figsize=(11, 2.4 * n + 0.6), sharex=True, constrained_layout=True, squeeze=False)
    norm = diverging_norm(attr)
    for k in range(n):
        shown = to_db(grid[k]) if spectral else grid[k]
        im = axes[k, 0].imshow(shown, origin="lower", aspect="auto", extent=extent, cmap="magma")
        fig.colorbar(im, ax=axes[k, 0], label="dB re max" if spectral else "input value")
        axes[k, 0].set_ylabel(f"{explanation.axes[0]} {k}\n{f_label}")
        im = axes[k, 1].imshow(attr[k], origin="lower", aspect="auto", extent=extent, cmap="RdBu_r", norm=norm)
        fig.colorbar(im, ax=axes[k, 1], label=f"attribution ({units})" if units else "attribution")
    for ax in axes[-1]:
        ax.set_xlabel(t_label)
    fig.suptitle(title)
    return fig

"""Time-frequency figures: a spectrogram with one attribution map per input (A-B-A turns drawn when the
metadata has ``segments``), and every method's attribution over time on the A-B-A task."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import TwoSlopeNorm

from avxai.explanation import Explanation
from avxai.viz.attribution import draw_segments, extent_2d, to_db
from avxai.viz.style import CMAPS, METHOD_COLOURS, PAGE_WIDTH, method_colour
from figure_kinds.labels import attribution_label, input_labels


def figure_aba(expl: Explanation):
    """Spectrogram, then one attribution map per explained input, with the A/B segment boundaries.

    Shape: ``expl.attribution`` is ``(batch, freq|mel, time)``.
    """
    segments = expl.metadata.get("segments") or []
    grid = expl.grid[0].numpy()
    attr = expl.attribution.numpy()
    if attr.ndim != 3:
        raise ValueError("the A-B-A figure needs a (freq|mel, time) explanation")
    extent, f_label, t_label = extent_2d(expl)
    rows = 1 + expl.batch_size
    fig, axes = plt.subplots(rows, 1, figsize=(PAGE_WIDTH * 0.62, 1.35 * rows), sharex=True, squeeze=False,
                             constrained_layout=True)
    axes = axes[:, 0]
    im = axes[0].imshow(to_db(grid), origin="lower", aspect="auto", extent=extent, cmap=CMAPS["magnitude"])
    fig.colorbar(im, ax=axes[0], label="dB re max", pad=0.01)
    axes[0].set_ylabel(f_label)
    ymax = axes[0].get_ylim()[1]
    for seg in segments:
        axes[0].text((seg["start_s"] + seg["end_s"]) / 2, ymax, seg["label"], ha="center", va="bottom",
                     fontweight="bold")
    signed = (attr < 0).any()
    bound = max(float(np.abs(attr).max()), 1e-12)
    for i, label in enumerate(input_labels(expl)):
        ax = axes[1 + i]
        if signed:
            im = ax.imshow(attr[i], origin="lower", aspect="auto", extent=extent, cmap=CMAPS["attribution"],
                           norm=TwoSlopeNorm(0.0, -bound, bound))
        else:
            im = ax.imshow(attr[i], origin="lower", aspect="auto", extent=extent, cmap=CMAPS["heat"], vmin=0,
                           vmax=bound)
        fig.colorbar(im, ax=ax, label=attribution_label(expl), pad=0.01)
        ax.set_ylabel(f_label)
        ax.set_title(f"{expl.method}: {label}", loc="left")
    for ax in axes:
        for seg in segments:
            for x in (seg["start_s"], seg["end_s"]):
                ax.axvline(x, color="k", lw=0.7, ls="--", alpha=0.8)
    axes[-1].set_xlabel(t_label)
    return fig


def figure_aba_methods(expls: dict[str, Explanation]):
    """Per method, the positive attribution summed over frequency against time (each input scaled to its max)."""
    order = list(METHOD_COLOURS)
    names = sorted(expls, key=lambda m: (order.index(m) if m in order else len(order), m))
    first = expls[names[0]]
    n_inputs = first.batch_size
    fig, axes = plt.subplots(len(names), n_inputs, figsize=(PAGE_WIDTH, 0.9 * len(names) + 0.4), sharex=True,
                             sharey=True, squeeze=False, constrained_layout=True)
    for r, name in enumerate(names):
        expl = expls[name]
        t = np.asarray(expl.coordinates.get(expl.axes[-1], np.arange(expl.attribution.shape[-1])))
        for c in range(n_inputs):
            ax = axes[r, c]
            profile = np.clip(expl.attribution[c].numpy(), 0, None).reshape(-1, len(t)).sum(axis=0)
            profile = profile / max(profile.max(), 1e-12)
            ax.fill_between(t, profile, color=method_colour(name), alpha=0.8, lw=0)
            draw_segments(ax, expl.metadata.get("segments"))
            ax.set_ylim(0, 1.05)
            ax.set_yticks([0, 1])
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center")
            if r == 0:
                ax.set_title(input_labels(expl)[c])
    for c in range(n_inputs):
        axes[-1, c].set_xlabel("time (s)")
    fig.suptitle("positive attribution over time, scaled to its maximum (shaded: A / B turns)")
    return fig

"""Time-frequency figures: a spectrogram with one attribution map per input (A-B-A turns drawn when the
metadata has ``segments``), and every method's attribution over time on the A-B-A task."""

from __future__ import annotations

import numpy as np

from avxai.explanation import Explanation
from avxai.viz.axes import draw_turns, show_plane, time_of, to_db
from avxai.viz.style import METHOD_COLOURS, PAGE_WIDTH, method_colour, new_figure, signed_norm
from figure_kinds.labels import attribution_label, input_labels, title_of


def figure_aba(expl: Explanation):
    """Spectrogram, then one attribution map per explained input (one signed colour map, zero white, one
    colour bar for all), with the turn boundaries as dashed lines and their labels above the spectrogram.

    Shape: ``expl.attribution`` is ``(batch, freq|mel, time)``.
    """
    segments = expl.metadata.get("segments") or []
    grid = expl.grid[0].numpy()
    attr = expl.attribution.numpy()
    if attr.ndim != 3:
        raise ValueError("the A-B-A figure needs a (freq|mel, time) explanation")
    rows = 1 + expl.batch_size
    fig = new_figure(PAGE_WIDTH, 1.25 * rows + 0.55)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    im = show_plane(axes[0], expl, to_db(grid), "db", xlabel=False)
    fig.colorbar(im, ax=axes[0], label="level\n(dB re max)", pad=0.01, fraction=0.04)
    draw_turns(axes[0], segments, labels=True)
    norm = signed_norm(attr)
    labels = input_labels(expl)
    for i in range(expl.batch_size):
        ax = axes[1 + i]
        im = show_plane(ax, expl, attr[i], "signed", norm=norm, xlabel=i == expl.batch_size - 1)
        ax.set_title(labels[i] or expl.method, loc="left")
        draw_turns(ax, segments, labels=False)
    fig.colorbar(im, ax=axes[1:].tolist(), label=attribution_label(expl).replace(" when", "\nwhen"), pad=0.01,
                 fraction=0.04)
    fig.suptitle(title_of(expl, 0).replace(f" ({labels[0]})", "") if labels[0] else title_of(expl, 0))
    return fig


def figure_aba_methods(expls: dict[str, Explanation]):
    """Per method, the attribution summed over frequency against time (each input scaled to its largest
    absolute value, so the sign stays: above 0 the turn supports the score), turn boundaries dashed."""
    order = list(METHOD_COLOURS)
    names = sorted(expls, key=lambda m: (order.index(m) if m in order else len(order), m))
    first = expls[names[0]]
    n_inputs = first.batch_size
    fig = new_figure(PAGE_WIDTH, 0.75 * len(names) + 0.9)
    axes = fig.subplots(len(names), n_inputs, sharex=True, sharey=True, squeeze=False)
    for r, name in enumerate(names):
        expl = expls[name]
        t = time_of(expl, expl.axes[-1], expl.attribution.shape[-1])
        for c in range(n_inputs):
            ax = axes[r, c]
            profile = expl.attribution[c].numpy().reshape(-1, len(t)).sum(axis=0)
            profile = profile / max(np.abs(profile).max(), 1e-12)
            ax.fill_between(t, profile, color=method_colour(name), alpha=0.85, lw=0)
            ax.axhline(0, color="0.5", lw=0.5)
            ax.set_ylim(-1.05, 1.05)
            ax.set_yticks([-1, 0, 1])
            draw_turns(ax, expl.metadata.get("segments"), labels=r == 0)
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center")
            if r == 0:
                ax.set_title(input_labels(expl)[c] or "", pad=10)
    for c in range(n_inputs):
        axes[-1, c].set_xlabel("time (s)")
    fig.suptitle("attribution summed over frequency, scaled to its largest absolute value (score drop when "
                 "removed; dashed: turn boundaries)")
    return fig

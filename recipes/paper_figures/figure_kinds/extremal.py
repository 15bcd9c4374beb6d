"""Extremal-perturbation figures: the method's own per-area panel and the area-growth curve."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from avxai.explanation import Explanation
from avxai.viz import layout_of, plot_explanation
from avxai.viz.style import COLUMN_WIDTH, PAGE_WIDTH
from figure_kinds.labels import input_labels


def figure_method_panel(expl: Explanation, index: int = 0):
    """The method's own figure at the page width (the extremal per-area panel, avxai.viz.extremal)."""
    if expl.method == "extremal" and layout_of(expl) == "masks":  # not a video / audio-visual layout
        return plot_explanation(expl, index=index, width=PAGE_WIDTH)
    return plot_explanation(expl, index=index)


def figure_area_growth(expl: Explanation):
    """Preserved score / unmasked score against the kept area, one line per input."""
    growth = expl.scores.get("area_growth")
    areas = expl.metadata.get("growth_areas") or expl.areas
    if growth is None or areas is None:
        raise ValueError("this explanation has no area-growth scores (scores['area_growth'] and growth_areas)")
    growth = np.atleast_2d(growth.numpy())
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.2), constrained_layout=True)
    for i, label in enumerate(input_labels(expl)):
        ax.plot(np.asarray(areas) * 100, growth[i], marker="o", ms=3, label=label)
    ax.axhline(1.0, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("kept area (% of the grid)")
    ax.set_ylabel("preserved score / unmasked score")
    ax.set_ylim(bottom=min(0.0, float(np.nanmin(growth)) - 0.05))
    ax.legend(frameon=False)
    return fig

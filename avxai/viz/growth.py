"""Area growth: the score the kept area preserves, against the area (extremal perturbation).

What is compared depends on the score (:func:`avxai.viz.labels.growth_kind`): dB scores (SDR, SI-SDR) as the
preserved score minus the unmasked score in dB (a ratio of two dB values means nothing and flips sign when
the SDR is negative); positive bounded linear scores (probability, cosine) as preserved / unmasked; other
linear scores (logits) as the preserved score beside the unmasked one. One panel per kind of score.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from avxai.viz.labels import growth_kind, growth_values, input_labels, score_phrase, unmasked_of, units_of
from avxai.viz.style import COLUMN_WIDTH, OKABE_ITO, legend_below, new_figure, styled

__all__ = ["draw_growth", "plot_area_growth", "growth_axis_label"]


def growth_axis_label(kind: str, units: str) -> str:
    """The y label of an area-growth panel of ``kind`` (``"db"``, ``"ratio"``, ``"score"``)."""
    if kind == "db":
        return f"preserved - unmasked ({units})"
    if kind == "ratio":
        return "preserved / unmasked"
    return f"preserved score ({units})" if units else "preserved score"


def draw_growth(ax, explanation, indices: Sequence[int] | None = None, colours: Sequence[str] | None = None,
                labels: Sequence[str] | None = None) -> str:
    """Draw the area-growth curve of the given inputs on ``ax`` (kept area in % on x); returns the kind."""
    indices = list(range(explanation.batch_size)) if indices is None else list(indices)
    units = units_of(explanation)
    unmasked = [unmasked_of(explanation, i) for i in indices]
    kind = growth_kind(units, unmasked)
    labels = list(labels) if labels is not None else input_labels(explanation)
    for n, i in enumerate(indices):
        values = growth_values(explanation, i)
        if values is None:
            continue
        areas, preserved = values
        u = unmasked_of(explanation, i)
        y = preserved - u if kind == "db" else preserved / u if kind == "ratio" else preserved
        colour = (colours[n] if colours else OKABE_ITO[(n % 7) + 1] if len(indices) > 1 else "k")
        ax.plot(100 * np.asarray(areas), y, "o-", ms=3, color=colour, label=labels[i] if labels[i] else None)
        if kind == "score":
            ax.axhline(u, color=colour, lw=0.6, ls=":")
            if n == 0:
                ax.text(1.0, u, "unmasked", transform=ax.get_yaxis_transform(), ha="right", va="bottom",
                        fontsize=7, color="0.3")
    if kind in ("db", "ratio"):
        ax.axhline(0.0 if kind == "db" else 1.0, color="0.4", lw=0.6, ls="--")
        ax.text(1.0, 0.0 if kind == "db" else 1.0, "unmasked", transform=ax.get_yaxis_transform(), ha="right",
                va="bottom", fontsize=7, color="0.3")
    ax.set_xlabel("kept area (% of the grid)")
    ax.set_ylabel(growth_axis_label(kind, units))
    return kind


@styled
def plot_area_growth(explanations, title: str | None = None):
    """Area growth of one explanation or several, one column-width panel per kind of score (dB, ratio of a
    positive score, raw linear score); the dashed line is the unmasked score (0 dB difference, ratio 1),
    dotted lines the unmasked scores of raw linear scores."""
    explanations = [explanations] if hasattr(explanations, "scores") else list(explanations)
    groups: dict[tuple[str, str], list] = {}
    for expl in explanations:
        if growth_values(expl, 0) is None:
            raise ValueError("this explanation has no area-growth scores (scores['area_growth'] and growth_areas)")
        units = units_of(expl)
        kind = growth_kind(units, [unmasked_of(expl, i) for i in range(expl.batch_size)])
        groups.setdefault((kind, units), []).append(expl)
    fig = new_figure(COLUMN_WIDTH, 1.9 * len(groups) + 0.3)
    axes = np.atleast_1d(fig.subplots(len(groups), 1, squeeze=False)[:, 0])
    for ax, ((kind, units), members) in zip(axes, groups.items()):
        n = 0
        for expl in members:
            names = input_labels(expl)
            labels = [(f"{score_phrase(expl)}" + (f", {names[i]}" if names[i] else "")) if len(members) > 1
                      else names[i] for i in range(expl.batch_size)]
            colours = [OKABE_ITO[((n + i) % 7) + 1] for i in range(expl.batch_size)] \
                if len(members) > 1 or expl.batch_size > 1 else None
            draw_growth(ax, expl, colours=colours, labels=labels)
            n += expl.batch_size
        if len(members) == 1:
            ax.set_title(score_phrase(members[0]), loc="left")
        if ax.get_legend_handles_labels()[0]:
            legend_below(ax, ncol=1 if n > 2 else 2)
    if title:
        fig.suptitle(title)
    return fig

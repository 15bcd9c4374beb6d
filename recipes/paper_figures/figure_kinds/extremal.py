"""Extremal-perturbation figures: the method's own per-area panel and the area-growth curve."""

from __future__ import annotations

from avxai.explanation import Explanation
from avxai.viz import layout_of, plot_explanation
from avxai.viz.growth import plot_area_growth
from avxai.viz.style import PAGE_WIDTH


def figure_method_panel(expl: Explanation, index: int = 0):
    """The method's own figure at the page width (the extremal per-area panel, avxai.viz.extremal)."""
    if expl.method == "extremal" and layout_of(expl) == "masks":  # not a video / audio-visual layout
        return plot_explanation(expl, index=index, width=PAGE_WIDTH)
    return plot_explanation(expl, index=index)


def figure_area_growth(expl: "Explanation | list[Explanation]"):
    """The area growth of one explanation or several, one column-width panel per kind of score: dB scores as
    preserved - unmasked (dB), positive bounded scores as preserved / unmasked, others as the preserved score
    (:func:`avxai.viz.growth.plot_area_growth`)."""
    return plot_area_growth(expl)

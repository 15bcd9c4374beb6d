"""Figures of explanations. ``plot_explanation`` picks a layout by what the explanation holds and by its grid's
axis names and units (:func:`avxai.viz.layout.layout_of`), never by the method's name. Every figure is made at a
print width (3.4 or 7.0 in) with text >= 7 pt (:mod:`avxai.viz.style`), titled from the explanation's metadata
(:mod:`avxai.viz.labels`)."""

from __future__ import annotations

from typing import Callable

from avxai.viz.attribution import plot_attribution
from avxai.viz.curves import plot_faithfulness_curves
from avxai.viz.extremal import plot_extremal
from avxai.viz.growth import plot_area_growth
from avxai.viz.layout import layout_of
from avxai.viz.separation import plot_mask_vs_ibm
from avxai.viz.style import check_print, paper_style, save_figure
from avxai.viz.video import plot_frames_strip, plot_pca_rgb, plot_video_explanation

#: layout (:func:`layout_of`) -> plotting function ``f(explanation, index, **kwargs) -> Figure``
PLOTTERS: dict[str, Callable] = {
    "pca-rgb": plot_pca_rgb,  # PCA-RGB images beside their inputs
    "video": plot_video_explanation,  # face video or audio-visual: frames, heat maps, shares
    "masks": plot_extremal,  # one mask per area (extremal perturbation): one row per area
    "attribution": plot_attribution,  # an attribution over a 1-D, 2-D or 3-D grid
}


def plot_explanation(explanation, index: int = 0, **kwargs):
    """A matplotlib figure for input ``index`` of ``explanation``."""
    if not 0 <= index < explanation.batch_size:
        raise ValueError(f"index {index} is out of range for an explanation of {explanation.batch_size} inputs")
    return PLOTTERS[layout_of(explanation)](explanation, index=index, **kwargs)


__all__ = ["PLOTTERS", "plot_explanation", "layout_of", "plot_attribution", "plot_extremal",
           "plot_video_explanation", "plot_pca_rgb", "plot_frames_strip", "plot_area_growth", "plot_mask_vs_ibm",
           "plot_faithfulness_curves", "paper_style", "save_figure", "check_print"]

"""Figures of explanations. ``plot_explanation`` picks a layout by method, then by the grid's axes."""

from __future__ import annotations

from typing import Callable

from avxai.viz.attribution import plot_attribution
from avxai.viz.extremal import plot_extremal
from avxai.viz.video import plot_pca_rgb, plot_video_explanation

#: method name -> plotting function ``f(explanation, index, **kwargs) -> Figure``; methods with masks
#: (extremal perturbation) register their own per-area layout here.
PLOTTERS: dict[str, Callable] = {}
PLOTTERS["extremal"] = plot_extremal
PLOTTERS["pca-rgb"] = plot_pca_rgb

#: modality kind (``metadata["modality"]["kind"]``) -> plotting function, used before ``PLOTTERS``: the layout
#: of a face video or an audio-visual input (frames, heat maps, shares) serves every method on it.
MODALITY_PLOTTERS: dict[str, Callable] = {"face-video": plot_video_explanation,
                                          "audio-visual": plot_video_explanation}


def plot_explanation(explanation, index: int = 0, **kwargs):
    """A matplotlib figure for input ``index`` of ``explanation``."""
    if not 0 <= index < explanation.batch_size:
        raise ValueError(f"index {index} is out of range for an explanation of {explanation.batch_size} inputs")
    kind = explanation.metadata.get("modality", {}).get("kind")
    plotter = MODALITY_PLOTTERS.get(kind) or PLOTTERS.get(explanation.method, plot_attribution)
    return plotter(explanation, index=index, **kwargs)


__all__ = ["PLOTTERS", "MODALITY_PLOTTERS", "plot_explanation", "plot_attribution", "plot_extremal",
           "plot_video_explanation", "plot_pca_rgb"]

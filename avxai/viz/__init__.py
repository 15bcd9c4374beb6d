"""Figures of explanations. ``plot_explanation`` picks a layout by method, then by the grid's axes."""

from __future__ import annotations

from typing import Callable

from avxai.viz.attribution import plot_attribution
from avxai.viz.extremal import plot_extremal

#: method name -> plotting function ``f(explanation, index, **kwargs) -> Figure``; methods with masks
#: (extremal perturbation) register their own per-area layout here.
PLOTTERS: dict[str, Callable] = {}
PLOTTERS["extremal"] = plot_extremal


def plot_explanation(explanation, index: int = 0, **kwargs):
    """A matplotlib figure for input ``index`` of ``explanation``."""
    if not 0 <= index < explanation.batch_size:
        raise ValueError(f"index {index} is out of range for an explanation of {explanation.batch_size} inputs")
    plotter = PLOTTERS.get(explanation.method, plot_attribution)
    return plotter(explanation, index=index, **kwargs)


__all__ = ["PLOTTERS", "plot_explanation", "plot_attribution", "plot_extremal"]

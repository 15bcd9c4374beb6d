"""Deletion / insertion curves of several methods side by side (from curves or their saved dicts).

Each method keeps its Okabe-Ito colour (:data:`avxai.viz.style.METHOD_COLOURS`) and a line style of its own,
the legend sits under the panels (off the curves), and the y label says what the values mean, negative ones
included (a score below the baseline's, e.g. an SDR that drops below the fully removed input's).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from avxai.viz.style import PAGE_WIDTH, method_colour, new_figure, styled

__all__ = ["plot_faithfulness_curves"]

#: line styles cycled over methods, so curves differ without colour too
_STYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))

#: the y label per normalisation, negative values explained
_YLABEL = {
    "range": "score (1 = input, 0 = baseline)",
    "unmasked": "score / unmasked score",
    "none": "score (scorer's units)",
}


def _as_arrays(curve: Any) -> tuple[np.ndarray, np.ndarray, float, str]:
    """(fractions (k,), mean curve (k,), mean AUC, normalise) of a FaithfulnessCurve or its ``to_dict()``."""
    if hasattr(curve, "to_dict"):
        curve = curve.to_dict()
    if not isinstance(curve, Mapping) or "fractions" not in curve or "scores" not in curve:
        raise TypeError("a curve is a FaithfulnessCurve or its to_dict() (keys fractions, scores, auc)")
    f = np.asarray(curve["fractions"], dtype=float)
    s = np.atleast_2d(np.asarray(curve["scores"], dtype=float))
    auc = float(np.nanmean(np.asarray(curve.get("auc", [np.nan]), dtype=float)))
    return f, np.nanmean(s, axis=0), auc, curve.get("normalise", "none")


@styled
def plot_faithfulness_curves(deletion: Mapping[str, Any], insertion: Mapping[str, Any] | None = None,
                             title: str | None = None):
    """Deletion (and insertion) curves at the page width, one line per method (mean over the batch), the
    AUC in the shared legend under the panels. Lower deletion AUC and higher insertion AUC are better.

    ``deletion`` / ``insertion`` map method name -> :class:`~avxai.metrics.faithfulness.FaithfulnessCurve`
    (or its ``to_dict()``, as saved by the method benchmark).
    """
    panels = [("deletion", deletion)] + ([("insertion", insertion)] if insertion else [])
    for kind, curves in panels:
        if not curves:
            raise ValueError(f"no {kind} curves to plot")
    fig = new_figure(PAGE_WIDTH, 2.6)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    lines: dict[str, Any] = {}
    aucs: dict[str, list[str]] = {}
    negative = False
    order = list(dict.fromkeys([name for _, curves in panels for name in curves]))
    for ax, (kind, curves) in zip(axes, panels):
        normalise = "none"
        for name, curve in curves.items():
            f, s, auc, normalise = _as_arrays(curve)
            negative |= bool(np.nanmin(s) < 0)
            lines[name], = ax.plot(f * 100, s, color=method_colour(name), ls=_STYLES[order.index(name) % len(_STYLES)],
                                   lw=1.2)
            aucs.setdefault(name, []).append(f"{auc:.3f}")
        ax.axhline(0, color="0.6", lw=0.5)
        ax.set_xlabel("cells " + ("removed" if kind == "deletion" else "restored") + ", most relevant first (%)")
        ax.set_ylabel(_YLABEL.get(normalise, "score"))
        ax.set_xlim(0, 100)
        ax.set_title(f"{kind}: AUC {'lower' if kind == 'deletion' else 'higher'} is better", loc="left")
    what = " / ".join(kind for kind, _ in panels)
    handles = [lines[name] for name in order]
    labels = [f"{name}: {' / '.join(aucs[name])}" for name in order]
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(handles), 3), frameon=False,
               title=f"method: {what} AUC")
    if title or negative:
        fig.suptitle((title or "") + ("\n" if title and negative else "") +
                     ("values below 0: the perturbed input scores below the fully removed one (the baseline)"
                      if negative else ""))
    return fig

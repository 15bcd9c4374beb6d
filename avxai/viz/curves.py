"""Deletion / insertion curves of several methods side by side (from curves or their saved dicts)."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

from avxai.viz.style import COLUMN_WIDTH, method_colour  # noqa: E402


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


def plot_faithfulness_curves(deletion: Mapping[str, Any], insertion: Mapping[str, Any] | None = None,
                             title: str | None = None):
    """Deletion (and insertion) curves, one line per method, mean over the batch, AUC in the legend.

    ``deletion`` / ``insertion`` map method name -> :class:`~avxai.metrics.faithfulness.FaithfulnessCurve`
    (or its ``to_dict()``, as saved by the method benchmark). Lower deletion AUC and higher insertion AUC
    are better.
    """
    panels = [("deletion", deletion)] + ([("insertion", insertion)] if insertion else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(COLUMN_WIDTH * len(panels), 2.3), squeeze=False,
                             constrained_layout=True)
    for ax, (kind, curves) in zip(axes[0], panels):
        if not curves:
            raise ValueError(f"no {kind} curves to plot")
        normalise = "none"
        for name, curve in curves.items():
            f, s, auc, normalise = _as_arrays(curve)
            ax.plot(f, s, color=method_colour(name), label=f"{name} ({auc:.3f})")
        ax.set_xlabel("fraction of cells " + ("removed" if kind == "deletion" else "restored"))
        ylabel = {"range": "score (1 = input, 0 = baseline)", "unmasked": "score / unmasked score"}
        ax.set_ylabel(ylabel.get(normalise, "score"))
        ax.set_xlim(0, 1)
        ax.set_title(f"{kind} (AUC {'lower' if kind == 'deletion' else 'higher'} is better)")
        ax.legend(title="method (AUC)", loc="best", fontsize=6, title_fontsize=6, framealpha=0.8,
                  edgecolor="none")
    if title:
        fig.suptitle(title)
    return fig

"""Separation / enhancement figure: mixture, explanation mask, the target's ideal binary mask, their overlap."""

from __future__ import annotations

import numpy as np
import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
import torch  # noqa: E402

from avxai.viz.attribution import diverging_norm, extent_2d, to_db  # noqa: E402

__all__ = ["plot_mask_vs_ibm", "explanation_mask"]

#: overlap colours: neither, mask only (false alarm), IBM only (miss), both (hit)
_OVERLAP = ListedColormap(["#f4f4f4", "#e66101", "#5e3c99", "#1b9e77"])


def explanation_mask(explanation, index: int = 0, area: float | None = None):
    """The map to compare with a truth: ``(mask (freq, time), area or None, label)``.

    Mask methods (``explanation.masks``): the mask of ``area`` (default: the middle of the sorted areas).
    Other methods: the attribution (larger = more evidence), ``area`` passed through.
    """
    if explanation.masks is not None:
        areas = list(explanation.areas or [])
        if area is None:
            k = areas.index(sorted(areas)[len(areas) // 2]) if areas else 0
        else:
            if not areas:
                raise ValueError("this explanation's masks carry no areas; pass area=None")
            k = int(np.argmin([abs(a - area) for a in areas]))
            if abs(areas[k] - area) > 1e-6:
                raise ValueError(f"the explanation has no mask of area {area}; its areas are {areas}")
        return explanation.masks[index, k].detach().cpu().numpy(), areas[k] if areas else None, f"mask (area {areas[k]:.2f})"
    return explanation.attribution[index].detach().cpu().numpy(), area, "attribution"


def _score(explanation, name: str, index: int, k: int | None):
    value = explanation.scores.get(name)
    if value is None:
        return None
    v = value[index]
    if v.dim() > 0:
        v = v[k if k is not None else 0]
    return float(v)


def plot_mask_vs_ibm(explanation, ibm=None, index: int = 0, area: float | None = None, title: str | None = None,
                     scores: dict | None = None, ibm_scores: dict | None = None):
    """Mixture spectrogram, the explanation's mask, the target's ideal binary mask and their overlap.

    Parameters
    ----------
    explanation : a 2-D (freq, time) explanation of a separation or enhancement score (extremal masks, or an
        attribution such as occlusion's).
    ibm : ideal binary mask of the explained target on the same grid, ``(freq, time)`` or ``(batch, freq, time)``
        (see :func:`avxai.metrics.masks.ideal_binary_mask`); ``None`` when there is no clean reference: the
        figure then shows the mixture and the mask only.
    index : which input of the batch.
    area : the mask area to show (mask methods); the top-``area`` cells of the map are compared with the IBM
        (``None``: the IBM's own area for attributions, the middle area for masks).
    scores : ``{"unmasked", "preserved", "deleted"}`` floats for the title (e.g. from
        :func:`avxai.metrics.masks.mask_scores`); ``None`` reads them from ``explanation.scores`` where present.
    ibm_scores : ``{"preserved", "deleted"}`` of the IBM itself (the oracle), shown on its panel.

    The title line gives the scores of the unmasked, preserved and deleted inputs (scorer's units) and the
    IoU panel the overlap of the top-``area`` cells with the IBM. Returns a matplotlib figure.
    """
    if len(explanation.axes) != 2:
        raise ValueError(f"plot_mask_vs_ibm needs a (freq, time) explanation, got axes {explanation.axes}")
    if not 0 <= index < explanation.batch_size:
        raise ValueError(f"index {index} is out of range for an explanation of {explanation.batch_size} inputs")
    grid = explanation.grid[index].detach().cpu().numpy()
    truth = None
    if ibm is not None:
        truth = torch.as_tensor(np.asarray(ibm.detach().cpu() if hasattr(ibm, "detach") else ibm))
        if truth.dim() == 3:
            truth = truth[index]
        if tuple(truth.shape) != grid.shape:
            raise ValueError(f"ibm has shape {tuple(truth.shape)} but the explanation grid is {grid.shape}; compute "
                             "it with the modality's n_fft and hop_length (avxai.metrics.masks.ibm_on_grid)")
        truth = truth > 0.5
    mask, mask_area, label = explanation_mask(explanation, index, area)
    k = None
    if explanation.masks is not None and explanation.areas:
        k = list(explanation.areas).index(mask_area)
    if mask_area is not None:
        compare_area = mask_area
    elif truth is not None:
        compare_area = float(truth.float().mean())
    else:
        compare_area = max(float((mask > 0).mean()), 1.0 / mask.size)

    extent, f_label, t_label = extent_2d(explanation)
    rows = 4 if truth is not None else 2
    fig, axes = plt.subplots(rows, 1, figsize=(8, 2.5 * rows), sharex=True, constrained_layout=True)
    im = axes[0].imshow(to_db(grid), origin="lower", aspect="auto", extent=extent, cmap="magma")
    fig.colorbar(im, ax=axes[0], label="dB re max")
    axes[0].set_title("mixture")
    units = explanation.metadata.get("scorer", {}).get("units", "")
    if explanation.masks is not None:
        im = axes[1].imshow(mask, origin="lower", aspect="auto", extent=extent, cmap="viridis", vmin=0, vmax=1)
        fig.colorbar(im, ax=axes[1], label="mask (1 = keep)")
    else:
        im = axes[1].imshow(mask, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r",
                            norm=diverging_norm(mask))
        fig.colorbar(im, ax=axes[1], label=f"score drop ({units})" if units else "attribution")
    axes[1].set_title(f"{explanation.method}: {label}")
    if truth is not None:
        cells = mask.size
        top = np.zeros(cells, dtype=bool)
        top[np.argsort(-mask.reshape(-1), kind="stable")[:max(1, int(round(compare_area * cells)))]] = True
        top_t = torch.from_numpy(top.reshape(mask.shape))  # the top cells, as avxai.metrics.masks.mask_iou takes them
        iou = float((top_t & truth).sum() / (top_t | truth).sum())
        overlap = top.reshape(mask.shape).astype(int) + 2 * truth.numpy().astype(int)  # 0 none, 1 mask, 2 IBM, 3 both
        im = axes[2].imshow(truth.numpy().astype(float), origin="lower", aspect="auto", extent=extent, cmap="Greys",
                            vmin=0, vmax=1)
        fig.colorbar(im, ax=axes[2], label="IBM")
        oracle = ""
        if ibm_scores:
            oracle = (f"; IBM kept {ibm_scores['preserved']:.1f}, IBM removed {ibm_scores['deleted']:.1f} "
                      f"{units}").rstrip()
        axes[2].set_title(f"ideal binary mask of the target (area {float(truth.float().mean()):.2f}){oracle}")
        axes[3].imshow(overlap, origin="lower", aspect="auto", extent=extent, cmap=_OVERLAP, vmin=-0.5, vmax=3.5,
                       interpolation="nearest")
        fig.colorbar(im, ax=axes[3]).remove()
        axes[3].legend(handles=[Patch(color=_OVERLAP(3), label="both"), Patch(color=_OVERLAP(1), label="mask only"),
                                Patch(color=_OVERLAP(2), label="IBM only")], loc="upper right", fontsize=7, ncol=3)
        axes[3].set_title(f"top {compare_area:.2f} of the {label.split(' ')[0]} vs IBM: IoU {iou:.2f}")
    for ax in axes:
        ax.set_ylabel(f_label)
    axes[-1].set_xlabel(t_label)
    if scores is None:
        scores = {name: v for name in ("unmasked", "preserved", "deleted")
                  if (v := _score(explanation, name, index, k)) is not None}
    parts = [f"{name} {scores[name]:.1f}" for name in ("unmasked", "preserved", "deleted")
             if scores.get(name) is not None]
    scorer = explanation.metadata.get("scorer", {})
    head = title or f"{scorer.get('scorer', 'score')} of source {scorer.get('source', 0)}"
    fig.suptitle(head + (": " + ", ".join(parts) + f" {units}" if parts else "") +
                 (f"\n(preserved / deleted: the top {compare_area:.2f} of the grid kept / removed)"
                  if parts and explanation.masks is None else ""))
    return fig

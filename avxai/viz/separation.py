"""Separation / enhancement figure: mixture, explanation mask, the target's ideal binary mask, their overlap."""

from __future__ import annotations

import numpy as np
import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
import torch  # noqa: E402

from avxai.viz.axes import show_plane  # noqa: E402
from avxai.viz.labels import attribution_label, method_phrase, model_phrase, title_of, value_text  # noqa: E402
from avxai.viz.style import OKABE_ITO, PAGE_WIDTH, legend_right, new_figure, styled  # noqa: E402

__all__ = ["plot_mask_vs_ibm", "explanation_mask", "chance_iou", "best_iou"]

#: overlap colours (Okabe-Ito): neither, mask only (false alarm), IBM only (miss), both (hit)
_OVERLAP = ListedColormap(["#f2f2f2", OKABE_ITO[1], OKABE_ITO[2], OKABE_ITO[5]])
#: the ideal binary mask's two levels: the target is not / is the louder source in the cell
_IBM = ListedColormap(["#f2f2f2", "#222222"])


def chance_iou(area: float, truth_area: float) -> float:
    """Expected IoU of a random set covering ``area`` of the grid with a truth covering ``truth_area``
    (the same formula as :func:`avxai.metrics.masks.chance_iou`)."""
    return area * truth_area / (area + truth_area - area * truth_area)


def best_iou(area: float, truth_area: float) -> float:
    """The best IoU a set covering ``area`` can reach with a truth covering ``truth_area``: min / max."""
    return min(area, truth_area) / max(area, truth_area)


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


@styled
def plot_mask_vs_ibm(explanation, ibm=None, index: int = 0, area: float | None = None, title: str | None = None,
                     scores: dict | None = None, ibm_scores: dict | None = None):
    """Mixture spectrogram, the explanation's map, the target's ideal binary mask and their overlap, at the
    page width.

    Parameters
    ----------
    explanation : a 2-D (freq, time) explanation of a separation or enhancement score (extremal masks, or an
        attribution such as occlusion's).
    ibm : ideal binary mask of the explained target on the same grid, ``(freq, time)`` or ``(batch, freq, time)``
        (see :func:`avxai.metrics.masks.ideal_binary_mask`); ``None`` when there is no clean reference: the
        figure then shows the mixture and the map only.
    index : which input of the batch.
    area : the mask area to show (mask methods); the top-``area`` cells of the map are compared with the IBM
        (``None``: the IBM's own area for attributions, the middle area for masks).
    title : what the score is (default: from the metadata); the method and the model are put before it.
    scores : ``{"unmasked", "preserved", "deleted"}`` floats (e.g. from :func:`avxai.metrics.masks.mask_scores`);
        ``None`` reads them from ``explanation.scores`` where present.
    ibm_scores : ``{"preserved", "deleted"}`` of the IBM itself (the oracle), shown on its panel.

    The IBM has a two-level legend; the overlap panel's IoU is given with its chance value (a random set of
    the same area) and the best value reachable at that area. Returns a matplotlib figure.
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

    rows = 4 if truth is not None else 2
    fig = new_figure(PAGE_WIDTH, 1.25 * rows + 0.6)
    axes = fig.subplots(rows, 1, sharex=True)
    units = explanation.metadata.get("scorer", {}).get("units", "")
    im = show_plane(axes[0], explanation, grid, "magnitude", xlabel=False)
    fig.colorbar(im, ax=axes[0], label="level\n(dB re max)", pad=0.01, fraction=0.04)
    axes[0].set_title("mixture", loc="left")
    if explanation.masks is not None:
        im = show_plane(axes[1], explanation, mask, "mask", xlabel=rows == 2)
        fig.colorbar(im, ax=axes[1], label="mask\n(1 = kept)", pad=0.01, fraction=0.04)
    else:
        im = show_plane(axes[1], explanation, mask, "signed", xlabel=rows == 2)
        fig.colorbar(im, ax=axes[1], label=attribution_label(explanation).replace(" when", "\nwhen"), pad=0.01,
                     fraction=0.04)
    axes[1].set_title(f"{explanation.method}: {label}", loc="left")
    if truth is not None:
        cells = mask.size
        top = np.zeros(cells, dtype=bool)
        top[np.argsort(-mask.reshape(-1), kind="stable")[:max(1, int(round(compare_area * cells)))]] = True
        top_t = torch.from_numpy(top.reshape(mask.shape))  # the top cells, as avxai.metrics.masks.mask_iou takes them
        iou = float((top_t & truth).sum() / (top_t | truth).sum())
        truth_area = float(truth.float().mean())
        overlap = top.reshape(mask.shape).astype(int) + 2 * truth.numpy().astype(int)  # 0 none, 1 mask, 2 IBM, 3 both
        show_plane(axes[2], explanation, truth.numpy().astype(float), "mask", xlabel=False)
        axes[2].images[0].set_cmap(_IBM)
        legend_right(axes[2], handles=[Patch(color=_IBM(1), label="target louder"),
                                       Patch(color=_IBM(0), ec="0.6", label="rest louder")],
                     labels=["target louder", "rest louder"], title="IBM")
        oracle = ""
        if ibm_scores:
            oracle = (f"; the IBM itself: kept {ibm_scores['preserved']:.1f}, removed {ibm_scores['deleted']:.1f} "
                      f"{units}").rstrip()
        axes[2].set_title(f"ideal binary mask of the target (area {truth_area:.2f}){oracle}", loc="left")
        show_plane(axes[3], explanation, overlap.astype(float), "mask")
        axes[3].images[0].set_cmap(_OVERLAP)
        axes[3].images[0].set_clim(-0.5, 3.5)
        legend_right(axes[3], handles=[Patch(color=_OVERLAP(3), label="both"), Patch(color=_OVERLAP(1),
                                                                                     label="map only"),
                                       Patch(color=_OVERLAP(2), label="IBM only"),
                                       Patch(color=_OVERLAP(0), ec="0.6", label="neither")],
                     labels=["both", "map only", "IBM only", "neither"])
        axes[3].set_title(f"top {compare_area:.2f} of the {label.split(' ')[0]} vs IBM: IoU {iou:.2f} (chance "
                          f"{chance_iou(compare_area, truth_area):.2f}, best reachable at this area "
                          f"{best_iou(compare_area, truth_area):.2f})", loc="left")
    if scores is None:
        scores = {name: v for name in ("unmasked", "preserved", "deleted")
                  if (v := _score(explanation, name, index, k)) is not None}
    parts = [f"{name} {value_text(scores[name], units)}" for name in ("unmasked", "preserved", "deleted")
             if scores.get(name) is not None]
    model = model_phrase(explanation)
    head = title_of(explanation, index).split("\n")[0] if title is None else \
        f"{method_phrase(explanation)}" + (f" on {model}" if model else "") + f": {title}"
    kept = f"top {compare_area:.2f} of the grid kept / removed" if explanation.masks is None else \
        f"mask of area {compare_area:g} kept / removed"
    fig.suptitle(head + ("\n" + ", ".join(parts) + f" ({kept})" if parts else ""))
    return fig

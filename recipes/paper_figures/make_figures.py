"""Publication figures from SAVED explanations: one command, a folder of PDF (vector) and PNG files.

Nothing is recomputed: every figure is drawn from ``Explanation.load(dir)`` folders (found recursively under
the given roots) and from a method-benchmark output folder (``results.csv``, ``curves.json``), so a figure
can be restyled and redrawn in seconds. Fonts, sizes and colour maps come from :mod:`avxai.viz.style`.

Figures (each as ``<name>.pdf`` and ``<name>.png``):

``extremal_<tag>[_<i>]``  extremal perturbation: the method's own per-area panel per input (``plot_explanation``)
``area_growth_<tag>``     preserved score / unmasked score against the kept area (extremal)
``aba_<tag>``             spectrogram + one attribution map per explained speaker, segment boundaries drawn
``aba_methods``           time profiles of every method on the A-B-A task (benchmark explanations)
``tf_<tag>``              spectrogram + one attribution map per input, for (freq|mel, time) explanations without
                          segments (enhancement, separation)
``face_<tag>``            heat-map strips over face frames (3-D ``(time, height, width)`` explanations)
``pca_rgb_<tag>``         PCA-to-RGB images (explanations whose method name contains ``pca``)
``benchmark_table``       the method-benchmark table
``curves_<task>``         deletion / insertion curves per method (``avxai.viz.curves``)

Usage::

    python recipes/paper_figures/make_figures.py --benchmark avxai-out/method_benchmark --out avxai-out/figures
    python recipes/paper_figures/make_figures.py --explanations avxai-out/aba avxai-out/face --out avxai-out/figures
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from avxai.explanation import Explanation  # noqa: E402
from avxai.viz import plot_explanation  # noqa: E402
from avxai.viz.attribution import draw_segments, extent_2d, to_db  # noqa: E402
from avxai.viz.curves import plot_faithfulness_curves  # noqa: E402
from avxai.viz.style import (  # noqa: E402
    CMAPS, COLUMN_WIDTH, METHOD_COLOURS, PAGE_WIDTH, method_colour, paper_style, save_figure,
)

REPO = Path(__file__).resolve().parents[2]


# -- finding saved explanations ------------------------------------------------------------------------------
def find_explanations(roots: list[Path]) -> dict[str, Path]:
    """``tag -> folder`` of every saved explanation under ``roots`` (tag = the folder path, made file-safe)."""
    found: dict[str, Path] = {}
    for root in roots:
        if not root.exists():
            raise ValueError(f"{root} does not exist; pass folders that hold saved explanations")
        for doc in sorted(root.rglob("explanation.json")):
            folder = doc.parent
            rel = folder.relative_to(root) if folder != root else Path(root.name)
            tag = re.sub(r"[^A-Za-z0-9]+", "_", str(rel)).strip("_") or "explanation"
            while tag in found:
                tag += "_"
            found[tag] = folder
    return found


def _units(expl: Explanation) -> str:
    units = expl.metadata.get("scorer", {}).get("units", "") if isinstance(expl.metadata.get("scorer"), dict) else ""
    return units


def _labels(expl: Explanation) -> list[str]:
    labels = expl.metadata.get("labels") or expl.metadata.get("targets")
    if isinstance(labels, list) and len(labels) == expl.batch_size:
        return [str(x) for x in labels]
    return [f"input {i}" for i in range(expl.batch_size)]


def _attribution_label(expl: Explanation) -> str:
    units = _units(expl)
    if expl.masks is not None or expl.method == "extremal":
        return "mean mask (kept fraction)"
    if expl.method == "gradcam":
        return "Grad-CAM (a.u.)"
    if expl.method in ("occlusion", "integrated-gradients"):
        return f"score change ({units})" if units else "score change"
    return f"|d score / d mask| ({units})" if units else "attribution"


# -- figures -------------------------------------------------------------------------------------------------
def figure_method_panel(expl: Explanation, index: int = 0):
    """The method's own figure at the page width (the extremal per-area panel, avxai.viz.extremal)."""
    import avxai.viz as viz

    if expl.method == "extremal" and viz.layout_of(expl) == "masks":  # not a video / audio-visual layout
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
    for i, label in enumerate(_labels(expl)):
        ax.plot(np.asarray(areas) * 100, growth[i], marker="o", ms=3, label=label)
    ax.axhline(1.0, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("kept area (% of the grid)")
    ax.set_ylabel("preserved score / unmasked score")
    ax.set_ylim(bottom=min(0.0, float(np.nanmin(growth)) - 0.05))
    ax.legend(frameon=False)
    return fig


def figure_aba(expl: Explanation):
    """Spectrogram, then one attribution map per explained input, with the A/B segment boundaries."""
    segments = expl.metadata.get("segments") or []
    grid = expl.grid[0].numpy()
    attr = expl.attribution.numpy()
    if attr.ndim != 3:
        raise ValueError("the A-B-A figure needs a (freq|mel, time) explanation")
    extent, f_label, t_label = extent_2d(expl)
    rows = 1 + expl.batch_size
    fig, axes = plt.subplots(rows, 1, figsize=(PAGE_WIDTH * 0.62, 1.35 * rows), sharex=True, squeeze=False,
                             constrained_layout=True)
    axes = axes[:, 0]
    im = axes[0].imshow(to_db(grid), origin="lower", aspect="auto", extent=extent, cmap=CMAPS["magnitude"])
    fig.colorbar(im, ax=axes[0], label="dB re max", pad=0.01)
    axes[0].set_ylabel(f_label)
    ymax = axes[0].get_ylim()[1]
    for seg in segments:
        axes[0].text((seg["start_s"] + seg["end_s"]) / 2, ymax, seg["label"], ha="center", va="bottom",
                     fontweight="bold")
    signed = (attr < 0).any()
    bound = max(float(np.abs(attr).max()), 1e-12)
    for i, label in enumerate(_labels(expl)):
        ax = axes[1 + i]
        if signed:
            im = ax.imshow(attr[i], origin="lower", aspect="auto", extent=extent, cmap=CMAPS["attribution"],
                           norm=TwoSlopeNorm(0.0, -bound, bound))
        else:
            im = ax.imshow(attr[i], origin="lower", aspect="auto", extent=extent, cmap=CMAPS["heat"], vmin=0,
                           vmax=bound)
        fig.colorbar(im, ax=ax, label=_attribution_label(expl), pad=0.01)
        ax.set_ylabel(f_label)
        ax.set_title(f"{expl.method}: {label}", loc="left")
    for ax in axes:
        for seg in segments:
            for x in (seg["start_s"], seg["end_s"]):
                ax.axvline(x, color="k", lw=0.7, ls="--", alpha=0.8)
    axes[-1].set_xlabel(t_label)
    return fig


def figure_aba_methods(expls: dict[str, Explanation]):
    """Per method, the positive attribution summed over frequency against time (each input scaled to its max)."""
    order = list(METHOD_COLOURS)
    names = sorted(expls, key=lambda m: (order.index(m) if m in order else len(order), m))
    first = expls[names[0]]
    n_inputs = first.batch_size
    fig, axes = plt.subplots(len(names), n_inputs, figsize=(PAGE_WIDTH, 0.9 * len(names) + 0.4), sharex=True,
                             sharey=True, squeeze=False, constrained_layout=True)
    for r, name in enumerate(names):
        expl = expls[name]
        t = np.asarray(expl.coordinates.get(expl.axes[-1], np.arange(expl.attribution.shape[-1])))
        for c in range(n_inputs):
            ax = axes[r, c]
            profile = np.clip(expl.attribution[c].numpy(), 0, None).reshape(-1, len(t)).sum(axis=0)
            profile = profile / max(profile.max(), 1e-12)
            ax.fill_between(t, profile, color=method_colour(name), alpha=0.8, lw=0)
            draw_segments(ax, expl.metadata.get("segments"))
            ax.set_ylim(0, 1.05)
            ax.set_yticks([0, 1])
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center")
            if r == 0:
                ax.set_title(_labels(expl)[c])
    for c in range(n_inputs):
        axes[-1, c].set_xlabel("time (s)")
    fig.suptitle("positive attribution over time, scaled to its maximum (shaded: A / B turns)")
    return fig


def figure_face_strip(expl: Explanation, index: int = 0, frames: int = 8):
    """Frames of a ``(time, height, width)`` explanation: grey input with the heat map on top, and the map alone."""
    attr = expl.attribution[index].numpy()
    grid = expl.grid[index].numpy()
    n = min(frames, attr.shape[0])
    idx = np.linspace(0, attr.shape[0] - 1, n).round().astype(int)
    fps = expl.metadata.get("modality", {}).get("fps") if isinstance(expl.metadata.get("modality"), dict) else None
    heat = np.clip(attr, 0, None) if (attr >= 0).mean() > 0.5 else np.abs(attr)
    vmax = max(float(heat.max()), 1e-12)
    fig, axes = plt.subplots(2, n, figsize=(PAGE_WIDTH, PAGE_WIDTH / n * 1.75 + 0.4), squeeze=False,
                             constrained_layout=True)
    for j, f in enumerate(idx):
        axes[0, j].imshow(grid[f], cmap="gray")
        axes[0, j].imshow(heat[f], cmap=CMAPS["heat"], alpha=0.55, vmin=0, vmax=vmax)
        im = axes[1, j].imshow(heat[f], cmap=CMAPS["heat"], vmin=0, vmax=vmax)
        axes[0, j].set_title(f"{f / fps:.2f} s" if fps else f"frame {f}")
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.colorbar(im, ax=axes[:, -1].tolist(), label=_attribution_label(expl), shrink=0.8)
    fig.suptitle(f"{expl.method}: {_labels(expl)[index]}")
    return fig


def _rgb_frames(expl: Explanation, index: int) -> tuple[np.ndarray, bool]:
    """RGB images ``(frames, h, w, 3)`` in [0, 1] of input ``index`` and whether they are time-frequency maps.

    From the ``pca-rgb`` method's arrays (:mod:`avxai.methods.pca_rgb`): ``rgb_video`` ``(batch, frames, 3, h, w)``
    for per-pixel face features, else ``rgb_audio`` ``(batch, 3, freq, frames)`` or ``rgb_grid``
    ``(batch, 3, *grid)``; else from an attribution with an axis of size 3 (an RGB attribution saved by other code).
    """
    arrays = expl.arrays
    if "rgb_video" in arrays:
        return np.moveaxis(arrays["rgb_video"][index].float().numpy(), 1, -1), False  # (frames, h, w, 3)
    key = next((k for k in ("rgb_audio", "rgb_grid") if k in arrays), None)
    if key is not None:
        rgb = arrays[key][index].float().numpy()
        if rgb.shape[0] != 3:
            raise ValueError(f"arrays[{key!r}] of input {index} has shape {rgb.shape}; expected (3, *grid)")
        rgb = np.moveaxis(rgb, 0, -1)  # (*grid, 3)
        if rgb.ndim == 2:  # one axis (time): a strip
            return rgb[None, None], True
        if rgb.ndim == 3:  # (freq, frames): one time-frequency image
            return rgb[None], True
        return rgb, False  # (time, h, w, 3)
    attr = expl.attribution[index].numpy()
    axes_names = list(expl.axes)
    comp = next((i for i, a in enumerate(axes_names) if a in ("component", "rgb", "channel") and attr.shape[i] == 3),
                None)
    if comp is None:
        comp = next((i for i, s in enumerate(attr.shape) if s == 3), None)
    if comp is None:
        raise ValueError(f"a PCA-to-RGB figure needs arrays rgb_video, rgb_audio or rgb_grid (the pca-rgb method) or an attribution axis of "
                         f"size 3, got axes {axes_names} {attr.shape}")
    rgb = np.moveaxis(attr, comp, -1)
    if rgb.ndim == 3:
        rgb = rgb[None]
    lo, hi = np.percentile(rgb, 1), np.percentile(rgb, 99)
    return np.clip((rgb - lo) / max(hi - lo, 1e-12), 0, 1), False


def figure_pca_rgb(expl: Explanation, index: int = 0, frames: int = 8):
    """PCA-to-RGB embedding: the first three principal components of a layer's features as colour (per frame,
    or one time-frequency image)."""
    rgb, spectral = _rgb_frames(expl, index)
    rgb = np.clip(rgb, 0.0, 1.0)
    n = min(frames, rgb.shape[0])
    idx = np.linspace(0, rgb.shape[0] - 1, n).round().astype(int)
    if spectral:
        fig, axes = plt.subplots(1, 1, figsize=(COLUMN_WIDTH, 1.6), squeeze=False, constrained_layout=True)
        axes[0, 0].imshow(rgb[0], origin="lower", aspect="auto", interpolation="nearest")
        axes[0, 0].set_xlabel("layer frame")
        axes[0, 0].set_ylabel("layer frequency bin" if rgb.shape[1] > 1 else "")
    else:
        fig, axes = plt.subplots(1, n, figsize=(min(PAGE_WIDTH, 1.2 * n + 0.4), 1.4), squeeze=False,
                                 constrained_layout=True)
        fps = (expl.metadata.get("modality") or {}).get("fps") if isinstance(expl.metadata.get("modality"), dict) \
            else None
        for j, f in enumerate(idx):
            axes[0, j].imshow(rgb[f], interpolation="nearest")
            axes[0, j].set_xticks([])
            axes[0, j].set_yticks([])
            if n > 1:
                axes[0, j].set_title(f"{f / fps:.2f} s" if fps else f"frame {f}")
    layer = expl.metadata.get("layer")
    fig.suptitle("first three principal components as RGB" + (f" (layer {layer})" if layer else ""))
    return fig


def split_parts(expl: Explanation) -> dict[str, Explanation]:
    """An audio-visual explanation cut into its parts (``{"audio": ..., "video": ...}``); others as they are."""
    meta = expl.metadata.get("modality")
    if isinstance(meta, dict) and meta.get("kind") == "audio-visual":
        from avxai.explanation import split_explanation

        return split_explanation(expl)
    return {"": expl}


def read_benchmark(folder: Path) -> tuple[list[dict], dict]:
    rows: list[dict] = []
    if (folder / "results.csv").exists():
        with open(folder / "results.csv") as fh:
            rows = list(csv.DictReader(fh))
    curves = json.loads((folder / "curves.json").read_text()) if (folder / "curves.json").exists() else {}
    return rows, curves


def figure_benchmark_table(rows: list[dict]):
    """The benchmark table; in each task the best value of each column is bold (random row excluded)."""
    columns = [("method", "method", None), ("mass", "mass in\ntruth ↑", max), ("pointing", "pointing\ngame ↑", max),
               ("iou", "IoU at\narea ↑", max), ("deletion_auc", "deletion\nAUC ↓", min),
               ("insertion_auc", "insertion\nAUC ↑", max), ("randomisation_r", "random-\nisation ρ ↓", min),
               ("s_per_input", "s per\ninput", min)]

    def num(v: Any) -> float:
        try:
            return float(v)
        except (TypeError, ValueError):
            return float("nan")

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    cell_text, bold, task_rows = [], [], []
    for task in tasks:
        group = [r for r in rows if r["task"] == task]
        best = {}
        for key, _, pick in columns[1:]:
            values = [num(r[key]) for r in group if r["method"] != "random" and not np.isnan(num(r[key]))]
            best[key] = pick(values) if values else None
        task_rows.append(len(cell_text))
        cell_text.append([task] + [""] * (len(columns) - 1))
        bold.append([True] + [False] * (len(columns) - 1))
        for r in group:
            line, flags = [], []
            for key, _, _ in columns:
                v = r[key]
                if key == "method":
                    line.append(v)
                    flags.append(False)
                    continue
                x = num(v)
                line.append("–" if np.isnan(x) else (f"{x:.2f}" if key == "s_per_input" else f"{x:.3f}"))
                flags.append(best.get(key) is not None and not np.isnan(x) and x == best[key] and r["method"] != "random")
            cell_text.append(line)
            bold.append(flags)
    fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 0.22 * (len(cell_text) + 2) + 0.2))
    ax.axis("off")
    widths = [0.22] + [0.78 / (len(columns) - 1)] * (len(columns) - 1)
    table = ax.table(cellText=cell_text, colLabels=[c[1] for c in columns], loc="center", cellLoc="center",
                     colWidths=widths)
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1.0, 1.25)
    for (r, c), cell in table.get_celld().items():
        cell.set_linewidth(0.3)
        if r == 0:
            cell.set_text_props(fontweight="bold")
            cell.set_height(cell.get_height() * 1.8)
            continue
        if bold[r - 1][c]:
            cell.set_text_props(fontweight="bold")
        if r - 1 in task_rows:
            cell.set_facecolor("#eeeeee")
        elif c == 0:
            cell.set_text_props(color=method_colour(cell_text[r - 1][0]))
    return fig


# -- driver ----------------------------------------------------------------------------------------------------
def _figures_of(expl: Explanation, name: str, out: Path, formats: tuple[str, ...], written: list[Path]) -> list[str]:
    """Write the figures one explanation (or one part of one) allows; appends to ``written``, returns the kinds."""
    kinds = []
    if expl.method == "extremal" or expl.masks is not None:
        for i in range(expl.batch_size):  # one panel per explained input (A and B, source 1 and 2)
            suffix = "" if expl.batch_size == 1 else f"_{i}"
            written += save_figure(figure_method_panel(expl, i), out / f"extremal_{name}{suffix}", formats)
        kinds.append("extremal")
        if "area_growth" in expl.scores:
            written += save_figure(figure_area_growth(expl), out / f"area_growth_{name}", formats)
            kinds.append("area growth")
    if "pca" in expl.method:  # a part whose features were not embedded (no rgb_* array) has no colours to show
        if any(k.startswith("rgb_") for k in expl.arrays) or 3 in expl.attribution.shape[1:]:
            written += save_figure(figure_pca_rgb(expl), out / f"pca_rgb_{name}", formats)
            kinds.append("pca-rgb")
    elif expl.metadata.get("segments") and expl.attribution.dim() == 3:
        written += save_figure(figure_aba(expl), out / f"aba_{name}", formats)
        kinds.append("A-B-A")
    elif expl.attribution.dim() == 3 and tuple(expl.axes)[:1] in (("freq",), ("mel",)):
        written += save_figure(figure_aba(expl), out / f"tf_{name}", formats)  # the same layout, no turns
        kinds.append("T-F map")
    elif expl.attribution.dim() == 4:
        written += save_figure(figure_face_strip(expl), out / f"face_{name}", formats)
        kinds.append("face strip")
    return kinds


def make_figures(explanation_roots: list[Path], benchmark: Path | None, out: Path,
                 formats: tuple[str, ...] = ("pdf", "png")) -> list[Path]:
    """Write every figure the saved material allows; returns the files written. Prints what it skipped."""
    roots = list(explanation_roots)
    if benchmark is not None and (benchmark / "explanations").exists():
        roots.append(benchmark / "explanations")
    found = find_explanations(roots)
    written: list[Path] = []
    aba_by_method: dict[str, Explanation] = {}
    with paper_style():
        for tag, folder in found.items():
            kinds = []
            for part, expl in split_parts(Explanation.load(folder)).items():
                name = f"{tag}_{part}" if part else tag
                kinds += [f"{k} ({part})" if part else k for k in _figures_of(expl, name, out, formats, written)]
                if (not part and expl.metadata.get("task") == "aba" and expl.metadata.get("segments")
                        and expl.attribution.dim() == 3):
                    aba_by_method[expl.method] = expl
            print(f"[figures] {tag}: {', '.join(kinds) or 'no paper figure for this kind (skipped)'}")
        if len(aba_by_method) > 1:
            written += save_figure(figure_aba_methods(aba_by_method), out / "aba_methods", formats)
        if benchmark is not None:
            rows, curves = read_benchmark(benchmark)
            if rows:
                written += save_figure(figure_benchmark_table(rows), out / "benchmark_table", formats)
            for task, per_method in curves.items():
                dele = {m: c["deletion"] for m, c in per_method.items()}
                ins = {m: c["insertion"] for m, c in per_method.items()}
                if dele:
                    written += save_figure(plot_faithfulness_curves(dele, ins, title=task), out / f"curves_{task}",
                                           formats)
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--explanations", type=Path, nargs="*", default=[], help="folders searched for saved explanations")
    p.add_argument("--benchmark", type=Path, help="a method-benchmark output folder (results.csv, curves.json)")
    p.add_argument("--out", type=Path, default=REPO / "avxai-out" / "figures")
    p.add_argument("--formats", default="pdf,png", help="comma-separated: pdf, png, svg")
    args = p.parse_args(argv)
    if not args.explanations and args.benchmark is None:
        p.error("nothing to draw: pass --explanations DIR ... and/or --benchmark DIR")
    written = make_figures(args.explanations, args.benchmark, args.out, tuple(args.formats.split(",")))
    print(f"wrote {len(written)} files to {args.out}")
    return written


if __name__ == "__main__":
    main()
    sys.exit(0)

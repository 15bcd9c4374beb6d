"""Figures of the inspection tools: filters, embedding maps, top segments, activation maximisation.

Each function returns a matplotlib figure ``width`` inches wide (3.4 = a column, 7.0 = a page); wrap it in
:func:`avxai.viz.style.paper_style` for the print look and save it with :func:`avxai.viz.style.save_figure`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from avxai.inspect.embeddings import EmbeddingMap
from avxai.inspect.filters import Filters
from avxai.inspect.maximise import Maximised
from avxai.inspect.maximise_video import MaximisedVideo
from avxai.inspect.top_patches import TopPatches
from avxai.inspect.top_segments import TopSegments
from avxai.viz.style import CMAPS, PAGE_WIDTH, plt

__all__ = ["plot_filters", "plot_embedding_map", "plot_top_segments", "plot_maximised", "plot_maximised_video",
           "plot_top_patches"]


def _khz(ax, axis: str = "y") -> None:
    fmt = plt.FuncFormatter(lambda v, _: f"{v / 1000:g}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def plot_filters(filters: Filters, width: float = PAGE_WIDTH, max_images: int = 32):
    """Sorted responses and centre frequencies (waveform, features), or the kernels as images."""
    if filters.kind in ("image", "spectro-temporal"):
        images = filters.images[:max_images]
        cols = min(8, len(images), int(np.ceil(np.sqrt(2 * len(images)))))
        rows = int(np.ceil(len(images) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(width, width / cols * rows * 1.05), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for i, (ax, img) in enumerate(zip(axes.flat, images)):
            if filters.kind == "image":
                ax.imshow(img, interpolation="nearest")
            else:
                lim = np.abs(img).max() or 1.0
                ax.imshow(img, origin="lower", cmap=CMAPS["attribution"], vmin=-lim, vmax=lim, aspect="auto",
                          interpolation="nearest")
            ax.set_title(str(int(filters.order[i])), fontsize=7, pad=1)
        what = "RGB kernels" if filters.kind == "image" else "kernels (freq x time)"
        fig.suptitle(f"{filters.layer}: {what}")
        fig.tight_layout()
        return fig
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(width, width * 0.36), gridspec_kw={"width_ratios": [2.2, 1]})
    k = filters.response.shape[0]
    if filters.kind == "waveform":
        extent = (0, k, filters.freqs_hz[0], filters.freqs_hz[-1])
        im = ax0.imshow(filters.response.T, origin="lower", aspect="auto", extent=extent, cmap=CMAPS["magnitude"],
                        vmin=-60, vmax=0, interpolation="nearest")
        fig.colorbar(im, ax=ax0, label="dB re loudest")
        ax0.set_ylabel("frequency (kHz)")
        _khz(ax0)
    else:
        lim = float(np.percentile(np.abs(filters.response), 99)) or 1.0  # a few outliers do not wash out the rest
        n = filters.response.shape[1]
        im = ax0.imshow(filters.response.T, origin="lower", aspect="auto", cmap=CMAPS["attribution"], vmin=-lim,
                        vmax=lim, interpolation="nearest", extent=(0, k, -0.5, n - 0.5))
        fig.colorbar(im, ax=ax0, label="weight")
        if filters.freqs_hz is not None:
            ticks = np.linspace(0, n - 1, min(n, 6)).round().astype(int)
            ax0.set_yticks(ticks, [f"{filters.freqs_hz[t] / 1000:.2g}" for t in ticks])
            ax0.set_ylabel("band centre (kHz)")
        else:
            ax0.set_ylabel("input feature")
    ax0.set_xlabel("filter (sorted by centre)")
    ax0.set_title(f"{filters.layer} ({filters.metadata.get('layer_class', '')}), {k} filters")
    ax1.plot(np.arange(k), filters.centres_hz, color="#1b9e77")
    ax1.set_xlabel("filter (sorted)")
    if filters.kind == "waveform" or filters.freqs_hz is not None:
        ax1.set_ylabel("centre (kHz)")
        _khz(ax1)
    else:
        ax1.set_ylabel("centre (feature)")
    ax1.set_title("centre frequencies")
    fig.tight_layout()
    return fig


def plot_embedding_map(emap: EmbeddingMap, width: float = PAGE_WIDTH, colour_by: Sequence[str] | None = None):
    """One panel per projection and labelling, each titled with the labelling's silhouette."""
    colour_by = list(colour_by or emap.labels)
    methods = list(emap.projections)
    if not methods or not colour_by:
        raise ValueError("an embedding map figure needs at least one projection and one labelling")
    rows, cols = len(colour_by), len(methods)
    fig, axes = plt.subplots(rows, cols, figsize=(width, width / max(cols, 2) * rows * 0.8), squeeze=False)
    markers = "osD^v<>px*"
    for r, key in enumerate(colour_by):
        labels = emap.labels[key]
        groups = sorted(set(labels))
        cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
        other = [k for k in emap.labels if k != key]
        shapes = emap.labels[other[0]] if other else None
        shape_groups = sorted(set(shapes)) if shapes else []
        for c, method in enumerate(methods):
            ax = axes[r, c]
            pts = emap.projections[method]
            for gi, g in enumerate(groups):
                sel = np.array([lab == g for lab in labels])
                if shapes:
                    for si, sg in enumerate(shape_groups):
                        both = sel & np.array([s == sg for s in shapes])
                        if both.any():
                            ax.scatter(pts[both, 0], pts[both, 1], s=14, color=cmap(gi % cmap.N),
                                       marker=markers[si % len(markers)], label=g if si == 0 else None,
                                       edgecolors="none")
                else:
                    ax.scatter(pts[sel, 0], pts[sel, 1], s=14, color=cmap(gi % cmap.N), label=g, edgecolors="none")
            sil = emap.silhouettes.get(key)
            name = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}.get(method, method)
            ax.set_title(f"{name}: colour {key}" + (f", shape {other[0]}" if other else "") +
                         (f"\nsilhouette by {key} {sil:.2f}" if sil is not None else ""))
            ax.set_xticks([])
            ax.set_yticks([])
            if c == cols - 1:
                ax.legend(fontsize=7, loc="best", frameon=False, markerscale=0.8)
    fig.tight_layout()
    return fig



def _tiles(n: int, what: str, width: float, cols: int, aspect: float):
    """A grid of ``n`` tiles, ``cols`` per row (fewer when ``n`` is smaller), each ``aspect`` times as tall as
    wide, every axis off until a tile is drawn in it: ``(fig, axes (rows, cols))``."""
    if n == 0:
        raise ValueError(f"no {what} to draw")
    cols = min(cols, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(width, width / cols * aspect * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes

def plot_top_segments(result: TopSegments, width: float = PAGE_WIDTH, cols: int = 4):
    """Each top segment's spectrogram (dB) with its empirical receptive field drawn as a box."""
    fig, axes = _tiles(len(result.segments), "segment", width, cols, aspect=0.9)
    rate = result.sample_rate
    for ax, seg, patch in zip(axes.flat, result.segments, result.patches):
        ax.axis("on")
        t0, t1 = seg["clip_s"]
        ax.imshow(patch, origin="lower", aspect="auto", cmap=CMAPS["magnitude"], vmin=-70, vmax=0,
                  extent=(t0, t1, 0, rate / 2), interpolation="nearest")
        (a, b), (f0, f1) = seg["time_s"], seg["freq_hz"]
        ax.add_patch(plt.Rectangle((a, f0), b - a, f1 - f0, fill=False, edgecolor="#00e5ff", linewidth=1.0))
        ax.set_title(f"{seg['name']} @ {seg['peak_time_s']:.2f} s\nact {seg['activation']:.3g}", fontsize=7)
        ax.tick_params(labelsize=7)
        _khz(ax)
    axes[0, 0].set_ylabel("kHz")
    meta = result.metadata
    fig.suptitle(f"{meta.get('layer')} unit {meta.get('unit')}: top segments (box: empirical receptive field)")
    fig.tight_layout()
    return fig


def plot_maximised(result: Maximised, width: float = PAGE_WIDTH):
    """The optimised spectrogram of each start (dB) and their time-averaged spectra."""
    starts = result.log_magnitude.shape[0]
    fig, axes = plt.subplots(1, starts + 1, figsize=(width, width * 0.3),
                             gridspec_kw={"width_ratios": [1] * starts + [0.8]})
    db_all = 20 * result.log_magnitude / np.log(10)
    top = db_all.max()
    for i in range(starts):
        ax = axes[i]
        ax.imshow(db_all[i] - top, origin="lower", aspect="auto", cmap=CMAPS["magnitude"], vmin=-60, vmax=0,
                  extent=(0, result.times_s[-1], 0, result.sample_rate / 2), interpolation="nearest")
        ax.set_title(f"start {i}: {result.metadata['final_score'][i]:.3g}", fontsize=7)
        ax.set_xlabel("time (s)")
        _khz(ax)
    axes[0].set_ylabel("frequency (kHz)")
    spec = result.mean_spectrum_db()
    for i in range(starts):
        axes[-1].plot(spec[i], result.freqs_hz, linewidth=0.8)
    axes[-1].set_xlim(-60, 1)
    axes[-1].set_xlabel("mean power (dB)")
    axes[-1].set_title("spectrum")
    _khz(axes[-1])
    obj = result.metadata.get("objective", {})
    fig.suptitle("activation maximisation: " + ", ".join(f"{k}={v}" for k, v in obj.items()))
    fig.tight_layout()
    return fig


def plot_maximised_video(result: MaximisedVideo, width: float = PAGE_WIDTH, max_frames: int = 8):
    """One row of frames per start (the optimised face crops)."""
    starts, frames = result.video.shape[:2]
    shown = np.linspace(0, frames - 1, min(frames, max_frames)).round().astype(int)
    fig, axes = plt.subplots(starts, len(shown), figsize=(width, width / len(shown) * starts * 1.15), squeeze=False)
    for i in range(starts):
        for j, f in enumerate(shown):
            ax = axes[i, j]
            ax.imshow(np.clip(np.moveaxis(result.video[i, f], 0, -1), 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"frame {f}", fontsize=7)
        axes[i, 0].set_ylabel(f"start {i}\n{result.metadata['final_score'][i]:.3g}", fontsize=7)
    obj = result.metadata.get("objective", {})
    fig.suptitle("face-crop maximisation: " + ", ".join(f"{k}={v}" for k, v in obj.items()))
    fig.tight_layout()
    return fig


def plot_top_patches(result: TopPatches, width: float = PAGE_WIDTH, cols: int = 6):
    """Each top patch's peak frame with its empirical receptive field drawn as a box."""
    fig, axes = _tiles(len(result.patches), "patch", width, cols, aspect=1.25)
    for ax, p, img in zip(axes.flat, result.patches, result.images):
        ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
        (r0, r1), (c0, c1) = p["rows"], p["cols"]
        ax.add_patch(plt.Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, edgecolor="#00e5ff",
                                   linewidth=1.0))
        ax.set_title(f"{p['name']} f{p['peak_frame']}\nact {p['activation']:.3g}", fontsize=7)
    meta = result.metadata
    fig.suptitle(f"{meta.get('layer')} unit {meta.get('unit')}: top face-crop patches (box: empirical field)")
    fig.tight_layout()
    return fig

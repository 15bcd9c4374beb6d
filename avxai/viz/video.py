"""Figures of face-video and audio-visual explanations, at the page width.

* :func:`plot_video_explanation`: a strip of face crops with the map over them, the evidence per frame
  against time, the audio-vs-video share and, for an audio-visual explanation, the spectrogram with its map.
  Signed maps (occlusion: the score drop when removed) take the one signed colour map of every figure
  (:data:`~avxai.viz.style.SIGNED_CMAP`, zero white and transparent over the face); masks take viridis,
  transparent where 0. A map that is constant over the face in every frame (e.g. Grad-CAM of a layer without
  space) is a time-only map: it is drawn as the curve, never painted over the faces.
* :func:`plot_frames_strip`: the same map pasted back onto the full frames, the crop box drawn, frames
  without a detection and track switches marked (needs the frames and the face track, which an explanation
  does not store; the ``av-enhancement`` task writes it as ``frames.png``). Only the frames shown are pasted.
* :func:`plot_pca_rgb`: PCA-RGB images (Sound of Pixels) over the crops (with alpha) and beside the spectrogram.
* :func:`plot_shares`: the audio-vs-video share bar, or why it is not shown.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import torch  # noqa: E402

from avxai.explanation import split_explanation  # noqa: E402
from avxai.faces import paste_back  # noqa: E402
from avxai.viz.axes import draw_segment_edges, mark_segment_tile, segment_tiles, show_plane  # noqa: E402
from avxai.viz.pooling import MAX_COLUMNS, pool_columns, pool_image  # noqa: E402
from avxai.viz.labels import attribution_label, title_of  # noqa: E402
from avxai.viz.layout import is_composite, is_spectral, is_video  # noqa: E402
from avxai.viz.shares import plot_shares, shares_at_floor  # noqa: E402
from avxai.viz.style import (CMAPS, OKABE_ITO, PAGE_WIDTH, SIGNED_CMAP, legend_right, mask_norm,  # noqa: E402
                             new_figure, signed_norm, styled)

__all__ = ["plot_video_explanation", "plot_frames_strip", "plot_pca_rgb", "plot_shares", "video_heat",
           "strip_frames", "heat_norm", "heat_overlay", "HEAT_CMAP", "is_time_only", "shares_at_floor"]

#: colour map of signed maps over faces: the one signed map of every figure (zero white)
HEAT_CMAP = SIGNED_CMAP
#: how much PCA-RGB colours cover the face (the face shows through)
RGB_ALPHA = 0.6


def _parts(explanation) -> dict[str, Any]:
    """``{"video": explanation, "audio": explanation}`` parts of an explanation (one part for a plain video),
    by the axes of its grid (a composite input is cut into its parts first)."""
    if is_composite(explanation):
        return split_explanation(explanation)
    if is_video(explanation.axes):
        return {"video": explanation}
    if len(explanation.axes) == 2 and is_spectral(explanation.axes[0], explanation.units):
        return {"audio": explanation}
    kind = explanation.metadata.get("modality", {}).get("kind")
    raise ValueError(f"expected an explanation of a face video or an audio-visual input, got axes "
                     f"{tuple(explanation.axes)} (modality {kind!r})")


def video_heat(explanation, index: int = 0, area: float | None = None) -> tuple[np.ndarray, str]:
    """The map over the face crops of input ``index`` and its colour-bar label: the mask of the area nearest
    ``area`` (default 0.1; 1 = kept) for mask methods, else the attribution (score drop when removed).

    Shape: ``(frames, S, S)``.
    """
    part = _parts(explanation)["video"]
    if part.masks is not None and part.areas:
        want = 0.1 if area is None else float(area)
        k = int(np.argmin([abs(a - want) for a in part.areas]))
        return part.masks[index, k].detach().cpu().numpy(), f"mask, area {part.areas[k]:g} (1 = kept)"
    label = attribution_label(explanation) if explanation.masks is None else "attribution"
    return part.attribution[index].detach().cpu().numpy(), label


def is_time_only(heat: np.ndarray) -> bool:
    """Whether a ``(frames, h, w)`` map is constant over the face in every frame (a map over time only)."""
    spread = float(np.max(heat.max(axis=(1, 2)) - heat.min(axis=(1, 2))))
    scale = max(float(np.abs(heat).max()), 1e-12)
    return spread <= 1e-6 * scale


def strip_frames(n_frames: int, count: int = 8) -> np.ndarray:
    """``count`` frame indices spread evenly over ``n_frames`` frames (all of them when fewer)."""
    return np.unique(np.linspace(0, n_frames - 1, min(count, n_frames)).round().astype(int))


def heat_norm(heat: np.ndarray):
    """Colour norm of a map: signed maps centred on 0 (symmetric), maps in [0, 1] (masks) from 0 to 1."""
    if float(np.min(heat)) >= 0.0 and float(np.max(heat)) <= 1.0:
        return mask_norm()
    return signed_norm(heat)


def _cmap_of(norm) -> str:
    return SIGNED_CMAP if getattr(norm, "vcenter", None) is not None else CMAPS["mask"]


def heat_overlay(ax, grey: np.ndarray, heat: np.ndarray, norm, valid: np.ndarray | None = None, extent=None):
    """Draw ``grey`` (an image in [0, 1] or [0, 255]) and over it ``heat``, more opaque where the heat is
    further from the neutral value (0), so the face stays visible where nothing happens (``extent``: imshow's, for
    pooled images). Returns a mappable for a colour bar."""
    import matplotlib.cm as cm

    vmax = 255.0 if float(np.max(grey)) > 1.0 + 1e-6 else 1.0
    ax.imshow(grey, cmap="gray", vmin=0, vmax=vmax, extent=extent)
    cmap = plt.get_cmap(_cmap_of(norm))
    rgba = cmap(norm(heat))
    span = max(abs(norm.vmax), abs(norm.vmin), 1e-12)
    rgba[..., 3] = 0.85 * np.clip(np.abs(heat) / span, 0, 1) ** 0.7
    if valid is not None:
        rgba[..., 3] *= valid
    ax.imshow(rgba, interpolation="bilinear", extent=extent)
    return cm.ScalarMappable(norm=norm, cmap=cmap)


def _short(label: str) -> str:
    """A colour-bar label broken into short lines (the bar beside a strip of faces is short)."""
    return label.replace(" when", "\nwhen").replace(", area", "\narea").replace(" (", "\n(")


def _frame_times(part, n: int) -> np.ndarray:
    t = np.asarray(part.coordinates.get("time", np.arange(n, dtype=float)))
    return t if t.shape[0] == n else np.arange(n, dtype=float)


def _audio_row(fig, spec_ax, heat_ax, audio, index: int, explanation) -> None:
    """Spectrogram (dB) and the audio part's map (mask of area ~0.1, or the signed attribution)."""
    grid = audio.grid[index].detach().cpu().numpy()
    im = show_plane(spec_ax, audio, grid, "magnitude")
    fig.colorbar(im, ax=spec_ax, label="level (dB re max)", pad=0.01, fraction=0.05)
    spec_ax.set_title("mixture spectrogram", loc="left")
    if audio.masks is not None and audio.areas:
        k = int(np.argmin([abs(a - 0.1) for a in audio.areas]))
        im = show_plane(heat_ax, audio, audio.masks[index, k].detach().cpu().numpy(), "mask", ylabel=False)
        label = f"mask, area {audio.areas[k]:g} (1 = kept)"
    else:
        im = show_plane(heat_ax, audio, audio.attribution[index].detach().cpu().numpy(), "signed", ylabel=False)
        label = attribution_label(explanation)
    fig.colorbar(im, ax=heat_ax, label=_short(label), pad=0.01, fraction=0.05)
    heat_ax.set_title("audio evidence", loc="left")
    for ax in (spec_ax, heat_ax):
        draw_segment_edges(ax, explanation)


def _track_marks(explanation, track=None) -> dict:
    """The face tracker's report (``metadata["face_track"]`` or ``track.report``): shots, switches, undetected."""
    report = getattr(track, "report", None) or explanation.metadata.get("face_track") or {}
    return report if isinstance(report, dict) else {}


def _undetected(report: dict, n: int) -> np.ndarray:
    """``(n,)`` bool: frames where the followed face was not detected (held on its last box)."""
    flags = np.zeros(n, dtype=bool)
    for run in report.get("undetected") or []:
        if isinstance(run, dict):
            flags[int(run.get("start", 0)):int(run.get("end", 0))] = True
        elif isinstance(run, (list, tuple)) and len(run) == 2:
            flags[int(run[0]):int(run[1])] = True
    return flags


def _switch_frames(report: dict) -> list[int]:
    return [int(s["frame"]) if isinstance(s, dict) else int(s) for s in report.get("switches") or []]


def _mark_track(ax, report: dict, times: np.ndarray) -> list:
    """Shade undetected frames under the curve's axis and draw track switches; returns legend handles."""
    handles = []
    flags = _undetected(report, len(times))
    dt = (times[1] - times[0]) if len(times) > 1 else 1.0
    if flags.any():
        ax.fill_between(times, 0, 1, where=flags, transform=ax.get_xaxis_transform(), step="mid", color="0.85",
                        lw=0, zorder=0, label="no face detected")
        handles.append("no face detected")
    for f in _switch_frames(report):
        if 0 <= f < len(times):
            ax.axvline(times[f] - dt / 2, color=OKABE_ITO[6], lw=1.0, ls="-",
                       label="track switch" if "track switch" not in handles else None)
            if "track switch" not in handles:
                handles.append("track switch")
    return handles


@styled
def plot_video_explanation(explanation, index: int = 0, title: str | None = None, count: int = 8,
                           area: float | None = None):
    """A strip of ``count`` face crops with the map over them, the evidence per frame against time, the
    audio-vs-video shares (``metadata["av_shares"]``) and for an audio-visual explanation the spectrogram
    and its map. PCA-RGB explanations go to :func:`plot_pca_rgb`."""
    if any(name.startswith("rgb_") for name in explanation.arrays):
        return plot_pca_rgb(explanation, index=index, title=title, count=count)
    parts = _parts(explanation)
    video, audio = parts["video"], parts.get("audio")
    crops = video.grid[index].detach().cpu().numpy()  # (T, S, S) luminance
    heat, label = video_heat(explanation, index, area)
    time_only = is_time_only(heat)
    frames = strip_frames(heat.shape[0], count)
    n = len(frames)
    shares = explanation.metadata.get("av_shares")
    cell = (PAGE_WIDTH - 0.9) / n
    heights = [2 * cell + 0.3, 1.05] + ([0.6] if shares is not None else []) + ([1.45] if audio is not None else [])
    fig = new_figure(PAGE_WIDTH, sum(heights) + 0.45)
    rows = fig.subfigures(len(heights), 1, height_ratios=heights)
    strip = rows[0].subplots(2 if not time_only else 1, n, squeeze=False)
    norm = heat_norm(heat)
    times = _frame_times(video, heat.shape[0])
    mappable, marks = None, (segment_tiles(explanation, times[frames]) if "time" in video.coordinates else {})
    for j, f in enumerate(frames):
        strip[0, j].imshow(crops[f], cmap="gray", vmin=0, vmax=1)
        strip[0, j].set_title(f"{times[f]:.2f} s")
        if j in marks:
            mark_segment_tile(strip[:, j], *marks[j])
        if not time_only:
            mappable = heat_overlay(strip[1, j], crops[f], heat[f], norm)
        for ax in strip[:, j]:
            ax.axis("off")
    if mappable is not None:
        rows[0].colorbar(mappable, ax=strip[1, :].tolist(), label=_short(label), fraction=0.05, pad=0.01)
    curve_ax = rows[1].subplots()
    per_frame = heat.reshape(heat.shape[0], -1).mean(axis=1)
    curve_ax.plot(times, per_frame, color="k", lw=1, label=None)
    curve_ax.axhline(0, color="0.6", lw=0.5)
    unit = label.split("(")[-1].rstrip(")") if "(" in label else ""
    curve_ax.set_xlabel("time (s)")
    curve_ax.set_ylabel("mean over face" + (f"\n({unit})" if unit and "kept" not in unit else ""))
    curve_ax.set_title("video evidence per frame" + (" (a time-only map: the same value over the whole face, "
                                                     "so it is not painted over the faces)" if time_only else ""),
                       loc="left")
    for f in frames:
        curve_ax.axvline(times[f], color="0.6", lw=0.4, ls=":")
    if "time" in video.coordinates:
        draw_segment_edges(curve_ax, explanation)
    if _mark_track(curve_ax, _track_marks(explanation), times):
        legend_right(curve_ax)
    row = 2
    if shares is not None:
        plot_shares(rows[row].subplots(), shares)
        row += 1
    if audio is not None:
        # room for the spectrogram's colour-bar label, so it does not read as the map's axis label
        spec_ax, heat_ax = rows[row].subplots(1, 2, sharey=True, gridspec_kw={"wspace": 0.45})
        _audio_row(rows[row], spec_ax, heat_ax, audio, index, explanation)
    fig.suptitle(title or title_of(explanation, index))
    return fig


def _subtrack(track, chosen: np.ndarray):
    """The face track restricted to frames ``chosen`` (boxes only: what :func:`paste_back` reads)."""
    return dataclasses.replace(track, boxes=track.boxes[torch.as_tensor(chosen)])


@styled
def plot_frames_strip(explanation, frames, track, index: int = 0, count: int = 8, area: float | None = None,
                      title: str | None = None):
    """The video map pasted back onto the full frames (:func:`avxai.faces.paste_back`): top row the frames
    with the crop box, bottom row the grey frames with the map over the face (signed: the one signed map;
    masks: viridis; PCA-RGB colours with alpha). Frames without a detection get a dashed box and
    "no face detected"; a track switch before a shown frame is named. Only the shown frames are pasted back.

    ``frames``: the full frames ``(T, H, W, 3)`` uint8 the ``track`` (:class:`avxai.faces.FaceTrack`) was made on.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] != track.num_frames:
        raise ValueError(f"frames must be (T, H, W, 3) with the track's {track.num_frames} frames, got "
                         f"{tuple(frames.shape)}")
    chosen = strip_frames(frames.shape[0], count)
    sub = _subtrack(track, chosen)
    heat = None
    if any(name.startswith("rgb_") for name in explanation.arrays):
        rgb = explanation.arrays.get("rgb_video")
        if rgb is None:
            raise ValueError("this PCA-RGB explanation holds no video colours (arrays['rgb_video'])")
        rgb = rgb[index, torch.as_tensor(chosen)].float()  # (n, 3, h, w)
        pasted = torch.stack([paste_back(rgb[:, c], sub) for c in range(3)], dim=-1).numpy()  # (n, H, W, 3)
        inside = paste_back(torch.ones(len(chosen), *rgb.shape[-2:]), sub).numpy()
        label = "PCA-RGB of the face features"
        time_only = False
    else:
        heat_np, label = video_heat(explanation, index, area)
        time_only = is_time_only(heat_np)
        norm = heat_norm(heat_np)
        shown = torch.from_numpy(heat_np[chosen]).float()
        heat = paste_back(shown, sub).numpy()
        inside = paste_back(torch.ones_like(shown), sub).numpy()
    report = _track_marks(explanation, track)
    missing = _undetected(report, frames.shape[0])
    switches = _switch_frames(report)
    n = len(chosen)
    height, width = int(frames.shape[1]), int(frames.shape[2])
    cell = (PAGE_WIDTH - 1.0) / n  # the colour bar takes about 0.9 in; rows as high as the frames, no empty band
    fig = new_figure(PAGE_WIDTH, 2 * cell * height / width + 0.8)
    axes = fig.subplots(2, n, squeeze=False, gridspec_kw={"wspace": 0.01, "hspace": 0.01})
    # a frame wider than its cell's pixels at 300 dpi is area-averaged in k x k blocks first (avxai.viz.pooling)
    k = max(1, width // max(1, int(cell * MAX_COLUMNS / PAGE_WIDTH)))
    extent = (0, -(-width // k) * k, -(-height // k) * k, 0) if k > 1 else None
    fps = explanation.metadata.get("modality", {}).get("fps") or \
        explanation.metadata.get("modality", {}).get("parts", {}).get("video", {}).get("fps")
    im, marks = None, (segment_tiles(explanation, chosen / fps) if fps else {})  # tiles starting a segment
    for j, f in enumerate(chosen):
        frame = np.asarray(frames[f].cpu() if hasattr(frames, "cpu") else frames[f])
        frame = frame if k == 1 else pool_image(frame, k).round().astype(np.uint8)
        axes[0, j].imshow(frame, extent=extent)
        stamp = f"{f / fps:.2f} s" if fps else f"frame {f + 1}"
        if any(chosen[j - 1] < s <= f for s in switches) if j else False:
            stamp += "\nafter a switch"
        axes[0, j].set_title(stamp + ("\nno face found" if missing[f] else ""))
        if j in marks:
            mark_segment_tile(axes[:, j], *marks[j])
        x0, y0, x1, y1 = (float(v) for v in track.boxes[f])
        axes[0, j].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=0.8,
                                       ec=OKABE_ITO[6] if missing[f] else OKABE_ITO[4],
                                       ls="--" if missing[f] else "-"))
        grey = frame.mean(axis=-1) / 255.0
        inside_j = pool_image(inside[j], k)
        if heat is None:  # the PCA colours over the face with alpha, the grey frame around it
            alpha = RGB_ALPHA * inside_j[..., None]
            shown_rgb = pool_image(pasted[j], k).clip(0, 1)
            axes[1, j].imshow(alpha * shown_rgb + (1 - alpha) * grey[..., None], extent=extent)
        elif time_only:
            axes[1, j].imshow(grey, cmap="gray", vmin=0, vmax=1, extent=extent)
        else:
            im = heat_overlay(axes[1, j], grey, pool_image(heat[j], k), norm, valid=inside_j, extent=extent)
        for ax in axes[:, j]:
            ax.set_xlim(0, width)
            ax.set_ylim(height, 0)
            ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes[1, :].tolist(), label=_short(label), fraction=0.05, pad=0.01)
    extra = "; a time-only map (see figure.png), not painted over the faces" if time_only else ""
    fig.suptitle(title or title_of(explanation, index, extra=f"box: the face crop{extra}"))
    return fig


@styled
def plot_pca_rgb(explanation, index: int = 0, title: str | None = None, count: int = 8):
    """PCA-RGB images beside their inputs: face crops with their per-pixel colours over them (alpha
    :data:`RGB_ALPHA`, the face shows through), and the spectrogram beside its per-T-F-bin colours
    (``rgb_audio``) or any 2-D grid beside ``rgb_grid``."""
    arrays = explanation.arrays
    streams = [s for s in ("video", "audio", "grid") if f"rgb_{s}" in arrays]
    if not streams:
        raise ValueError("this pca-rgb explanation holds no RGB arrays (rgb_video / rgb_audio / rgb_grid)")
    parts = _parts(explanation) if is_composite(explanation) or is_video(explanation.axes) else \
        {"audio": explanation, "grid": explanation}
    layers = explanation.metadata.get("layers", {})
    planes = [s for s in ("audio", "grid") if s in streams]
    n = len(strip_frames(arrays["rgb_video"].shape[1], count)) if "video" in streams else 0
    cell = PAGE_WIDTH / max(n, 1)
    heights = ([2 * cell + 0.3] if "video" in streams else []) + [1.5] * len(planes)
    fig = new_figure(PAGE_WIDTH, sum(heights) + 0.35)
    rows = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    row = 0
    if "video" in streams:
        rgb = arrays["rgb_video"][index].float().numpy()  # (T, 3, h, w)
        crops = parts["video"].grid[index].detach().cpu().numpy()
        times = _frame_times(parts["video"], crops.shape[0])
        axes = rows[0].subplots(2, n, squeeze=False)
        for j, f in enumerate(strip_frames(rgb.shape[0], count)):
            axes[0, j].imshow(crops[f], cmap="gray", vmin=0, vmax=1)
            axes[0, j].set_title(f"{times[f]:.2f} s")
            colours = rgb[f].transpose(1, 2, 0).clip(0, 1)
            if colours.shape[:2] != crops[f].shape:  # a layer coarser than the crop: nearest cells
                ys = (np.arange(crops[f].shape[0]) * colours.shape[0] // crops[f].shape[0])
                xs = (np.arange(crops[f].shape[1]) * colours.shape[1] // crops[f].shape[1])
                colours = colours[ys][:, xs]
            axes[1, j].imshow(RGB_ALPHA * colours + (1 - RGB_ALPHA) * crops[f][..., None])
            for ax in axes[:, j]:
                ax.axis("off")
        rows[0].suptitle(f"face crops and the PCA-RGB of {layers.get('video', 'their features')} over them "
                         f"(per pixel, alpha {RGB_ALPHA:g})", fontsize=7)
        row = 1
    for stream in planes:
        rgb = arrays[f"rgb_{stream}"][index].float().numpy()  # (3, F, T), or (3, T) from a 1-D (TDNN) layer
        frames_only = rgb.ndim == 2
        if frames_only:
            rgb = rgb[:, None, :]  # one colour per frame, drawn over the whole frequency range
        part = parts.get(stream, explanation)
        grid = part.grid[index].detach().cpu().numpy()
        if grid.ndim != 2 or rgb.ndim != 3:
            plt.close(fig)
            raise ValueError(f"plot_pca_rgb draws 2-D {stream} grids, got grid {grid.shape} and RGB {rgb.shape}")
        spectral = is_spectral(part.axes[0], part.units)
        left, right = rows[row].subplots(1, 2, sharey=True)
        show_plane(left, part, grid, "magnitude" if spectral else "value")
        left.set_title("spectrogram (dB re max)" if spectral else "input", loc="left")
        extent = [*left.get_xlim(), *left.get_ylim()]  # the plane's span (also when it was pooled to the width)
        rgb = pool_columns(rgb, "mean")  # a wide embedding: the mean colour of each group of frames
        right.imshow(rgb.transpose(1, 2, 0).clip(0, 1), origin="lower", aspect="auto", extent=extent,
                     interpolation="nearest")
        right.set_xlabel(left.get_xlabel())
        right.tick_params(labelleft=False)
        per = "per frame" if frames_only else "per T-F bin" if spectral else None
        right.set_title(f"PCA-RGB of {layers.get(stream, 'the features')}" + (f" ({per})" if per else ""),
                        loc="left")
        row += 1
    fig.suptitle(title or "PCA-RGB embedding (similar features, similar colours)")
    return fig


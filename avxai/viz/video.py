"""Figures of face-video and audio-visual explanations.

* :func:`plot_video_explanation`: a strip of face crops with the heat map over them (blue = low, red =
  high; occlusion in dB of SDR drop, masks in [0, 1]; as in Looking to Listen's Fig. 8), the evidence per
  frame against time, and for an audio-visual explanation the spectrogram with its heat map and the
  audio-vs-video share as bars. Registered for the ``face-video`` and ``audio-visual`` modalities.
* :func:`plot_frames_strip`: the same heat map pasted back onto the full frames (needs the frames and the
  face track, which an explanation does not store; the ``av-enhancement`` task writes it as ``frames.png``).
* :func:`plot_pca_rgb`: PCA-RGB images (Sound of Pixels) beside the frames and beside the spectrogram.
* :func:`plot_shares`: the audio-vs-video share bar on an axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

import torch  # noqa: E402

from avxai.explanation import split_explanation  # noqa: E402
from avxai.faces import paste_back  # noqa: E402
from avxai.viz.attribution import diverging_norm, extent_2d, to_db  # noqa: E402
from avxai.viz.layout import is_composite, is_spectral, is_video  # noqa: E402

__all__ = ["plot_video_explanation", "plot_frames_strip", "plot_pca_rgb", "plot_shares", "video_heat",
           "strip_frames", "heat_norm", "heat_overlay", "HEAT_CMAP"]

#: colour map of heat maps over faces: blue = low, red = high (Looking to Listen, Fig. 8)
HEAT_CMAP = "jet"


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
    """The heat map over the face crops of input ``index`` and its colour-bar label.

    Occlusion (and other attribution methods): the attribution, in the scorer's units (score drop, dB).
    Mask methods: the mask of the area nearest ``area`` (default 0.1), 1 = kept.

    Shape: ``(frames, S, S)``.
    """
    part = _parts(explanation)["video"]
    units = explanation.metadata.get("scorer", {}).get("units", "")
    if part.masks is not None and part.areas:
        want = 0.1 if area is None else float(area)
        k = int(np.argmin([abs(a - want) for a in part.areas]))
        return part.masks[index, k].detach().cpu().numpy(), f"mask, area {part.areas[k]:g} (1 = keep)"
    label = f"score drop ({units})" if units and explanation.method == "occlusion" else (
        f"attribution ({units})" if units and explanation.method != "pca-rgb" else "attribution")
    if explanation.method == "occlusion" and units == "dB":
        label = "SDR drop when occluded (dB)"
    return part.attribution[index].detach().cpu().numpy(), label


def strip_frames(n_frames: int, count: int = 8) -> np.ndarray:
    """``count`` frame indices spread evenly over ``n_frames`` frames (all of them when fewer)."""
    return np.unique(np.linspace(0, n_frames - 1, min(count, n_frames)).round().astype(int))


def _heat_limits(heat: np.ndarray) -> tuple[float, float]:
    lo, hi = float(heat.min()), float(heat.max())
    return (lo, hi) if hi > lo else (lo - 1e-6, hi + 1e-6)


def heat_norm(heat: np.ndarray):
    """Colour norm of a heat map: signed maps (occlusion) centred on 0 (blue below, red above); masks in [0, 1]
    (or any non-negative map) from their minimum to their maximum."""
    from matplotlib.colors import Normalize, TwoSlopeNorm

    lo, hi = _heat_limits(heat)
    if lo < 0 < hi:
        bound = max(-lo, hi)
        return TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound)
    return Normalize(vmin=lo, vmax=hi)


def heat_overlay(ax, grey: np.ndarray, heat: np.ndarray, norm, valid: np.ndarray | None = None):
    """Draw ``grey`` (an image in [0, 1] or [0, 255]) and over it ``heat`` in :data:`HEAT_CMAP`, more opaque
    where the heat is further from the norm's neutral value (0 for signed maps, the minimum otherwise), so
    the face stays visible where nothing happens. Returns a mappable for a colour bar."""
    import matplotlib.cm as cm

    vmax = 255.0 if float(np.max(grey)) > 1.0 + 1e-6 else 1.0
    ax.imshow(grey, cmap="gray", vmin=0, vmax=vmax)
    cmap = plt.get_cmap(HEAT_CMAP)
    rgba = cmap(norm(heat))
    neutral = getattr(norm, "vcenter", norm.vmin)
    span = max(abs(norm.vmax - neutral), abs(neutral - norm.vmin), 1e-12)
    rgba[..., 3] = 0.8 * np.clip(np.abs(heat - neutral) / span, 0, 1) ** 0.7
    if valid is not None:
        rgba[..., 3] *= valid
    ax.imshow(rgba)
    return cm.ScalarMappable(norm=norm, cmap=cmap)


def _frame_times(part, n: int) -> np.ndarray:
    t = np.asarray(part.coordinates.get("time", np.arange(n, dtype=float)))
    return t if t.shape[0] == n else np.arange(n, dtype=float)


def plot_shares(ax, shares: dict, title: str = "audio vs video") -> None:
    """The audio and video shares of the evidence (:meth:`ModalityShares.as_dict`) as one stacked bar, with
    the four scores behind them (neither, audio, video, both streams masked) in the title."""
    first = lambda k: float(np.ravel(shares[k])[0])  # noqa: E731
    a_share, v_share = first("audio_share"), first("video_share")
    units = shares.get("units", "")
    left = 0.0
    for share, colour, name in ((a_share, "tab:blue", "audio"), (v_share, "tab:red", "video")):
        width = max(share, 0.0)
        ax.barh([0], [width], left=left, color=colour, height=0.8, label=f"{name} {100 * share:.0f} %")
        left += width
    ax.set_xlim(0, max(1.0, left))
    ax.set_yticks([])
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    ax.set_xlabel("share of the evidence (Shapley values of the two streams)")
    ax.set_title(f"{title}: score ({units}) unmasked {first('unmasked'):.2f}, audio masked {first('audio_masked'):.2f}, "
                 f"video masked {first('video_masked'):.2f}, both masked {first('both_masked'):.2f}", fontsize=8)


def _spectrogram_row(fig, spec_ax, heat_ax, audio, index: int) -> None:
    """Spectrogram (dB) and the audio part's heat map (mask of area ~0.1, or attribution)."""
    grid = audio.grid[index].detach().cpu().numpy()
    extent, f_label, t_label = extent_2d(audio)
    im = spec_ax.imshow(to_db(grid), origin="lower", aspect="auto", extent=extent, cmap="magma")
    fig.colorbar(im, ax=spec_ax, label="dB re max", pad=0.01, fraction=0.05)
    spec_ax.set_ylabel(f_label)
    spec_ax.set_xlabel(t_label)
    spec_ax.set_title("mixture spectrogram", fontsize=8)
    if audio.masks is not None and audio.areas:
        k = int(np.argmin([abs(a - 0.1) for a in audio.areas]))
        heat, label, norm = audio.masks[index, k].detach().cpu().numpy(), f"mask, area {audio.areas[k]:g}", None
        cmap = HEAT_CMAP
    else:
        heat = audio.attribution[index].detach().cpu().numpy()
        label, norm, cmap = "attribution", diverging_norm(heat), "RdBu_r"
    im = heat_ax.imshow(heat, origin="lower", aspect="auto", extent=extent, cmap=cmap, norm=norm)
    fig.colorbar(im, ax=heat_ax, label=label, pad=0.01, fraction=0.05)
    heat_ax.set_xlabel(t_label)
    heat_ax.tick_params(labelleft=False)
    heat_ax.set_title("audio evidence", fontsize=8)


def plot_video_explanation(explanation, index: int = 0, title: str | None = None, count: int = 8,
                           area: float | None = None):
    """A strip of ``count`` face crops with the heat map (blue low, red high) over them, the evidence per
    frame against time, and for an audio-visual explanation the spectrogram, its heat map and the
    audio-vs-video shares (``metadata["av_shares"]``, when present). PCA-RGB explanations go to
    :func:`plot_pca_rgb`."""
    if any(name.startswith("rgb_") for name in explanation.arrays):
        return plot_pca_rgb(explanation, index=index, title=title, count=count)
    parts = _parts(explanation)
    video, audio = parts["video"], parts.get("audio")
    crops = video.grid[index].detach().cpu().numpy()  # (T, S, S) luminance
    heat, label = video_heat(explanation, index, area)
    frames = strip_frames(heat.shape[0], count)
    n = len(frames)
    shares = explanation.metadata.get("av_shares")
    heights = [2.4, 1.3] + ([0.9] if shares is not None else []) + ([1.9] if audio is not None else [])
    fig = plt.figure(figsize=(max(1.6 * n, 9), sum(heights) + 0.6), layout="constrained")
    rows = fig.subfigures(len(heights), 1, height_ratios=heights)
    strip = rows[0].subplots(2, n, squeeze=False)
    norm = heat_norm(heat)
    times = _frame_times(video, heat.shape[0])
    mappable = None
    for j, f in enumerate(frames):
        strip[0, j].imshow(crops[f], cmap="gray", vmin=0, vmax=1)
        strip[0, j].set_title(f"{times[f]:.2f} s", fontsize=8)
        mappable = heat_overlay(strip[1, j], crops[f], heat[f], norm)
        for ax in strip[:, j]:
            ax.axis("off")
    rows[0].colorbar(mappable, ax=strip.ravel().tolist(), label=label, fraction=0.03, pad=0.01)
    curve_ax = rows[1].subplots()
    curve_ax.plot(times, heat.reshape(heat.shape[0], -1).mean(axis=1), color="k", lw=1)
    curve_ax.set_xlabel("time (s)")
    curve_ax.set_ylabel("mean over\nthe face")
    curve_ax.set_title("video evidence per frame", fontsize=8)
    for f in frames:
        curve_ax.axvline(times[f], color="grey", lw=0.4, ls=":")
    row = 2
    if shares is not None:
        plot_shares(rows[row].subplots(), shares)
        row += 1
    if audio is not None:
        spec_ax, heat_ax = rows[row].subplots(1, 2, sharey=True)
        _spectrogram_row(rows[row], spec_ax, heat_ax, audio, index)
    scorer = explanation.metadata.get("scorer", {}).get("scorer", "")
    fig.suptitle(title or f"{explanation.method}: {scorer}".rstrip(": "), fontsize=10)
    return fig


def plot_frames_strip(explanation, frames, track, index: int = 0, count: int = 8, area: float | None = None,
                      title: str | None = None):
    """The video heat map pasted back onto the full frames (:func:`avxai.faces.paste_back`): top row the
    frames, bottom row the frames with the heat map over the face (blue low, red high). For a PCA-RGB
    explanation the bottom row shows the RGB colours pasted back instead.

    ``frames``: the full frames ``(T, H, W, 3)`` uint8 the ``track`` (:class:`avxai.faces.FaceTrack`) was made on.
    """
    frames = frames.detach().cpu() if hasattr(frames, "detach") else torch.as_tensor(np.asarray(frames))
    if frames.dim() != 4 or frames.shape[-1] != 3 or frames.shape[0] != track.num_frames:
        raise ValueError(f"frames must be (T, H, W, 3) with the track's {track.num_frames} frames, got "
                         f"{tuple(frames.shape)}")
    if any(name.startswith("rgb_") for name in explanation.arrays):
        rgb = explanation.arrays.get("rgb_video")
        if rgb is None:
            raise ValueError("this PCA-RGB explanation holds no video colours (arrays['rgb_video'])")
        rgb = rgb[index].float()  # (T, 3, h, w)
        pasted = torch.stack([paste_back(rgb[:, c], track) for c in range(3)], dim=-1).numpy()  # (T, H, W, 3)
        inside_rgb = paste_back(torch.ones(rgb.shape[0], *rgb.shape[-2:]), track).numpy()
        label, heat = "PCA-RGB of the face features", None
    else:
        heat_np, label = video_heat(explanation, index, area)
        heat = paste_back(torch.from_numpy(heat_np).float(), track).numpy()
        inside = paste_back(torch.ones_like(torch.from_numpy(heat_np)).float(), track).numpy() > 0.5
    chosen = strip_frames(frames.shape[0], count)
    n = len(chosen)
    fig, axes = plt.subplots(2, n, figsize=(1.8 * n, 4.0), layout="constrained", squeeze=False)
    fps = explanation.metadata.get("modality", {}).get("fps") or \
        explanation.metadata.get("modality", {}).get("parts", {}).get("video", {}).get("fps")
    im = None
    if heat is not None:
        norm = heat_norm(heat_np)
    for j, f in enumerate(chosen):
        axes[0, j].imshow(frames[f].numpy())
        axes[0, j].set_title(f"{f / fps:.2f} s" if fps else f"frame {f}", fontsize=8)
        grey = frames[f].numpy().mean(axis=-1) / 255.0
        if heat is None:  # the PCA colours inside the face box, the grey frame around it
            box = inside_rgb[f][..., None]
            axes[1, j].imshow(box * pasted[f].clip(0, 1) + (1 - box) * grey[..., None])
        else:
            im = heat_overlay(axes[1, j], grey, heat[f], norm, valid=inside[f].astype(float))
        for ax in axes[:, j]:
            ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=axes[1, :].tolist(), label=label, fraction=0.03, pad=0.01)
    scorer = explanation.metadata.get("scorer", {}).get("scorer", "")
    fig.suptitle(title or f"{explanation.method} on the full frames: {scorer}".rstrip(": "), fontsize=10)
    return fig


def plot_pca_rgb(explanation, index: int = 0, title: str | None = None, count: int = 8):
    """PCA-RGB images beside their inputs: face crops over their per-pixel colours (``rgb_video``), and the
    spectrogram beside its per-T-F-bin colours (``rgb_audio``) or any 2-D grid beside ``rgb_grid``."""
    arrays = explanation.arrays
    streams = [s for s in ("video", "audio", "grid") if f"rgb_{s}" in arrays]
    if not streams:
        raise ValueError("this pca-rgb explanation holds no RGB arrays (rgb_video / rgb_audio / rgb_grid)")
    parts = _parts(explanation) if is_composite(explanation) or is_video(explanation.axes) else \
        {"audio": explanation, "grid": explanation}
    layers = explanation.metadata.get("layers", {})
    planes = [s for s in ("audio", "grid") if s in streams]
    n = len(strip_frames(arrays["rgb_video"].shape[1], count)) if "video" in streams else 0
    heights = ([2.6] if "video" in streams else []) + [2.2] * len(planes)
    fig = plt.figure(figsize=(max(1.6 * n, 10), sum(heights) + 0.6), layout="constrained")
    rows = fig.subfigures(len(heights), 1, height_ratios=heights, squeeze=False)[:, 0]
    row = 0
    if "video" in streams:
        rgb = arrays["rgb_video"][index].float().numpy()  # (T, 3, h, w)
        crops = parts["video"].grid[index].detach().cpu().numpy()
        axes = rows[0].subplots(2, n, squeeze=False)
        for j, f in enumerate(strip_frames(rgb.shape[0], count)):
            axes[0, j].imshow(crops[f], cmap="gray", vmin=0, vmax=1)
            axes[0, j].set_title(f"frame {f}", fontsize=8)
            axes[1, j].imshow(rgb[f].transpose(1, 2, 0).clip(0, 1), interpolation="nearest")
            for ax in axes[:, j]:
                ax.axis("off")
        rows[0].suptitle(f"face crops and the PCA-RGB of {layers.get('video', 'their features')} (per pixel)",
                         fontsize=8)
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
        extent, f_label, t_label = extent_2d(part) if spectral else (None, part.axes[0], part.axes[1])
        left, right = rows[row].subplots(1, 2, sharey=True)
        left.imshow(to_db(grid) if spectral else grid, origin="lower", aspect="auto", extent=extent, cmap="magma")
        left.set_title("spectrogram (dB)" if spectral else "input", fontsize=8)
        left.set_ylabel(f_label)
        left.set_xlabel(t_label)
        right.imshow(rgb.transpose(1, 2, 0).clip(0, 1), origin="lower", aspect="auto", extent=extent,
                     interpolation="nearest")
        per = "per frame" if frames_only else "per T-F bin" if spectral else None
        right.set_title(f"PCA-RGB of {layers.get(stream, 'the features')}" + (f" ({per})" if per else ""), fontsize=8)
        right.set_xlabel(t_label)
        right.tick_params(labelleft=False)
        row += 1
    fig.suptitle(title or "PCA-RGB embedding (similar features, similar colours)", fontsize=10)
    return fig

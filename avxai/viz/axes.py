"""Drawing pieces every figure shares: spectrograms in dB, time-frequency planes with frequency in Hz (mel
bands too), A-B-A turns as boundary lines with their labels above the data (never shading over it)."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from avxai.viz.pooling import POOLING, pool_columns, pool_factor
from avxai.viz.style import CMAPS, SEGMENT_COLOURS, SIGNED_CMAP, signed_norm

__all__ = ["to_db", "plane_extent", "freq_in_hz", "draw_turns", "draw_segment_edges", "segment_tiles",
           "mark_segment_tile", "show_plane", "time_of"]


def to_db(magnitude: np.ndarray, floor_db: float = -80.0) -> np.ndarray:
    """Magnitude -> dB relative to the maximum, floored at ``floor_db``."""
    ref = max(float(np.max(magnitude)), 1e-12)
    return np.maximum(20 * np.log10(np.maximum(magnitude, 1e-12) / ref), floor_db)


def time_of(explanation, axis: str | None = None, n: int | None = None) -> np.ndarray:
    """Coordinates of the time axis (s), or cell indices when the explanation has none of the right length."""
    axis = axis or explanation.axes[-1]
    n = n if n is not None else explanation.grid.shape[1 + list(explanation.axes).index(axis)]
    t = np.asarray(explanation.coordinates.get(axis, np.arange(n, dtype=float)), dtype=float)
    return t if t.shape[0] == n else np.arange(n, dtype=float)


def _plane_times(explanation, axes: "tuple[str, str] | None" = None) -> np.ndarray:
    """The time coordinates :func:`plane_extent` spans (one per column of the plane)."""
    t_axis = (tuple(explanation.axes[-2:]) if axes is None else axes)[1]
    return np.asarray(explanation.coordinates.get(t_axis, np.arange(explanation.grid.shape[-1])), dtype=float)


def plane_extent(explanation, axes: "tuple[str, str] | None" = None) -> tuple[list[float], str, str, bool]:
    """``(imshow extent, frequency label, time label, mel)`` of a (freq|mel, time) plane: the explanation's
    last two axes, or ``axes``. Mel bands are drawn at their band index (they are not evenly spaced in Hz);
    :func:`freq_in_hz` then labels that axis in Hz."""
    f_axis, t_axis = tuple(explanation.axes[-2:]) if axes is None else axes
    t = _plane_times(explanation, axes)
    f = np.asarray(explanation.coordinates.get(f_axis, np.arange(explanation.grid.shape[-2])), dtype=float)
    dt = (t[1] - t[0]) if len(t) > 1 else 1.0
    units = explanation.units
    t_label = f"time ({units.get(t_axis, 'frame')})"
    if f_axis == "mel":
        return [t[0] - dt / 2, t[-1] + dt / 2, -0.5, len(f) - 0.5], "frequency (Hz, mel scale)", t_label, True
    df = (f[1] - f[0]) if len(f) > 1 else 1.0
    f_unit = units.get(f_axis, "bin")
    return [t[0] - dt / 2, t[-1] + dt / 2, f[0] - df / 2, f[-1] + df / 2], \
        (f"frequency ({f_unit})" if f_axis in ("freq", "mel") or f_unit == "Hz" else f"{f_axis} ({f_unit})"), \
        t_label, False


def freq_in_hz(ax, centres_hz: np.ndarray, count: int = 4) -> None:
    """Label a mel-band axis (drawn at band index) in Hz: a few round frequencies at their band positions."""
    centres = np.asarray(centres_hz, dtype=float)
    if centres.size < 2:
        return
    candidates = np.array([100, 200, 250, 500, 1000, 2000, 4000, 8000, 16000], dtype=float)
    inside = candidates[(candidates >= centres[0]) & (candidates <= centres[-1])]
    if inside.size > count:
        inside = inside[np.linspace(0, inside.size - 1, count).round().astype(int)]
    positions = np.interp(inside, centres, np.arange(centres.size))
    ax.set_yticks(positions)
    ax.set_yticklabels([f"{v / 1000:g}k" if v >= 1000 else f"{v:g}" for v in inside])


def show_plane(ax, explanation, values: np.ndarray, kind: str, axes: "tuple[str, str] | None" = None,
               norm=None, ylabel: bool = True, xlabel: bool = True):
    """Draw a (freq|mel, time) plane: ``kind`` ``"db"`` (a level already in dB re max), ``"magnitude"`` (a
    magnitude, drawn in dB re its max), ``"signed"`` (attribution, :data:`~avxai.viz.style.SIGNED_CMAP` around 0),
    ``"mask"`` ([0, 1]) or ``"value"`` (any input). Returns the image.

    A plane wider than the figure can show (:data:`avxai.viz.pooling.MAX_COLUMNS` frames) is pooled along time
    first, by the rule of its kind (:data:`avxai.viz.pooling.POOLING`: the signed extreme of an attribution, the
    maximum of a level, the mean of a mask); it still spans the same time range."""
    if kind not in POOLING:
        raise ValueError(f"unknown plane kind {kind!r}; use 'db', 'magnitude', 'signed', 'mask' or 'value'")
    extent, f_label, t_label, mel = plane_extent(explanation, axes)
    columns = len(_plane_times(explanation, axes))
    k, groups = pool_factor(columns)
    values = np.asarray(values)
    full_extent = list(extent)
    if k > 1 and values.shape[-1] in (columns, groups):  # pooled here, or by the caller with the same rule
        values = pool_columns(values, POOLING[kind]) if values.shape[-1] == columns else values
        extent[1] = extent[0] + (extent[1] - extent[0]) * groups * k / columns  # the last group may be short
    if kind == "magnitude":
        values, kind = to_db(values), "db"
    if kind == "db":
        im = ax.imshow(values, origin="lower", aspect="auto", extent=extent, cmap=CMAPS["magnitude"],
                       norm=norm, interpolation="nearest")
    elif kind == "signed":
        im = ax.imshow(values, origin="lower", aspect="auto", extent=extent, cmap=CMAPS["attribution"],
                       norm=norm or signed_norm(values), interpolation="nearest")
    elif kind == "value":
        im = ax.imshow(values, origin="lower", aspect="auto", extent=extent, cmap=CMAPS["mask"], norm=norm,
                       interpolation="nearest")
    elif kind == "mask":
        im = ax.imshow(values, origin="lower", aspect="auto", extent=extent, cmap=CMAPS["mask"], vmin=0, vmax=1,
                       interpolation="nearest")
    if extent != full_extent:
        ax.set_xlim(full_extent[0], full_extent[1])
    f_axis = (axes or tuple(explanation.axes[-2:]))[0]
    if mel:
        freq_in_hz(ax, explanation.coordinates.get(f_axis, []))
    if ylabel:
        ax.set_ylabel(f_label)
    else:
        ax.tick_params(labelleft=False)
    if xlabel:
        ax.set_xlabel(t_label)
    else:
        ax.tick_params(labelbottom=False)
    return im


def draw_segment_edges(ax, explanation) -> None:
    """On a time axis (s) of a segment-wise explanation (``metadata["segment_wise"]``, :mod:`avxai.tasks.segmented`):
    thin dotted grey lines where one explained segment ends and the next begins, and a hatched band over a segment
    that failed (its cells are zeros, not evidence). Nothing for an explanation of the whole input."""
    wise = (explanation.metadata or {}).get("segment_wise") or {}
    if not wise:
        return
    lo, hi = ax.get_xlim()
    for seg in (wise.get("segments") or [])[1:]:
        x = float(seg["start_s"])
        if lo < x < hi:
            ax.axvline(x, color="0.45", lw=0.6, ls=(0, (1, 1.5)), alpha=0.9)
    for seg in wise.get("failed") or []:
        ax.axvspan(float(seg["start_s"]), float(seg["end_s"]), facecolor="none", edgecolor="0.4", hatch="///",
                   lw=0, alpha=0.8)
    ax.set_xlim(lo, hi)


def segment_tiles(explanation, times) -> dict[int, tuple[str, bool, bool]]:
    """Of the frame tiles of a strip shown at ``times`` (s, increasing), those to mark in a segment-wise
    explanation: ``{position: (words, starts, failed)}``. ``starts``: the first tile shown of a segment after the
    first, whose ``words`` name it ("seg. N", N from 1; "seg. N\nfailed" for a failed one); ``failed``: a tile in
    a failed segment (its cells are zeros, not evidence). Empty for a whole-input explanation."""
    wise = (explanation.metadata or {}).get("segment_wise") or {}
    segments = sorted(wise.get("segments") or [], key=lambda s: float(s["start_s"]))
    if not segments:
        return {}
    failed_spans = [(float(s["start_s"]), float(s["end_s"])) for s in wise.get("failed") or []]
    starts = np.array([float(s["start_s"]) for s in segments])
    out, previous = {}, None
    for j, t in enumerate(np.asarray(times, dtype=float)):
        k = max(0, int(np.searchsorted(starts, t + 1e-9, side="right")) - 1)  # the segment the frame lies in
        number = int(segments[k].get("index", k)) + 1
        failed = any(a - 1e-9 <= t < b - 1e-9 for a, b in failed_spans)
        new = k != previous
        if new and (previous is not None or failed):
            out[j] = (f"seg. {number}" + ("\nfailed" if failed else ""), previous is not None, failed)
        elif failed:
            out[j] = ("", False, True)
        previous = k
    return out


def mark_segment_tile(axes, words: str, starts: bool, failed: bool) -> None:
    """Mark a column of tiles (``axes``, top first) of a frame strip: ``words`` as a new line of the top tile's
    title (set the time first); where a segment ``starts``, a dotted line down the tiles' left edges in the grey
    of :func:`draw_segment_edges`' seams; over a ``failed`` segment's tiles its hatching."""
    if words:
        axes[0].set_title(axes[0].get_title() + "\n" + words)
    for ax in axes:
        if starts:
            ax.plot([0, 0], [0, 1], transform=ax.transAxes, color="0.45", lw=0.8, ls=(0, (1, 1.5)), clip_on=False)
        if failed:
            ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, facecolor="none", edgecolor="0.4",
                                   hatch="///", lw=0, alpha=0.8))


def draw_turns(ax, segments, labels: bool = True, colour: str | None = None) -> None:
    """Labelled time segments (dicts with start_s, end_s, label): dashed boundary lines over the data and,
    with ``labels``, each turn's label above the axes (in the axes' x coordinates, clear of the data). Lines
    are white over dark images (spectrograms, masks), black over curves and signed maps (``colour`` overrides)."""
    if not segments:
        return
    edges = sorted({float(s["start_s"]) for s in segments} | {float(s["end_s"]) for s in segments})[1:-1]
    lo, hi = ax.get_xlim()
    dark = bool(ax.images) and not any(im.get_cmap().name == SIGNED_CMAP for im in ax.images)
    for x in edges:  # the boundaries between turns (not the ends of the input)
        if lo < x < hi:
            ax.axvline(x, color=colour or ("w" if dark else "k"), lw=0.8, ls=(0, (3, 2)), alpha=0.9)
    if labels:
        for seg in segments:
            mid = (float(seg["start_s"]) + float(seg["end_s"])) / 2
            if lo <= mid <= hi:
                ax.text(mid, 1.0, str(seg["label"]), transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                        fontsize=7.5, fontweight="bold", color=SEGMENT_COLOURS.get(seg["label"], "k"), clip_on=False)

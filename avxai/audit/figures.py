"""The audit's figures (PNG bytes): one per trial (drawn by the worker that ran it) and two over the audit."""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import matplotlib
import numpy as np

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

from avxai.audit.summary import STATISTICS
from avxai.metrics.verification import det_curve
from avxai.viz.attribution import to_db

__all__ = ["trial_figure", "scores_figure", "distributions_figure"]


def _png(fig, dpi: int = 80) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


SEGMENT_COLOURS = {"target": "tab:green", "interferer": "tab:orange"}


def trial_figure(*, grid: np.ndarray, mask: np.ndarray, times: np.ndarray, freqs: np.ndarray, mel: bool,
                 speech: np.ndarray, segments: Sequence[Mapping], record: Mapping) -> bytes:
    """PNG of one trial: spectrogram (dB) with the mask outlined and shaded, the mask's mass over time with
    voice activity and the labelled segments, and the preserved / deleted scores and the deletion curve.

    Shape: grid, mask ``(freq, frames)``; times, speech ``(frames,)``; freqs ``(freq,)``.
    """
    fig = plt.figure(figsize=(10, 4.6))
    gs = fig.add_gridspec(2, 2, width_ratios=(3.2, 1), height_ratios=(2.4, 1), hspace=0.35, wspace=0.25)
    ax_spec = fig.add_subplot(gs[0, 0])
    ax_time = fig.add_subplot(gs[1, 0], sharex=ax_spec)
    ax_area = fig.add_subplot(gs[0, 1])
    ax_curve = fig.add_subplot(gs[1, 1])
    dt = float(times[1] - times[0]) if len(times) > 1 else 0.01
    if mel:
        extent = [times[0] - dt / 2, times[-1] + dt / 2, -0.5, grid.shape[0] - 0.5]
        ax_spec.set_ylabel("mel band")
    else:
        df = float(freqs[1] - freqs[0]) if len(freqs) > 1 else 1.0
        extent = [times[0] - dt / 2, times[-1] + dt / 2, (freqs[0] - df / 2) / 1000, (freqs[-1] + df / 2) / 1000]
        ax_spec.set_ylabel("kHz")
    ax_spec.imshow(to_db(grid), origin="lower", aspect="auto", extent=extent, cmap="gray_r", interpolation="nearest")
    shade = np.ma.masked_less(mask, 0.5)
    ax_spec.imshow(shade, origin="lower", aspect="auto", extent=extent, cmap="autumn", alpha=0.45, vmin=0, vmax=1,
                   interpolation="nearest")
    area = record.get("display_area")
    label = "target" if record.get("label") == 1 else "non-target"
    ax_spec.set_title(f"{record.get('id')} ({label}, {record.get('condition') or 'no condition'}): cosine "
                      f"{record.get('score', float('nan')):.3f}; shaded: mask at area {area:g}", fontsize=9,
                      parse_math=False)  # ids and conditions come from the CSV: a '$' is text, not mathtext
    plt.setp(ax_spec.get_xticklabels(), visible=False)
    profile = mask.sum(axis=0)
    profile = profile / profile.sum() if profile.sum() > 0 else profile
    ax_time.fill_between(times, 0, profile.max() * 1.1 if profile.max() > 0 else 1, where=~speech.astype(bool),
                         color="0.85", step="mid", lw=0)
    for seg in segments:
        colour = SEGMENT_COLOURS.get(seg["label"], "tab:grey")
        ax_spec.axvline(seg["start_s"], color=colour, lw=1.0, ls="--")
        ax_spec.axvline(seg["end_s"], color=colour, lw=1.0, ls="--")
        ax_time.axvspan(seg["start_s"], seg["end_s"], color=colour, alpha=0.18, lw=0)
        ax_time.text((seg["start_s"] + seg["end_s"]) / 2, 1.0, seg["label"], transform=ax_time.get_xaxis_transform(),
                     ha="center", va="bottom", fontsize=7, color=colour)
    ax_time.step(times, profile, where="mid", color="tab:red", lw=1.0)
    ax_time.set_xlabel("time (s)")
    ax_time.set_ylabel("mask mass", fontsize=8)
    ax_time.set_xlim(extent[0], extent[1])
    ax_time.set_title("mask mass per frame (red); grey: non-speech (VAD)", fontsize=7, loc="left")
    areas = record.get("areas") or []
    ax_area.plot(areas, record.get("preserved") or [], "o-", color="tab:blue", ms=3, label="preserved")
    ax_area.plot(areas, record.get("deleted") or [], "s-", color="tab:red", ms=3, label="deleted")
    ax_area.axhline(record.get("score", 0.0), color="k", lw=0.8, ls=":", label="original")
    ax_area.set_xlabel("mask area", fontsize=8)
    ax_area.set_ylabel("cosine", fontsize=8)
    ax_area.legend(fontsize=6, frameon=False)
    ax_area.tick_params(labelsize=7)
    curve = record.get("curve") or {}
    ax_curve.plot(curve.get("fractions", []), curve.get("scores", []), color="tab:purple", lw=1.2)
    ax_curve.set_xlabel("fraction removed (most relevant first)", fontsize=7)
    ax_curve.set_ylabel("cosine", fontsize=8)
    ax_curve.tick_params(labelsize=7)
    ax_spec.tick_params(labelsize=7)
    ax_time.tick_params(labelsize=7)
    return _png(fig)


def scores_figure(ok: list[Mapping], summary: Mapping) -> bytes:
    """Score histograms of target and non-target trials, and the DET curve (miss vs false-alarm rate)."""
    fig, (ax_h, ax_d) = plt.subplots(1, 2, figsize=(9, 3.2))
    tar = [r["score"] for r in ok if r["label"] == 1]
    non = [r["score"] for r in ok if r["label"] == 0]
    lo = min(tar + non, default=-1.0)
    hi = max(tar + non, default=1.0)
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 25)
    ax_h.hist(non, bins=bins, alpha=0.6, color="tab:red", label=f"non-target ({len(non)})")
    ax_h.hist(tar, bins=bins, alpha=0.6, color="tab:green", label=f"target ({len(tar)})")
    ax_h.set_xlabel("cosine score")
    ax_h.set_ylabel("trials")
    ax_h.legend(fontsize=7, frameon=False)
    if tar and non:
        p_miss, p_fa, _ = det_curve([r["score"] for r in ok], [r["label"] for r in ok])
        ax_d.plot(100 * p_fa, 100 * p_miss, color="k", lw=1.2, drawstyle="steps-post")
        e = summary.get("eer")
        if e is not None:
            ax_d.plot([100 * e], [100 * e], "o", color="tab:blue", label=f"EER {100 * e:.1f}%")
            ax_d.legend(fontsize=7, frameon=False)
    ax_d.plot([0, 100], [0, 100], ls=":", color="0.6", lw=0.8)
    ax_d.set_xlabel("false alarms (%)")
    ax_d.set_ylabel("misses (%)")
    ax_d.set_xlim(0, 100)
    ax_d.set_ylim(0, 100)
    ax_d.set_title("detection error trade-off", fontsize=9)
    fig.tight_layout()
    return _png(fig)


DISTRIBUTION_PANELS = ("nonspeech_mass", "nonspeech_reliance", "target_mass", "drop_deleted", "speech_only",
                       "nonspeech_only")


def distributions_figure(ok: list[Mapping]) -> bytes:
    """Histograms of the main statistics for target (green) and non-target (red) trials."""
    fig, axes = plt.subplots(2, 3, figsize=(10, 5))
    for ax, name in zip(axes.flat, DISTRIBUTION_PANELS):
        description, get = STATISTICS[name]
        groups = {}
        for cls, label in (("target", 1), ("non-target", 0)):
            groups[cls] = [v for v in (get(r) for r in ok if r["label"] == label) if v is not None]
        values = groups["target"] + groups["non-target"]
        if values:
            lo, hi = min(values), max(values)
            bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 16)
            for cls, colour in (("non-target", "tab:red"), ("target", "tab:green")):
                if groups[cls]:
                    ax.hist(groups[cls], bins=bins, alpha=0.6, color=colour, label=f"{cls} ({len(groups[cls])})")
            ax.legend(fontsize=6, frameon=False)
        else:
            ax.text(0.5, 0.5, "no labelled trials", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set_title(description, fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)

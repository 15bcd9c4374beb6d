"""The audit's figures (PNG bytes): one per trial (drawn by the worker that ran it) and two over the audit.

Every figure is drawn at its size on the page (:data:`DISPLAY_WIDTH_IN`, the print style's double-column width,
shown at :data:`CSS_DPI` CSS pixels per inch) with text of at least 7 pt, and saved at twice that resolution
(:data:`PNG_DPI`), so it is sharp on a 2x (retina) screen. Style, colours and the smallest text size are the
print style's (:mod:`avxai.viz.style`): Okabe-Ito blue / orange for target / non-target trials.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import matplotlib
import numpy as np
from scipy.stats import norm

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402

from avxai.metrics.verification import det_curve
from avxai.viz.attribution import to_db
from avxai.viz.style import CMAPS, MIN_FONT_PT, OKABE_ITO, PAGE_WIDTH, SEGMENT_COLOURS, paper_style

__all__ = ["trial_figure", "scores_figure", "distributions_figure", "det_axes_points", "CSS_DPI", "PNG_DPI",
           "DISPLAY_WIDTH_IN", "display_width_px", "COLOURS"]

#: CSS pixels per inch (the browser's), the page shows every figure at its print size in these
CSS_DPI = 96
#: PNGs are saved at twice the display resolution (2x screens)
PNG_DPI = 2 * CSS_DPI
#: every audit figure is as wide as a double-column print figure
DISPLAY_WIDTH_IN = PAGE_WIDTH
#: the print style's Okabe-Ito colours (colour-blind safe): target / non-target trials blue / orange; labelled
#: segments as the style's speakers A / B; the mask outline sky blue over the magma spectrogram
COLOURS = {"target": OKABE_ITO[5], "non-target": OKABE_ITO[1], "segment target": SEGMENT_COLOURS["A"],
           "segment interferer": SEGMENT_COLOURS["B"], "mask": OKABE_ITO[2], "removed": OKABE_ITO[6],
           "kept": OKABE_ITO[5], "curve": OKABE_ITO[0], "nonspeech": "0.85"}


def display_width_px() -> int:
    """The width (CSS pixels) at which the report shows every audit figure."""
    return int(round(DISPLAY_WIDTH_IN * CSS_DPI))


def _style():
    return paper_style(**{"savefig.bbox": "standard", "savefig.dpi": PNG_DPI, "font.size": 8,
                          "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
                          "legend.fontsize": 7})


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def trial_figure(*, grid: np.ndarray, mask: np.ndarray, times: np.ndarray, freqs: np.ndarray, mel: bool,
                 speech: np.ndarray, segments: Sequence[Mapping], record: Mapping) -> bytes:
    """PNG of one trial: spectrogram (dB) with the mask outlined, the mask's mass over time with voice activity
    and the labelled segments, the preserved / deleted scores per area and the deletion curve.

    Shape: grid, mask ``(freq, frames)``; times, speech ``(frames,)``; freqs ``(freq,)`` (Hz; mel band centres).
    """
    with _style():
        fig = plt.figure(figsize=(DISPLAY_WIDTH_IN, 3.6), layout="constrained")
        gs = fig.add_gridspec(2, 2, width_ratios=(2.6, 1), height_ratios=(2.2, 1))
        ax_spec = fig.add_subplot(gs[0, 0])
        ax_time = fig.add_subplot(gs[1, 0], sharex=ax_spec)
        ax_area = fig.add_subplot(gs[0, 1])
        ax_curve = fig.add_subplot(gs[1, 1])
        dt = float(times[1] - times[0]) if len(times) > 1 else 0.01
        x0, x1 = times[0] - dt / 2, times[-1] + dt / 2
        if mel:  # rows are mel bands: draw by band, label the ticks with the bands' centre frequencies
            extent = [x0, x1, -0.5, grid.shape[0] - 0.5]
            ticks = np.linspace(0, grid.shape[0] - 1, 5).round().astype(int)
            ax_spec.set_yticks(ticks, [f"{freqs[i] / 1000:.1f}" for i in ticks])
        else:
            df = float(freqs[1] - freqs[0]) if len(freqs) > 1 else 1.0
            extent = [x0, x1, (freqs[0] - df / 2) / 1000, (freqs[-1] + df / 2) / 1000]
        ax_spec.set_ylabel("frequency (kHz)")
        image = ax_spec.imshow(to_db(grid), origin="lower", aspect="auto", extent=extent, cmap=CMAPS["magnitude"],
                               interpolation="nearest")
        if mask.max() > 0.5 > mask.min():
            ys = np.linspace(extent[2], extent[3], mask.shape[0] + 1)
            xs = np.linspace(extent[0], extent[1], mask.shape[1] + 1)
            ax_spec.contour((xs[:-1] + xs[1:]) / 2, (ys[:-1] + ys[1:]) / 2, mask, levels=[0.5],
                            colors=[COLOURS["mask"]], linewidths=1.1)
        bar = fig.colorbar(image, ax=ax_spec, pad=0.01, fraction=0.04)
        bar.set_label("level (dB re max)")
        area = record.get("display_area")
        label = "target" if record.get("label") == 1 else "non-target"
        fig.suptitle(f"{record.get('id')} ({label} trial, {record.get('condition') or 'no condition'}): "
                          f"cosine {record.get('score', float('nan')):.3f} to the enrollment of "
                          f"{record.get('speaker') or 'the enrolled speaker'}; outline: mask at area {area:g}",
                     x=0.01, ha="left", fontsize=8, parse_math=False)  # ids and conditions come from the CSV
        plt.setp(ax_spec.get_xticklabels(), visible=False)
        profile = mask.sum(axis=0)
        profile = profile / profile.sum() if profile.sum() > 0 else profile
        top = profile.max() * 1.25 if profile.max() > 0 else 1.0
        ax_time.fill_between(times, 0, top, where=~speech.astype(bool), color=COLOURS["nonspeech"], step="mid",
                             lw=0, label="non-speech (VAD)")
        for seg in segments:
            colour = COLOURS.get(f"segment {seg['label']}", "0.4")
            ax_time.axvspan(seg["start_s"], seg["end_s"], ymin=0.88, ymax=1.0, color=colour, lw=0)
            ax_time.text((seg["start_s"] + seg["end_s"]) / 2, 1.02, seg["label"], ha="center", va="bottom",
                         transform=ax_time.get_xaxis_transform(), fontsize=MIN_FONT_PT, color=colour)
            for edge in (seg["start_s"], seg["end_s"]):
                ax_spec.axvline(edge, color=colour, lw=0.8, ls="--")
        ax_time.step(times, profile, where="mid", color=COLOURS["curve"], lw=1.0, label="mask mass")
        ax_time.set_ylim(0, top)
        ax_time.set_xlabel("time (s)")
        ax_time.set_ylabel("mask mass\nper frame")
        ax_time.set_xlim(extent[0], extent[1])
        areas = record.get("areas") or []
        ax_area.plot(areas, record.get("preserved") or [], "o-", color=COLOURS["kept"], ms=3, label="only mask kept")
        ax_area.plot(areas, record.get("deleted") or [], "s--", color=COLOURS["removed"], ms=3, label="mask removed")
        ax_area.axhline(record.get("score", 0.0), color="k", lw=0.8, ls=":", label="unmasked")
        ax_area.set_xlabel("mask area (fraction)")
        ax_area.set_ylabel("cosine")
        ax_area.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False, borderaxespad=0.2,
                       handlelength=1.5, columnspacing=0.8)
        curve = record.get("curve") or {}
        ax_curve.plot(curve.get("fractions", []), curve.get("scores", []), color=COLOURS["curve"], lw=1.2)
        ax_curve.set_xlabel("fraction removed (most relevant first)")
        ax_curve.set_ylabel("cosine")
        return _png(fig)


def det_axes_points(p_miss: np.ndarray, p_fa: np.ndarray, n_target: int,
                    n_nontarget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """DET operating points on normal-deviate axes: ``norm.ppf`` of the false-alarm and miss rates.

    A rate of 0 or 1 has no normal deviate; such a point is drawn at half a trial from it (``0.5 / n`` of its
    class, where the axes end) and marked ``clipped``, so a curve with EER = 0 still shows its points.
    Returns (x = deviate of P_fa, y = deviate of P_miss, clipped, axis limit as a deviate).

    Shape: p_miss, p_fa ``(points,)`` -> three ``(points,)`` arrays and a float.
    """
    lo_fa, lo_miss = 0.5 / max(n_nontarget, 1), 0.5 / max(n_target, 1)
    fa = np.clip(p_fa, lo_fa, 1 - lo_fa)
    miss = np.clip(p_miss, lo_miss, 1 - lo_miss)
    clipped = (fa != p_fa) | (miss != p_miss)
    limit = float(norm.ppf(1 - min(lo_fa, lo_miss) / 2))
    return norm.ppf(fa), norm.ppf(miss), clipped, limit


#: probabilities (percent) labelled on the DET axes, as far as the axes reach
DET_TICKS = (0.1, 0.5, 1, 2, 5, 10, 20, 40, 60, 80, 90, 95, 98, 99, 99.5, 99.9)


def _det_panel(ax, ok: list[Mapping], summary: Mapping) -> None:
    labels = [r["label"] for r in ok]
    n_tar, n_non = labels.count(1), labels.count(0)
    if not (n_tar and n_non):
        ax.text(0.5, 0.5, "needs target and\nnon-target trials", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        p_miss, p_fa, thresholds = det_curve([r["score"] for r in ok], labels)
        x, y, clipped, limit = det_axes_points(p_miss, p_fa, n_tar, n_non)
        ax.plot(x, y, color=COLOURS["curve"], lw=1.0, drawstyle="steps-post")
        ax.plot(x[~clipped], y[~clipped], "o", color=COLOURS["curve"], ms=2.5, label="operating points")
        if clipped.any():
            ax.plot(x[clipped], y[clipped], "o", mfc="white", mec=COLOURS["curve"], ms=3,
                    label="rate 0 or 1 (at the edge)")
        e = summary.get("eer")
        if e is not None:
            d = float(norm.ppf(np.clip(e, 0.5 / max(n_tar, n_non), 1 - 0.5 / max(n_tar, n_non))))
            text = "EER = 0 (scores separate)" if e == 0 else f"EER {100 * e:.1f} %"
            ax.plot([d], [d], "D", color=COLOURS["target"], ms=5, label=text, zorder=3)
        ticks = [t for t in DET_TICKS if abs(norm.ppf(t / 100)) <= limit]
        ax.set_xticks([norm.ppf(t / 100) for t in ticks], [f"{t:g}" for t in ticks])
        ax.set_yticks([norm.ppf(t / 100) for t in ticks], [f"{t:g}" for t in ticks])
        ax.plot([-limit, limit], [-limit, limit], ls=":", color="0.6", lw=0.8)
        ax.set_xlim(-limit, limit)
        ax.set_ylim(-limit, limit)
        ax.legend(loc="upper right", frameon=True, framealpha=0.9, edgecolor="none", borderaxespad=0.2,
                  handletextpad=0.3)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("false accepts (%, normal-deviate scale)")
    ax.set_ylabel("false rejects (%, normal-deviate scale)")
    ax.set_title("detection error trade-off", loc="left")


def scores_figure(ok: list[Mapping], summary: Mapping) -> bytes:
    """Score histograms of target and non-target trials with the decision threshold, and the DET curve on
    normal-deviate (probit) axes with the EER point."""
    with _style():
        fig, (ax_h, ax_d) = plt.subplots(1, 2, figsize=(DISPLAY_WIDTH_IN, 2.8), layout="constrained",
                                         width_ratios=(1, 1.25))
        groups = {"target": [r["score"] for r in ok if r["label"] == 1],
                  "non-target": [r["score"] for r in ok if r["label"] == 0]}
        values = groups["target"] + groups["non-target"]
        lo, hi = min(values, default=-1.0), max(values, default=1.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 21)
        for cls, hatch in (("non-target", "//"), ("target", None)):
            if groups[cls]:
                ax_h.hist(groups[cls], bins=bins, color=COLOURS[cls], alpha=0.55, hatch=hatch,
                          edgecolor=COLOURS[cls], lw=0.6, label=f"{cls} ({len(groups[cls])})")
        t = (summary.get("decision") or {}).get("threshold")
        if t is not None:
            ax_h.axvline(t, color="k", lw=1.0, ls="--",
                         label=f"threshold {t:.3f} ({summary['decision']['source']})")
        ax_h.set_xlabel("cosine score")
        ax_h.set_ylabel("trials")
        if values:
            ax_h.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), frameon=False, ncol=2, borderaxespad=0.2)
        _det_panel(ax_d, ok, summary)
        return _png(fig)


#: the panels of the distributions figure: (criterion key or statistic name, axis label, threshold's criterion)
DISTRIBUTION_PANELS = (
    ("nonspeech_reliance", "non-speech reliance\n(mass share minus frame share)", "nonspeech_reliance"),
    ("interferer_mass", "share of smallest mask\non the interferer (target trials)", "interferer_mass"),
    ("nonspeech_score", "cosine of the non-speech\nframes alone", "nonspeech_score"),
    ("speech_only", "cosine of the speech\nframes alone", None),
    ("target_mass", "share of mask on the\nlabelled target speaker", None),
    ("drop_deleted", "score drop when the\nmask is removed", None),
)


def distributions_figure(ok: list[Mapping], values: Mapping[str, Mapping[str, float | None]],
                         thresholds: Mapping[str, float | None]) -> bytes:
    """Histograms of the flag criteria and three statistics for target (blue) and non-target (orange, hatched)
    trials, with each criterion's threshold.

    ``values``: panel name -> trial id -> value (None: does not apply); ``thresholds``: criterion -> threshold.
    """
    with _style():
        fig, axes = plt.subplots(2, 3, figsize=(DISPLAY_WIDTH_IN, 4.4), layout="constrained")
        for ax, (name, xlabel, criterion) in zip(axes.flat, DISTRIBUTION_PANELS):
            groups = {cls: [v for v in (values[name].get(r["id"]) for r in ok if r["label"] == label)
                            if v is not None] for cls, label in (("target", 1), ("non-target", 0))}
            both = groups["target"] + groups["non-target"]
            if both:
                lo, hi = min(both), max(both)
                bins = np.linspace(lo, hi if hi > lo else lo + 1e-3, 13)
                for cls, hatch in (("non-target", "//"), ("target", None)):
                    if groups[cls]:
                        ax.hist(groups[cls], bins=bins, color=COLOURS[cls], alpha=0.55, hatch=hatch,
                                edgecolor=COLOURS[cls], lw=0.6, label=f"{cls} ({len(groups[cls])})")
                t = thresholds.get(criterion) if criterion else None
                if t is not None:
                    ax.axvline(t, color="k", lw=1.0, ls="--", label="flag threshold")
            else:
                ax.text(0.5, 0.5, "applies to no\nfinished trial", ha="center", va="center", transform=ax.transAxes)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("trials")
        handles = {}
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab.split(" (")[0], h)
        if handles:
            fig.legend(handles.values(), handles.keys(), loc="outside upper center", ncol=len(handles),
                       frameon=False)
        return _png(fig)

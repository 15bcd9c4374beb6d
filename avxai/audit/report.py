"""The audit report: one static HTML page with PNG figures and WAV players beside it (relative paths).

``DIR/report.html`` shows the summary (counts, EER, minDCF, the statistics for target and non-target
trials), the trials ranked by how much their explanation relies on non-speech, the failed trials with
their errors, and per trial the spectrogram with the mask, the segment labels, the voice activity and
audio players for the original, the preserved and the deleted test audio. ``DIR/summary.json`` holds the
same numbers for programs. The page depends only on the finished records (never on timing or the order
trials finished in), so an interrupted and resumed audit writes the same report as an uninterrupted one.
All text from trial lists, file names and errors is HTML-escaped.
"""

from __future__ import annotations

import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote

import numpy as np

__all__ = ["ReportOptions", "build_report", "summarise", "trial_figure", "STATISTICS"]


@dataclass(frozen=True)
class ReportOptions:
    """How the report summarises: the detection-cost parameters and how many suspicious trials to list."""

    p_target: float = 0.01
    c_miss: float = 1.0
    c_fa: float = 1.0
    top_suspicious: int = 20

    def __post_init__(self):
        if not 0.0 < self.p_target < 1.0:
            raise ValueError(f"p_target must be in (0, 1), got {self.p_target}")
        if not (self.c_miss > 0 and self.c_fa > 0):
            raise ValueError(f"c_miss and c_fa must be > 0, got {self.c_miss}, {self.c_fa}")
        if isinstance(self.top_suspicious, bool) or not isinstance(self.top_suspicious, int) or self.top_suspicious < 0:
            raise ValueError(f"top_suspicious must be an int >= 0, got {self.top_suspicious!r}")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig, dpi: int = 80) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# per-trial figure (drawn by the worker that ran the trial)
# ---------------------------------------------------------------------------------------------
SEGMENT_COLOURS = {"target": "tab:green", "interferer": "tab:orange"}


def trial_figure(*, grid: np.ndarray, mask: np.ndarray, times: np.ndarray, freqs: np.ndarray, mel: bool,
                 speech: np.ndarray, segments: Sequence[Mapping], record: Mapping) -> bytes:
    """PNG of one trial: spectrogram (dB) with the mask outlined and shaded, the mask's mass over time with
    voice activity and the labelled segments, and the preserved / deleted scores and the deletion curve.

    Shape: grid, mask ``(freq, frames)``; times, speech ``(frames,)``; freqs ``(freq,)``.
    """
    from avxai.viz.attribution import to_db

    plt = _pyplot()
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


# ---------------------------------------------------------------------------------------------
# statistics over the audit
# ---------------------------------------------------------------------------------------------
def _at(values: Sequence | None, record: Mapping) -> float | None:
    if not values:
        return None
    return values[record["areas"].index(record["display_area"])]


#: name -> (description, accessor of a finished record; None when it does not apply)
STATISTICS: dict[str, tuple[str, Callable[[Mapping], Any]]] = {
    "score": ("verification score (cosine)", lambda r: r["score"]),
    "nonspeech_frames": ("share of frames without speech (VAD)", lambda r: 1.0 - r["speech"]["frames_fraction"]),
    "nonspeech_mass": ("mask mass in non-speech frames (display area)", lambda r: _at(r["speech"]["nonspeech_mass"], r)),
    "nonspeech_reliance": ("non-speech mass minus non-speech frame share, mean over areas",
                           lambda r: r["nonspeech_reliance"]),
    "target_mass": ("mask mass in the labelled target segments (display area)",
                    lambda r: _at(r["target"]["mass"], r) if r.get("target") else None),
    "interferer_mass": ("mask mass in the labelled interferer segments (display area)",
                        lambda r: _at(r["interferer"]["mass"], r) if r.get("interferer") else None),
    "preserved": ("score keeping only the mask (display area)", lambda r: _at(r["preserved"], r)),
    "deleted": ("score with the mask removed (display area)", lambda r: _at(r["deleted"], r)),
    "drop_deleted": ("score drop when the mask is removed (display area)",
                     lambda r: r["score"] - _at(r["deleted"], r)),
    "speech_only": ("score of the speech frames alone", lambda r: r["speech"]["score_speech_only"]),
    "nonspeech_only": ("score of the non-speech frames alone", lambda r: r["speech"]["score_nonspeech_only"]),
    "curve_drop": ("mean score drop along the deletion curve",
                   lambda r: float(np.trapezoid(r["curve"]["drop"], r["curve"]["fractions"]))),
}


def _describe(values: list[float]) -> dict | None:
    if not values:
        return None
    a = np.asarray(values, dtype=np.float64)
    return {"n": int(a.size), "mean": float(a.mean()), "std": float(a.std()), "median": float(np.median(a)),
            "p10": float(np.quantile(a, 0.1)), "p90": float(np.quantile(a, 0.9)),
            "min": float(a.min()), "max": float(a.max())}


def _error_rates(records: list[Mapping], options: ReportOptions) -> dict:
    from avxai.metrics.verification import eer, min_dcf

    scores = [r["score"] for r in records]
    labels = [r["label"] for r in records]
    if not (1 in labels and 0 in labels):
        return {"eer": None, "min_dcf": None, "note": "needs finished target and non-target trials"}
    return {"eer": eer(scores, labels),
            "min_dcf": min_dcf(scores, labels, options.p_target, options.c_miss, options.c_fa), "note": None}


def summarise(trials: Sequence, records: Mapping[str, Mapping], options: ReportOptions) -> dict:
    """The audit's numbers: counts, EER/minDCF (overall and per condition), statistics per class, ranking."""
    ordered = [records[t.id] for t in trials if t.id in records]
    ok = [r for r in ordered if r["status"] == "ok"]
    failed = [r for r in ordered if r["status"] != "ok"]
    counts = {"trials": len(trials), "finished": len(ordered), "pending": len(trials) - len(ordered),
              "ok": len(ok), "failed": len(failed),
              "target": sum(r["label"] == 1 for r in ok), "nontarget": sum(r["label"] == 0 for r in ok)}
    stats = {}
    for name, (description, get) in STATISTICS.items():
        per = {}
        for cls, label in (("target", 1), ("nontarget", 0)):
            values = [v for v in (get(r) for r in ok if r["label"] == label) if v is not None]
            per[cls] = _describe(values)
        stats[name] = {"description": description, **per}
    conditions = {}
    for cond in sorted({r["condition"] for r in ordered}):
        group = [r for r in ok if r["condition"] == cond]
        conditions[cond] = {
            "target": sum(r["label"] == 1 for r in group), "nontarget": sum(r["label"] == 0 for r in group),
            "failed": sum(r["condition"] == cond for r in failed),
            **{k: v for k, v in _error_rates(group, options).items() if k != "note"},
            "nonspeech_reliance": _describe([r["nonspeech_reliance"] for r in group]),
        }
    ranked = sorted(ok, key=lambda r: (-r["nonspeech_reliance"], r["index"]))
    return {
        "counts": counts,
        **_error_rates(ok, options),
        "p_target": options.p_target, "c_miss": options.c_miss, "c_fa": options.c_fa,
        "statistics": stats,
        "conditions": conditions,
        "suspicious": [{"id": r["id"], "nonspeech_reliance": r["nonspeech_reliance"]}
                       for r in ranked[:options.top_suspicious]],
        "failed": [{"id": r["id"], "line": r["line"], "error": r["error"]} for r in failed],
    }


# ---------------------------------------------------------------------------------------------
# audit-level figures
# ---------------------------------------------------------------------------------------------
def scores_figure(ok: list[Mapping], summary: Mapping) -> bytes:
    """Score histograms of target and non-target trials, and the DET curve (miss vs false-alarm rate)."""
    from avxai.metrics.verification import det_curve

    plt = _pyplot()
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
    plt = _pyplot()
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


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _url(rel: str) -> str:
    return _e(quote(rel, safe="/"))


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float) and not math.isfinite(value):
        return "&ndash;"
    return f"{float(value):.{digits}f}"


def _pct(value: Any) -> str:
    return "&ndash;" if value is None else f"{100 * float(value):.1f}%"


CSS = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f2f2f2; }
td.text, th.text { text-align: left; }
section.trial { border-top: 2px solid #ddd; margin-top: 1.5em; padding-top: 0.5em; }
.players { display: flex; gap: 1em; flex-wrap: wrap; }
.players figure { margin: 0; }
.players figcaption { font-size: 0.8em; color: #555; }
img { max-width: 100%; }
.error { color: #a00; white-space: pre-wrap; text-align: left; }
.note { color: #555; font-size: 0.9em; }
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], text_columns: Sequence[int] = ()) -> str:
    """Cells are already HTML (escaped by the caller)."""
    head = "".join(f'<th class="text">{h}</th>' if i in text_columns else f"<th>{h}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="text">{c}</td>' if i in text_columns else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _trial_section(r: Mapping) -> str:
    label = "target (same speaker)" if r["label"] == 1 else "non-target (different speaker)"
    parts = [f'<section class="trial" id="trial-{_e(r["id"])}">',
             f'<h3>{_e(r["id"])}: {_e(label)}{", " + _e(r["condition"]) if r["condition"] else ""}</h3>',
             f'<p>enroll <code>{_e(r["enroll"])}</code>, test <code>{_e(r["test"])}</code> '
             f'(CSV line {int(r["line"])})']
    if r["status"] != "ok":
        err = r.get("error") or {}
        parts.append(f'</p><p class="error">failed: {_e(err.get("type", "Error"))}: {_e(err.get("message", ""))}</p>'
                     "</section>")
        return "".join(parts)
    parts.append(f'; cosine score <b>{_num(r["score"])}</b>, {_num(r["duration_s"], 2)} s</p>')
    segs = []
    for name in ("target_segments", "interferer_segments"):
        if r.get(name):
            segs.append(f'{_e(name.split("_")[0])}: ' + ", ".join(f"{_num(s, 2)}&ndash;{_num(e, 2)} s" for s, e in r[name]))
    parts.append(f'<p>segments: {"; ".join(segs) if segs else "none labelled"}; speech-active frames (VAD): '
                 f'{_pct(r["speech"]["frames_fraction"])}</p>')
    for key, value in sorted((r.get("extra") or {}).items()):
        parts.append(f"<p>{_e(key)}: {_e(value)}</p>")
    files = r.get("files") or {}
    if "figure" in files:
        parts.append(f'<img src="{_url(files["figure"])}" alt="{_e("spectrogram and mask of " + r["id"])}" '
                     'width="800" height="368">')
    players = []
    for key, caption in (("original", "original test audio"), ("preserved", "preserved (mask kept)"),
                         ("deleted", "deleted (mask removed)")):
        if key in files:
            players.append(f'<figure><figcaption>{_e(caption)}</figcaption>'
                           f'<audio controls preload="metadata" src="{_url(files[key])}"></audio></figure>')
    if players:
        parts.append('<div class="players">' + "".join(players) + "</div>")
    rows = []
    for k, area in enumerate(r["areas"]):
        rows.append([_num(area, 2), _num(r["preserved"][k]), _num(r["deleted"][k]), _pct(r["speech"]["mass"][k]),
                     _pct(r["speech"]["nonspeech_mass"][k]),
                     _pct(r["target"]["mass"][k]) if r.get("target") else "&ndash;",
                     _pct(r["interferer"]["mass"][k]) if r.get("interferer") else "&ndash;"])
    parts.append(_table(["area", "preserved", "deleted", "mass in speech", "mass in non-speech", "mass in target",
                         "mass in interferer"], rows))
    parts.append(f'<p class="note">score of the speech frames alone {_num(r["speech"]["score_speech_only"])}, '
                 f'of the non-speech frames alone {_num(r["speech"]["score_nonspeech_only"])}; non-speech reliance '
                 f'{_num(r["nonspeech_reliance"])}</p></section>')
    return "".join(parts)


def render_html(summary: Mapping, ordered: list[Mapping], info: Mapping) -> str:
    """The report page (every inserted text escaped)."""
    c = summary["counts"]
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<link rel="icon" href="data:,">',
           f'<title>{_e("Speaker-verification audit: " + info["trials"])}</title>',
           f"<style>{CSS}</style></head><body>",
           "<h1>Speaker-verification audit</h1>",
           f'<p>trial list <code>{_e(info["trials"])}</code>, model <code>{_e(info["model"])}</code> '
           f'(sha256 {_e(info["model_sha256"][:12])}), method <b>{_e(info["method"])}</b>; masks on the test '
           f'spectrogram at areas {_e(", ".join(f"{a:g}" for a in info["areas"]))} (display area '
           f'{_e(format(info["display_area"], "g"))}).</p>',
           "<h2>Summary</h2>"]
    out.append(_table(["trials", "finished", "pending", "ok", "failed", "target", "non-target", "EER",
                       f"minDCF (p<sub>target</sub>={_e(format(summary['p_target'], 'g'))})"],
                      [[str(c["trials"]), str(c["finished"]), str(c["pending"]), str(c["ok"]), str(c["failed"]),
                        str(c["target"]), str(c["nontarget"]), _pct(summary["eer"]), _num(summary["min_dcf"])]]))
    if summary.get("note"):
        out.append(f'<p class="note">EER and minDCF: {_e(summary["note"])}.</p>')
    out.append('<img src="figures/scores.png" alt="score distributions and DET curve" width="720" height="256">')
    out.append("<h2>Statistics</h2>")
    out.append('<p class="note">Mass shares are of the explanation mask at the display area; the non-speech '
               "reliance is the mask's share in non-speech frames minus the share of non-speech frames (0: the "
               "mask ignores voice activity; &gt; 0: it concentrates on silence, noise or channel).</p>")
    rows = []
    for name, s in summary["statistics"].items():
        row = [_e(s["description"])]
        for cls in ("target", "nontarget"):
            d = s[cls]
            row += ([str(d["n"]), _num(d["mean"]), _num(d["median"]), _num(d["p10"]), _num(d["p90"])] if d
                    else ["0", "&ndash;", "&ndash;", "&ndash;", "&ndash;"])
        rows.append(row)
    out.append(_table(["statistic", "target n", "mean", "median", "10%", "90%", "non-target n", "mean", "median",
                       "10%", "90%"], rows, text_columns=(0,)))
    out.append('<img src="figures/distributions.png" alt="distributions of the statistics" width="800" height="400">')
    out.append("<h2>By condition</h2>")
    rows = [[_e(cond or "(none)"), str(v["target"]), str(v["nontarget"]), str(v["failed"]), _pct(v["eer"]),
             _num(v["min_dcf"]), _num((v["nonspeech_reliance"] or {}).get("mean"))]
            for cond, v in summary["conditions"].items()]
    out.append(_table(["condition", "target", "non-target", "failed", "EER", "minDCF", "mean non-speech reliance"],
                      rows, text_columns=(0,)))
    out.append("<h2>Trials that rely most on non-speech</h2>")
    by_id = {r["id"]: r for r in ordered}
    rows = []
    for rank, item in enumerate(summary["suspicious"], 1):
        r = by_id[item["id"]]
        rows.append([str(rank), f'<a href="#trial-{_e(r["id"])}">{_e(r["id"])}</a>', str(r["label"]),
                     _e(r["condition"]), _num(r["score"]), _num(r["nonspeech_reliance"]),
                     _pct(1.0 - r["speech"]["frames_fraction"]), _pct(STATISTICS["nonspeech_mass"][1](r)),
                     _num(r["speech"]["score_nonspeech_only"]), _num(r["speech"]["score_speech_only"])])
    out.append(_table(["rank", "trial", "label", "condition", "score", "non-speech reliance", "non-speech frames",
                       "mask in non-speech", "score non-speech only", "score speech only"], rows,
                      text_columns=(1, 3)) if rows else "<p>No finished trials.</p>")
    failed = [r for r in ordered if r["status"] != "ok"]
    out.append(f"<h2>Failed trials ({len(failed)})</h2>")
    if failed:
        rows = [[f'<a href="#trial-{_e(r["id"])}">{_e(r["id"])}</a>', str(int(r["line"])), _e(r["enroll"]),
                 _e(r["test"]), f'<span class="error">{_e((r.get("error") or {}).get("type", ""))}: '
                                f'{_e((r.get("error") or {}).get("message", ""))}</span>'] for r in failed]
        out.append(_table(["trial", "CSV line", "enroll", "test", "error"], rows, text_columns=(0, 2, 3, 4)))
    else:
        out.append("<p>None.</p>")
    out.append("<h2>Trials</h2>")
    out.extend(_trial_section(r) for r in ordered)
    out.append("</body></html>\n")
    return "\n".join(out)


def build_report(directory: "str | Path", trials: Sequence, records: Mapping[str, Mapping], info: Mapping,
                 options: ReportOptions = ReportOptions()) -> dict:
    """Write ``report.html``, ``summary.json`` and ``figures/*.png`` into ``directory``; return the summary."""
    out = Path(directory)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    summary = summarise(trials, records, options)
    ordered = [records[t.id] for t in trials if t.id in records]
    ok = [r for r in ordered if r["status"] == "ok"]
    (out / "figures" / "scores.png").write_bytes(scores_figure(ok, summary))
    (out / "figures" / "distributions.png").write_bytes(distributions_figure(ok))
    (out / "report.html").write_text(render_html(summary, ordered, info), encoding="utf-8")
    (out / "summary.json").write_text(json.dumps({"info": dict(info), **summary}, indent=2, sort_keys=True) + "\n")
    return summary

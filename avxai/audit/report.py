"""The audit report: one static HTML page with PNG figures and WAV players beside it (relative paths).

``DIR/report.html`` shows the summary (counts, EER, minDCF, the statistics for target and non-target
trials), the trials ranked by how much their explanation relies on non-speech, the failed trials with
their errors, and per trial the spectrogram with the mask, the segment labels, the voice activity and
audio players for the original, the preserved and the deleted test audio. ``DIR/summary.json`` holds the
same numbers for programs. The page depends only on the finished records, so an interrupted and resumed
audit writes the same report as an uninterrupted one. All text from trial lists, file names and errors is
HTML-escaped.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from avxai.audit.figures import distributions_figure, scores_figure
from avxai.audit.summary import STATISTICS, ReportOptions, summarise
from avxai.safety import write_bytes, write_text

__all__ = ["build_report", "render_html"]


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
    # through avxai.safety: a symlink planted in the folder is refused, never written through
    write_bytes(out, out / "figures" / "scores.png", scores_figure(ok, summary))
    write_bytes(out, out / "figures" / "distributions.png", distributions_figure(ok))
    write_text(out, out / "report.html", render_html(summary, ordered, info))
    write_text(out, out / "summary.json", json.dumps({"info": dict(info), **summary}, indent=2, sort_keys=True) + "\n")
    return summary

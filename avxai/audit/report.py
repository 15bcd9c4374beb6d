"""The audit report: one static HTML page with PNG figures, WAV players and array files beside it (relative
paths, no network).

``DIR/report.html`` shows, in this order: the findings headline (how many trials the model decides on
non-speech, on the interfering talker, on channel; the decision errors at the threshold) with the rules of
the flags; the summary (counts, EER, minDCF, the threshold) with the score histograms and the DET curve; all
finished trials ranked by the flags (:mod:`avxai.audit.findings`), a table that sorts by each column and
filters; the tables per speaker and per condition; the statistics of target and non-target trials; the failed
trials; and per trial its decision, flags, the spectrogram with the mask, players for the enrollment and the
original, preserved and deleted test audio, and a link to its arrays. ``DIR/summary.json`` holds the same
numbers for programs. The page depends only on the finished records, so an interrupted and resumed audit
writes the same report as an uninterrupted one. All text from trial lists, file names and errors is
HTML-escaped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from avxai.audit.figures import DISTRIBUTION_PANELS, display_width_px, distributions_figure, scores_figure
from avxai.audit.findings import CRITERIA
from avxai.audit.html import CSS, SCRIPT, Cell, esc, num, pct, table, url
from avxai.audit.summary import STATISTICS, ReportOptions, summarise
from avxai.safety import write_bytes, write_text

__all__ = ["build_report", "render_html"]


def _img(src: str, alt: str) -> str:
    return f'<img src="{url(src)}" alt="{esc(alt)}" width="{display_width_px()}">'


def _link(r: Mapping) -> str:
    return f'<a href="#trial-{esc(r["id"])}">{esc(r["id"])}</a>'


def _flags(flags: Sequence[str]) -> Cell:
    text = ", ".join(flags)
    return Cell(f'<span class="flag">{esc(text)}</span>' if flags else "none", text or "none",
                words=list(flags) or ["none"])


def _words(value: str | None, wrong: bool = False) -> Cell:
    if value is None:
        return Cell("&ndash;", None, words=[])
    return Cell(f'<span class="wrong">{esc(value)}</span>' if wrong else esc(value), value)


def _headline(summary: Mapping) -> str:
    f, d, c = summary["findings"], summary["decision"], summary["counts"]
    parts = []
    for crit in CRITERIA:
        item = f[crit.flag]
        parts.append(f"<b>{item['flagged']}</b> {esc(crit.finding)} (of {item['applies']} where it applies)")
    out = ['<div class="headline" id="findings"><h2>Findings</h2>',
           f'<p class="big">Of {f["trials"]} finished trials ({c["target"]} target, {c["nontarget"]} non-target), '
           f"the model decides {parts[0]}, {parts[1]}, and {parts[2]}; <b>{f['any']}</b> trials are flagged by at "
           "least one criterion.</p>"]
    if d["threshold"] is not None:
        where = "the EER threshold" if d["source"] == "EER" else "the given threshold"
        eer = "EER = 0: the scores separate" if summary["eer"] == 0 else f"EER {pct(summary['eer'])}"
        out.append(f'<p class="big">Accepting scores &ge; {num(d["threshold"])} ({where}{"; " + eer if summary["eer"] is not None else ""}): '
                   f'<b>{f["false_accept"]}</b> false accepts, <b>{f["false_reject"]}</b> false rejects.</p>')
    else:
        out.append(f'<p class="big">No accept / reject decision: {esc(d["note"])}.</p>')
    rules = "".join(f"<li><b>{esc(x['finding'])}</b> (flag <i>{esc(x['flag'])}</i>): {esc(x['rule'])}</li>"
                    for x in summary["criteria"])
    out.append(f'<p>A trial is flagged when</p><ul>{rules}</ul></div>')
    return "\n".join(out)


def _ranking(summary: Mapping, by_id: Mapping[str, Mapping]) -> str:
    rows = []
    for t in summary["trials"]:
        r, crit = by_id[t["id"]], t["criteria"]
        files = r.get("files") or {}
        arrays = f'<a href="{url(files["arrays"])}">npz</a>' if "arrays" in files else "&ndash;"
        rows.append([Cell(str(t["rank"]), t["rank"]), Cell(_link(r), t["id"]), Cell(esc(t["speaker"]), t["speaker"]),
                     Cell(esc(t["condition"] or "(none)"), t["condition"] or "(none)"), Cell(esc(t["label"]), t["label"]),
                     Cell(num(t["score"]), t["score"]), _words(t["decision"]),
                     _words(t["outcome"], wrong=t["outcome"] not in (None, "correct")), _flags(t["flags"]),
                     Cell(num(crit["nonspeech_reliance"]), crit["nonspeech_reliance"]),
                     Cell(pct(crit["interferer_mass"]), crit["interferer_mass"]),
                     Cell(num(crit["nonspeech_score"]), crit["nonspeech_score"]), arrays])
    header = ["rank", "trial", "speaker", "condition", "label", "score", "decision", "outcome", "flags",
              *[esc(c.column) for c in CRITERIA], "arrays"]
    if not rows:
        return "<p>No finished trials.</p>"
    return table(header, rows, text_columns=(1, 2, 3, 4, 6, 7, 8, 12), table_id="ranking", sortable=True,
                 filters=(2, 3, 4, 6, 7, 8), search=True)


def _groups(name: str, groups: Mapping[str, Mapping], table_id: str) -> str:
    rows = []
    for key, g in groups.items():
        rows.append([Cell(esc(key or "(none)"), key or "(none)"), Cell(str(g["trials"]), g["trials"]),
                     Cell(str(g["target"]), g["target"]), Cell(str(g["nontarget"]), g["nontarget"]),
                     Cell(str(g["failed"]), g["failed"]),
                     Cell(num(g["mean_target_score"]), g["mean_target_score"]),
                     Cell(num(g["mean_nontarget_score"]), g["mean_nontarget_score"]),
                     Cell(pct(g["eer"]), g["eer"]), Cell(num(g["min_dcf"]), g["min_dcf"]),
                     Cell(str(g["false_accept"]), g["false_accept"]), Cell(str(g["false_reject"]), g["false_reject"]),
                     *[Cell(str(g["flagged"][c.flag]), g["flagged"][c.flag]) for c in CRITERIA],
                     Cell(str(g["any"]), g["any"])])
    header = [esc(name), "finished", "target", "non-target", "failed", "mean target score", "mean non-target score",
              "EER", "minDCF", "false accepts", "false rejects", *[f"flagged {esc(c.flag)}" for c in CRITERIA],
              "flagged (any)"]
    return table(header, rows, text_columns=(0,), table_id=table_id, sortable=True, search=True)


def _trial_section(r: Mapping, row: Mapping | None) -> str:
    label = "target (same speaker)" if r["label"] == 1 else "non-target (different speaker)"
    parts = [f'<section class="trial" id="trial-{esc(r["id"])}">',
             f'<h3>{esc(r["id"])}: {esc(label)}{", " + esc(r["condition"]) if r["condition"] else ""}</h3>',
             f'<p>speaker <b>{esc(r.get("speaker", ""))}</b>; enroll <code>{esc(r["enroll"])}</code>, test '
             f'<code>{esc(r["test"])}</code> (CSV line {int(r["line"])})']
    if r["status"] != "ok":
        err = r.get("error") or {}
        parts.append(f'</p><p class="error">failed: {esc(err.get("type", "Error"))}: {esc(err.get("message", ""))}</p>'
                     "</section>")
        return "".join(parts)
    parts.append(f'; cosine score <b>{num(r["score"])}</b>, {num(r["duration_s"], 2)} s</p>')
    if row is not None:
        outcome = row["outcome"] or "no decision"
        decision = f'decision <b>{esc(row["decision"])}</b> ({esc(outcome)})' if row["decision"] else "no decision"
        flags = ", ".join(row["flags"]) or "none"
        parts.append(f'<p>{decision}; rank {row["rank"]}; flags: <span class="flag">{esc(flags)}</span></p>')
    segs = []
    for name in ("target_segments", "interferer_segments"):
        if r.get(name):
            segs.append(f'{esc(name.split("_")[0])}: ' + ", ".join(f"{num(s, 2)}&ndash;{num(e, 2)} s" for s, e in r[name]))
    parts.append(f'<p>segments: {"; ".join(segs) if segs else "none labelled"}; speech-active frames (VAD): '
                 f'{pct(r["speech"]["frames_fraction"])}</p>')
    for key, value in sorted((r.get("extra") or {}).items()):
        parts.append(f"<p>{esc(key)}: {esc(value)}</p>")
    files = r.get("files") or {}
    if "figure" in files:
        parts.append(_img(files["figure"], "spectrogram and mask of " + r["id"]))
    players = []
    for key, caption in (("enroll", "enrollment"), ("original", "test audio"), ("preserved", "test, mask kept"),
                         ("deleted", "test, mask removed")):
        if key in files:
            players.append(f'<figure><figcaption>{esc(caption)}</figcaption>'
                           f'<audio controls preload="metadata" src="{url(files[key])}"></audio></figure>')
    if players:
        parts.append('<div class="players">' + "".join(players) + "</div>")
    if "arrays" in files:
        parts.append(f'<p>arrays: <a href="{url(files["arrays"])}">{esc(files["arrays"])}</a> (numpy.load: '
                     "spectrogram, attribution, masks per area, areas, times_s, frequencies, speech)</p>")
    rows = []
    for k, area in enumerate(r["areas"]):
        rows.append([num(area, 2), num(r["preserved"][k]), num(r["deleted"][k]), pct(r["speech"]["mass"][k]),
                     pct(r["speech"]["nonspeech_mass"][k]),
                     pct(r["target"]["mass"][k]) if r.get("target") else "&ndash;",
                     pct(r["interferer"]["mass"][k]) if r.get("interferer") else "&ndash;"])
    parts.append(table(["area", "score, mask kept", "score, mask removed", "mass in speech", "mass in non-speech",
                        "mass in target", "mass in interferer"], rows))
    parts.append(f'<p class="note">score of the speech frames alone {num(r["speech"]["score_speech_only"])}, '
                 f'of the non-speech frames alone {num(r["speech"]["score_nonspeech_only"])}; non-speech reliance '
                 f'{num(r["nonspeech_reliance"])}</p></section>')
    return "".join(parts)


def render_html(summary: Mapping, ordered: list[Mapping], info: Mapping) -> str:
    """The report page (every inserted text escaped)."""
    c, d = summary["counts"], summary["decision"]
    by_id = {r["id"]: r for r in ordered}
    rows_by_id = {t["id"]: t for t in summary["trials"]}
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<link rel="icon" href="data:,">',
           f'<title>{esc("Speaker-verification audit: " + info["trials"])}</title>',
           f"<style>{CSS}</style></head><body>",
           "<h1>Speaker-verification audit</h1>",
           f'<p>trial list <code>{esc(info["trials"])}</code>, model <code>{esc(info["model"])}</code> '
           f'(sha256 {esc(info["model_sha256"][:12])}), method <b>{esc(info["method"])}</b>; masks on the test '
           f'spectrogram at areas {esc(", ".join(f"{a:g}" for a in info["areas"]))} (display area '
           f'{esc(format(info["display_area"], "g"))}). Contents: <a href="#findings">findings</a>, '
           '<a href="#ranking-h">ranked trials</a>, <a href="#speakers-h">speakers</a>, '
           '<a href="#conditions-h">conditions</a>, <a href="#statistics-h">statistics</a>, '
           '<a href="#trials-h">each trial</a>.</p>',
           _headline(summary), "<h2>Summary</h2>"]
    threshold = f'{num(d["threshold"])} ({esc(d["source"])})' if d["threshold"] is not None else "&ndash;"
    out.append(table(["trials", "finished", "pending", "ok", "failed", "target", "non-target", "EER",
                      f"minDCF (p<sub>target</sub>={esc(format(summary['p_target'], 'g'))})", "threshold"],
                     [[str(c["trials"]), str(c["finished"]), str(c["pending"]), str(c["ok"]), str(c["failed"]),
                       str(c["target"]), str(c["nontarget"]), pct(summary["eer"]), num(summary["min_dcf"]),
                       threshold]]))
    if summary.get("note"):
        out.append(f'<p class="note">EER and minDCF: {esc(summary["note"])}.</p>')
    out.append(_img("figures/scores.png", "score histograms and DET curve"))
    out.append('<h2 id="ranking-h">Trials, ranked</h2>')
    out.append('<p class="note">Ranked by the number of flags, then by how high the trial stands in each criterion '
               "(mean over the criteria that apply). Click a column's header to sort by it; the menus and the box "
               "filter the rows.</p>")
    out.append(_ranking(summary, by_id))
    out.append('<h2 id="speakers-h">By enrolled speaker</h2>')
    out.append(_groups("speaker", summary["speakers"], "speakers"))
    out.append('<h2 id="conditions-h">By condition</h2>')
    out.append(_groups("condition", summary["conditions"], "conditions"))
    out.append('<h2 id="statistics-h">Statistics</h2>')
    out.append('<p class="note">Mass shares are of the explanation mask at the display area; the non-speech '
               "reliance is the mask's share in non-speech frames minus the share of non-speech frames (0: the "
               "mask ignores voice activity; &gt; 0: it concentrates on silence, noise or channel).</p>")
    rows = []
    for name, s in summary["statistics"].items():
        row = [esc(s["description"])]
        for cls in ("target", "nontarget"):
            st = s[cls]
            row += ([str(st["n"]), num(st["mean"]), num(st["median"]), num(st["p10"]), num(st["p90"])] if st
                    else ["0", "&ndash;", "&ndash;", "&ndash;", "&ndash;"])
        rows.append(row)
    out.append(table(["statistic", "target n", "mean", "median", "10%", "90%", "non-target n", "mean", "median",
                      "10%", "90%"], rows, text_columns=(0,)))
    out.append(_img("figures/distributions.png", "distributions of the criteria and statistics"))
    failed = [r for r in ordered if r["status"] != "ok"]
    out.append(f"<h2>Failed trials ({len(failed)})</h2>")
    if failed:
        rows = [[_link(r), str(int(r["line"])), esc(r["enroll"]), esc(r["test"]),
                 f'<span class="error">{esc((r.get("error") or {}).get("type", ""))}: '
                 f'{esc((r.get("error") or {}).get("message", ""))}</span>'] for r in failed]
        out.append(table(["trial", "CSV line", "enroll", "test", "error"], rows, text_columns=(0, 2, 3, 4)))
    else:
        out.append("<p>None.</p>")
    out.append('<h2 id="trials-h">Each trial</h2>')
    out.extend(_trial_section(r, rows_by_id.get(r["id"])) for r in ordered)
    out.append(f"<script>{SCRIPT}</script>")
    out.append("</body></html>\n")
    return "\n".join(out)


def _panel_values(ok: list[Mapping]) -> dict[str, dict[str, float | None]]:
    values = {}
    for name, _, _ in DISTRIBUTION_PANELS:
        if any(c.key == name for c in CRITERIA):
            values[name] = {r["id"]: r["criteria"][name] for r in ok}
        else:
            values[name] = {r["id"]: STATISTICS[name][1](r) for r in ok}
    return values


def build_report(directory: "str | Path", trials: Sequence, records: Mapping[str, Mapping], info: Mapping,
                 options: ReportOptions = ReportOptions()) -> dict:
    """Write ``report.html``, ``summary.json`` and ``figures/*.png`` into ``directory``; return the summary."""
    out = Path(directory)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    summary = summarise(trials, records, options)
    ordered = [records[t.id] for t in trials if t.id in records]
    ok = [r for r in ordered if r["status"] == "ok"]
    thresholds = {x["key"]: x["threshold"] for x in summary["criteria"]}
    # through avxai.safety: a symlink planted in the folder is refused, never written through
    write_bytes(out, out / "figures" / "scores.png", scores_figure(ok, summary))
    write_bytes(out, out / "figures" / "distributions.png", distributions_figure(ok, _panel_values(ok), thresholds))
    write_text(out, out / "report.html", render_html(summary, ordered, info))
    write_text(out, out / "summary.json", json.dumps({"info": dict(info), **summary}, indent=2, sort_keys=True) + "\n")
    return summary

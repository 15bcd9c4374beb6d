"""The audit's numbers over all finished trials: counts, EER and minDCF, statistics per class, the accept /
reject decision per trial at a threshold, the flags and ranking of :mod:`avxai.audit.findings`, the findings
headline, and the tables per speaker and per condition.

The summary depends only on the finished records (never on timing or the order trials finished in), so an
interrupted and resumed audit summarises to the same numbers as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from avxai.audit.findings import CRITERIA, assess, decision_threshold, group_table, headline
from avxai.metrics.verification import eer, min_dcf

__all__ = ["ReportOptions", "STATISTICS", "summarise"]


@dataclass(frozen=True)
class ReportOptions:
    """How the report summarises and decides (not hashed into the audit: changing it only redraws the report).

    p_target, c_miss, c_fa : the detection cost of the minDCF.
    threshold : accept a trial when its score is at or above it; None: the EER threshold of the finished trials.
    nonspeech_reliance_threshold : flag "non-speech" when the non-speech reliance (mask mass in non-speech
        frames minus their share of the frames, mean over areas) is at least this.
    interferer_mass_threshold : flag "interferer" when at least this share of the smallest-area mask lies on the
        labelled interfering talker (target trials); 0.5: most of it.
    nonspeech_score_threshold : flag "channel" when the non-speech frames alone score at least this; None: the
        decision threshold (those frames alone would be accepted).
    top_suspicious : how many ranked trials ``summary["suspicious"]`` lists (the report's table has them all).
    """

    p_target: float = 0.01
    c_miss: float = 1.0
    c_fa: float = 1.0
    threshold: float | None = None
    nonspeech_reliance_threshold: float = 0.2
    interferer_mass_threshold: float = 0.5
    nonspeech_score_threshold: float | None = None
    top_suspicious: int = 20

    def __post_init__(self):
        for name in ("threshold", "nonspeech_reliance_threshold", "interferer_mass_threshold",
                     "nonspeech_score_threshold"):
            v = getattr(self, name)
            if v is None and name in ("threshold", "nonspeech_score_threshold"):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ValueError(f"{name} must be a finite number{' or None' if 'score' in name or name == 'threshold' else ''}"
                                 f", got {v!r}")
        if not 0.0 < self.interferer_mass_threshold <= 1.0:
            raise ValueError(f"interferer_mass_threshold is a share of the mask, in (0, 1], got "
                             f"{self.interferer_mass_threshold}")
        if not -1.0 < self.nonspeech_reliance_threshold <= 1.0:
            raise ValueError(f"nonspeech_reliance_threshold is a difference of shares, in (-1, 1], got "
                             f"{self.nonspeech_reliance_threshold}")
        if not 0.0 < self.p_target < 1.0:
            raise ValueError(f"p_target must be in (0, 1), got {self.p_target}")
        if not (self.c_miss > 0 and self.c_fa > 0):
            raise ValueError(f"c_miss and c_fa must be > 0, got {self.c_miss}, {self.c_fa}")
        if isinstance(self.top_suspicious, bool) or not isinstance(self.top_suspicious, int) or self.top_suspicious < 0:
            raise ValueError(f"top_suspicious must be an int >= 0, got {self.top_suspicious!r}")



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
    threshold, source = decision_threshold(ok, options.threshold)
    score_threshold = options.nonspeech_score_threshold if options.nonspeech_score_threshold is not None \
        else threshold
    thresholds = {"nonspeech_reliance": float(options.nonspeech_reliance_threshold),
                  "interferer_mass": float(options.interferer_mass_threshold), "nonspeech_score": score_threshold}
    rows = assess(ok, threshold, thresholds)
    dcf = (options.p_target, options.c_miss, options.c_fa)
    reliance = {r["id"]: r["nonspeech_reliance"] for r in ok}
    conditions = {}
    for row in group_table(rows, failed, "condition", *dcf):
        name = row.pop("condition")
        conditions[name] = {**row, "nonspeech_reliance": _describe(
            [reliance[r["id"]] for r in rows if r["condition"] == name])}
    return {
        "counts": counts,
        **_error_rates(ok, options),
        "p_target": options.p_target, "c_miss": options.c_miss, "c_fa": options.c_fa,
        "decision": {"threshold": threshold, "source": source if threshold is not None else None,
                     "note": None if threshold is not None else source},
        "criteria": [{"key": c.key, "flag": c.flag, "finding": c.finding, "column": c.column,
                      "threshold": thresholds[c.key],
                      "rule": c.rule.format(t=thresholds[c.key]) if thresholds[c.key] is not None else
                      "not applied: no threshold (no decision threshold)"} for c in CRITERIA],
        "findings": headline(rows),
        "statistics": stats,
        "conditions": conditions,
        "speakers": {row.pop("speaker"): row for row in group_table(rows, failed, "speaker", *dcf)},
        "trials": rows,
        "suspicious": [{"id": r["id"], "rank": r["rank"], "flags": r["flags"], **r["criteria"]}
                       for r in rows[:options.top_suspicious]],
        "failed": [{"id": r["id"], "line": r["line"], "error": r["error"]} for r in failed],
    }

"""What the report concludes per trial: the accept / reject decision at a threshold and its errors, the flags
of the criteria, one ranking of the flagged trials, the headline counts, and the per-speaker and
per-condition tables.

Every criterion is a per-trial value stored in the trial's record (``record["criteria"]``, computed by the
worker that ran the trial) and a threshold (a field of :class:`avxai.audit.summary.ReportOptions`); a trial
is flagged by a criterion when its value is at or above the threshold. What each finding means:

* **on non-speech**: the masks put at least ``nonspeech_reliance_threshold`` more of their mass on non-speech
  frames than those frames' share of the utterance (non-speech reliance);
* **on the interfering talker**: at least ``interferer_mass_threshold`` of the smallest-area mask lies in the
  labelled segments of an interfering talker (target trials with labelled interferer segments);
* **on channel**: the test reduced to its non-speech frames (silence, noise: what the recording channel
  leaves) scores at least ``nonspeech_score_threshold``, by default the decision threshold: those frames alone
  would be accepted.

The ranking sorts the finished trials by the number of flags, then by the mean over their criteria of the
trial's rank fraction (0: the highest value of that criterion among the trials where it applies), then by
row. Labels are words everywhere: ``target`` / ``non-target``, ``accept`` / ``reject``, ``false accept`` /
``false reject`` / ``correct``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from avxai.metrics.verification import eer, eer_threshold, min_dcf

__all__ = ["Criterion", "CRITERIA", "LABELS", "decision_threshold", "assess", "headline", "group_table"]

#: label 1 / 0 of the trial list in words
LABELS = {1: "target", 0: "non-target"}


@dataclass(frozen=True)
class Criterion:
    """One reason to look at a trial: ``key`` in ``record["criteria"]``, the words the report uses, its rule."""

    key: str
    flag: str  # the flag's word in tables
    finding: str  # "the model decides ..." in the headline
    column: str  # the table header of its value
    rule: str  # how a trial gets the flag; ``{t}`` is the threshold


CRITERIA: tuple[Criterion, ...] = (
    Criterion("nonspeech_reliance", "non-speech", "on non-speech", "non-speech reliance",
              "the masks put at least {t:+.2f} more of their mass on non-speech frames than those frames' share"),
    Criterion("interferer_mass", "interferer", "on the interfering talker", "smallest mask on interferer",
              "at least {t:.0%} of the smallest mask lies on the labelled interfering talker (target trials)"),
    Criterion("nonspeech_score", "channel", "on channel", "score of non-speech alone",
              "the non-speech frames alone (silence, noise) score at least {t:.3f}"),
)


def decision_threshold(ok: Sequence[Mapping], given: float | None) -> tuple[float | None, str]:
    """The accept threshold (accept when ``score >= threshold``) and where it comes from: ``given``, else the
    EER threshold of the finished trials (:func:`avxai.metrics.verification.eer_threshold`), else None (no
    finished target or non-target trial: ``"needs ..."`` says what is missing)."""
    if given is not None:
        return float(given), "given"
    labels = [r["label"] for r in ok]
    if not (1 in labels and 0 in labels):
        return None, "needs finished target and non-target trials, or a given threshold"
    return eer_threshold([r["score"] for r in ok], labels), "EER"


def _outcome(label: int, decision: str | None) -> str | None:
    if decision is None:
        return None
    if (decision == "accept") == (label == 1):
        return "correct"
    return "false accept" if decision == "accept" else "false reject"


def _rank_fractions(rows: list[dict], key: str) -> dict[str, float]:
    """id -> rank fraction of the criterion among the trials where it applies (0: highest value)."""
    have = sorted((r for r in rows if r["criteria"].get(key) is not None),
                  key=lambda r: (-r["criteria"][key], r["index"]))
    n = len(have)
    return {r["id"]: (i / (n - 1) if n > 1 else 0.0) for i, r in enumerate(have)}


def assess(ok: Sequence[Mapping], threshold: float | None, thresholds: Mapping[str, float | None]) -> list[dict]:
    """One row per finished trial, ranked: words for the label, decision and outcome, the criteria values, the
    flags (criterion words, in :data:`CRITERIA` order) and ``rank`` (1 = look first).

    ``thresholds``: criterion key -> threshold (None: the criterion flags nothing).
    """
    rows = []
    for r in ok:
        decision = None if threshold is None else ("accept" if r["score"] >= threshold else "reject")
        criteria = {c.key: r["criteria"].get(c.key) for c in CRITERIA}
        flags = [c.flag for c in CRITERIA if criteria[c.key] is not None and thresholds.get(c.key) is not None
                 and criteria[c.key] >= thresholds[c.key]]
        rows.append({"id": r["id"], "index": r["index"], "label": LABELS[r["label"]], "condition": r["condition"],
                     "speaker": r["speaker"], "score": r["score"], "decision": decision,
                     "outcome": _outcome(r["label"], decision), "criteria": criteria, "flags": flags})
    fractions = {c.key: _rank_fractions(rows, c.key) for c in CRITERIA}
    for row in rows:
        mine = [f[row["id"]] for f in fractions.values() if row["id"] in f]
        row["suspicion"] = round(1.0 - float(np.mean(mine)), 6) if mine else 0.0
    rows.sort(key=lambda row: (-len(row["flags"]), -row["suspicion"], row["index"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def headline(rows: Sequence[Mapping]) -> dict:
    """The counts of the findings headline: per criterion the trials flagged and the trials it applies to,
    the trials flagged by any, and the decision errors."""
    out = {"trials": len(rows), "any": sum(bool(r["flags"]) for r in rows),
           "false_accept": sum(r["outcome"] == "false accept" for r in rows),
           "false_reject": sum(r["outcome"] == "false reject" for r in rows)}
    for c in CRITERIA:
        out[c.flag] = {"flagged": sum(c.flag in r["flags"] for r in rows),
                       "applies": sum(r["criteria"][c.key] is not None for r in rows)}
    return out


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def group_table(rows: Sequence[Mapping], failed: Sequence[Mapping], key: str, p_target: float, c_miss: float,
                c_fa: float) -> list[dict]:
    """Per value of ``key`` (``"speaker"`` or ``"condition"``): trial counts, mean scores per label, EER and
    minDCF (when both labels finished), decision errors and flags per criterion. Sorted by the group's name."""
    names = sorted({r[key] for r in rows} | {r[key] for r in failed})
    out = []
    for name in names:
        group = [r for r in rows if r[key] == name]
        tar = [r["score"] for r in group if r["label"] == "target"]
        non = [r["score"] for r in group if r["label"] == "non-target"]
        rates = {"eer": None, "min_dcf": None}
        if tar and non:
            scores, labels = tar + non, [1] * len(tar) + [0] * len(non)
            rates = {"eer": eer(scores, labels), "min_dcf": min_dcf(scores, labels, p_target, c_miss, c_fa)}
        out.append({key: name, "trials": len(group), "target": len(tar), "nontarget": len(non),
                    "failed": sum(r[key] == name for r in failed),
                    "mean_target_score": _mean(tar), "mean_nontarget_score": _mean(non), **rates,
                    "false_accept": sum(r["outcome"] == "false accept" for r in group),
                    "false_reject": sum(r["outcome"] == "false reject" for r in group),
                    "flagged": {c.flag: sum(c.flag in r["flags"] for r in group) for c in CRITERIA},
                    "any": sum(bool(r["flags"]) for r in group)})
    return out

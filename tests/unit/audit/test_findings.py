"""The report's conclusions from finished records, without running a model: the decision at the EER or a given
threshold and its errors, the flags of each criterion and the ranking, the per-speaker and per-condition
tables, the DET points on normal-deviate axes, the figures' print sizes, and the store's format version."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import norm

from avxai.audit import ReportOptions, summarise
from avxai.audit import figures
from avxai.audit.config import FORMAT_VERSION
from avxai.audit.report import render_html
from avxai.audit.trial import trial_criteria
from avxai.audit.trials import Trial
from avxai.metrics.verification import det_curve, eer, eer_threshold


def _record(i: int, trial_id: str, label: int, score: float, *, reliance: float = -0.1, nonspeech: float = -0.1,
            interferer: float | None = None, condition: str = "single", speaker: str = "spkA") -> dict:
    """A finished record with the fields the summary reads (statistics over areas 0.05 / 0.2)."""
    r = {"id": trial_id, "index": i, "line": i + 2, "label": label, "condition": condition, "speaker": speaker,
         "enroll": f"enroll/{speaker}.wav", "test": f"test/{trial_id}.wav", "status": "ok", "error": None,
         "score": score, "duration_s": 2.0, "areas": [0.05, 0.2], "display_area": 0.2,
         "preserved": [score, score], "deleted": [0.0, 0.0],
         "curve": {"fractions": [0.0, 1.0], "scores": [score, 0.0], "drop": [0.0, score]},
         "speech": {"frames_fraction": 0.6, "mass": [0.7, 0.7], "nonspeech_mass": [0.3, 0.3],
                    "nonspeech_excess": [reliance, reliance], "score_speech_only": score,
                    "score_nonspeech_only": nonspeech},
         "nonspeech_reliance": reliance, "target": None,
         "interferer": None if interferer is None else {"frames_fraction": 0.33, "mass": [interferer, 0.3]},
         "target_segments": [], "interferer_segments": [], "extra": {}}
    r["criteria"] = trial_criteria(r)
    return r


def _trial(r: dict) -> Trial:
    return Trial(index=r["index"], line=r["line"], id=r["id"], enroll=r["enroll"], test=r["test"],
                 enroll_path=r["enroll"], test_path=r["test"], label=r["label"], condition=r["condition"],
                 speaker=r["speaker"])


def _audit() -> tuple[list[Trial], dict[str, dict]]:
    """16 trials like the recipe's: one target trial with 61 % of its smallest mask on the interferer, one whose
    noise-only frames alone score 0.47, and fourteen unremarkable ones whose non-speech reliance ranks higher."""
    rows = []
    for i in range(14):
        label = i % 2
        rows.append(_record(i, f"plain-{i:02d}", label, 0.7 + 0.01 * i if label else -0.3 - 0.01 * i,
                            reliance=0.01 * i - 0.05, nonspeech=-0.2 + 0.01 * i,
                            interferer=(0.2 if label and i < 4 else None), condition="aba" if i < 4 else "noisy",
                            speaker=f"spk{i % 3}"))
    rows.append(_record(14, "aba-on-b", 1, 0.37, reliance=-0.07, nonspeech=-0.05, interferer=0.61, condition="aba",
                        speaker="spk0"))
    rows.append(_record(15, "noisy-channel", 1, 0.57, reliance=-0.13, nonspeech=0.47, condition="noisy",
                        speaker="spk1"))
    records = {r["id"]: r for r in rows}
    return [_trial(r) for r in rows], records


def test_the_trials_the_issue_names_are_flagged_and_ranked_first():
    trials, records = _audit()
    summary = summarise(trials, records, ReportOptions())
    ranked = [t["id"] for t in summary["trials"]]
    # before: ranked by non-speech reliance only, these were 12th and 16th of 16
    assert sorted(records, key=lambda k: -records[k]["nonspeech_reliance"]).index("aba-on-b") > 10
    assert set(ranked[:2]) == {"aba-on-b", "noisy-channel"}
    rows = {t["id"]: t for t in summary["trials"]}
    assert rows["aba-on-b"]["flags"] == ["interferer"] and rows["noisy-channel"]["flags"] == ["channel"]
    assert all(not rows[k]["flags"] for k in ranked[2:])
    f = summary["findings"]
    assert f["interferer"] == {"flagged": 1, "applies": 3} and f["channel"] == {"flagged": 1, "applies": 16}
    assert f["non-speech"] == {"flagged": 0, "applies": 16} and f["any"] == 2
    # thresholds are explicit, and each criterion is a sort key of its own
    crit = {c["flag"]: c for c in summary["criteria"]}
    assert crit["interferer"]["threshold"] == 0.5 and crit["non-speech"]["threshold"] == 0.2
    assert crit["channel"]["threshold"] == summary["decision"]["threshold"]
    by_reliance = sorted(summary["trials"], key=lambda t: -t["criteria"]["nonspeech_reliance"])
    assert by_reliance[0]["id"] == "plain-13"
    # a stricter reliance threshold flags the trials with the most non-speech reliance
    strict = summarise(trials, records, ReportOptions(nonspeech_reliance_threshold=0.05))
    assert {t["id"] for t in strict["trials"] if "non-speech" in t["flags"]} == {"plain-10", "plain-11", "plain-12",
                                                                                  "plain-13"}


def test_decisions_at_the_eer_or_a_given_threshold_mark_the_errors():
    trials, records = _audit()
    summary = summarise(trials, records, ReportOptions())
    d = summary["decision"]
    assert d["source"] == "EER" and summary["eer"] == 0.0
    # EER 0: the threshold lies between the highest non-target and the lowest target score
    assert -0.3 < d["threshold"] <= 0.37
    rows = {t["id"]: t for t in summary["trials"]}
    assert {t["label"] for t in rows.values()} == {"target", "non-target"}
    assert all(t["outcome"] == "correct" for t in rows.values())
    assert rows["aba-on-b"]["decision"] == "accept" and rows["plain-00"]["decision"] == "reject"
    given = summarise(trials, records, ReportOptions(threshold=0.5))
    rows = {t["id"]: t for t in given["trials"]}
    assert given["decision"] == {"threshold": 0.5, "source": "given", "note": None}
    assert rows["aba-on-b"]["outcome"] == "false reject" and given["findings"]["false_reject"] == 1
    assert given["findings"]["false_accept"] == 0
    low = summarise(trials, records, ReportOptions(threshold=-0.35))
    assert low["findings"]["false_accept"] == sum(r["score"] >= -0.35 for r in records.values() if r["label"] == 0)
    # per speaker and per condition: counts, errors and flags
    assert given["speakers"]["spk0"]["false_reject"] == 1 and given["speakers"]["spk0"]["flagged"]["interferer"] == 1
    assert summary["conditions"]["noisy"]["flagged"]["channel"] == 1 and given["conditions"]["aba"]["eer"] == 0.0
    # the "channel" rule follows the decision threshold unless given its own: 0.47 is not accepted at 0.5
    assert given["conditions"]["noisy"]["flagged"]["channel"] == 0
    own = summarise(trials, records, ReportOptions(threshold=0.5, nonspeech_score_threshold=0.4))
    assert own["conditions"]["noisy"]["flagged"]["channel"] == 1
    assert sum(g["trials"] for g in given["speakers"].values()) == 16
    # one class only: no EER threshold, said so, and the "channel" criterion has no threshold to flag by
    targets = {k: r for k, r in records.items() if r["label"] == 1}
    one = summarise([t for t in trials if t.id in targets], targets, ReportOptions())
    assert one["decision"]["threshold"] is None and "non-target" in one["decision"]["note"]
    assert all(t["decision"] is None and "channel" not in t["flags"] for t in one["trials"])
    page = render_html(one, list(targets.values()), {"trials": "t.csv", "model": "m.pt", "model_sha256": "0" * 64,
                                                    "method": "occlusion", "areas": [0.05, 0.2], "display_area": 0.2})
    assert "No accept / reject decision" in page


@pytest.mark.parametrize("scores, labels", [([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]),
                                            ([0.9, 0.3, 0.5, 0.2, 0.45, 0.7], [1, 1, 0, 0, 1, 0]),
                                            ([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0])])
def test_eer_threshold_gives_the_eer_decisions(scores, labels):
    t = eer_threshold(scores, labels)
    s, y = np.asarray(scores), np.asarray(labels)
    miss = np.mean(s[y == 1] < t)
    fa = np.mean(s[y == 0] >= t)
    assert min(miss, fa) <= eer(scores, labels) <= max(miss, fa)
    assert not np.any(s == t) or len(set(scores)) == 1  # halfway between scores: rounding keeps the decisions


def test_det_points_on_normal_deviate_axes_exist_when_eer_is_zero():
    p_miss, p_fa, _ = det_curve([0.9, 0.8, 0.7, 0.1, 0.2], [1, 1, 1, 0, 0])
    x, y, clipped, limit = figures.det_axes_points(p_miss, p_fa, 3, 2)
    assert np.isfinite(x).all() and np.isfinite(y).all() and clipped.all()  # every rate is 0 or 1 here
    assert np.all(np.abs(x) < limit) and np.all(np.abs(y) < limit)
    assert x.min() == pytest.approx(norm.ppf(0.25)) and y.min() == pytest.approx(norm.ppf(1 / 6))
    p_miss, p_fa, _ = det_curve([0.9, 0.3, 0.5, 0.2], [1, 1, 0, 0])
    x, y, clipped, _ = figures.det_axes_points(p_miss, p_fa, 2, 2)
    assert not clipped.all() and x[~clipped] == pytest.approx(norm.ppf(p_fa[~clipped]))


def test_audit_figures_print_at_twice_their_display_size_with_text_of_7_pt(monkeypatch):
    trials, records = _audit()
    summary = summarise(trials, records, ReportOptions())
    ok = list(records.values())
    seen = []
    save = figures._png

    def check(fig):
        texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
                 if t.get_text().strip() and t.get_visible()]
        seen.append((fig.get_size_inches()[0], min(t.get_fontsize() for t in texts)))
        return save(fig)

    monkeypatch.setattr(figures, "_png", check)
    png = figures.scores_figure(ok, summary)
    values = {name: {r["id"]: r["criteria"].get(name, r["score"]) for r in ok}
              for name, _, _ in figures.DISTRIBUTION_PANELS}
    figures.distributions_figure(ok, values, {c["key"]: c["threshold"] for c in summary["criteria"]})
    grid = np.random.default_rng(0).random((20, 30))
    figures.trial_figure(grid=grid, mask=(grid > 0.7).astype(float), times=np.arange(30) * 0.01,
                         freqs=np.arange(20) * 100.0, mel=False, speech=np.arange(30) > 5,
                         segments=[{"start_s": 0.0, "end_s": 0.1, "label": "target"}], record=records["aba-on-b"])
    assert len(seen) == 3
    for width, smallest in seen:
        assert width == figures.DISPLAY_WIDTH_IN and smallest >= figures.MIN_FONT_PT
    # 2x: the PNG has twice as many pixels as the page shows
    assert int.from_bytes(png[16:20], "big") == 2 * figures.display_width_px()


def test_a_folder_of_an_older_format_is_refused_in_one_line(tmp_path, capsys):
    from avxai.cli import main
    from toys.audit import small_trial_list, tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "model")
    trials_csv = small_trial_list(tmp_path / "data", {"single": 1})
    out = tmp_path / "out"
    argv = ["audit", str(trials_csv), "--model", str(ckpt), "--window", "64,20", "--areas", "0.1,0.3",
            "--min-duration", "0.3", "--out", str(out), "--quiet", "--no-media", "--limit", "0"]
    assert main(argv + ["--threshold", "0.25", "--interferer-threshold", "0.6"]) == 0
    assert "findings: the model decides" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["decision"] == {"threshold": 0.25, "source": "given", "note": None}
    assert {c["flag"]: c["threshold"] for c in summary["criteria"]} == {"non-speech": 0.2, "interferer": 0.6,
                                                                        "channel": 0.25}
    assert main(argv + ["--interferer-threshold", "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "interferer_mass_threshold is a share of the mask, in (0, 1]" in err
    meta = json.loads((out / "audit.json").read_text())
    meta["arguments"]["format_version"] = FORMAT_VERSION - 1
    meta["hash"] = "older"
    (out / "audit.json").write_text(json.dumps(meta))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"format {FORMAT_VERSION - 1}" in err and f"format {FORMAT_VERSION}" in err and "another --out" in err

"""The speaker-verification audit: trial lists, where the evidence lies (toy model with a known window),
resumable runs that end in the same report, failed trials, and the ``avxai audit`` command."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from toys.audit import (
    RATE, WINDOW_64, WindowSpeakerModel, read_results, small_trial_list, tiny_checkpoint, voiced, write_voiced,
)
from avxai.audit import AuditConfig, ReportOptions, read_trials, run_audit, run_trial, summarise, write_trials
from avxai.audit import ResultStore, prepare_payload, voice_activity
from avxai.cli import main

# small enough for tests: 4 generated trials (2 target, 2 non-target) + 3 that must fail
CONFIG = AuditConfig(method="occlusion", areas=(0.1, 0.2), method_options=WINDOW_64, curve_steps=5,
                     min_duration_s=0.3)


@pytest.fixture(scope="module")
def audit_inputs(tmp_path_factory):
    """A tiny checkpoint and a trial list with 4 good and 3 bad trials."""
    root = tmp_path_factory.mktemp("audit")
    ckpt = tiny_checkpoint(root / "model")
    from avxai.audit.generate import build_trial_list

    trials_csv = build_trial_list(root / "data", {"single": 2, "padded": 2}, speaker_ids=(0, 1, 2), enroll_s=1.0,
                                  test_s=0.6, padded_s=(0.3, 0.3))
    data = root / "data"
    sf.write(data / "test" / "short.wav", np.zeros(800, np.float32) + 0.01, RATE)  # 0.05 s
    sf.write(data / "test" / "8k.wav", voiced(1.0, (0.2, 0.8)).numpy().T, 8000)
    with open(trials_csv, "a", newline="") as f:
        w = csv.writer(f)
        w.writerow(["enroll/spk000.wav", "test/missing.wav", "1", "missing", "", "", ""])
        w.writerow(["enroll/spk000.wav", "test/short.wav", "0", "short", "", "", ""])
        w.writerow(["enroll/spk001.wav", "test/8k.wav", "1", "rate", "", "", ""])
    return root, trials_csv, ckpt


@pytest.fixture(scope="module")
def uninterrupted(audit_inputs):
    root, trials_csv, ckpt = audit_inputs
    out = root / "uninterrupted"
    summary = run_audit(trials_csv, out, CONFIG, model=ckpt, progress=False)
    return out, summary


# ------------------------------------------------------------------------------------------------
# trial lists
# ------------------------------------------------------------------------------------------------
def test_trial_list_paths_segments_and_errors(tmp_path):
    (tmp_path / "sub").mkdir()
    path = write_trials(tmp_path / "sub" / "trials.csv", [
        {"enroll": "e.wav", "test": "../t.wav", "label": 1, "target_segments": [(0.0, 1.0), (2.0, 3.5)]},
        {"enroll": "e.wav", "test": "t2.wav", "label": 0, "id": "x-1"}])
    trials = read_trials(path)
    assert [t.id for t in trials] == ["t00000", "x-1"]
    assert trials[0].test_path == str((tmp_path / "t.wav").resolve())
    assert trials[0].target_segments == ((0.0, 1.0), (2.0, 3.5)) and trials[1].target_segments == ()
    assert trials[0].line == 2 and trials[1].label == 0
    assert trials[0].speaker == "e"  # no speaker column: the enrollment file's stem
    named = read_trials(write_trials(tmp_path / "named.csv", [
        {"enroll": "e.wav", "test": "t.wav", "label": 1, "speaker": "Ana Lima"},
        {"enroll": "e.wav", "test": "t2.wav", "label": 0, "speaker": ""}]))
    assert [t.speaker for t in named] == ["Ana Lima", "e"] and named[0].describe()["speaker"] == "Ana Lima"

    def bad(text, match):
        p = tmp_path / "bad.csv"
        p.write_text(text)
        with pytest.raises(ValueError, match=match):
            read_trials(p)

    bad("enroll,test\na.wav,b.wav\n", r"lacks column\(s\) \['label'\]")
    bad("enroll,test,label,target_segment\na,b,1,0-1\n", "did you mean 'target_segments'")
    bad("enroll,test,label\na,b,yes\n", "line 2: label 'yes' must be 1")
    bad("enroll,test,label,target_segments\na,b,1,2-1\n", "ends before it starts")
    bad("enroll,test,label,target_segments\na,b,1,0:1\n", "is not a segment 'start-end'")
    bad("enroll,test,label,id\na,b,1,x\na,b,0,x\n", "already used on line 2")
    bad("enroll,test,label\n", "no trials")


# ------------------------------------------------------------------------------------------------
# where the evidence lies: a model that listens only to 0.1-0.4 s
# ------------------------------------------------------------------------------------------------
def test_statistics_find_the_window_the_model_listens_to(tmp_path):
    # "late": speech at 0.5-1.5 s, so the model's window holds only the noise floor (non-speech);
    # "early": speech at 0.0-1.0 s, so the window is speech.
    write_voiced(tmp_path / "late.wav", 2.0, (0.5, 1.5))
    write_voiced(tmp_path / "early.wav", 2.0, (0.0, 1.0), seed=1)
    # "turn": the same audio with the labels swapped, so the window lies on the labelled interfering talker
    trials = read_trials(write_trials(tmp_path / "trials.csv", [
        {"id": "late", "enroll": "late.wav", "test": "late.wav", "label": 1,
         "target_segments": [(0.0, 0.45)], "interferer_segments": [(0.5, 1.5)]},
        {"id": "early", "enroll": "early.wav", "test": "early.wav", "label": 0},
        {"id": "turn", "enroll": "late.wav", "test": "late.wav", "label": 1,
         "target_segments": [(0.5, 1.5)], "interferer_segments": [(0.0, 0.45)]}]))
    vad = voice_activity(voiced(2.0, (0.5, 1.5)), RATE)
    assert vad[:25].sum() == 0 and vad[25:75].all() and vad[75:].sum() == 0  # 20 ms frames
    model = WindowSpeakerModel(0.1, 0.4)
    # 10 ms hop (the thresholds below were set on this STFT): 32 bins x 10 frames = 100 ms windows
    config = AuditConfig(areas=(0.05, 0.1), method_options={"window": (32, 10), "stride": (32, 10)}, n_fft=512,
                         hop_length=160)
    records = {}
    for trial in trials:
        record = run_trial(prepare_payload(trial), model, config, media=False).record
        assert record["status"] == "ok", record["error"]
        records[trial.id] = record
    late, early = records["late"], records["early"]
    assert late["score"] == pytest.approx(1.0) and early["score"] == pytest.approx(1.0)  # enroll = test
    assert late["speech"]["frames_fraction"] == pytest.approx(0.5, abs=0.02)
    assert min(late["speech"]["nonspeech_mass"]) >= 0.95
    assert late["nonspeech_reliance"] >= 0.4
    assert min(late["target"]["mass"]) >= 0.95 and max(late["interferer"]["mass"]) <= 0.05
    assert min(early["speech"]["mass"]) >= 0.95 and early["nonspeech_reliance"] <= -0.4
    assert early["target"] is None
    # at area 0.1 (two thirds of the window): removing the mask loses the evidence, keeping only it keeps it
    assert late["deleted"][-1] < late["score"] - 0.05
    assert late["preserved"][-1] > late["deleted"][-1] + 0.05
    # the non-speech frames alone keep the score, the speech frames alone do not
    assert late["speech"]["score_nonspeech_only"] > late["speech"]["score_speech_only"] + 0.3
    assert early["speech"]["score_speech_only"] > early["speech"]["score_nonspeech_only"]
    # the deletion curve starts at the score and has lost it once the window's 15% of cells are gone
    curve = late["curve"]
    assert curve["scores"][0] == pytest.approx(late["score"], abs=1e-6)
    assert curve["fractions"][2] == pytest.approx(0.2, abs=1e-3) and curve["drop"][2] > 0.3
    # the criteria the report flags by, stored with the trial
    assert late["criteria"]["interferer_mass"] <= 0.05 and records["turn"]["criteria"]["interferer_mass"] >= 0.95
    assert early["criteria"]["interferer_mass"] is None  # no interferer labelled
    assert late["criteria"]["nonspeech_reliance"] == late["nonspeech_reliance"]
    assert late["criteria"]["nonspeech_score"] == late["speech"]["score_nonspeech_only"]
    assert late["speaker"] == "late" and early["speaker"] == "early"  # the enrollment file's stem
    summary = summarise(trials, records, ReportOptions(threshold=0.5))
    flags = {t["id"]: t["flags"] for t in summary["trials"]}
    # "early": the toy embeds silence close to the 150 Hz voice (both mostly in its first band), so the
    # non-speech frames alone would be accepted too (cosine 0.94): "channel" is the right flag there as well
    assert flags["late"] == ["non-speech", "channel"] and flags["early"] == ["channel"]
    assert flags["turn"] == ["non-speech", "interferer", "channel"]
    assert [s["id"] for s in summary["suspicious"]] == ["turn", "late", "early"]
    assert summary["findings"]["interferer"] == {"flagged": 1, "applies": 2}
    assert summary["statistics"]["nonspeech_mass"]["target"]["mean"] >= 0.95


def test_saliency_masks_find_the_window_too(tmp_path):
    """A method that returns only an attribution is audited through the masks of its top-area cells."""
    write_voiced(tmp_path / "late.wav", 2.0, (0.5, 1.5))
    (trial,) = read_trials(write_trials(tmp_path / "trials.csv", [
        {"id": "late", "enroll": "late.wav", "test": "late.wav", "label": 1, "target_segments": [(0.0, 0.45)]}]))
    config = AuditConfig(method="saliency", areas=(0.05, 0.1), curve_steps=4)
    record = run_trial(prepare_payload(trial), WindowSpeakerModel(0.1, 0.4), config, media=False).record
    assert record["status"] == "ok", record["error"]
    # the gradient is zero outside 0.1-0.4 s, so the top 5 % and 10 % of cells lie in the window (non-speech)
    assert min(record["speech"]["nonspeech_mass"]) >= 0.95 and min(record["target"]["mass"]) >= 0.95
    assert len(record["preserved"]) == len(record["deleted"]) == 2


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_any_registered_method_is_audited(tmp_path, method):
    ckpt = tiny_checkpoint(tmp_path / "model")
    trials_csv = small_trial_list(tmp_path / "data", {"single": 1, "aba": 1})
    config = AuditConfig(method=method, areas=(0.1, 0.3), curve_steps=3, min_duration_s=0.3)
    summary = run_audit(trials_csv, tmp_path / "out", config, model=ckpt, progress=False, media=False)
    assert summary["counts"]["ok"] == 2, summary["failed"]
    for r in read_results(tmp_path / "out").values():
        assert r["areas"] == [0.1, 0.3] and len(r["preserved"]) == len(r["deleted"]) == 2
        assert all(0.0 <= m <= 1.0 for m in r["speech"]["mass"])
    arguments = json.loads((tmp_path / "out" / "audit.json").read_text())["arguments"]
    assert arguments["config"]["method"] == method and arguments["method_config"]["listen_fraction"] == 0.2


# ------------------------------------------------------------------------------------------------
# runs that lose nothing
# ------------------------------------------------------------------------------------------------
def test_failed_trials_are_recorded_with_their_error(uninterrupted):
    out, summary = uninterrupted
    records = read_results(out)
    assert summary["counts"] == {"trials": 7, "finished": 7, "pending": 0, "ok": 4, "failed": 3, "target": 2,
                                 "nontarget": 2}
    errors = {i: r["error"]["message"] for i, r in records.items() if r["status"] == "error"}
    assert set(errors) == {"missing", "short", "rate"}
    assert "test/missing.wav" in errors["missing"] and "does not exist" in errors["missing"]
    assert "too short" in errors["short"]
    assert "8000 Hz" in errors["rate"] and "--resample" in errors["rate"]
    assert summary["eer"] is not None and 0.0 <= summary["eer"] <= 1.0
    for r in records.values():
        if r["status"] == "ok":
            for name in ("enroll", "original", "preserved", "deleted", "figure", "arrays"):
                assert (out / r["files"][name]).stat().st_size > 1000
            with np.load(out / r["files"]["arrays"]) as arrays:  # no pickle needed
                masks, spec = arrays["masks"], arrays["spectrogram"]
                assert masks.shape == (2, *spec.shape) and arrays["attribution"].shape == spec.shape
                assert arrays["times_s"].shape == arrays["speech"].shape == spec.shape[-1:]
                assert list(arrays["areas"]) == r["areas"]
                assert np.allclose(masks.mean(axis=(1, 2)), r["areas"], atol=0.02)
    page = (out / "report.html").read_text()
    assert "too short" in page and "Trials, ranked" in page and 'href="trials/single-000/arrays.npz"' in page


def test_interrupted_run_resumes_to_the_same_report(audit_inputs, uninterrupted, monkeypatch):
    root, trials_csv, ckpt = audit_inputs
    full_out, full_summary = uninterrupted
    out = root / "interrupted"
    write = ResultStore.write
    calls = []

    def write_then_interrupt(self, outcome):
        write(self, outcome)
        calls.append(outcome.record["id"])
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C after three finished trials

    monkeypatch.setattr(ResultStore, "write", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_audit(trials_csv, out, CONFIG, model=ckpt, progress=False)
    monkeypatch.setattr(ResultStore, "write", write)
    assert len((out / "results.jsonl").read_text().splitlines()) == 3
    assert not (out / "report.html").exists()
    # a kill in the middle of appending leaves a cut-off line: it is dropped and that trial reruns
    with open(out / "results.jsonl", "a") as f:
        f.write('{"id": "padded-001", "status": "o')
    summary = run_audit(trials_csv, out, CONFIG, model=ckpt, progress=False)
    assert summary["run"]["trials_run"] == 4
    assert read_results(out) == read_results(full_out)
    for name in ("report.html", "summary.json", "figures/scores.png", "figures/distributions.png"):
        assert (out / name).read_bytes() == (full_out / name).read_bytes(), name
    for trial in ("single-000", "padded-001"):
        for name in ("figure.png", "preserved.wav"):
            assert (out / "trials" / trial / name).read_bytes() == (full_out / "trials" / trial / name).read_bytes()
    # a finished audit reruns nothing, and keeps its report
    again = run_audit(trials_csv, out, CONFIG, model=ckpt, progress=False)
    assert again["run"]["trials_run"] == 0
    assert (out / "report.html").read_bytes() == (full_out / "report.html").read_bytes()


def test_other_arguments_cannot_continue_a_folder(audit_inputs, uninterrupted):
    root, trials_csv, ckpt = audit_inputs
    out, _ = uninterrupted
    other = AuditConfig(method="occlusion", areas=(0.1, 0.3), method_options=WINDOW_64, curve_steps=5,
                        min_duration_s=0.3)
    with pytest.raises(ValueError, match=r"different arguments.*config\.areas"):
        run_audit(trials_csv, out, other, model=ckpt, progress=False)
    with pytest.raises(ValueError, match="--workers is for --engine local"):
        run_audit(trials_csv, root / "x", CONFIG, model=ckpt, engine="ray", workers=2)


def test_retry_failed_reruns_only_failed_trials(audit_inputs, uninterrupted, tmp_path):
    root, trials_csv, ckpt = audit_inputs
    out = tmp_path / "retry"
    shutil.copytree(uninterrupted[0], out)
    (root / "data" / "test" / "missing.wav").write_bytes((root / "data" / "test" / "single_000.wav").read_bytes())
    try:
        summary = run_audit(trials_csv, out, CONFIG, model=ckpt, progress=False, retry_failed=True)
    finally:
        (root / "data" / "test" / "missing.wav").unlink()
    assert summary["run"]["trials_run"] == 3
    records = read_results(out)
    assert records["missing"]["status"] == "ok" and records["short"]["status"] == "error"
    assert summary["counts"]["ok"] == 5


# ------------------------------------------------------------------------------------------------
# the command line
# ------------------------------------------------------------------------------------------------
def test_cli_audit_with_extremal(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "model")
    trials_csv = small_trial_list(tmp_path / "data", {"single": 1, "aba": 1})
    out = tmp_path / "out"
    rc = main(["audit", str(trials_csv), "--model", str(ckpt), "--method", "extremal", "--iterations", "4",
               "--areas", "0.1,0.3", "--out", str(out), "--quiet", "--no-media"])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    records = read_results(out)
    assert len(records) == 2 and all(r["status"] == "ok" for r in records.values())
    aba = records["aba-000"]
    assert aba["areas"] == [0.1, 0.3] and len(aba["target"]["mass"]) == 2 and aba["interferer"] is not None
    config = json.loads((out / "audit.json").read_text())["arguments"]["config"]
    assert config["method"] == "extremal" and config["method_options"] == {"iterations": 4}
    assert "report: " in printed and (out / "report.html").exists()
    assert "EER n/a" in printed  # both trials are targets: no error rate, said so
    for argv, message in (
        (["--method", "extremal", "--window", "8,8"], "--window does not apply to ExtremalConfig"),
        (["--iterations", "5"], "--iterations does not apply to OcclusionConfig"),
        (["--set", "window=2.5"], "--set window=2.5: window expects"),
        (["--set", "no_such_field=1"], "has no field no_such_field"),
        (["--areas", "0.1,1.5"], "strictly between 0 and 1"),
    ):
        rc = main(["audit", str(trials_csv), "--model", str(ckpt), "--out", str(tmp_path / "bad"), "--quiet"] + argv)
        assert rc == 2 and message in capsys.readouterr().err, argv


def test_cli_audits_an_ecapa_tdnn_checkpoint(tmp_path, capsys):
    """A SpeechBrain ECAPA-TDNN state dict the user has (here: a small random one) is audited like the bundled
    model: --architecture names it when no .json lies beside the checkpoint."""
    pytest.importorskip("speechbrain")
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    torch.manual_seed(0)
    small = dict(channels=[16, 16, 16, 16, 48], attention_channels=8, se_channels=8, res2net_scale=2, lin_neurons=8)
    ckpt = tmp_path / "embedding_model.ckpt"
    torch.save(ECAPA_TDNN(input_size=80, **small).state_dict(), ckpt)
    trials_csv = small_trial_list(tmp_path / "data", {"single": 2})
    argv = ["audit", str(trials_csv), "--model", str(ckpt), "--window", "64,20", "--areas", "0.1,0.3",
            "--out", str(tmp_path / "out"), "--quiet", "--no-media"]
    assert main(argv) == 2  # no JSON, no --architecture: the error names both fixes
    err = capsys.readouterr().err
    assert "embedding_model.ckpt" in err and "--architecture ecapa-tdnn" in err
    assert main(argv + ["--architecture", "ecapa-tdnn"]) == 2  # the default ECAPA (1024 channels) does not fit
    assert "embedding_model" in capsys.readouterr().err
    ckpt.with_suffix(".json").write_text(json.dumps({"architecture": "ecapa-tdnn", "model": small}))
    assert main(argv) == 0, capsys.readouterr().err
    records = read_results(tmp_path / "out")
    assert len(records) == 2 and all(r["status"] == "ok" for r in records.values())
    assert all(-1.0 <= r["score"] <= 1.0 and len(r["preserved"]) == 2 for r in records.values())

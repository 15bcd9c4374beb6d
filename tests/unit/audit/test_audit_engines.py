"""Audit engines: worker processes give the in-process results, and a worker that dies is survived."""

from __future__ import annotations

import pytest

from toys.audit import WINDOW_64, dying_blob, read_results, small_trial_list, tiny_checkpoint
from avxai.audit import AuditConfig, read_trials, run_audit
from avxai.audit.engines import run_processes
from avxai.audit import load_audit_model, prepare_payload

CONFIG = AuditConfig(method="occlusion", areas=(0.1, 0.2), method_options=WINDOW_64, curve_steps=4,
                     min_duration_s=0.3)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    return root, small_trial_list(root / "data", {"single": 2, "aba": 1, "noisy": 1}), tiny_checkpoint(root)


def test_worker_processes_match_in_process(inputs):
    root, trials_csv, ckpt = inputs
    here = run_audit(trials_csv, root / "here", CONFIG, model=ckpt, progress=False, media=False)
    pool = run_audit(trials_csv, root / "pool", CONFIG, model=ckpt, workers=2, progress=False, media=False)
    assert pool["run"]["workers"] == 2 and pool["run"]["trials_run"] == 4
    assert read_results(root / "pool") == read_results(root / "here")
    assert (root / "pool" / "report.html").read_bytes() == (root / "here" / "report.html").read_bytes()
    assert here["counts"]["ok"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("max_retries", [1, 0])
def test_a_dying_worker_is_retried_or_recorded(inputs, tmp_path, max_retries):
    root, trials_csv, ckpt = inputs
    blob = dying_blob(load_audit_model(ckpt), tmp_path / "died-once")
    batches = [[prepare_payload(t)] for t in read_trials(trials_csv)[:3]]
    outcomes = [o for batch in run_processes(iter(batches), blob, CONFIG, workers=2, media=False,
                                             max_retries=max_retries) for o in batch]
    assert (tmp_path / "died-once").exists()  # a worker did die
    assert sorted(o.record["id"] for o in outcomes) == sorted(b[0].trial.id for b in batches)  # nothing lost
    failed = [o.record for o in outcomes if o.record["status"] != "ok"]
    if max_retries:
        assert not failed
    else:  # the batches in flight when the worker died: recorded with the reason, the rest ran
        assert 1 <= len(failed) <= 3 and all("worker process died" in r["error"]["message"] for r in failed)

"""The Ray engine on a local 2-CPU cluster (one per module: Ray starts slowly): the same results and files
as the local engine, written by the driver; a task whose worker dies is retried."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra: pip install -e '.[ray]'")

from toys.audit import WINDOW_64, dying_blob, read_results, small_trial_list, tiny_checkpoint  # noqa: E402
from avxai.audit import AuditConfig, read_trials, run_audit  # noqa: E402
from avxai.audit.engines import run_ray  # noqa: E402
from avxai.audit import load_audit_model, prepare_payload  # noqa: E402

CONFIG = AuditConfig(method="occlusion", areas=(0.1, 0.2), method_options=WINDOW_64, curve_steps=4,
                     min_duration_s=0.3)
TESTS = str(Path(__file__).resolve().parents[2])  # tests/: the toys package


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        pytest.skip("Ray is already initialised in this process by something else")
    # address="local": a fresh 2-CPU Ray even if a cluster runs on this machine; the tests folder on the
    # workers' path: they unpickle the test helpers' model spec
    path = os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH")) if p)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}})
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    return root, small_trial_list(root / "data", {"single": 2, "aba": 1, "noisy": 1}), tiny_checkpoint(root)


def test_ray_engine_matches_local_engine(cluster, inputs):
    root, trials_csv, ckpt = inputs
    local = run_audit(trials_csv, root / "local", CONFIG, model=ckpt, progress=False)
    remote = run_audit(trials_csv, root / "ray", CONFIG, model=ckpt, engine="ray", batch_trials=2, progress=False)
    assert remote["run"]["engine"] == "ray" and remote["run"]["trials_run"] == 4
    assert local["counts"]["ok"] == remote["counts"]["ok"] == 4
    assert read_results(root / "ray") == read_results(root / "local")
    written = sorted(p.relative_to(root / "local") for p in (root / "local").rglob("*") if p.is_file())
    assert sorted(p.relative_to(root / "ray") for p in (root / "ray").rglob("*") if p.is_file()) == written
    for rel in written:
        if rel.name not in ("runs.jsonl", "results.jsonl", ".lock"):  # runs.jsonl: timing; results: order
            assert (root / "ray" / rel).read_bytes() == (root / "local" / rel).read_bytes(), rel
    # the driver wrote each trial once: no duplicate lines even though tasks ran on two workers
    lines = (root / "ray" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 4


def test_ray_task_whose_worker_dies_is_retried(cluster, inputs, tmp_path):
    root, trials_csv, ckpt = inputs
    blob = dying_blob(load_audit_model(ckpt), tmp_path / "died-once")
    batches = [[prepare_payload(t)] for t in read_trials(trials_csv)[:2]]
    outcomes = [o for batch in run_ray(iter(batches), blob, CONFIG, max_retries=2, media=False) for o in batch]
    assert (tmp_path / "died-once").exists()
    assert sorted(o.record["id"] for o in outcomes) == sorted(b[0].trial.id for b in batches)
    assert all(o.record["status"] == "ok" for o in outcomes), [o.record.get("error") for o in outcomes]
    failed = [o for batch in run_ray(iter(batches), dying_blob(blob, tmp_path / "dies-again"), CONFIG,
                                     max_retries=0, media=False) for o in batch]
    assert sum(o.record["status"] != "ok" for o in failed) >= 1
    assert all("Ray task failed" in o.record["error"]["message"] for o in failed if o.record["status"] != "ok")

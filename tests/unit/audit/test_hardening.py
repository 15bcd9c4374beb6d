"""The audit under bad inputs and kills: nothing blocks, nothing is written through a planted symlink, the
configuration is checked before any trial runs, and worker processes die with their driver.

One test per kind: non-regular or truncated trial audio, duplicate rows, an impossible STFT, a planted
symlink, a SIGKILLed driver (its workers must be gone within seconds), SIGTERM (like Ctrl-C).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from toys.audit import WINDOW_64, tiny_checkpoint
from toys.processes import default_sigint

from avxai.audit import AuditConfig, prepare_payload, read_trials, run_audit

ROOT = Path(__file__).resolve().parents[3]
RATE = 16000
CONFIG = AuditConfig(method="occlusion", areas=(0.1, 0.2), method_options=WINDOW_64, curve_steps=4,
                     min_duration_s=0.3)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening")
    rng = np.random.default_rng(0)
    for name in ("a", "b", "c"):
        sf.write(str(root / f"{name}.wav"), (0.1 * rng.standard_normal(RATE)).astype("float32"), RATE)
    return root, tiny_checkpoint(root)


@pytest.mark.timeout(60)
def test_trial_audio_that_is_not_a_regular_whole_file_fails_the_trial_unread(data, tmp_path):
    root, ckpt = data
    os.mkfifo(tmp_path / "pipe.wav")  # nobody writes: reading it would block forever
    whole = (root / "a.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[:len(whole) // 2])
    (tmp_path / "folder.wav").mkdir()
    csv = tmp_path / "trials.csv"
    csv.write_text(f"enroll,test,label,id\n{root}/a.wav,pipe.wav,1,fifo\n{root}/a.wav,/dev/zero,1,device\n"
                   f"{root}/a.wav,cut.wav,1,cut\n{root}/a.wav,folder.wav,1,dir\n{root}/a.wav,{root}/b.wav,0,ok\n")
    errors = {t.id: prepare_payload(t).error for t in read_trials(csv)}
    assert "is a FIFO (named pipe), not a regular file" in errors["fifo"]
    assert "is a character device" in errors["device"]
    assert "is truncated: its header announces 1.000 s of audio but the file holds 0.49" in errors["cut"]
    assert "is a directory" in errors["dir"] and errors["ok"] is None
    summary = run_audit(csv, tmp_path / "out", CONFIG, model=ckpt, progress=False, media=False)
    assert summary["counts"]["failed"] == 4 and summary["counts"]["ok"] == 1


def test_duplicate_rows_are_refused_naming_them(data, tmp_path):
    root, _ = data
    csv = tmp_path / "trials.csv"
    csv.write_text(f"enroll,test,label\n{root}/a.wav,{root}/b.wav,1\n{root}/b.wav,{root}/a.wav,1\n"
                   f"a.wav,b.wav,0\n{root}/a.wav,{root}/b.wav,1\n")
    (tmp_path / "a.wav").symlink_to(root / "a.wav")
    (tmp_path / "b.wav").symlink_to(root / "b.wav")
    with pytest.raises(ValueError, match=r"line 5 repeats line 2 \(enroll .*a.wav, test .*b.wav\).*counted twice"):
        read_trials(csv)
    csv.write_text(f"enroll,test,label,target_segments\n{root}/a.wav,{root}/b.wav,1,0-0.5\n"
                   f"{root}/a.wav,{root}/b.wav,1,0.5-1\n")
    assert len(read_trials(csv)) == 2  # the same files with other segments are other trials


def test_the_stft_is_checked_before_any_trial_runs(data, tmp_path):
    root, ckpt = data
    with pytest.raises(ValueError, match="hop_length 512 is larger than n_fft 256"):
        AuditConfig(n_fft=256, hop_length=512)
    with pytest.raises(ValueError, match="n_fft must be a positive int"):
        AuditConfig(n_fft=0)
    with pytest.raises(ValueError, match="n_mels 300 is more than the 257 frequency bins"):
        AuditConfig(n_fft=512, n_mels=300)
    csv = tmp_path / "trials.csv"
    csv.write_text(f"enroll,test,label\n{root}/a.wav,{root}/b.wav,1\n")
    with pytest.raises(ValueError, match="hop_length 1024 is larger than n_fft 512"):
        run_audit(csv, tmp_path / "out", AuditConfig(hop_length=1024, areas=(0.1,)), model=ckpt, progress=False)
    assert not (tmp_path / "out").exists()


def test_a_planted_symlink_in_the_output_folder_is_refused(data, tmp_path):
    root, ckpt = data
    csv = tmp_path / "trials.csv"
    csv.write_text(f"enroll,test,label,id\n{root}/a.wav,{root}/b.wav,1,t1\n")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    (out / "trials").mkdir(parents=True)
    elsewhere.mkdir()
    (out / "trials" / "t1").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match="t1 is a symlink inside the output folder"):
        run_audit(csv, out, CONFIG, model=ckpt, progress=False)
    assert list(elsewhere.iterdir()) == []
    (out / "trials" / "t1").unlink()
    (out / "results.jsonl").symlink_to(elsewhere / "results.jsonl")
    with pytest.raises(ValueError, match="results.jsonl is a symlink"):
        run_audit(csv, out, CONFIG, model=ckpt, progress=False)
    assert list(elsewhere.iterdir()) == []
    (out / "results.jsonl").unlink()
    (out / "figures").mkdir()
    (out / "figures" / "scores.png").symlink_to(elsewhere / "scores.png")
    with pytest.raises(ValueError, match="scores.png is a symlink"):
        run_audit(csv, out, CONFIG, model=ckpt, progress=False)
    assert list(elsewhere.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# kills: a driver in a subprocess whose workers sit in a slow model build
# ------------------------------------------------------------------------------------------------
DRIVER = textwrap.dedent("""
    import sys, time
    from dataclasses import dataclass
    from pathlib import Path
    from avxai.audit import AuditConfig, load_audit_model, prepare_payload, read_trials
    from avxai.audit.engines import run_processes
    from avxai.models.registry import ModelBlob

    @dataclass(frozen=True)
    class SlowBlob(ModelBlob):
        ready: str = ""

        def build(self):
            import os
            Path(self.ready, f"worker-{os.getpid()}").touch()
            time.sleep(300)

    if __name__ == "__main__":
        csv, ckpt, ready = sys.argv[1:4]
        blob = load_audit_model(ckpt)
        slow = SlowBlob(path=blob.path, config=blob.config, state=blob.state, digest=blob.digest,
                        config_file=blob.config_file, ready=ready)
        batches = [[prepare_payload(t)] for t in read_trials(csv)]
        for _ in run_processes(iter(batches), slow, AuditConfig(areas=(0.1,)), workers=2, media=False):
            pass
""")


def _alive(pid: int) -> bool:
    """Running (a zombie that nobody reaps yet counts as gone: it holds no memory and runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _launch(driver: str, rows: str, tmp_path, data, *args: str, ready_count: int = 1,
            timeout_s: float = 150) -> subprocess.Popen:
    """Run ``driver`` (a script's text) on a trial list of ``rows`` (``{root}`` is the audio folder) with
    ``trials.csv``, the checkpoint, the ready folder and ``args`` as its arguments; wait until ``ready_count``
    workers have touched the ready folder, and return the still running driver."""
    root, ckpt = data
    csv = tmp_path / "trials.csv"
    csv.write_text("enroll,test,label\n" + rows.format(root=root))
    (tmp_path / "driver.py").write_text(driver)
    ready = tmp_path / "ready"
    ready.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(csv), str(ckpt), str(ready), *args],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            preexec_fn=default_sigint)
    deadline = time.time() + timeout_s
    while time.time() < deadline and proc.poll() is None and len(list(ready.iterdir())) < ready_count:
        time.sleep(0.2)
    if len(list(ready.iterdir())) < ready_count or proc.poll() is not None:
        proc.kill()
        raise AssertionError(proc.communicate()[1].decode()[-2000:])
    return proc


def _start_driver(data, tmp_path) -> tuple[subprocess.Popen, list[int]]:
    proc = _launch(DRIVER, "{root}/a.wav,{root}/b.wav,1\n{root}/b.wav,{root}/c.wav,0\n{root}/c.wav,{root}/a.wav,0\n",
                   tmp_path, data, ready_count=2)
    workers = [int(p.name.split("-")[1]) for p in (tmp_path / "ready").iterdir()]
    assert len(workers) == 2
    assert all(_alive(pid) for pid in workers)
    return proc, workers


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_workers_die_with_their_driver(data, tmp_path, kill):
    proc, workers = _start_driver(data, tmp_path)
    try:
        proc.send_signal(kill)
        proc.wait(timeout=60)
        assert _gone_within(workers, 5), f"worker processes {workers} outlived their driver (signal {kill.name})"
    finally:
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


RAY_DRIVER = DRIVER.replace("from avxai.audit.engines import run_processes",
                            "from avxai.audit.engines import run_ray").replace(
    "run_processes(iter(batches), slow, AuditConfig(areas=(0.1,)), workers=2, media=False)",
    "run_ray(iter(batches), slow, AuditConfig(areas=(0.1,)), media=False, runtime_env=None)")


def _descendants(pid: int) -> list[int]:
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parents[int(name)] = int(Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child, p in parents.items():
            if p == parent and child not in found:
                found.append(child)
                todo.append(child)
    return found


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_ray_driver_leaves_no_ray_process(data, tmp_path):
    pytest.importorskip("ray")
    proc = _launch(RAY_DRIVER, "{root}/a.wav,{root}/b.wav,1\n", tmp_path, data, timeout_s=200)
    ray_processes: list[int] = []
    try:
        time.sleep(2)  # the agents are up
        ray_processes += [p for p in _descendants(proc.pid) if _alive(p)]
        assert len(ray_processes) >= 3  # gcs, raylet, agents, the task's worker
        proc.kill()
        proc.wait(timeout=30)
        assert _gone_within(ray_processes, 15), [Path(f"/proc/{p}/cmdline").read_bytes()[:60]
                                                 for p in ray_processes if _alive(p)]
    finally:
        for pid in ray_processes + (_descendants(proc.pid) if proc.poll() is None else []):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()


AUDIT_DRIVER = textwrap.dedent("""
    import os, sys, time
    from dataclasses import dataclass
    from pathlib import Path
    from avxai.audit import AuditConfig, load_audit_model, run_audit
    from avxai.models.registry import ModelBlob

    @dataclass(frozen=True)
    class SlowInWorkers(ModelBlob):
        ready: str = ""
        driver: int = 0

        def build(self):
            if os.getpid() != self.driver:  # a worker process or a Ray worker: stay busy
                Path(self.ready, f"worker-{os.getpid()}").touch()
                time.sleep(300)
            return super().build()

    if __name__ == "__main__":
        csv, ckpt, ready, out, engine = sys.argv[1:6]
        blob = load_audit_model(ckpt)
        slow = SlowInWorkers(path=blob.path, config=blob.config, state=blob.state, digest=blob.digest,
                             config_file=blob.config_file, ready=ready, driver=os.getpid())
        try:
            run_audit(csv, out, AuditConfig(areas=(0.1,)), model=slow, engine=engine,
                      workers=2 if engine == "local" else 0, progress=False, media=False)
        except KeyboardInterrupt:
            sys.exit(130)
""")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("engine,kill", [("local", signal.SIGTERM), ("ray", signal.SIGTERM), ("ray", signal.SIGINT)],
                         ids=["workers-SIGTERM", "ray-SIGTERM", "ray-SIGINT"])
def test_an_interrupted_audit_stops_its_workers_and_ray(data, tmp_path, engine, kill):
    if engine == "ray":
        pytest.importorskip("ray")
    proc = _launch(AUDIT_DRIVER, "{root}/a.wav,{root}/b.wav,1\n{root}/b.wav,{root}/c.wav,0\n", tmp_path, data,
                   str(tmp_path / "out"), engine, timeout_s=200)
    started: list[int] = []
    try:
        time.sleep(1)
        started += [p for p in _descendants(proc.pid) if _alive(p)]
        proc.send_signal(kill)
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 130, err.decode()[-2000:]
        assert _gone_within(started, 15), [Path(f"/proc/{p}/cmdline").read_bytes()[:60]
                                           for p in started if _alive(p)]
    finally:
        for pid in started + (_descendants(proc.pid) if proc.poll() is None else []):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()

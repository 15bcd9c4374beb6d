"""The CLI's one error path: every expected failure is one line ``avxai COMMAND: error: ...`` with exit code 2,
checked before any computation; Ctrl-C is one line and exit 130; a bug keeps its traceback.

One test per kind of mistake (bad values, bad files, bad checkpoints, bad configs); the audit's
everything-failed exit and Ctrl-C through a real subprocess.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from toys.audit import tiny_checkpoint
from toys.processes import default_sigint

from avxai import cli
from avxai.cli import main

ROOT = Path(__file__).resolve().parents[2]
RATE = 16000


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two 1 s WAVs at 16 kHz, a trial list over them, the tiny speaker checkpoint."""
    root = tmp_path_factory.mktemp("cli_errors")
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        sf.write(str(root / f"{name}.wav"), (0.1 * rng.standard_normal(RATE)).astype("float32"), RATE)
    (root / "trials.csv").write_text("enroll,test,label\na.wav,b.wav,1\nb.wav,a.wav,0\n")
    return root, tiny_checkpoint(root)


def _error(capsys, argv) -> str:
    """Run the CLI; it must fail with exit 2 and one line naming the command. Returns that line."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith(f"avxai {argv[0]}: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def _explain(root, *more):
    return ["explain", "--task", "speaker", "--input", str(root / "a.wav"), "--out", str(root / "out"), "--quiet",
            *more]


@pytest.mark.parametrize("flag", ["--n-fft", "--hop-length", "--n-mels"])
def test_a_zero_stft_size_is_refused_not_defaulted(files, capsys, flag):
    root, _ = files
    with pytest.raises(SystemExit) as stop:
        main(_explain(root, flag, "0"))
    assert stop.value.code == 2
    assert f"argument {flag}: must be a positive integer, got 0" in capsys.readouterr().err


def test_bad_values_and_configs_name_the_field_and_the_fix(files, capsys, tmp_path):
    root, ckpt = files
    assert "window expects" in _error(capsys, _explain(root, "--set", "window=abc"))
    assert "not valid YAML" in _error(capsys, _explain(root, "--set", "window=[1,"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("window: [1,\n")
    assert "config file" in _error(capsys, _explain(root, "--config", str(bad)))
    assert "at line" in _error(capsys, _explain(root, "--config", str(bad)))
    assert "is a directory" in _error(capsys, _explain(root, "--config", str(tmp_path)))
    assert "areas expects" in _error(capsys, _explain(root, "--method", "extremal", "--set", "areas=0.5"))
    line = _error(capsys, ["audit", str(root / "trials.csv"), "--out", str(tmp_path / "a1"), "--model", str(ckpt),
                           "--n-fft", "256", "--hop-length", "512", "--quiet"])
    assert "hop_length 512 is larger than n_fft 256" in line and not (tmp_path / "a1").exists()
    line = _error(capsys, ["audit", str(root / "trials.csv"), "--out", str(tmp_path / "a2"), "--model", str(ckpt),
                           "--hop-length", "4096", "--quiet"])  # n_fft from the model's rule: checked before a trial
    assert "hop_length 4096 is larger than n_fft 512" in line and not (tmp_path / "a2" / "results.jsonl").exists()


def test_bad_files_are_named_for_what_they_are(files, capsys, tmp_path):
    root, _ = files
    (tmp_path / "file").write_text("x")
    start = time.perf_counter()
    assert "exists and is not a directory" in _error(capsys, [*_explain(root)[:-3], "--out", str(tmp_path / "file")])
    assert time.perf_counter() - start < 20  # refused before the model is run
    line = _error(capsys, ["explain", "--task", "speaker", "--input", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "is a directory, not a regular file" in line
    whole = (root / "a.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(whole[:len(whole) // 3])
    line = _error(capsys, ["explain", "--task", "speaker", "--input", str(tmp_path / "cut.wav"), "--out",
                           str(tmp_path / "o")])
    assert "is truncated: its header announces 1.000 s" in line
    line = _error(capsys, ["audit", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "trial list" in line and "is a directory" in line
    dup = tmp_path / "dup.csv"
    dup.write_text("enroll,test,label\n" + f"{root}/a.wav,{root}/b.wav,1\n" * 2)
    assert "line 3 repeats line 2" in _error(capsys, ["audit", str(dup), "--out", str(tmp_path / "o")])


def test_bad_checkpoints_are_one_line_without_unsafe_advice(files, capsys, tmp_path):
    root, ckpt = files
    audit = ["audit", str(root / "trials.csv"), "--out", str(tmp_path / "o"), "--quiet", "--model"]

    class Evil:
        def __reduce__(self):
            return os.system, ("echo pwned",)

    for name, data in (("random", os.urandom(1000)), ("evil", pickle.dumps(Evil()))):
        (tmp_path / f"{name}.pt").write_bytes(data)
        shutil.copy(ckpt.with_suffix(".json"), tmp_path / f"{name}.json")
        line = _error(capsys, [*audit, str(tmp_path / f"{name}.pt")])
        assert f"{name}.pt" in line and "weights_only" not in line and "pwned" not in line
    shutil.copy(ckpt.with_suffix(".json"), tmp_path / "gone.json")
    line = _error(capsys, [*audit, str(tmp_path / "gone.pt")])
    assert "gone.pt does not exist" in line  # the .pt is blamed, not its JSON
    shutil.copy(ckpt, tmp_path / "badjson.pt")
    (tmp_path / "badjson.json").write_text("{oops")
    assert "badjson.json is not valid JSON" in _error(capsys, [*audit, str(tmp_path / "badjson.pt")])


def test_an_audit_whose_every_trial_failed_exits_non_zero(files, capsys, tmp_path):
    root, ckpt = files
    (tmp_path / "trials.csv").write_text(f"enroll,test,label\n{root}/a.wav,missing.wav,1\n")
    code = main(["audit", str(tmp_path / "trials.csv"), "--out", str(tmp_path / "o"), "--model", str(ckpt),
                 "--quiet", "--no-media"])
    err = capsys.readouterr().err
    assert code == 2 and "every trial of this run failed (1 of 1; the first: test audio missing.wav" in err


def test_an_unexpected_exception_keeps_its_traceback(monkeypatch, files):
    root, _ = files

    def bug(args):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "run_explain", bug)
    with pytest.raises(KeyError):
        main(_explain(root))


def _spawn(argv: list[str]) -> subprocess.Popen:
    """``avxai`` in a child process that takes Ctrl-C as a terminal would give it (see :func:`default_sigint`)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "avxai.cli", *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ctrl_c_is_one_line_and_exit_130(files, tmp_path):
    root, ckpt = files
    rng = np.random.default_rng(1)
    names = [f"u{i}.wav" for i in range(6)]
    for name in names:
        sf.write(str(tmp_path / name), (0.1 * rng.standard_normal(RATE)).astype("float32"), RATE)
    pairs = [(e, t) for e in names for t in names if e != t]  # 30 distinct trials: time to interrupt
    trials = tmp_path / "trials.csv"
    trials.write_text("enroll,test,label\n" + "".join(f"{e},{t},{int(i % 2)}\n" for i, (e, t) in enumerate(pairs)))
    out = tmp_path / "out"
    proc = _spawn(["audit", str(trials), "--out", str(out), "--model", str(ckpt), "--quiet", "--no-media"])
    results = out / "results.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None and not (results.exists() and results.read_text()):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1] == (
        "avxai audit: interrupted; run the same command again to continue")
    assert not (out / ".lock").exists() or _lock_is_free(out / ".lock")


def _lock_is_free(path: Path) -> bool:
    import fcntl

    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
    return True


def test_ctrl_c_in_explain_is_one_line(monkeypatch, files, capsys):
    root, _ = files

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_explain", interrupted)
    assert main(_explain(root)) == 130
    assert capsys.readouterr().err.strip() == "avxai explain: interrupted"


def test_a_batch_that_cannot_fit_is_refused_up_front_naming_the_flag(files, capsys, monkeypatch):
    import torch
    from torch import nn

    from avxai import memory

    model = nn.Sequential(nn.Linear(100, 1000), nn.Linear(1000, 10)).train()
    x = torch.zeros(2, 100)
    estimate = memory.check_batch_memory(model, x, x, 8, rows=2, available=10**9)
    assert estimate["per_input"] == 400 + 400 + 2 * 4000 and estimate["batch"] == 8 * 8800
    assert model.training  # measured in evaluation mode, restored
    with pytest.raises(ValueError, match=r"a batch of 8 perturbed inputs needs at least .* lower --batch-size to 3 "):
        memory.check_batch_memory(model, x, x, 8, rows=2, available=30000)
    with pytest.raises(ValueError, match="even one perturbed input does not fit"):
        memory.check_batch_memory(model, x, x, 8, rows=2, available=100)
    root, _ = files
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 1 << 20)
    line = _error(capsys, _explain(root, "--batch-size", "64"))
    assert "a batch of 64 perturbed inputs needs at least" in line and "--batch-size to" in line

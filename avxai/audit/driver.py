"""The audit driver: read the trial list, skip finished trials, run the rest on an engine, write, report."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from pathlib import Path
from typing import Iterator

from tqdm.auto import tqdm

from avxai.audit.config import AuditConfig, check_stft
from avxai.audit.decode import TrialPayload, prepare_payload
from avxai.audit.engines import ENGINES, run_in_process, run_processes, run_ray
from avxai.audit.model import load_audit_model
from avxai.audit.report import build_report
from avxai.audit.store import ResultStore, make_fingerprint
from avxai.audit.summary import ReportOptions
from avxai.audit.trials import Trial, read_trials
from avxai.models.contract import sample_rate_of
from avxai.safety import check_output_dir
from avxai.tasks.audio import stft_for

__all__ = ["run_audit"]


@contextlib.contextmanager
def sigterm_interrupts():
    """While inside, ``SIGTERM`` raises ``KeyboardInterrupt`` as Ctrl-C does, so the ``finally`` blocks run:
    worker processes are stopped, a Ray instance this audit started is shut down, the store's lock is
    released. Only in the main thread (elsewhere Python cannot install handlers); the old handler comes back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _batches(trials: list[Trial], size: int) -> Iterator[list[TrialPayload]]:
    for start in range(0, len(trials), size):
        yield [prepare_payload(t) for t in trials[start:start + size]]


def run_audit(trials_csv: "str | Path", out: "str | Path", config: AuditConfig = AuditConfig(), *,
              model: "str | Path | None" = None, architecture: str | None = None, engine: str = "local",
              workers: int = 0,
              address: str | None = None, batch_trials: int | None = None, max_retries: int = 3,
              ray_runtime_env: dict | None = None, limit: int | None = None, retry_failed: bool = False,
              report: ReportOptions = ReportOptions(), media: bool = True, progress: bool = True,
              threads: int = 1) -> dict:
    """Audit a speaker-verification model on a trial list; resumable, one JSON line per finished trial.

    Parameters
    ----------
    trials_csv : the trial list (:func:`avxai.audit.trials.read_trials`).
    out : output folder: ``audit.json``, ``results.jsonl``, ``trials/<id>/``, ``figures/``, ``report.html``,
        ``summary.json``, ``runs.jsonl``. A folder written with other arguments is refused.
    config : what is computed per trial (hashed with the trial list and the model into ``audit.json``).
    model : the speaker model: a bundled name, a checkpoint (``.pt`` with its ``.json``) or a checkpoint
        without JSON plus ``architecture``; default the bundled ``speakernet``.
    architecture : a registered architecture (:data:`avxai.models.registry.ARCHITECTURES`), what ``model`` is
        when no JSON lies beside it (``"ecapa-tdnn"``: SpeechBrain's ECAPA-TDNN state dict, e.g.
        ``embedding_model.ckpt``); see :func:`avxai.audit.model.load_audit_model`.
    engine : ``"local"`` (``workers=0``: in this process; ``workers=N``: ``N`` spawned processes, so a script
        that calls this must guard it with ``if __name__ == "__main__":``) or ``"ray"`` (``address``,
        ``ray_runtime_env``; one Ray task per batch of ``batch_trials`` trials).
    max_retries : how often a batch whose worker process dies (or whose Ray task fails) is run again before
        its trials are recorded as failed.
    limit : run at most this many unfinished trials now (the rest on a later run with the same arguments).
    retry_failed : run again the trials recorded as failed (their new record replaces the old one).
    report : detection-cost parameters and ranking length of the report (not hashed: re-rendering is free).
    threads : torch threads per worker (per process with ``workers=0``; recorded in ``runs.jsonl``). Results
        can differ bitwise between thread counts: continue an audit with the threads it started with.

    Interrupted (Ctrl-C, ``SIGTERM``), it stops its workers (and a Ray instance it started) and raises
    ``KeyboardInterrupt``; the trials finished so far are kept and a rerun continues.

    Returns the summary (counts, EER, minDCF, statistics, ranking) plus ``"run"``: what this call did.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an int >= 0 (0 = in this process), got {workers!r}")
    if engine == "ray" and workers:
        raise ValueError("--workers is for --engine local; a Ray cluster runs one task per free CPU")
    if address is not None and engine != "ray":
        raise ValueError("--address is for --engine ray")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be an int >= 0, got {limit!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an int >= 1, got {threads!r}")
    check_output_dir(out)
    trials = read_trials(trials_csv)
    blob = load_audit_model(model, architecture)
    built = blob.build()
    check_stft(config, *stft_for(built, sample_rate_of(built), config.n_fft, config.hop_length))
    if batch_trials is None:
        batch_trials = 1 if engine == "local" else 2
    if isinstance(batch_trials, bool) or not isinstance(batch_trials, int) or batch_trials < 1:
        raise ValueError(f"batch_trials must be an int >= 1, got {batch_trials!r}")
    fingerprint = make_fingerprint(trials_csv, blob.digest, config, media)
    with sigterm_interrupts(), ResultStore(out, fingerprint) as store:
        records = store.records()
        known = {t.id for t in trials}
        strangers = sorted(set(records) - known)
        if strangers:
            raise ValueError(f"{store.results} holds trials {strangers[:5]} that are not in {trials_csv}; this folder "
                             "belongs to another trial list: use another --out")
        todo = [t for t in trials if t.id not in records or (retry_failed and records[t.id]["status"] != "ok")]
        if limit is not None:
            todo = todo[:limit]
        batches = _batches(todo, batch_trials)
        if engine == "ray":
            results = run_ray(batches, blob, config, address=address, max_retries=max_retries,
                              runtime_env=ray_runtime_env, media=media, threads=threads)
        elif workers:
            results = run_processes(batches, blob, config, workers, media=media, max_retries=max_retries,
                                    threads=threads)
        else:
            results = run_in_process(batches, blob, config, media=media, threads=threads)
        # rate_noinv_fmt: always "trials/s" (tqdm's default flips to "s/trial" below one trial per second)
        bar = tqdm(total=len(todo), unit="trial", desc="audit", disable=not progress, dynamic_ncols=True,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                              "[{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]")
        start = time.perf_counter()
        done = failed = 0
        try:
            for outcomes in results:
                for outcome in outcomes:
                    store.write(outcome)
                    records[outcome.record["id"]] = outcome.record
                    done += 1
                    failed += outcome.record["status"] != "ok"
                    bar.update(1)
                    bar.set_postfix(failed=failed, refresh=False)
        finally:
            bar.close()
            close = getattr(results, "close", None)
            if close is not None:
                close()
        seconds = time.perf_counter() - start
        run = {"engine": engine, "workers": workers, "threads": threads, "address": address,
               "batch_trials": batch_trials,
               "trials_run": done, "failed": failed, "seconds": round(seconds, 3),
               "trials_per_s": round(done / seconds, 4) if seconds > 0 and done else None}
        with open(store.dir / "runs.jsonl", "a") as f:
            f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **run}) + "\n")
        summary = build_report(store.dir, trials, records, _info(trials_csv, blob, config), report)
    summary["run"] = run
    return summary


def _info(trials_csv: "str | Path", blob, config: AuditConfig) -> dict:
    return {"trials": Path(trials_csv).name, "model": Path(blob.path).name, "model_sha256": blob.digest,
            "method": config.method, "areas": list(config.areas), "display_area": config.display_area}

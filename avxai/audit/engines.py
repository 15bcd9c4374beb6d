"""Where the trials run: in this process, in a pool of worker processes, or as Ray tasks.

Every engine takes an iterator of trial batches and yields, batch by batch as they finish, the
:class:`~avxai.audit.outcome.TrialOutcome` of every trial; the caller (the driver) writes them, so nothing
is written twice even when a Ray task is retried. Workers build the model once per process from the
checkpoint bytes (:class:`~avxai.models.registry.ModelBlob`) and run with one torch thread each, so
``N`` workers use ``N`` cores. A batch whose worker dies (or whose Ray task fails after its retries) comes
back as failed trials with the error, and the audit goes on.

Workers die with their driver: each worker asks Linux for ``SIGKILL`` when its parent dies
(``prctl(PR_SET_PDEATHSIG)``) and watches its parent's pid as a fallback (other systems, or a parent that
died before the request), so a driver killed with ``SIGKILL`` (the out-of-memory killer) leaves no worker
behind. A local Ray instance started by :func:`run_ray` is shut down when the audit ends, fails or is
interrupted (``SIGINT``, ``SIGTERM``: see :func:`avxai.audit.driver.run_audit`); if the driver is killed, a
watcher (:class:`~avxai.audit.reaper.Reaper`) kills the Ray processes it leaves behind.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from typing import Any, Iterable, Iterator

import torch

from avxai.audit.config import AuditConfig
from avxai.audit.decode import TrialPayload
from avxai.audit.outcome import TrialOutcome, failed_outcome
from avxai.audit.reaper import Reaper
from avxai.audit.trial import run_batch

__all__ = ["ENGINES", "run_in_process", "run_processes", "run_ray", "ray_available"]

ENGINES = ("local", "ray")

Batch = list[TrialPayload]
#: what builds the model in a worker: anything with ``build()`` cached per process (a ``ModelBlob``), picklable
ModelSource = Any


def run_in_process(batches: Iterable[Batch], blob: ModelSource, config: AuditConfig,
                   media: bool = True, threads: int = 1) -> Iterator[list[TrialOutcome]]:
    """Run every batch here, one after the other, on ``threads`` torch threads (restored afterwards).

    One thread by default, as in every worker: a trial's forward passes are small, so extra intra-op
    threads buy little and cost much on a shared machine, and every engine computes with the same thread
    count (results can differ bitwise between thread counts).
    """
    own = threads
    threads = torch.get_num_threads()
    try:
        for batch in batches:
            torch.set_num_threads(own)
            try:
                outcomes = run_batch(batch, blob, config, media)
            finally:
                torch.set_num_threads(threads)
            yield outcomes
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------
# worker processes
# ---------------------------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}

#: seconds between two looks of a worker's watchdog at its parent's pid
WATCHDOG_INTERVAL_S = 0.5
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, interval: float = WATCHDOG_INTERVAL_S) -> None:
    """Make this process die when process ``parent`` (its parent) does: Linux's parent-death signal
    (``SIGKILL``), and a daemon thread that exits the process once its parent pid changes (re-parented)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog alone
            pass
    if os.getppid() != parent:  # the parent died before the request: nothing would signal us
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="avxai-parent-watchdog", daemon=True).start()


def _init_worker(config: AuditConfig, media: bool, started, parent: int | None = None, threads: int = 1) -> None:
    if parent is not None:
        die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the driver handles it
    torch.set_num_threads(threads)
    _WORKER.update(config=config, media=media)
    with started.get_lock():
        started.value += 1


def _worker_batch(blob: ModelSource, batch: Batch) -> list[TrialOutcome]:
    # The model travels with each task (about a megabyte, built once per process: build() caches it)
    # rather than in the pool's initargs: initargs are written into each new worker's start-up pipe, and a
    # worker that dies while starting would leave that write, and the audit, blocked.
    return run_batch(batch, blob, _WORKER["config"], _WORKER["media"])


def _terminate(pool: cf.ProcessPoolExecutor) -> None:
    """Kill the pool's worker processes (their batches are abandoned: unrecorded, they run again next time)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def run_processes(batches: Iterable[Batch], blob: ModelSource, config: AuditConfig, workers: int,
                  media: bool = True, max_retries: int = 1, threads: int = 1) -> Iterator[list[TrialOutcome]]:
    """Run batches on ``workers`` processes (spawned, ``threads`` torch threads each), at most ``2 * workers``
    queued. Workers die with this process (:func:`die_with_parent`).

    Yields batches in the order they finish. When a worker process dies (a crash in native code, the
    out-of-memory killer), every batch in flight is a suspect: the pool is restarted and the suspects are
    run again one at a time, alone, so the batch that kills its worker is found; a batch whose worker dies
    more than ``max_retries`` times comes back as failed trials with the error. If no worker process ever
    starts, ``RuntimeError`` (nothing is recorded).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
    source = iter(batches)
    context = multiprocessing.get_context("spawn")
    started = context.Value("i", 0)
    suspects: deque[tuple[Batch, int]] = deque()  # (batch, worker deaths so far), run alone
    exhausted = False
    while True:
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                      initargs=(config, media, started, os.getpid(), threads))
        pending: dict[cf.Future, tuple[Batch, int]] = {}
        crashed: list[tuple[Batch, int]] = []
        try:
            while True:
                if suspects:
                    if not pending:
                        batch, deaths = suspects.popleft()
                        pending[pool.submit(_worker_batch, blob, batch)] = (batch, deaths)
                else:
                    while not exhausted and len(pending) < 2 * workers:
                        batch = next(source, None)
                        if batch is None:
                            exhausted = True
                            break
                        pending[pool.submit(_worker_batch, blob, batch)] = (batch, 0)
                if not pending:
                    return
                done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: pending[f][0][0].trial.index):
                    batch, deaths = pending.pop(future)
                    try:
                        outcomes = future.result()
                    except cf.process.BrokenProcessPool:
                        crashed.append((batch, deaths))
                        continue
                    except Exception as err:  # raised in the worker outside a trial (model build, pickling)
                        outcomes = [failed_outcome(p.trial, f"the worker process failed on this trial's batch: "
                                                            f"{type(err).__name__}: {err}") for p in batch]
                    yield outcomes
                if crashed:
                    crashed += list(pending.values())  # every batch in flight shares the pool's fate
                    pending.clear()
                    break
        except BaseException:  # interrupted, or the caller stopped early (GeneratorExit): stop the workers now
            _terminate(pool)
            raise
        finally:
            pool.shutdown(wait=not crashed, cancel_futures=True)
        if not crashed:
            return
        if started.value == 0:
            raise RuntimeError(
                "the audit's worker processes died while starting, before running any trial. If run_audit is "
                "called from a script, put the call under `if __name__ == \"__main__\":` (workers are spawned and "
                "import the main script); or run with workers=0")
        for batch, deaths in sorted(crashed, key=lambda c: c[0][0].trial.index):
            if deaths + 1 > max_retries:
                yield [failed_outcome(p.trial, f"its worker process died {deaths + 1} time(s) while running this "
                                               "trial's batch (a crash in native code or out of memory?)")
                       for p in batch]
            else:
                suspects.append((batch, deaths + 1))


# ---------------------------------------------------------------------------------------------
# Ray
# ---------------------------------------------------------------------------------------------
def ray_available() -> bool:
    try:
        import ray  # noqa: F401  (optional dependency, imported lazily: the ray extra)
    except ImportError:
        return False
    return True


def _ray_batch(blob: ModelSource, config: AuditConfig, media: bool, batch: Batch,
               threads: int = 1) -> list[TrialOutcome]:
    torch.set_num_threads(threads)
    return run_batch(batch, blob, config, media)


def run_ray(batches: Iterable[Batch], blob: ModelSource, config: AuditConfig, *, address: str | None = None,
            max_retries: int = 3, runtime_env: dict | None = None, media: bool = True,
            in_flight: int | None = None, threads: int = 1) -> Iterator[list[TrialOutcome]]:
    """Run each batch as one Ray task (``num_cpus=1``, retried up to ``max_retries`` times if its worker dies).

    Connects with ``ray.init(address=address, runtime_env=runtime_env)`` unless Ray is already initialised
    in this process (then the existing connection is used and left open). ``address``: ``"auto"`` (a
    cluster started with ``ray start`` on this node), ``"HOST:6379"`` or ``"ray://HOST:10001"`` (Ray Client);
    ``None`` starts a local Ray. The model and config go to the object store once; each task carries the
    audio bytes of its trials, so the nodes need no shared file system. At most ``in_flight`` tasks
    (default: twice the cluster's CPUs) are queued at a time.
    """
    try:
        import ray  # optional dependency, imported lazily: the ray extra
    except ImportError:
        raise ValueError("--engine ray needs Ray: pip install 'avxai[ray]' (or pip install ray)") from None
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
    started = False
    # a local instance started here must not outlive this process, even killed: its agents would stay
    reaper = Reaper() if address is None and not ray.is_initialized() else None
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"address": address, "log_to_driver": False}
        if runtime_env:
            kwargs["runtime_env"] = runtime_env
        main_thread = threading.current_thread() is threading.main_thread()
        on_term = signal.getsignal(signal.SIGTERM) if main_thread else None
        try:
            ray.init(**kwargs)
            if callable(on_term):  # ray.init installs its own SIGTERM handler (it exits, skipping every finally)
                signal.signal(signal.SIGTERM, on_term)
        except ConnectionError as err:
            if reaper is not None:
                reaper.close()
            raise ValueError(f"cannot connect to a Ray cluster at {address!r}: {err}; start one with `ray start --head` "
                             "or check --address") from None
        except BaseException:
            if reaper is not None:
                reaper.close()
            raise
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(_ray_batch)
        blob_ref, config_ref = ray.put(blob), ray.put(config)
        limit = in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        source = iter(batches)
        pending: dict[Any, Batch] = {}
        exhausted = False
        while True:
            while not exhausted and len(pending) < limit:
                batch = next(source, None)
                if batch is None:
                    exhausted = True
                    break
                pending[task.remote(blob_ref, config_ref, media, batch, threads)] = batch
            if not pending:
                return
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                batch = pending.pop(ref)
                try:
                    outcomes = ray.get(ref)
                except ray.exceptions.RayError as err:
                    message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                    # a system failure (worker or node lost) was retried max_retries times by Ray; an exception
                    # raised in the task itself is not retried. Either way the trials are recorded as failed, and
                    # a rerun with --retry-failed runs them again.
                    outcomes = [failed_outcome(p.trial, f"Ray task failed ({type(err).__name__}: {message}); "
                                                        "rerun with --retry-failed to try these trials again")
                                for p in batch]
                yield outcomes
    finally:
        if started:
            ray.shutdown()
        if reaper is not None:
            reaper.close()

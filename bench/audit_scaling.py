"""Benchmark: audit throughput (trials per second) with 1 and 2 workers. Goal: 2 workers >= 1.7x 1 worker.

Builds a generated trial list (``avxai.audit.generate.build_trial_list``, all four conditions) once, then
audits it from scratch with each engine setting on the bundled speaker model (an untrained SpeakerNet of the
same size when the checkpoint is missing), or with ``--model ecapa512`` / ``ecapa1024`` on SpeechBrain's
ECAPA-TDNN at C = 512 / 1024 (random weights, seed 0: the registry's ``ecapa-tdnn`` architecture, written as an
avxai checkpoint with its JSON, so it travels to the workers as bytes like any checkpoint; needs speechbrain), or
any other ``--model`` spec the audit takes (a checkpoint with its JSON, a bundled name). Each worker runs one
torch thread, so ``N`` workers use ``N`` cores. Throughput is taken two ways:

* ``wall``: trials / seconds of the audit loop (``run["seconds"]`` of ``run_audit``: worker start-up and
  model build included, the report excluded);
* ``steady``: trials / seconds between the first and the last finished trial (start-up excluded), from the
  driver's timestamps.

On a machine whose cores are busy with other work, the 2-worker speed-up measures the free cores, not the
audit: check ``uptime`` (load average) and say it beside the numbers. The CPU seconds per trial (each
record's ``cpu_seconds``, measured in its worker, plus the driver's CPU per trial) do not depend on the
load; from them the bench also prints the speed-up to expect on free cores: ``N / (worker + driver CPU
per trial)`` against ``1 / (worker CPU per trial)`` for one worker (an estimate, not a measurement).

    .venv/bin/python bench/audit_scaling.py                          # 24 trials, occlusion, workers 1 and 2
    .venv/bin/python bench/audit_scaling.py --method extremal --iterations 30 --trials-per-condition 4
    .venv/bin/python bench/audit_scaling.py --engine ray             # Ray tasks on a local 1- and 2-CPU Ray
    .venv/bin/python bench/audit_scaling.py --model ecapa512         # issue 17: ~3-4 min on 2 quiet cores
    .venv/bin/python bench/audit_scaling.py --model ecapa512 --quick # smoke run, < 1 min on quiet cores
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import torch

from avxai.audit import AuditConfig, ResultStore, run_audit
from avxai.audit.generate import build_trial_list
from avxai.methods import METHODS, get_method
from avxai.models import SpeakerNet
from avxai.models.registry import get_architecture, save_model


def ecapa_path(folder: Path, channels: int) -> Path:
    """SpeechBrain's ECAPA-TDNN at ``channels`` (random weights, seed 0) saved as an ``ecapa-tdnn`` checkpoint."""
    kwargs = {"channels": [channels] * 4 + [3 * channels]}
    torch.manual_seed(0)  # the bench's own process: a fixed random model
    model = get_architecture("ecapa-tdnn").create(**kwargs)
    return save_model(model, folder / f"ecapa{channels}.pt", architecture="ecapa-tdnn", kwargs=kwargs)


def model_path(folder: Path, spec: str = "speakernet") -> Path | str:
    """The audited model: the bundled SpeakerNet (``"speakernet"``), a random ECAPA-TDNN (``"ecapa512"``,
    ``"ecapa1024"``), or ``spec`` as given (any model spec the audit takes)."""
    if spec.startswith("ecapa") and spec[5:].isdigit():
        return ecapa_path(folder, int(spec[5:]))
    if spec != "speakernet":
        return spec
    bundled = get_architecture("speakernet").bundled_path()
    if bundled.is_file():
        return bundled
    torch.manual_seed(0)
    print(f"{bundled} missing: timing an untrained SpeakerNet of the default size")
    return save_model(SpeakerNet(n_speakers=16), folder / "untrained.pt", architecture="speakernet",
                      kwargs={"n_speakers": 16})


class Stamps:
    """Wall-clock time at which the driver wrote each trial (wraps ResultStore.write)."""

    def __init__(self):
        self.times: list[float] = []
        self._cls, self._write = ResultStore, ResultStore.write
        stamps = self

        def write(store, outcome):
            stamps._write(store, outcome)
            stamps.times.append(time.perf_counter())

        ResultStore.write = write

    def close(self):
        self._cls.write = self._write


def one_run(trials_csv: Path, out: Path, model: Path | str, config: AuditConfig, engine: str, workers: int,
            media: bool) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    stamps = Stamps()
    driver_cpu = time.process_time()
    try:
        if engine == "ray":
            import ray

            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
            try:
                summary = run_audit(trials_csv, out, config, model=model, engine="ray", batch_trials=1,
                                    media=media, progress=False)
            finally:
                ray.shutdown()
        else:
            summary = run_audit(trials_csv, out, config, model=model, workers=workers, media=media, progress=False)
    finally:
        stamps.close()
    driver_cpu = time.process_time() - driver_cpu
    run = summary["run"]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    worker_cpu = sum(r.get("cpu_seconds", 0.0) for r in records) / max(len(records), 1)
    times = stamps.times
    n = len(times)
    # steady state: from the first finished trial to the last, n - 1 trials (start-up excluded)
    steady = (n - 1) / (times[-1] - times[0]) if n > 2 and times[-1] > times[0] else None
    return {"engine": engine, "workers": workers, "trials": run["trials_run"], "failed": run["failed"],
            "seconds": run["seconds"], "wall_trials_per_s": run["trials_per_s"], "steady_trials_per_s": steady,
            "cpu_s_per_trial": worker_cpu,
            # in-process: the driver's CPU is the trials' CPU; otherwise what the driver adds per trial
            "driver_cpu_s_per_trial": (0.0 if workers == 0 and engine == "local" else driver_cpu / max(len(records), 1))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="speakernet",
                   help="speakernet (bundled), ecapa512 / ecapa1024 (SpeechBrain's ECAPA-TDNN, random weights), or "
                        "a model spec (checkpoint with its JSON, bundled name)")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 trial per condition, no media")
    p.add_argument("--trials-per-condition", type=int, default=None,
                   help="x 4 conditions; default 6 (speakernet), 4 (other models: an ECAPA trial costs ~8 CPU s)")
    p.add_argument("--method", default="occlusion", choices=sorted(METHODS))
    p.add_argument("--iterations", type=int, default=30, help="iterations of a method that has them (extremal)")
    p.add_argument("--engine", default="local", choices=["local", "ray"])
    p.add_argument("--workers", default="1,2", help="worker counts to compare (comma-separated)")
    p.add_argument("--no-media", action="store_true", help="skip per-trial figures and WAVs")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    p.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = p.parse_args(argv)
    if args.quick:
        args.trials_per_condition, args.no_media = 1, True
    elif args.trials_per_condition is None:
        args.trials_per_condition = 6 if args.model == "speakernet" else 4
    counts = [int(w) for w in args.workers.split(",")]
    if any(c < 1 for c in counts):
        p.error("--workers takes counts >= 1")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="avxai-audit-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        trials_csv = build_trial_list(folder / "data", args.trials_per_condition, speaker_ids=tuple(range(16, 24)))
        model = model_path(folder, args.model)
        takes_iterations = "iterations" in {f.name for f in fields(get_method(args.method).config_class)}
        options = {"iterations": args.iterations} if takes_iterations else {}
        config = AuditConfig(method=args.method, method_options=options)
        load = os.getloadavg()
        print(f"{args.trials_per_condition * 4} trials, {args.method}"
              f"{f' ({args.iterations} iterations)' if options else ''}, engine {args.engine}, model {args.model} "
              f"({Path(model).name}), "
              f"{os.cpu_count()} CPUs, load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        rows = []
        for workers in counts:
            row = one_run(trials_csv, folder / f"out-{workers}", model, config, args.engine, workers,
                          media=not args.no_media)
            row["load_after"] = round(os.getloadavg()[0], 2)
            rows.append(row)
            steady = row["steady_trials_per_s"]
            print(f"workers {workers}: {row['trials']} trials ({row['failed']} failed) in {row['seconds']:.1f} s: "
                  f"{row['wall_trials_per_s']:.3f} trials/s overall, "
                  f"{'n/a' if steady is None else f'{steady:.3f}'} trials/s steady; CPU per trial "
                  f"{row['cpu_s_per_trial']:.2f} s in the worker + {row['driver_cpu_s_per_trial']:.2f} s in the "
                  f"driver; load average after {row['load_after']:.2f}")
        if len(rows) >= 2:
            base = rows[0]
            for row in rows[1:]:
                wall = row["wall_trials_per_s"] / base["wall_trials_per_s"]
                steady = (row["steady_trials_per_s"] / base["steady_trials_per_s"]
                          if row["steady_trials_per_s"] and base["steady_trials_per_s"] else None)
                row["speedup_wall"], row["speedup_steady"] = wall, steady
                # on free cores (one per worker, the driver sharing them): N / (worker + driver CPU per trial)
                cores = row["workers"]
                estimate = (cores / (row["cpu_s_per_trial"] + row["driver_cpu_s_per_trial"])) / (
                    1.0 / base["cpu_s_per_trial"]) if base["workers"] == 1 else None
                row["speedup_cpu_estimate"] = estimate
                print(f"speed-up {row['workers']} vs {base['workers']} workers: {wall:.2f}x overall, "
                      f"{'n/a' if steady is None else f'{steady:.2f}x'} steady (goal >= 1.7x for 2 vs 1)"
                      + ("" if estimate is None else
                         f"; {estimate:.2f}x expected on {cores} free cores from the CPU seconds per trial"))
        if args.json:
            args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": rows},
                                            indent=2) + "\n")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

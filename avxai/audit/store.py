"""The resumable store of finished trials, and the fingerprint that keeps two runs from mixing.

:class:`ResultStore` appends one JSON line per finished trial to ``results.jsonl`` (after the trial's
figure and audio are written), keeps the hash of everything that determines the results in ``audit.json``
and refuses to continue a folder written with different arguments. Only the driver writes to it.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Mapping

try:  # POSIX only: elsewhere the store takes no lock
    import fcntl
except ImportError:
    fcntl = None

from avxai.audit.config import FORMAT_CHANGES, FORMAT_VERSION, AuditConfig
from avxai.audit.outcome import TrialOutcome
from avxai.audit.trials import file_digest
from avxai.explanation import to_jsonable
from avxai.safety import check_no_symlinks, check_output_dir, write_bytes, write_text

__all__ = ["ResultStore", "make_fingerprint", "fingerprint_hash", "OWN_NAMES"]

#: what an audit writes directly inside its folder; none of them may be a symlink (avxai creates none)
OWN_NAMES = (".lock", "audit.json", "audit.json.tmp", "results.jsonl", "runs.jsonl", "summary.json", "report.html",
             "trials", "figures")


def fingerprint_hash(fingerprint: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def make_fingerprint(trials_csv: "str | Path", model_digest: str, config: AuditConfig, media: bool = True) -> dict:
    """What determines the per-trial results: the trial list's bytes, the model's bytes and config (its digest),
    the audit's config and the method config it resolves to (so a change of a default is noticed too)."""
    return {"format_version": FORMAT_VERSION, "trials_sha256": file_digest(trials_csv),
            "model_sha256": model_digest, "config": config.to_dict(),
            "method_config": to_jsonable(config.method_config()), "media": bool(media)}


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {json.dumps(b)} in the folder, {json.dumps(a)} now"]


class ResultStore(AbstractContextManager):  # ``with ResultStore(...) as x``: __enter__ returns x
    """``DIR/audit.json`` (arguments and their hash), ``DIR/results.jsonl`` (one record per finished trial),
    ``DIR/trials/<id>/`` (figure and audio). The driver is the only writer; an advisory lock on
    ``DIR/.lock`` keeps a second audit from writing to the same folder at the same time.
    """

    def __init__(self, directory: "str | Path", fingerprint: Mapping[str, Any]):
        self.dir = check_output_dir(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        check_no_symlinks(self.dir, OWN_NAMES)
        self._lock = None
        self._acquire_lock()
        self.fingerprint = dict(fingerprint)
        self.hash = fingerprint_hash(self.fingerprint)
        meta = self.dir / "audit.json"
        if meta.exists():
            try:
                old = json.loads(meta.read_text())
            except json.JSONDecodeError:
                raise ValueError(f"{meta} is not valid JSON; this folder was not written by avxai audit (or it was "
                                 "damaged): use another --out") from None
            written = (old.get("arguments") or {}).get("format_version")
            if written != FORMAT_VERSION:
                change = FORMAT_CHANGES.get(FORMAT_VERSION, "the records changed")
                raise ValueError(
                    f"{self.dir} holds an audit in result format {written} but this avxai writes format "
                    f"{FORMAT_VERSION} ({change}), so it cannot be continued: rerun with another --out (or delete "
                    "the folder) to audit the trials again")
            if old.get("hash") != self.hash:
                diffs = _differences(self.fingerprint, old.get("arguments", {}))
                raise ValueError(
                    f"{self.dir} holds an audit run with different arguments, and results of two different runs must "
                    f"not be mixed ({'; '.join(diffs) or 'hash differs'}). Rerun with the same trial list, model and "
                    "options to continue it, or give another --out (or delete the folder) to start a new audit")
        else:
            if (self.dir / "results.jsonl").exists():
                raise ValueError(f"{self.dir} holds results.jsonl but no audit.json, so its arguments are unknown; "
                                 "give another --out")
            write_text(self.dir, meta, json.dumps({"hash": self.hash, "arguments": self.fingerprint}, indent=2,
                                                  sort_keys=True))
        self.results = self.dir / "results.jsonl"
        self._repair_tail()

    def _acquire_lock(self) -> None:
        if fcntl is None:  # not POSIX: no lock
            return
        handle = open(self.dir / ".lock", "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise ValueError(f"another audit is writing to {self.dir} right now; wait for it or use another --out") from None
        self._lock = handle

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __exit__(self, *exc) -> None:
        self.close()

    def _repair_tail(self) -> None:
        """Drop a last line cut off by an interruption (no newline), so the next append starts clean."""
        if not self.results.exists():
            return
        data = self.results.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.results, "r+b") as f:
                f.truncate(keep)

    def records(self) -> dict[str, dict]:
        """Finished trials: id -> the latest record (a retried trial's newer record wins)."""
        out: dict[str, dict] = {}
        if not self.results.exists():
            return out
        with open(self.results, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    raise ValueError(f"{self.results}, line {number} is not valid JSON; the file was edited or damaged. "
                                     "Delete that line to rerun the trial") from None
                out[rec["id"]] = rec
        return out

    def write(self, outcome: TrialOutcome) -> None:
        """Write the trial's files, then append its record (the record is the commit point). A symlink on the way
        (``trials/<id>`` planted to point elsewhere) is refused, never written through."""
        for rel, data in outcome.files.items():
            write_bytes(self.dir, self.dir / rel, data)
        line = json.dumps(outcome.record, sort_keys=True, allow_nan=False) + "\n"
        with open(self.results, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

"""What a trial leaves behind: its JSON record and its files, or the record of its failure."""

from __future__ import annotations

from dataclasses import dataclass, field

from avxai.audit.trials import Trial

__all__ = ["TrialOutcome", "failed_outcome"]


@dataclass
class TrialOutcome:
    """The JSON record of a finished trial and the files (relative path -> bytes) that go with it."""

    record: dict
    files: dict[str, bytes] = field(default_factory=dict)


def failed_outcome(trial: Trial, err: "BaseException | str", seconds: float = 0.0) -> TrialOutcome:
    """The record of a trial that failed with ``err`` (the audit goes on)."""
    if isinstance(err, BaseException):
        error = {"type": type(err).__name__, "message": str(err) or repr(err)}
    else:
        error = {"type": "Error", "message": str(err)}
    record = {**trial.describe(), "status": "error", "error": error, "seconds": round(seconds, 3)}
    return TrialOutcome(record)

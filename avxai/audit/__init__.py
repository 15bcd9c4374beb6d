"""Speaker-verification audit: explain the verification score of every trial of a trial list and ask
whether the model decides on the speaker's voice or on silence, noise, channel or an interfering talker.

``run_audit(trials_csv, out, AuditConfig(...))`` (``avxai audit`` on the command line) is resumable:
one JSON line per finished trial in ``out/results.jsonl``, a hash of the arguments in ``out/audit.json``,
and ``out/report.html``: the findings headline (trials decided on non-speech, on an interfering talker, on
channel), the accept / reject decision per trial at the EER or a given threshold with its errors, the flagged
trials ranked (a table that sorts and filters), per-speaker and per-condition tables, the DET curve, and per
trial the spectrogram with the mask, enrollment and test players and its arrays.

One idea per module, imports going down this list: ``trials`` (the CSV) and ``generate`` (a generated
list); ``config`` (:class:`AuditConfig`, the method's config); ``model`` (the checkpoint from the
registry); ``decode`` (audio bytes), ``speech`` (voice activity), ``outcome``; ``findings`` (decisions, flags,
ranking), ``summary``, ``figures`` and ``html`` (tables that sort and filter);
``trial`` (one trial: the speaker task's problem, any registered method, the statistics); ``store`` (the
resumable ``results.jsonl``); ``engines`` (in process, worker processes, Ray); ``report`` (HTML);
``driver`` (:func:`run_audit`); ``command`` (``avxai audit``).
"""

from avxai.audit.config import AuditConfig
from avxai.audit.decode import TrialPayload, prepare_payload
from avxai.audit.driver import run_audit
from avxai.audit.engines import ENGINES, ray_available, run_in_process, run_processes, run_ray
from avxai.audit.model import load_audit_model
from avxai.audit.report import build_report
from avxai.audit.speech import voice_activity
from avxai.audit.store import ResultStore
from avxai.audit.summary import ReportOptions, summarise
from avxai.audit.trial import run_trial
from avxai.audit.trials import Trial, parse_segments, read_trials, write_trials

__all__ = [
    "run_audit", "AuditConfig", "ReportOptions", "ResultStore", "Trial", "TrialPayload", "ENGINES",
    "build_report", "load_audit_model", "parse_segments", "prepare_payload", "ray_available", "read_trials",
    "run_in_process", "run_processes", "run_ray", "run_trial", "summarise", "voice_activity", "write_trials",
]

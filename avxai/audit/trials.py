"""Trial lists: the CSV an audit reads (``enroll,test,label`` and optional segment columns).

Columns
-------
enroll, test : audio files, relative to the CSV's folder (or absolute).
label : 1 = same speaker (target trial), 0 = different speaker (non-target).
id : optional trial name (letters, digits, ``_ . -``); default ``t<row>`` (``t00000`` is the first row).
condition : optional free text used to group trials in the report (``single``, ``aba``, ``noisy``, ...).
speaker : optional name of the enrolled speaker, used to group trials in the report; default: the enrollment
    file's name without its folder and extension (``enroll/spk016.wav`` -> ``spk016``).
target_segments : optional ``start-end`` seconds of the enrolled speaker in the test utterance, separated by
    ``;`` (e.g. ``0.0-1.0;2.0-3.0``), for multi-speaker tests.
interferer_segments : optional, the same for other talkers in the test utterance.

Other columns are kept as text and shown in the report, unless their name is close to a known one
(``target_segment``): that is an error, so a misspelt column is never silently ignored.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from avxai.safety import read_regular

__all__ = ["Trial", "read_trials", "write_trials", "parse_segments", "format_segments", "file_digest", "REQUIRED",
           "OPTIONAL"]

REQUIRED = ("enroll", "test", "label")
OPTIONAL = ("id", "condition", "target_segments", "interferer_segments", "speaker")
_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")


@dataclass(frozen=True)
class Trial:
    """One verification trial: does ``test`` contain the speaker enrolled with ``enroll``?

    ``index`` is the 0-based data row, ``line`` its line in the CSV (the header is line 1);
    ``enroll`` / ``test`` are the paths as written in the CSV, ``enroll_path`` / ``test_path`` resolved;
    segments are ``((start_s, end_s), ...)`` in seconds; ``speaker`` names the enrolled speaker (the CSV's
    column, else the enrollment file's stem).
    """

    index: int
    line: int
    id: str
    enroll: str
    test: str
    enroll_path: str
    test_path: str
    label: int
    condition: str = ""
    target_segments: tuple[tuple[float, float], ...] = ()
    interferer_segments: tuple[tuple[float, float], ...] = ()
    extra: tuple[tuple[str, str], ...] = field(default=())
    speaker: str = ""

    def segments(self) -> list[dict]:
        """Labelled segments as dicts ``{"start_s", "end_s", "label"}`` (labels ``target`` / ``interferer``)."""
        out = [{"start_s": s, "end_s": e, "label": "target"} for s, e in self.target_segments]
        out += [{"start_s": s, "end_s": e, "label": "interferer"} for s, e in self.interferer_segments]
        return sorted(out, key=lambda d: (d["start_s"], d["end_s"]))

    def describe(self) -> dict:
        """The trial as written in the CSV (JSON types)."""
        return {"id": self.id, "index": self.index, "line": self.line, "enroll": self.enroll, "test": self.test,
                "label": self.label, "condition": self.condition, "speaker": self.speaker,
                "target_segments": [list(s) for s in self.target_segments],
                "interferer_segments": [list(s) for s in self.interferer_segments],
                "extra": dict(self.extra)}


def parse_segments(text: str, *, where: str = "segments") -> tuple[tuple[float, float], ...]:
    """``"0.0-1.0;2.0-3.0"`` -> ``((0.0, 1.0), (2.0, 3.0))`` seconds; empty text -> ``()``.

    Raises ``ValueError`` naming ``where`` when a part is not ``start-end`` with ``0 <= start < end``.
    """
    out = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*-\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*", part)
        if not m:
            raise ValueError(f"{where}: {part!r} is not a segment 'start-end' in seconds; write e.g. "
                             "'0.0-1.0;2.0-3.0'")
        start, end = float(m.group(1)), float(m.group(2))
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f"{where}: segment {part!r} is not a finite time; write 'start-end' in seconds")
        if not end > start:
            raise ValueError(f"{where}: segment {part!r} ends before it starts; write 'start-end' with start < end")
        out.append((start, end))
    return tuple(sorted(out))


def format_segments(segments: "tuple[tuple[float, float], ...] | list") -> str:
    """Inverse of :func:`parse_segments`: ``((0, 1), (2, 3))`` -> ``"0-1;2-3"`` (shortest float text)."""
    return ";".join(f"{float(s):g}-{float(e):g}" for s, e in segments)


def file_digest(path: "str | Path") -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_trials(path: "str | Path") -> list[Trial]:
    """Read a trial list; raise ``ValueError`` naming the file, the line and the fix for any malformed row.

    Missing or unreadable audio files are not checked here: such a trial fails when the audit runs, is
    recorded with its error, and the audit goes on. The same trial on two rows (same enroll and test files
    and segments) is an error naming the rows: it would be run, and counted in the EER, twice.
    """
    path = Path(path)
    if not os.path.lexists(path):
        raise ValueError(f"trial list {path} does not exist; give a CSV with columns enroll,test,label")
    data = read_regular(path, what="trial list", kind="text")  # a directory, FIFO or device is refused unread
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"trial list {path} is not UTF-8 text ({err}); save it as a UTF-8 CSV") from None
    rows = list(csv.reader(text.splitlines()))
    # skip leading blank lines and '#' comment lines, remembering line numbers (1-based)
    numbered = [(i + 1, r) for i, r in enumerate(rows) if r and any(c.strip() for c in r)
                and not r[0].lstrip().startswith("#")]
    if not numbered:
        raise ValueError(f"trial list {path} is empty; it needs a header line 'enroll,test,label' and one row per trial")
    header_line, header = numbered[0]
    columns = [c.strip() for c in header]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise ValueError(f"{path}, line {header_line}: the header {columns} lacks column(s) {missing}; the first line "
                         "must name the columns, e.g. 'enroll,test,label[,target_segments]'")
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise ValueError(f"{path}, line {header_line}: column(s) {dupes} appear more than once in the header")
    known = REQUIRED + OPTIONAL
    for c in columns:
        if c not in known:
            close = difflib.get_close_matches(c, known, n=1, cutoff=0.8)
            if close:
                raise ValueError(f"{path}, line {header_line}: unknown column {c!r}; did you mean {close[0]!r}? "
                                 f"Known columns: {', '.join(known)}")
    base = path.resolve().parent
    trials: list[Trial] = []
    ids: dict[str, int] = {}
    for index, (line, row) in enumerate(numbered[1:]):
        where = f"{path}, line {line}"
        if len(row) != len(columns):
            raise ValueError(f"{where}: {len(row)} fields but the header has {len(columns)} ({', '.join(columns)}); "
                             "quote fields that contain commas")
        values = {c: v.strip() for c, v in zip(columns, row)}
        for c in ("enroll", "test"):
            if not values[c]:
                raise ValueError(f"{where}: the {c} path is empty; give an audio file relative to {base}")
            if "\x00" in values[c]:
                raise ValueError(f"{where}: the {c} path holds a NUL character; check the file's encoding")
        label_text = values["label"]
        if label_text not in ("0", "1"):
            raise ValueError(f"{where}: label {label_text!r} must be 1 (same speaker) or 0 (different speaker)")
        trial_id = values.get("id") or f"t{index:05d}"
        if not _ID.match(trial_id) or set(trial_id) == {"."}:
            raise ValueError(f"{where}: id {trial_id!r} may hold only letters, digits, '_', '.' and '-', and not be "
                             "'.' or '..' (it names the trial's output folder)")
        if trial_id.casefold() in ids:  # case-insensitive file systems would give two trials one folder
            raise ValueError(f"{where}: id {trial_id!r} was already used on line {ids[trial_id.casefold()]} (ids are "
                             "compared ignoring case); ids must be unique")
        ids[trial_id.casefold()] = line
        segs = {c: parse_segments(values.get(c, ""), where=f"{where}, column {c}")
                for c in ("target_segments", "interferer_segments")}
        extra = tuple((c, values[c]) for c in columns if c not in known)
        trials.append(Trial(
            index=index, line=line, id=trial_id, enroll=values["enroll"], test=values["test"],
            enroll_path=str((base / values["enroll"]).resolve()), test_path=str((base / values["test"]).resolve()),
            label=int(label_text), condition=values.get("condition", ""),
            target_segments=segs["target_segments"], interferer_segments=segs["interferer_segments"], extra=extra,
            speaker=values.get("speaker") or Path(values["enroll"].replace("\\", "/")).stem,
        ))
    if not trials:
        raise ValueError(f"trial list {path} has a header but no trials; add rows 'enroll.wav,test.wav,1'")
    _refuse_duplicates(path, trials)
    return trials


def _refuse_duplicates(path: Path, trials: list[Trial]) -> None:
    """Raise naming the lines when two rows are the same trial (enroll, test and segments, resolved paths)."""
    first: dict[tuple, Trial] = {}
    repeats: list[tuple[Trial, Trial]] = []
    for t in trials:
        key = (t.enroll_path, t.test_path, t.target_segments, t.interferer_segments)
        if key in first:
            repeats.append((first[key], t))
        else:
            first[key] = t
    if repeats:
        pairs = "; ".join(f"line {t.line} repeats line {o.line} (enroll {t.enroll}, test {t.test})"
                          for o, t in repeats[:5])
        more = f" and {len(repeats) - 5} more" if len(repeats) > 5 else ""
        raise ValueError(f"trial list {path} holds the same trial more than once: {pairs}{more}; delete the repeated "
                         "rows (a repeated trial would be run and counted twice in the EER and minDCF)")


def write_trials(path: "str | Path", rows: list[dict]) -> Path:
    """Write a trial list CSV from dicts with the columns above (segments as lists of ``(start, end)``)."""
    path = Path(path)
    columns = list(REQUIRED)
    for c in OPTIONAL:
        if any(c in r for r in rows):
            columns.append(c)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in rows:
            out = []
            for c in columns:
                v = r.get(c, "")
                out.append(format_segments(v) if c.endswith("_segments") and not isinstance(v, str) else str(v))
            w.writerow(out)
    return path

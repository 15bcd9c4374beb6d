"""File safety at the bottom layer: bounded reads of regular files only, and no write through a planted symlink.

Reading: :func:`open_regular` opens a path without blocking (``O_NONBLOCK``, so a FIFO or a device cannot
hang the open), then checks on the open descriptor (``fstat``, no race with a swapped path) that it is a
regular file no larger than a cap. Caps default to :data:`DEFAULT_MAX_MB` per kind of file and can be
changed per call (``max_bytes``) or for a whole run with the environment variables ``AVXAI_MAX_AUDIO_MB``,
``AVXAI_MAX_VIDEO_MB``, ``AVXAI_MAX_TEXT_MB``.

Writing: avxai writes only inside output folders it was given. :func:`check_writable` refuses a target (or a
folder between the output folder and the target) that is a symlink: avxai never creates symlinks, so one
found there was planted, and writing through it would write elsewhere. :func:`write_bytes` writes a file
through a fresh temporary (``O_CREAT | O_EXCL | O_NOFOLLOW``) renamed over the target.

Every check raises ``ValueError`` with one sentence naming the file, the problem and the fix. Nothing here
imports another avxai module.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO, Iterable

__all__ = ["DEFAULT_MAX_MB", "max_bytes_for", "describe_kind", "open_regular", "read_regular", "check_output_dir",
           "check_writable", "check_no_symlinks", "write_bytes", "write_text"]

#: default size caps in MiB per kind of input file (generous: an hour of 48 kHz stereo float WAV is ~1.3 GB)
DEFAULT_MAX_MB = {"audio": 1024, "video": 2048, "text": 64}

_KINDS = [(stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]


def max_bytes_for(kind: str) -> int:
    """The size cap in bytes for ``kind`` (``"audio"``, ``"video"``, ``"text"``): ``AVXAI_MAX_<KIND>_MB`` when
    set, else :data:`DEFAULT_MAX_MB`."""
    if kind not in DEFAULT_MAX_MB:
        raise ValueError(f"kind must be one of {', '.join(DEFAULT_MAX_MB)}, got {kind!r}")
    var = f"AVXAI_MAX_{kind.upper()}_MB"
    text = os.environ.get(var)
    if text is None:
        return DEFAULT_MAX_MB[kind] << 20
    try:
        mb = float(text)
    except ValueError:
        raise ValueError(f"{var}={text!r} is not a number of MiB; set it to e.g. {DEFAULT_MAX_MB[kind]}") from None
    if not mb > 0:
        raise ValueError(f"{var}={text!r} must be a positive number of MiB")
    return int(mb * (1 << 20))


def describe_kind(mode: int) -> str:
    """What a file is, from its ``st_mode``: ``"a regular file"``, ``"a FIFO (named pipe)"``, ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _size_text(n: int) -> str:
    if n < 1 << 20:
        return f"{n} bytes"
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


def open_regular(path: "str | Path", *, what: str = "input", kind: str = "audio",
                 max_bytes: int | None = None) -> BinaryIO:
    """Open ``path`` for binary reading if it is a regular file of at most ``max_bytes`` (default
    :func:`max_bytes_for` ``kind``); else ``ValueError`` naming ``what`` and the path. Never blocks: a FIFO or
    a device is opened non-blocking, seen for what it is on the descriptor, and closed unread."""
    path = Path(path)
    limit = max_bytes_for(kind) if max_bytes is None else int(max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ValueError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{what} {path} is a directory; give a file") from None
    except OSError as err:
        raise ValueError(f"{what} {path} cannot be opened ({err.strerror or err})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            fix = "give a file" if stat.S_ISDIR(info.st_mode) else "copy the data into a regular file first"
            raise ValueError(f"{what} {path} is {describe_kind(info.st_mode)}, not a regular file; avxai reads "
                             f"regular files only: {fix}")
        if info.st_size > limit:
            var = f"AVXAI_MAX_{kind.upper()}_MB"
            raise ValueError(f"{what} {path} is {_size_text(info.st_size)}, more than the {_size_text(limit)} cap for "
                             f"{kind} files; shorten it, or raise the cap (environment variable {var})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    return handle


def read_regular(path: "str | Path", *, what: str = "input", kind: str = "audio",
                 max_bytes: int | None = None) -> bytes:
    """The bytes of ``path`` after the checks of :func:`open_regular` (a regular file within the cap)."""
    with open_regular(path, what=what, kind=kind, max_bytes=max_bytes) as f:
        return f.read()


def check_output_dir(path: "str | Path", *, flag: str = "--out") -> Path:
    """``path`` can be an output folder: it does not exist yet, or it is a directory. Checked before any work,
    so a wrong ``--out`` fails in a second rather than after the computation."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} exists and is not a directory; give a folder (new or existing)")
    if not path.exists() and path.parent.exists() and not path.parent.is_dir():
        raise ValueError(f"{flag} {path}: {path.parent} is not a directory; give a folder")
    return path


def check_writable(root: "str | Path", target: "str | Path") -> Path:
    """Raise ``ValueError`` when ``target`` (inside the output folder ``root``), or a folder between ``root``
    and ``target``, is a symlink; avxai creates none, so writing through one would write where it points."""
    root, target = Path(root), Path(target)
    try:
        parts = target.relative_to(root).parts
    except ValueError:
        raise ValueError(f"{target} is outside the output folder {root}; avxai writes only inside it") from None
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise ValueError(f"{current} is a symlink inside the output folder {root}, which avxai did not create; "
                             "remove it (avxai never writes through symlinks) or use another output folder")
    return target


def check_no_symlinks(root: "str | Path", names: Iterable[str]) -> None:
    """:func:`check_writable` for several names directly inside ``root`` (those that exist)."""
    for name in names:
        check_writable(root, Path(root) / name)


def write_bytes(root: "str | Path", target: "str | Path", data: bytes) -> Path:
    """Write ``data`` to ``target`` inside ``root``: checked by :func:`check_writable`, written to a new
    temporary (``O_EXCL | O_NOFOLLOW``: never an existing file or a link) and renamed over ``target``."""
    target = check_writable(root, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    check_writable(root, target)  # a folder created meanwhile by someone else
    tmp = target.with_name(target.name + ".tmp")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()  # a temporary left by an interrupted write (or a planted link: unlink removes the link only)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, target)  # rename replaces a link itself, never its target
    return target


def write_text(root: "str | Path", target: "str | Path", text: str) -> Path:
    """:func:`write_bytes` of UTF-8 text."""
    return write_bytes(root, target, text.encode("utf-8"))

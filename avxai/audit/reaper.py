"""A watcher that kills what a driver started when the driver is killed (``SIGKILL``, the out-of-memory killer).

A local Ray instance started by the audit runs agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) that
outlive a killed driver under PID 1. :class:`Reaper` spawns a small process (standard library only, in its own
session so Ctrl-C does not reach it) that notes, every ``interval`` seconds, the processes descending from the
driver that appeared after it started, and holds a pipe from the driver. When the driver exits normally it
says so (``close()``) and the watcher leaves everything alone; when the pipe breaks without that word (the
driver died), the watcher kills every noted process that is still the same process (pid and start time).
Linux only (``/proc``); elsewhere it does nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import AbstractContextManager

__all__ = ["Reaper"]

_WATCHER = r"""
import os, select, signal, sys, time
driver, interval = int(sys.argv[1]), float(sys.argv[2])

def table():
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                fields = open(f"/proc/{name}/stat").read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(name)] = (int(fields[1]), fields[19])  # parent pid, start time
    return out

def descendants(procs):
    children = {}
    for pid, (ppid, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [driver]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found

before = {(p, t) for p, (_, t) in table().items()}
noted = {}
os.write(sys.stdout.fileno(), b"r")  # ready: everything started from now on is noted
me = os.getpid()
while True:
    procs = table()
    for pid in descendants(procs):
        if pid != me and (pid, procs[pid][1]) not in before:
            noted[pid] = procs[pid][1]
    ready, _, _ = select.select([sys.stdin], [], [], interval)
    if ready:
        word = os.read(sys.stdin.fileno(), 1)
        if word == b"q":
            sys.exit(0)
        if word == b"":
            break
procs = table()
for pid, start in noted.items():
    if pid in procs and procs[pid][1] == start:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""


class Reaper(AbstractContextManager):  # ``with Reaper(...) as x``: __enter__ returns x
    """Kill the processes this process starts from now on if this process dies without :meth:`close`.

    Use as a context manager around the code that starts them (e.g. ``ray.init`` and the tasks)."""

    def __init__(self, interval: float = 0.5):
        self._proc = None
        if sys.platform.startswith("linux") and os.path.isdir("/proc"):
            self._proc = subprocess.Popen([sys.executable, "-c", _WATCHER, str(os.getpid()), str(interval)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
            self._proc.stdout.read(1)  # wait until it has seen what ran before it

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def close(self) -> None:
        """This process ends normally: the watcher exits and kills nothing."""
        if self._proc is None:
            return
        try:
            self._proc.stdin.write(b"q")
            self._proc.stdin.close()
        except OSError:
            pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        self._proc = None

    def __exit__(self, *exc) -> None:
        self.close()

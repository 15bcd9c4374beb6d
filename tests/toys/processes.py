"""Child processes for the interruption tests."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """``preexec_fn`` of a child that a test interrupts with SIGINT: Ctrl-C with its default action, as a terminal
    gives it. A test run started in the background by a shell without job control (``cmd &`` in a script, as some
    CI wrappers do) inherits SIGINT *ignored*, Python then installs no KeyboardInterrupt handler, and the child
    would never see the signal the test sends."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

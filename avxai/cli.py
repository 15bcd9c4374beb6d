"""Command line: ``avxai demo``, ``avxai explain``, ``avxai audit``, ``avxai inspect`` (entry point ``avxai.cli:main``).

The parser is :mod:`avxai.cli_parser`; ``avxai explain`` runs in :mod:`avxai.explain_command`, ``avxai audit`` in
:mod:`avxai.audit.command`, ``avxai inspect`` in :mod:`avxai.inspect_command`. Here: dispatch, and how errors end.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path

from avxai.audit.command import run_audit_command
from avxai.cli_parser import SHORTCUTS, TASK_FLAGS, build_parser
from avxai.demo import run_demo as demo
from avxai.explain_command import (
    applied_task_defaults,
    method_config,
    run_explain,
    task_defaults,
    task_model,
    task_options,
)
from avxai.inspect_command import run_inspect_command
from avxai.safety import check_output_dir

__all__ = ["SHORTCUTS", "TASK_FLAGS", "USER_ERRORS", "applied_task_defaults", "build_parser", "main",
           "method_config", "one_line", "task_defaults", "task_model", "task_options"]


def run_demo(args: argparse.Namespace) -> int:
    check_output_dir(args.out)  # before any work
    demo(out=Path(args.out), method=args.method, progress=not args.quiet, model=args.model)
    return 0


#: what the user can cause and fix (a bad value, file or flag): one line and exit code 2. ImportError: a
#: missing optional extra; OSError: a file that cannot be read or written; UnpicklingError: a damaged or unsafe
#: checkpoint. Any other exception is a bug in avxai and keeps its traceback.
USER_ERRORS = (ValueError, TypeError, OSError, ImportError, pickle.UnpicklingError)

#: what Ctrl-C (or SIGTERM during an audit) prints, per command
INTERRUPTED = {"audit": "interrupted; run the same command again to continue"}


def one_line(err: BaseException) -> str:
    """The error's message on one line (a multi-line message from a library is joined), without torch's advice
    to load checkpoints unsafely."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip() and "weights_only" not in line]
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return " ".join(lines) or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return run_demo(args)
        if args.command == "explain":
            return run_explain(args)
        if args.command == "audit":
            return run_audit_command(args)
        if args.command == "inspect":
            return run_inspect_command(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; 130 = 128 + SIGINT, as shells report it
        print(f"\navxai {args.command}: {INTERRUPTED.get(args.command, 'interrupted')}", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        print(f"avxai {args.command}: error: {one_line(err)}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())

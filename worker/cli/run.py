"""``secops run``: the worker daemon (consumer + monitor scheduler)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import NoReturn

from worker.cli.common import Subparsers, configure_logs, settings


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("run", help="run the worker daemon (consumer + monitor scheduler)")
    parser.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from worker.daemon import build_worker, run_worker

    # The daemon's metrics are EMF lines on stdout, for CloudWatch: stdout is theirs.
    current = settings()
    configure_logs(current)
    worker = build_worker(current)
    code = run_worker(worker)
    if worker.consumer.abandoned:
        _exit_now(code)
    return code


def _exit_now(code: int) -> NoReturn:
    """Exit without finalizing the interpreter around work threads the drain gave up on.

    Their messages are visible again and their leases given back. Finalizing while
    they still run would let them write to half-closed streams (Python aborts when a
    daemon thread holds stderr's lock at shutdown) or block on library atexit hooks,
    and ECS would SIGKILL a task that overstays its stop timeout anyway.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing left to say
            stream.flush()
    os._exit(code)

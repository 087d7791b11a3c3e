"""``secops``: the operator's command line, one module per command group.

Every failure an operator can cause (a bad argument, a missing file, a bad setting,
an unreachable endpoint, a missing extra) ends in one line on stderr and a non-zero
exit, never a traceback (:mod:`worker.cli.errors`); a command's result is the only
thing on stdout (:mod:`worker.cli.common`).
"""

from worker.cli.app import build_parser, main

__all__ = ["build_parser", "main"]

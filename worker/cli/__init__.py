"""``secops``: the operator's command line, one module per command group; the parser
and the entry point are :mod:`worker.cli.app` (``secops = "worker.cli.app:main"``).

Every failure an operator can cause (a bad argument, a missing file, a bad setting,
an unreachable endpoint, a missing extra) ends in one line on stderr and a non-zero
exit, never a traceback (:mod:`worker.cli.errors`); a command's result is the only
thing on stdout (:mod:`worker.cli.common`).

This package's ``__init__`` imports nothing, so a back-end beside the CLI (the demo)
can use a command module's views without importing the whole CLI back.
"""

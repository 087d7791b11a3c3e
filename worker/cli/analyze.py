"""``secops analyze``: events through the in-process runtime, one JSON result a line."""

from __future__ import annotations

import argparse
import sys

from worker.cli.common import EXIT_FAILED, EXIT_OK, Subparsers, configure_logs, one_shot_settings


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("analyze", help="analyze events in-process and print one JSON result per line")
    parser.add_argument("file", help="JSON lines (or a JSON array) of events; - for stdin")
    parser.set_defaults(handler=cmd_analyze)


def cmd_analyze(args: argparse.Namespace) -> int:
    from worker.ops.inputs import open_input

    settings = one_shot_settings()
    # Each input's failure is its own error object on stdout; a warning would repeat it.
    configure_logs(settings, one_shot_level="ERROR")
    # A missing file is found before the runtime and its provider SDK are imported.
    with open_input(args.file) as stream:
        from worker.agents.inprocess import InProcessTransport
        from worker.ops.analyze import analyze_stream

        failures = analyze_stream(InProcessTransport.from_settings(settings), stream, sys.stdout)
    return EXIT_OK if failures == 0 else EXIT_FAILED

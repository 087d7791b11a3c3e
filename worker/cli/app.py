"""The parser and the entry point: each command group registers itself from its module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from worker.cli import (
    analyze,
    backfill,
    block,
    demo,
    dlq,
    health,
    incidents,
    monitor,
    put_log,
    rules,
    run,
    send,
    setup,
    stats,
    suppress,
    tune,
)
from worker.cli.common import EXIT_OK, Parser
from worker.cli.errors import explain

# The order of `secops --help`.
COMMAND_GROUPS = (
    run,
    setup,
    send,
    health,
    demo,
    analyze,
    monitor,
    incidents,
    suppress,
    stats,
    block,
    tune,
    dlq,
    rules,
    backfill,
    put_log,
)


# What `secops --help` says of exit codes (worker/cli/common.py holds the rule).
EXIT_CODES = """\
exit status: 0 done; 1 refused, found nothing or failed (an allowlisted address, an
unknown id, drift left, AWS errors); 2 usage error: a malformed argument, an unknown
option, a bad setting or missing credentials (one line on stderr, even with --json)."""


def build_parser() -> Parser:
    parser = Parser(
        prog="secops",
        description="AI-assisted triage of AWS WAF events.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every failure an operator can fix is one line on stderr."""
    args = build_parser().parse_command(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        sys.stderr.write("secops: interrupted\n")
        return 130
    except BrokenPipeError:
        # `secops analyze ... | head`: the reader left; that is not an error of ours.
        return EXIT_OK
    except Exception as exc:
        explained = explain(exc)
        if explained is None:
            raise
        sys.stderr.write(f"secops: error: {explained.message}\n")
        return explained.code

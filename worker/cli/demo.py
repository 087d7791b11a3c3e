"""``secops demo`` (``make run``): the embedded default."""

from __future__ import annotations

import argparse

from worker.cli.common import Subparsers


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("demo", help="the embedded default: moto in-process, rules provider, samples")
    parser.add_argument("--events", help="a JSON lines file to use instead of the bundled samples")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from worker.demo import run_demo

    return run_demo(events_file=args.events, as_json=args.json)

"""``secops demo`` (``make run``): the embedded default."""

from __future__ import annotations

import argparse

from worker.cli.common import Subparsers


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("demo", help="the embedded default: moto in-process, rules provider, samples")
    parser.add_argument("--events", help="a JSON lines file to use instead of the bundled samples")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="afterwards keep the embedded backend up (until Ctrl-C) and print the exports "
        "that point a second shell's secops commands at it",
    )
    parser.add_argument(
        "--port",
        type=port_number,
        default=0,
        help="the embedded backend's port on 127.0.0.1 (default: a free one)",
    )
    parser.set_defaults(handler=cmd_demo)


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return port


def cmd_demo(args: argparse.Namespace) -> int:
    from worker.embedded.demo import run_demo

    return run_demo(events_file=args.events, as_json=args.json, serve=args.serve, port=args.port)

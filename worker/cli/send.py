"""``secops send``: enqueue events from a JSON lines file or stdin."""

from __future__ import annotations

import argparse
import json

from worker.cli.common import EXIT_FAILED, EXIT_OK, Subparsers, configure_logs, one_shot_settings, out


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("send", help="enqueue events from a JSON lines file (- for stdin)")
    parser.add_argument("file", help="JSON lines (or a JSON array) of events; - for stdin")
    parser.add_argument(
        "--raw", action="store_true", help="also send lines that are not JSON, verbatim (they are skipped)"
    )
    parser.add_argument(
        "--now",
        action="store_true",
        help="shift every timestamp so the newest record is now (relative spacing kept)",
    )
    parser.set_defaults(handler=cmd_send)


def cmd_send(args: argparse.Namespace) -> int:
    from worker.daemon import Clients
    from worker.ops.inputs import open_input
    from worker.ops.sending import send_records
    from worker.platform.resources import resolve_resources

    settings = one_shot_settings()
    configure_logs(settings, one_shot_level="WARNING")
    # A missing file is found before any AWS call (and its retries) is made.
    with open_input(args.file) as stream:
        clients = Clients.from_settings(settings)
        resources = resolve_resources(settings, sqs=clients.sqs, sns=clients.sns)
        result = send_records(clients.sqs, resources.queue_url, stream, raw=args.raw, shift_to_now=args.now)
    out(json.dumps(result))
    return EXIT_OK if not (result["skipped"] or result["failed"]) else EXIT_FAILED

"""``secops setup``: create the queue, DLQ, topics, table and index (idempotent)."""

from __future__ import annotations

import argparse
import json

from worker.cli.common import EXIT_OK, Subparsers, configure_logs, one_shot_settings, out


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("setup", help="create the queue, DLQ, topics, table and index (idempotent)")
    parser.add_argument(
        "--log-bucket",
        metavar="NAME",
        help="also notify the queue of new WAF log files in this bucket (queue policy, bucket notification)",
    )
    parser.set_defaults(handler=cmd_setup)


def cmd_setup(args: argparse.Namespace) -> int:
    from worker.daemon import Clients
    from worker.resources import setup_resources
    from worker.store.dynamodb import EventStore

    settings = one_shot_settings()
    configure_logs(settings, one_shot_level="WARNING")
    clients = Clients.from_settings(settings)
    store = EventStore(settings.table_name, client=clients.dynamodb, ttl_days=settings.event_ttl_days)
    events = None
    if "eventbridge" in settings.enabled_channels:
        from worker import aws

        events = aws.client("events", region=settings.aws_region, localstack=settings.localstack)
    resources, report = setup_resources(
        settings,
        sqs=clients.sqs,
        sns=clients.sns,
        store=store,
        s3=clients.s3,
        log_bucket=args.log_bucket,
        events=events,
    )
    out(json.dumps({"resources": resources.__dict__, "report": report}, indent=2))
    return EXIT_OK

"""``secops setup``: create the queue, DLQ, topics, table and index (idempotent)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from worker.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Subparsers,
    configure_logs,
    one_shot_settings,
    out,
)
from worker.response.records import Scope
from worker.settings import Settings


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("setup", help="create the queue, DLQ, topics, table and index (idempotent)")
    parser.add_argument(
        "--log-bucket",
        metavar="NAME",
        help="also notify the queue of new WAF log files in this bucket (queue policy, bucket notification); "
        "the bucket must exist, checked before anything is changed",
    )
    parser.add_argument(
        "--create-bucket",
        action="store_true",
        help="with --log-bucket: create the bucket when it does not exist (local development, LocalStack)",
    )
    parser.add_argument(
        "--ip-set",
        metavar="NAME",
        help="also create (or adopt) the WAF IP sets NAME-v4 and NAME-v6 for response actions, "
        "and print the web ACL rule that makes them block",
    )
    parser.add_argument(
        "--ip-set-scope",
        choices=("REGIONAL", "CLOUDFRONT"),
        default="REGIONAL",
        help="REGIONAL (ALB, API Gateway, AppSync, Cognito, App Runner, Verified Access) or CLOUDFRONT",
    )
    parser.set_defaults(handler=cmd_setup)


def cmd_setup(args: argparse.Namespace) -> int:
    from worker.daemon import Clients

    if args.create_bucket and not args.log_bucket:
        raise CliError("--create-bucket needs --log-bucket NAME", EXIT_USAGE)
    from worker.platform.resources import setup_resources
    from worker.store.dynamodb import EventStore

    settings = one_shot_settings()
    configure_logs(settings, one_shot_level="WARNING")
    clients = Clients.from_settings(settings)
    store = EventStore(settings.table_name, client=clients.dynamodb, ttl_days=settings.event_ttl_days)
    events = None
    if "eventbridge" in settings.enabled_channels:
        from worker.platform import aws

        events = aws.client("events", region=settings.aws_region, localstack=settings.localstack)
    resources, report = setup_resources(
        settings,
        sqs=clients.sqs,
        sns=clients.sns,
        store=store,
        s3=clients.s3,
        log_bucket=args.log_bucket,
        create_bucket=args.create_bucket,
        events=events,
    )
    result: dict[str, Any] = {"resources": resources.__dict__, "report": report}
    if args.ip_set:
        result["ip_sets"] = ip_sets(settings, name=args.ip_set, scope=args.ip_set_scope)
    out(json.dumps(result, indent=2))
    return EXIT_OK


def ip_sets(settings: Settings, *, name: str, scope: Scope) -> dict[str, Any]:
    """Create or adopt ``name``-v4 and ``name``-v6; their ARNs, the settings, and the rule."""
    from worker.response.factory import wafv2_clients
    from worker.response.wafv2 import ensure_ip_set, web_acl_rule

    client = wafv2_clients(settings)("us-east-1" if scope == "CLOUDFRONT" else None)
    refs = []
    created = []
    for version, suffix in (("IPV4", "v4"), ("IPV6", "v6")):
        ref, new = ensure_ip_set(client, name=f"{name}-{suffix}", scope=scope, version=version)  # type: ignore[arg-type]
        refs.append(ref)
        if new:
            created.append(ref.name)
    return {
        "created": created,
        "arns": {ref.version: ref.arn for ref in refs},
        "settings": {
            "SECOPS_RESPONSE_IP_SET_V4": refs[0].arn,
            "SECOPS_RESPONSE_IP_SET_V6": refs[1].arn,
        },
        "web_acl_rule": web_acl_rule(refs, name=f"{name}-rule"),
        "next": "add web_acl_rule to your web ACL (first, priority 0), set the two settings, "
        "then SECOPS_RESPONSE_MODE=dry_run to watch the decisions before `on`",
    }

"""``secops backfill s3://BUCKET/PREFIX``: replay WAF log files through the S3 path.

The same handler as the daemon reads each object (``worker/consumers/s3_objects.py``):
its kept records go to the events queue as ordinary events, and each object's
checkpoint makes a re-run skip what is complete and resume what was cut short.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from worker.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Subparsers,
    configure_logs,
    one_shot_settings,
    out,
)

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client
    from types_boto3_s3.type_defs import ObjectTypeDef

    from worker.daemon import Clients
    from worker.ports import CheckpointRepo
    from worker.settings import Settings


def register(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "backfill",
        help="replay WAF log files from S3 through the events queue (idempotent)",
        description=(
            "List the log files under s3://BUCKET/PREFIX (with --since/--until, only the hour "
            "prefixes of the date-partitioned layout in range), read each through the same path "
            "as S3 notifications, and send the kept records to the events queue. Complete files "
            "are skipped, so a re-run only does what is left."
        ),
    )
    parser.add_argument(
        "uri", help="s3://BUCKET/PREFIX, e.g. s3://aws-waf-logs-x/AWSLogs/<acct>/WAFLogs/<region>/<acl>/"
    )
    parser.add_argument(
        "--since", type=_moment, help="ISO-8601 time (UTC if no offset), e.g. 2026-11-30T00:00"
    )
    parser.add_argument("--until", type=_moment, help="ISO-8601 time; default: now when --since is given")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be read (complete files are counted, not listed), read nothing",
    )
    parser.set_defaults(handler=cmd_backfill)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO-8601 time like 2026-11-30T10:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_backfill(args: argparse.Namespace) -> int:
    from secops_core.ingest.s3_layout import parse_s3_uri
    from worker.platform import clock

    try:
        bucket, prefix = parse_s3_uri(args.uri)
    except ValueError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    until = args.until or (clock.now() if args.since else None)
    if args.since and until and args.since > until:
        raise CliError("--since is after --until", EXIT_USAGE)
    settings = one_shot_settings()
    configure_logs(settings, one_shot_level="WARNING")
    from fnmatch import fnmatchcase

    if not any(fnmatchcase(bucket, name) for name, _ in settings.log_bucket_rules):
        raise CliError(
            f"s3://{bucket} is not in SECOPS_LOG_BUCKETS ({settings.log_buckets}); add it to read it",
            EXIT_USAGE,
        )
    from worker.daemon import Clients
    from worker.store.dynamodb import EventStore

    clients = Clients.from_settings(settings)
    objects = list(list_log_objects(clients.s3, bucket, prefix, args.since, until))
    if args.dry_run:
        store = EventStore(settings.table_name, client=clients.dynamodb, ttl_days=settings.event_ttl_days)
        out(json.dumps(dry_run(store, bucket, objects), indent=2))
        return EXIT_OK
    summary = backfill(settings, clients, bucket, objects)
    out(json.dumps(summary, indent=2))
    return EXIT_OK


def _version(obj: Mapping[str, Any]) -> str:
    """What names a listed object's content, as the handler's checkpoints do (its ETag)."""
    return str(obj.get("ETag", "")).strip('"') or "-"


def dry_run(checkpoints: CheckpointRepo, bucket: str, objects: list[ObjectTypeDef]) -> dict[str, Any]:
    """What a backfill would do: the objects already complete (skipped, not listed) and
    the ones to read (from the start, or resumed from a checkpoint), read nothing."""
    to_read: list[ObjectTypeDef] = []
    complete = resume = 0
    for obj in objects:
        checkpoint = checkpoints.get_object(bucket, obj["Key"], _version(obj))
        if checkpoint is not None and checkpoint.complete:
            complete += 1
            continue
        resume += checkpoint is not None
        to_read.append(obj)
    return {
        "bucket": bucket,
        "objects": len(objects),
        "complete": {"objects": complete},
        "to_read": {
            "objects": len(to_read),
            "resume": resume,
            "bytes": sum(o["Size"] for o in to_read),
            "keys": [o["Key"] for o in to_read[:20]],
        },
        "dry_run": True,
    }


def list_log_objects(
    s3: S3Client, bucket: str, prefix: str, since: datetime | None, until: datetime | None
) -> Iterator[ObjectTypeDef]:
    """The objects to read, oldest partition first; only hour prefixes in range are listed."""
    from secops_core.ingest.s3_layout import hour_prefixes, in_range, is_web_acl_prefix

    if since is not None and until is not None and is_web_acl_prefix(prefix):
        prefixes: Iterator[str] = hour_prefixes(prefix, since, until)
    else:
        prefixes = iter([prefix])
    paginator = s3.get_paginator("list_objects_v2")
    for each in prefixes:
        for page in paginator.paginate(Bucket=bucket, Prefix=each):
            for obj in page.get("Contents", []):
                if obj["Key"].endswith("/") or not in_range(obj["Key"], since, until):
                    continue
                yield obj


def backfill(
    settings: Settings, clients: Clients, bucket: str, objects: list[ObjectTypeDef]
) -> dict[str, Any]:
    """Read each object through the log-object handler; a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from secops_core.ingest.s3_notifications import S3ObjectRef
    from worker.consumers.s3_objects import LogObjectHandler, ObjectUnreadable, read_limits
    from worker.daemon import owner_id
    from worker.errors import AlreadyInProgress, RetryableError
    from worker.platform.resources import resolve_queues
    from worker.store.dynamodb import EventStore

    queue_url, _ = resolve_queues(settings, sqs=clients.sqs)
    store = EventStore(settings.table_name, client=clients.dynamodb, ttl_days=settings.event_ttl_days)
    handler = LogObjectHandler(
        s3=clients.s3,
        sqs=clients.sqs,
        queue_url=queue_url,
        checkpoints=store,
        events=store,
        owner=owner_id(),
        lease_s=settings.lease_s,
        keep=settings.log_filter,
        counts=store,
        checkpoint_every_s=settings.log_checkpoint_s,
        limits=read_limits(settings),
        buckets=settings.log_bucket_rules,
    )
    # Objects complete before this run are counted apart from those read now: their
    # records were sent by an earlier run, none by this one.
    complete = {"objects": 0, "records_read": 0, "kept": 0}
    read_now = {"objects": 0, "resumed": 0, "records_read": 0, "kept": 0, "skipped": 0, "bad": 0, "sent": 0}
    failures: list[dict[str, str]] = []
    progress = Progress(
        TextColumn("[bold]backfill"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[kept]} kept"),
        console=Console(file=sys.stderr),
        transient=not sys.stderr.isatty(),
        disable=not sys.stderr.isatty(),
    )
    with progress:
        task = progress.add_task("objects", total=len(objects), kept=0)
        for obj in objects:
            ref = S3ObjectRef(
                bucket, obj["Key"], size=obj.get("Size"), etag=str(obj.get("ETag", "")).strip('"') or None
            )
            before = store.get_object(bucket, ref.key, ref.version)
            try:
                result = handler.read_object(ref)
            except (ObjectUnreadable, AlreadyInProgress, RetryableError) as exc:
                failures.append({"key": ref.key, "error": getattr(exc, "message", str(exc))})
                progress.advance(task)
                continue
            checkpoint = result.checkpoint
            if result.skipped:
                complete["objects"] += 1
                complete["records_read"] += checkpoint.read
                complete["kept"] += checkpoint.kept
            else:
                read_now["objects"] += 1
                read_now["resumed"] += before is not None
                for name, value in (
                    ("records_read", checkpoint.read),
                    ("kept", checkpoint.kept),
                    ("skipped", checkpoint.skipped),
                    ("bad", checkpoint.bad),
                    ("sent", result.sent),
                ):
                    read_now[name] += value
            progress.update(task, advance=1, kept=read_now["kept"])
    return {
        "bucket": bucket,
        "objects": len(objects),
        "complete": complete,
        "read_now": read_now,
        "failed": {"objects": len(failures), "failures": failures[:20]},
    }

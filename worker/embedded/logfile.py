"""The demo's WAF log file: written to moto's S3, read because S3 notified the queue.

A few hundred records, mostly default-allow noise plus attacks, like a real log file.
The demo's summary shows what the read counted and what became of the kept records
(docs/architecture.md, "Consumers").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from secops_core.ingest.log_filter import RelevanceFilter
from secops_core.ingest.normalize import normalize_event
from worker.ops.log_samples import gzip_ndjson, log_key, waf_log_records
from worker.platform import clock
from worker.platform.resources import connect_log_bucket

if TYPE_CHECKING:
    from worker.daemon import Clients

DEMO_BUCKET = "aws-waf-logs-demo"
DEMO_RECORDS = 300
DEMO_MATCHED = 0.05


@dataclass(frozen=True)
class DemoLogFile:
    bucket: str
    key: str
    etag: str
    kept_keys: tuple[str, ...]


def put_demo_log_file(clients: Clients, queue_url: str) -> DemoLogFile:
    """Create the bucket, let it notify the queue, and write one gzip log file into it."""
    clients.s3.create_bucket(Bucket=DEMO_BUCKET)
    connect_log_bucket(clients.s3, clients.sqs, bucket=DEMO_BUCKET, queue_url=queue_url)
    start = clock.now() - timedelta(minutes=5)
    records = list(waf_log_records(DEMO_RECORDS, matched_ratio=DEMO_MATCHED, start=start))
    key = log_key("000000000000", "us-east-1", "shop-prod", start, "demo_waflogs.log.gz")
    etag = clients.s3.put_object(Bucket=DEMO_BUCKET, Key=key, Body=gzip_ndjson(records))["ETag"].strip('"')
    # What the default filter makes an event (docs/architecture.md, "Relevance").
    grader = RelevanceFilter()
    graded = [grader.grade(r) for r in records]
    kept = tuple(
        normalize_event(r).event_key
        for r, g in zip(records, graded, strict=True)
        if g is not None and g.relevance.value == "event"
    )
    return DemoLogFile(DEMO_BUCKET, key, etag, kept)


def log_file_summary(store: Any, log_file: DemoLogFile) -> dict[str, Any]:
    """Records read, kept, counted, skipped and bad, and the status each kept record's event reached."""
    checkpoint = store.get_object(log_file.bucket, log_file.key, log_file.etag)
    events = store.get_many(list(log_file.kept_keys))
    return {
        "object": f"s3://{log_file.bucket}/{log_file.key}",
        "complete": bool(checkpoint and checkpoint.complete),
        "read": checkpoint.read if checkpoint else 0,
        "kept": checkpoint.kept if checkpoint else 0,
        "counted": checkpoint.counted if checkpoint else 0,
        "skipped": checkpoint.skipped if checkpoint else 0,
        "bad": checkpoint.bad if checkpoint else 0,
        "outcome": dict(sorted(Counter(r.status for r in events.values()).items())),
    }


def print_log_file(console: Console, summary: dict[str, Any]) -> None:
    table = Table(title="WAF log file from S3 (read because S3 notified the queue)", title_justify="left")
    for column in (
        "records read",
        "kept",
        "counted (cannot page)",
        "skipped (noise)",
        "bad",
        "kept records became",
    ):
        table.add_column(column)
    outcome = ", ".join(f"{status} {count}" for status, count in summary["outcome"].items()) or "none"
    table.add_row(
        str(summary["read"]),
        str(summary["kept"]),
        str(summary["counted"]),
        str(summary["skipped"]),
        str(summary["bad"]),
        outcome,
    )
    console.print(table)

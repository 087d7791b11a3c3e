"""``make bench BENCH_ARGS="--scenario day"``: a day of one web ACL's logs, through the whole path.

The traffic is :mod:`bench.day_traffic` (its docstring says what the web ACL holds and
why each share is what it is): one gzip log file per hour, put in moto's S3 as WAF's
logging would, S3's own notification on the events queue, and one worker (16 threads,
the in-process runtime with the scripted consistent model of the flood scenario)
reading each file, counting what cannot page and triaging the events.

Every figure is measured, none assumed:

- ``records``, ``kept`` (counted + sent as events), ``events`` (queue messages that became
  events), ``aggregated`` (records in per-window counts), from the objects' checkpoints;
- ``model_calls_per_million_records`` from the scripted model's own call count, and the
  input tokens of each call from what it was sent (:mod:`bench.tokens`);
- ``dynamodb_writes_per_million_records`` and ``aws_requests_per_million_records`` from
  the worker's clients (a TransactWriteItems counts its items, twice, as DynamoDB bills it);
- ``cost_per_million_records_usd``: every request priced as in :mod:`bench.s3`, the model
  from the measured calls and measured input tokens (output tokens per call a named
  input, as the scripted answers are not a real model's);
- ``notifications_critical`` (SNS deliveries on the critical topic) and who they were for;
- ``lost``: records the catalog calls relevant that ended neither as a terminal event nor
  in a window count.

The results go under ``"day"`` in ``bench/results.json``, beside the other scenarios.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.day_traffic import ATTACKER_IP, DayPlan, HourMix, day_records
from bench.results import DEFAULT_OUTPUT, write_section
from bench.s3 import Prices

# The targets, printed beside the figures.
TARGETS = {
    "cost_per_million_records_usd": "<= 0.50",
    "events": "<= 1.5 x records with a security-relevant match",
    "pages": "the attacker's incident only",
    "lost": "0",
}
_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"}


@dataclass(frozen=True)
class Expected:
    """What the catalog says each record is worth, counted while the files are written."""

    records: int
    noise: int
    counted: int
    events: int
    by_kind: dict[str, dict[str, int]]


def write_day(directory: Path, plan: DayPlan, seed: int) -> tuple[list[Path], Expected]:
    """One gzip NDJSON file per hour; the catalog's verdict on every record, for ``lost``."""
    from secops_core.ingest.log_filter import RelevanceFilter

    grader = RelevanceFilter()
    totals: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    paths = []
    for hour in range(plan.hours):
        path = directory / f"hour-{hour:02d}.log.gz"
        with gzip.open(path, "wb", compresslevel=6) as out:
            for item in day_records(plan, hour, seed=seed):
                out.write(json.dumps(item.record, separators=(",", ":")).encode() + b"\n")
                graded = grader.grade(item.record)
                verdict = "event" if graded is None else graded.relevance.value
                totals[verdict] += 1
                by_kind.setdefault(item.kind, Counter())[verdict] += 1
        paths.append(path)
    expected = Expected(
        records=sum(totals.values()),
        noise=totals["noise"],
        counted=totals["counted"],
        events=totals["event"],
        by_kind={kind: dict(counts) for kind, counts in sorted(by_kind.items())},
    )
    return paths, expected


def run_day(paths: list[Path], plan: DayPlan, *, timeout_s: float, log_filter: str) -> dict[str, Any]:
    """Put the files in moto's S3 and let their notifications drive a worker through them."""
    from agent_runtime.service import build_service
    from bench.flood import ConsistentModel
    from bench.tokens import summary
    from worker.agents import Agents
    from worker.agents.inprocess import InProcessTransport
    from worker.daemon import Clients, build_worker, run_worker
    from worker.embedded.moto import embedded_aws, sealed
    from worker.incidents.dynamodb import DynamoIncidentRepo
    from worker.platform.metrics import Metrics
    from worker.platform.resources import setup_resources
    from worker.store.dynamodb import EventStore

    # Sealed like the demo: every client reaches the embedded moto and nothing the shell
    # points at (an exported AWS_ENDPOINT_URL_SQS, a profile) is touched.
    with embedded_aws() as endpoint, sealed(endpoint), tempfile.TemporaryDirectory() as tmp:
        settings = _day_settings(Path(tmp), log_filter)
        admin = Clients.from_settings(settings)
        bucket = "aws-waf-logs-bench-day"
        admin.s3.create_bucket(Bucket=bucket)
        admin_store = EventStore(settings.table_name, client=admin.dynamodb)
        resources, _ = setup_resources(
            settings, sqs=admin.sqs, sns=admin.sns, store=admin_store, s3=admin.s3, log_bucket=bucket
        )
        tap_url = _tap(admin, resources.critical_topic_arn)
        clients = Clients.from_settings(settings)
        requests = _count_requests(clients)
        model = ConsistentModel(latency_s=0.0)
        agents = Agents.from_settings(
            settings, runtime=InProcessTransport(build_service(settings, model=model))
        )
        worker = build_worker(
            settings, clients=clients, resources=resources, agents=agents, metrics=Metrics(enabled=False)
        )
        outcomes: Counter[str] = Counter()
        worker.consumer.on_outcome = lambda o: outcomes.update([o.kind])
        keys = _upload(admin, bucket, paths, plan)
        timer = threading.Timer(timeout_s, worker.consumer.stop)
        timer.start()
        wall, cpu = time.perf_counter(), time.process_time()
        run_worker(worker, with_scheduler=False)
        wall_s, cpu_s = time.perf_counter() - wall, time.process_time() - cpu
        timer.cancel()
        checkpoints = [
            admin_store.get_object(
                bucket, key, admin.s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
            )
            for key in keys
        ]
        windows = admin_store.window_counts(
            since=plan.start, until=plan.start + timedelta(hours=plan.hours - 1)
        )
        incidents = DynamoIncidentRepo(
            settings.table_name, client=admin.dynamodb, quiet_s=settings.incident_quiet_s
        ).list(limit=100_000)
        statuses = _statuses(admin.dynamodb, settings.table_name)
        pages = _drain(admin.sqs, tap_url)
        tokens = summary(model.requests)
        calls = model.calls
    return {
        "checkpoints": checkpoints,
        "windows": windows,
        "incidents": incidents,
        "statuses": statuses,
        "pages": pages,
        "requests": dict(requests),
        "outcomes": dict(outcomes),
        "model_calls": calls,
        "tokens": tokens,
        "drain_s": round(wall_s, 2),
        "process_cpu_s": round(cpu_s, 2),
    }


def _upload(admin: Any, bucket: str, paths: list[Path], plan: DayPlan) -> list[str]:
    """The hourly files where WAF's logging puts them; WAF's work, so through the uncounted client."""
    keys = []
    for hour, path in enumerate(paths):
        moment = plan.start + timedelta(hours=hour)
        key = f"AWSLogs/000000000000/WAFLogs/us-east-1/shop-prod/{moment:%Y/%m/%d/%H/%M}/{path.name}"
        admin.s3.upload_file(str(path), bucket, key)
        keys.append(key)
    return keys


def _day_settings(tmp: Path, log_filter: str) -> Any:
    from worker.settings import Settings

    return Settings(
        aws_region="us-east-1",
        transport="inprocess",
        concurrency=16,
        wait_time_s=1,
        exit_when_idle_polls=3,
        visibility_timeout_s=120,
        heartbeat_interval_s=20,
        metrics_enabled=False,
        monitor_enabled=False,
        log_filter=log_filter,
        health_file=str(tmp / "health"),
        log_level="WARNING",
        log_format="json",
    )


def _count_requests(clients: Any) -> Counter[str]:
    """AWS requests by operation at the worker's clients; a transaction's items apart."""
    requests: Counter[str] = Counter()
    lock = threading.Lock()

    def on_send(event_name: str, **_: Any) -> None:
        _prefix, service, operation = event_name.split(".", 2)
        with lock:
            requests[f"{service}.{operation}"] += 1

    def on_transaction(params: dict[str, Any], **_: Any) -> None:
        with lock:
            requests["dynamodb.TransactWriteItems.items"] += len(params.get("TransactItems", ()))

    for client in (clients.sqs, clients.sns, clients.dynamodb, clients.s3):
        client.meta.events.register("before-send", on_send)
    clients.dynamodb.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", on_transaction)
    return requests


def _tap(clients: Any, topic_arn: str) -> str:
    """A queue subscribed to the critical topic: every page SNS delivered, with its body."""
    url = str(clients.sqs.create_queue(QueueName="bench-day-pages")["QueueUrl"])
    arn = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    clients.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    pages = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not batch:
            return pages
        for message in batch:
            envelope = json.loads(message["Body"])
            pages.append({"subject": envelope.get("Subject"), "message": envelope.get("Message", "")})
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


def _statuses(dynamodb: Any, table: str) -> dict[str, int]:
    """Events by status, read after the run (a scan of the bench's own table)."""
    counts: Counter[str] = Counter()
    params: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "begins_with(pk, :evt)",
        "ExpressionAttributeValues": {":evt": {"S": "evt#"}},
        "ProjectionExpression": "#s",
        "ExpressionAttributeNames": {"#s": "status"},
    }
    while True:
        page = dynamodb.scan(**params)
        for item in page.get("Items", []):
            counts[item.get("status", {}).get("S", "")] += 1
        if not page.get("LastEvaluatedKey"):
            return dict(counts)
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def day_cost(
    requests: dict[str, int], records: int, calls: int, input_tokens: float, prices: Prices
) -> dict[str, float]:
    """USD per million records: each request as bench/s3.py prices it, the model measured."""
    from bench.s3 import cost_per_million

    priced = {name: count for name, count in requests.items() if not name.endswith(".items")}
    # A transaction bills each item it writes twice; the request itself is not a unit.
    items = requests.get("dynamodb.TransactWriteItems.items", 0)
    priced.pop("dynamodb.TransactWriteItems", None)
    if items:
        priced["dynamodb.PutItem"] = priced.get("dynamodb.PutItem", 0) + 2 * items
    measured = Prices(
        **{**asdict(prices), "input_tokens_per_call": input_tokens, "model_calls_per_kept": 1.0}
    )
    return cost_per_million(priced, records, calls, measured)


def figures(expected: Expected, run: dict[str, Any], prices: Prices) -> dict[str, Any]:
    checkpoints = [c for c in run["checkpoints"] if c is not None]
    records = sum(c.read for c in checkpoints)
    kept = sum(c.kept for c in checkpoints)
    aggregated = sum(w.requests for w in run["windows"])
    statuses = run["statuses"]
    events = sum(statuses.values())
    terminal = sum(
        n for status, n in statuses.items() if status in {"closed", "monitoring", "escalated", "rejected"}
    )
    requests = run["requests"]
    writes = sum(n for name, n in requests.items() if name.split(".", 1)[1] in _WRITES)
    writes += 2 * requests.get("dynamodb.TransactWriteItems.items", 0)
    total_requests = sum(n for name, n in requests.items() if not name.endswith(".items"))
    per_million = 1_000_000 / max(records, 1)
    tokens = run["tokens"]
    input_tokens = float(tokens.get("input_tokens_per_call", 0.0))
    cost = day_cost(requests, records, run["model_calls"], input_tokens, prices)
    relevant = expected.counted + expected.events
    incidents = run["incidents"]
    paged = [i for i in incidents if i.notices]
    return {
        "records": records,
        "expected": asdict(expected),
        "security_relevant": relevant,
        "kept": kept,
        "events": events,
        "events_terminal": terminal,
        "aggregated": aggregated,
        "windows": len(run["windows"]),
        "events_per_relevant": round(events / max(relevant, 1), 4),
        "model_calls": run["model_calls"],
        "model_calls_per_million_records": round(run["model_calls"] * per_million, 1),
        "tokens": tokens,
        "dynamodb_writes_per_million_records": round(writes * per_million, 1),
        "aws_requests_per_million_records": round(total_requests * per_million, 1),
        "cost_per_million_records_usd": cost,
        "notifications_critical": len(run["pages"]),
        "incidents": len(incidents),
        "incidents_paged": [
            {
                "source": i.source,
                "attack_class": i.attack_class,
                "count": i.count,
                "notices": [n.milestone for n in i.notices],
            }
            for i in paged
        ],
        "only_the_attacker_paged": bool(paged) and all(i.source == ATTACKER_IP for i in paged),
        # Relevant records that ended neither in a window count nor as a terminal event
        # (with --log-filter matched or all, noise events count too: a lower bound there).
        "lost": max(0, relevant - aggregated - terminal),
        "statuses": statuses,
        "outcomes": run["outcomes"],
        "api_requests": dict(sorted(requests.items())),
        "drain_s": run["drain_s"],
        "process_cpu_s": run["process_cpu_s"],
        "targets": TARGETS,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run --scenario day", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--scenario", choices=["day"], default="day")
    parser.add_argument(
        "--hours", type=int, default=24, help="hours of traffic, one log file each (default 24)"
    )
    parser.add_argument(
        "--records-per-hour",
        type=int,
        default=HourMix().total,
        help="ordinary records per hour (default 5880)",
    )
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--log-filter", choices=["relevant", "matched", "all"], default="relevant")
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    for name, value in asdict(Prices()).items():
        if name not in {"input_tokens_per_call", "model_calls_per_kept"}:
            parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=value, dest=name)
    args = parser.parse_args(argv)
    if not 1 <= args.hours <= 24 or args.records_per_hour < 100:
        parser.error("--hours must be 1-24 and --records-per-hour at least 100")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from secops_core.logs import configure_logging

    configure_logging("WARNING", "json")
    prices = Prices(**{name: getattr(args, name) for name in asdict(Prices()) if hasattr(args, name)})
    plan = DayPlan(hours=args.hours, mix=HourMix().scaled(args.records_per_hour))
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    with tempfile.TemporaryDirectory(prefix="bench-day-") as tmp:
        console.print(
            f"writing {args.hours} hourly log files ({plan.mix.total:,} ordinary records an hour) …"
        )
        paths, expected = write_day(Path(tmp), plan, args.seed)
        console.print(
            f"{expected.records:,} records: {expected.counted:,} counted, "
            f"{expected.events:,} events by the catalog"
        )
        run = run_day(paths, plan, timeout_s=args.timeout_s, log_filter=args.log_filter)
    result = figures(expected, run, prices)
    result.update(
        {"hours": args.hours, "log_filter": args.log_filter, "seed": args.seed, "prices_usd": asdict(prices)}
    )
    output = Path(args.output)
    write_section(output, "day", result)
    for name in (
        "records",
        "security_relevant",
        "kept",
        "events",
        "aggregated",
        "model_calls_per_million_records",
        "dynamodb_writes_per_million_records",
        "aws_requests_per_million_records",
        "notifications_critical",
        "only_the_attacker_paged",
        "lost",
    ):
        console.print(f"{name:<38} {json.dumps(result[name])}", markup=False)
    console.print(
        f"{'input_tokens_per_call':<38} {result['tokens'].get('input_tokens_per_call')}", markup=False
    )
    console.print(
        f"{'cost_per_million_records_usd':<38} {json.dumps(result['cost_per_million_records_usd'])}",
        markup=False,
    )
    console.print(f"results: {output} (key 'day')")
    return 0 if result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""``secops demo`` (``make run``): the whole flow on a laptop, no account, no Docker.

moto's server runs in-process on a free loopback port and the real worker code talks
to it over HTTP, exactly as it would to AWS. The runtime runs in-process with the
offline ``rules`` provider. The bundled samples hold both event shapes, blocked and
counted attacks, noise, a repeated IP + URI campaign and a few malformed messages.
Every incident channel is enabled, and what each received is read back
(``worker/embedded/channels.py``).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections import Counter
from importlib import resources as package_files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from worker.embedded.operator import first_wave, operator_word
from worker.ops import timeshift
from worker.platform import clock

if TYPE_CHECKING:
    from types_boto3_sqs.client import SQSClient
    from types_boto3_sqs.type_defs import MessageTypeDef, SendMessageBatchRequestEntryTypeDef

    from worker.daemon import Clients
    from worker.settings import Settings

SAMPLES = "events.jsonl"


def load_sample_lines(events_file: str | None) -> list[str]:
    """Sample message bodies, timestamps shifted so the newest is now (spacing kept)."""
    if events_file:
        text = Path(events_file).read_text(encoding="utf-8")
        return [line for line in text.splitlines() if line.strip()]
    text = package_files.files("worker.embedded.samples").joinpath(SAMPLES).read_text(encoding="utf-8")
    parsed: list[tuple[str, Any]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            parsed.append((line, json.loads(line)))
        except json.JSONDecodeError:
            parsed.append((line, None))  # the malformed samples stay malformed
    delta = timeshift.delta_to((value for _, value in parsed if value is not None), clock.now())
    return [
        line if value is None else json.dumps(timeshift.shift(value, delta), separators=(",", ":"))
        for line, value in parsed
    ]


def run_demo(
    *, events_file: str | None = None, as_json: bool = False, serve: bool = False, port: int = 0
) -> int:
    """The demo on the embedded backend, sealed from the surrounding environment; with
    ``serve``, the backend then stays up (until Ctrl-C or SIGTERM) for a second shell."""
    # Off a terminal (CI logs, a pipe) rich assumes 80 columns; the tables need more.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    log_level = os.environ.get("SECOPS_LOG_LEVEL", "ERROR")

    from secops_core.logs import configure_logging
    from worker.embedded.moto import embedded_aws, sealed

    started = time.monotonic()
    with embedded_aws(port) as endpoint, sealed(endpoint):
        with tempfile.TemporaryDirectory(prefix="secops-demo-") as tmp:
            settings = demo_settings(str(Path(tmp) / "health"), log_level)
            configure_logging(settings.log_level, settings.log_format)
            lines = [*load_sample_lines(events_file), *first_wave()]
            summary = _run(settings, lines, console, quiet=as_json)
        summary["elapsed_s"] = round(time.monotonic() - started, 2)
        if serve:
            from worker.embedded.blocks import with_ip_sets
            from worker.embedded.serve import exports

            # with_ip_sets adopts the sets the demo created: their ARNs go to the exports.
            summary["serve"] = exports(endpoint, with_ip_sets(settings))
        if as_json:
            sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
            sys.stdout.flush()
        else:
            _print_summary(console, summary)
            from worker.embedded.logfile import print_log_file

            print_log_file(console, summary["log_file"])
        if serve:
            from worker.embedded.serve import print_exports, wait_for_stop

            if not as_json:
                print_exports(console, summary["serve"])
            wait_for_stop(endpoint)
    return 0


def demo_settings(health_file: str, log_level: str) -> Any:
    """The demo's settings, all of them given: nothing comes from the environment but
    the log level (the environment is sealed while they are read)."""
    from worker.embedded.channels import DEMO_CHANNELS
    from worker.embedded.moto import EMBEDDED_REGION
    from worker.settings import Settings

    return Settings(
        provider="rules",
        transport="inprocess",
        aws_region=EMBEDDED_REGION,
        localstack=False,
        wait_time_s=1,
        exit_when_idle_polls=2,
        max_receive_count=3,
        visibility_timeout_s=30,
        heartbeat_interval_s=10,
        retry_base_delay_s=1,
        retry_max_delay_s=5,
        concurrency=8,
        metrics_enabled=False,
        monitor_enabled=False,
        channels=DEMO_CHANNELS,
        health_file=health_file,
        log_level=log_level,
        log_format="console",
    )


def _run(settings: Settings, lines: list[str], console: Console, *, quiet: bool) -> dict[str, Any]:
    from worker.daemon import Clients, build_worker, run_worker
    from worker.embedded.channels import connect_channels, events_client, read_channels
    from worker.platform.resources import setup_resources
    from worker.store.dynamodb import EventStore

    def step(text: str) -> None:
        if not quiet:
            console.print(f"[bold cyan]▶[/] {text}")

    clients = Clients.from_settings(settings)
    store = EventStore(settings.table_name, client=clients.dynamodb)
    step(f"moto server at {os.environ['AWS_ENDPOINT_URL']}: creating queue, DLQ, topics, table, event bus")
    events = events_client(settings)
    resources, _ = setup_resources(settings, sqs=clients.sqs, sns=clients.sns, store=store, events=events)
    step("enabling Security Hub, routing the bus to a queue, tapping the chat topic (to read them back)")
    channel_taps = connect_channels(settings, clients, resources, events)
    from worker.embedded.blocks import (
        blocks_summary,
        split_block_notices,
        with_ip_sets,
        without_finding_notes,
    )

    step("creating the block IP sets in WAFv2 and turning the response policy on")
    settings = with_ip_sets(settings)
    taps = {
        "critical": _tap(clients, resources.critical_topic_arn, "demo-critical-tap"),
        "monitoring": _tap(clients, resources.monitoring_topic_arn, "demo-monitoring-tap"),
    }
    step(
        f"sending {len(lines)} sample messages (both event shapes, a campaign, malformed ones, "
        "a customer's search tripping a counted rule)"
    )
    message_ids = []
    for start in range(0, len(lines), 10):
        entries: list[SendMessageBatchRequestEntryTypeDef] = [
            {"Id": str(i), "MessageBody": body} for i, body in enumerate(lines[start : start + 10])
        ]
        response = clients.sqs.send_message_batch(QueueUrl=resources.queue_url, Entries=entries)
        message_ids += [ok["MessageId"] for ok in response.get("Successful", [])]

    from worker.embedded.logfile import log_file_summary, put_demo_log_file

    step("writing a gzip WAF log file to S3; its notification reaches the queue")
    log_file = put_demo_log_file(clients, resources.queue_url)

    worker = build_worker(settings, clients=clients, resources=resources)
    without_finding_notes(worker)
    outcomes: list[Any] = []
    worker.consumer.on_outcome = outcomes.append
    step("running the worker (in-process runtime, rules provider) until the queue is drained")
    run_worker(worker, with_scheduler=False)

    step("running one monitor pass over the monitored (severity 3) events")
    monitor = worker.monitor.run_once(force=True)

    keys = sorted({o.event_key for o in outcomes if o.event_key})
    records = store.get_many(keys)
    notifications = {name: _drain(clients.sqs, url) for name, url in taps.items()}
    dlq = _drain(clients.sqs, resources.dlq_url, peek=True) if resources.dlq_url else []
    incidents = _incidents(settings, clients)
    step("running the block expiry pass as if the block period were over")
    blocks = blocks_summary(worker, incidents)
    notifications = {name: [*notifications[name], *_drain(clients.sqs, url)] for name, url in taps.items()}
    summary = _summarize(
        records, outcomes, notifications, dlq, monitor, len(message_ids), incidents=incidents
    )
    summary["blocks"] = blocks
    summary["log_file"] = log_file_summary(store, log_file)
    summary["channels"] = list(settings.enabled_channels)
    summary.update(read_channels(clients.sqs, channel_taps, incident_order=[i.id for i in incidents]))
    split_block_notices(summary)
    # The customer's incident resolved as a false positive, more searches, secops tune.
    summary["operator"] = operator_word(worker, incidents)
    return summary


def _incidents(settings: Settings, clients: Clients) -> list[Any]:
    """Every incident the run opened, most recent first (the demo's table is small)."""
    from worker.incidents.dynamodb import DynamoIncidentRepo

    repo = DynamoIncidentRepo(settings.table_name, client=clients.dynamodb, quiet_s=settings.incident_quiet_s)
    return repo.list(limit=1000)


def _tap(clients: Clients, topic_arn: str, name: str) -> str:
    """An SQS queue subscribed to a topic: proof of what SNS actually delivered."""
    url: str = clients.sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    clients.sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def _drain(sqs: SQSClient, url: str, *, peek: bool = False) -> list[MessageTypeDef]:
    messages: list[MessageTypeDef] = []
    while True:
        response = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=30,
            MessageSystemAttributeNames=["All"],
        )
        batch = response.get("Messages", [])
        if not batch:
            if peek and messages:
                _release(sqs, url, messages)
            return messages
        messages += batch
        if not peek:
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )


def _release(sqs: SQSClient, url: str, messages: list[MessageTypeDef]) -> None:
    """Make peeked messages visible again at once, so `secops dlq inspect` on a served
    demo finds them."""
    from worker.settings import SQS_MAX_BATCH

    for start in range(0, len(messages), SQS_MAX_BATCH):
        chunk = messages[start : start + SQS_MAX_BATCH]
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(chunk)
            ],
        )


def _summarize(  # noqa: PLR0917 - one private call site, every argument named there
    records: dict[str, Any],
    outcomes: list[Any],
    notifications: dict[str, list[MessageTypeDef]],
    dlq: list[MessageTypeDef],
    monitor: Any,
    sent: int,
    *,
    incidents: list[Any],
) -> dict[str, Any]:
    from worker.cli.incidents import listed
    from worker.ops.message_keys import event_key_of_body

    by_severity: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    escalations = []
    for record in records.values():
        by_status[record.status] += 1
        if record.severity is not None:
            by_severity[str(record.severity)] += 1
        if record.status == "escalated" and record.event is not None and record.analysis is not None:
            escalations.append(
                {
                    "event_key": record.key,
                    "severity": record.severity,
                    "rule": record.event.rule_name,
                    "source_ip": record.event.source_ip,
                    "uri": record.event.uri[:60],
                    "via": "pattern" if record.pattern_key else "analysis",
                    "notified": bool(record.notified_at),
                    "pattern_key": record.pattern_key,
                    "incident": record.incident_id,
                }
            )
    delivered = {
        name: [json.loads(m["Body"]).get("Subject", "") for m in messages]
        for name, messages in notifications.items()
    }
    rejected = []
    for message in dlq:
        body = message.get("Body", "")
        key = event_key_of_body(body)
        record = records.get(key)
        rejected.append(
            {
                "event_key": key,
                "reason": record.rejection_code if record else "?",
                "detail": (record.rejection_reason or "")[:90] if record else "",
                "receives": message.get("Attributes", {}).get("ApproximateReceiveCount"),
                "where": "DLQ",
            }
        )
    return {
        "messages_sent": sent,
        "events": len(records),
        "by_status": dict(sorted(by_status.items())),
        "by_severity": dict(sorted(by_severity.items())),
        "outcomes": dict(Counter(o.kind for o in outcomes)),
        # Model requests the runtime reported, over every delivery (waits included).
        "model_calls": sum(r.model_calls for r in records.values()),
        "model_calls_max_per_event": max((r.model_calls for r in records.values()), default=0),
        "escalations": sorted(escalations, key=lambda e: (-e["severity"], e["event_key"])),
        "incidents": [listed(record) for record in incidents],
        "notifications": delivered,
        "patterns": [p.model_dump(mode="json") for p in getattr(monitor, "patterns", ())],
        "monitor": getattr(monitor, "summary", lambda: {})(),
        "rejected": rejected,
    }


def _print_summary(console: Console, s: dict[str, Any]) -> None:
    console.print()
    console.print(
        f"[bold]secops demo[/]: {s['messages_sent']} messages → {s['events']} events, "
        f"{s['model_calls']} model calls, {len(s['rejected'])} messages in the DLQ — {s['elapsed_s']} s\n"
        f"delivered: {sum(len(v) for v in s['notifications'].values())} SNS notifications, "
        f"{len(s['securityhub_findings'])} Security Hub findings, "
        f"{len(s['eventbridge_events'])} EventBridge events, {len(s['chat_cards'])} chat cards"
    )
    table = Table(title="Events by severity and triage", title_justify="left")
    table.add_column("severity", justify="right")
    table.add_column("events", justify="right")
    table.add_column("triage")
    labels = {0: "auto_close", 1: "auto_close", 2: "auto_close", 3: "monitor", 4: "escalate", 5: "escalate"}
    for severity in range(6):
        count = s["by_severity"].get(str(severity), 0)
        table.add_row(str(severity), str(count), labels[severity] if count else "")
    console.print(table)
    status = Table(title="Final status", title_justify="left")
    status.add_column("status")
    status.add_column("events", justify="right")
    for name, count in s["by_status"].items():
        status.add_row(name, str(count))
    console.print(status)
    if s["incidents"]:
        from worker.cli.incidents import incidents_table

        escalated = len(s["escalations"])
        console.print(
            incidents_table(
                s["incidents"],
                title=f"Incidents: {escalated} escalated events in {len(s['incidents'])} incidents "
                "(secops incidents show ID for one)",
            )
        )
    elif s["escalations"]:
        console.print(f"{len(s['escalations'])} escalated events, no incident recorded")
    if s["patterns"]:
        pat = Table(title="Monitor: source IP + URI patterns", title_justify="left")
        for col in ("source", "uri", "count", "threshold met", "rules"):
            pat.add_column(col)
        for p in s["patterns"]:
            pat.add_row(
                p["source_ip"],
                p["normalized_uri"][:40],
                str(p["count"]),
                "yes" if p["threshold_met"] else "no",
                ", ".join(p["rules"])[:40],
            )
        console.print(pat)
    note = Table(title="Notifications delivered (read back through SQS subscriptions)", title_justify="left")
    note.add_column("topic")
    note.add_column("subject")
    for topic, subjects in s["notifications"].items():
        for subject in subjects:
            note.add_row(topic, subject)
    console.print(note)
    from worker.embedded.blocks import print_blocks
    from worker.embedded.channels import print_channels

    print_blocks(console, s["blocks"])
    print_channels(console, s)
    if s["rejected"]:
        rej = Table(title="Rejected messages", title_justify="left")
        for col in ("where", "key", "reason", "detail", "receives"):
            rej.add_column(col)
        for r in s["rejected"]:
            rej.add_row(r["where"], r["event_key"][:30], r["reason"] or "?", r["detail"], str(r["receives"]))
        console.print(rej)
    if "operator" in s:
        from worker.embedded.operator import print_operator

        print_operator(console, s["operator"])

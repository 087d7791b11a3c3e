"""A failing output channel through the real worker, on moto's server over HTTP
(README, "Output channels").

SNS, Security Hub and EventBridge enabled together, the bus missing: SNS and Security
Hub deliver, EventBridge's failure is recorded on the incident, counted in the EMF
metrics and reported by `secops incidents show`, and the events are escalated, linked
and acknowledged. Then every enabled channel failing: the milestone's claim is given
back, the message comes back, and once the channels are fixed exactly one notice
reaches each.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from testkit.events import waf_record
from tests.fixtures.worker_harness import Env, fast_settings, make_env
from tests.fixtures.worker_process import cli_env, run_cli
from worker.daemon import Worker, build_worker, run_worker
from worker.pipeline.outcome import Outcome
from worker.platform.aws import client as aws_client
from worker.platform.metrics import Metrics
from worker.platform.resources import ensure_event_bus

pytestmark = [pytest.mark.usefixtures("aws_endpoint"), pytest.mark.slow]

NAMESPACE = "SecOpsChannelTest"


def _ips(unique: str, n: int) -> list[str]:
    """Sources no other test uses: a finding's id derives from its incident's source,
    and Security Hub on the session's moto server is shared."""
    return [f"2001:db8:{int(unique[:4], 16):x}:{int(unique[4:8], 16):x}::{i + 1}" for i in range(n)]


def _worker(env: Env, metrics: Metrics, outcomes: list[Outcome]) -> Worker:
    worker = build_worker(
        env.settings, clients=env.clients, resources=env.resources, agents=env.agents(), metrics=metrics
    )
    worker.consumer.on_outcome = outcomes.append
    return worker


def _cli(env: Env, endpoint: str, *args: str) -> Any:
    result = run_cli(
        *args,
        env=cli_env(
            endpoint,
            env.settings,
            channels=env.settings.channels,
            eventbridge_bus=env.settings.eventbridge_bus,
        ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def _emf_counts(stream: io.StringIO, metric: str) -> dict[str, float]:
    """Per channel, the sum of ``metric``'s EMF lines."""
    counts: dict[str, float] = {}
    for line in map(json.loads, stream.getvalue().splitlines()):
        if metric in line:
            counts[line["Channel"]] = counts.get(line["Channel"], 0) + line[metric]
    return counts


def _findings(securityhub: Any, incident_id: str) -> list[dict[str, Any]]:
    """The findings of one incident (moto's GetFindings ignores filters: filter here)."""
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"MaxResults": 100}
    while True:
        page = securityhub.get_findings(**kwargs)
        found += [f for f in page["Findings"] if f["ProductFields"].get("secops/incident_id") == incident_id]
        if not page.get("NextToken"):
            return found
        kwargs["NextToken"] = page["NextToken"]


def _route_bus(env: Env, bus: str) -> str:
    """The bus, and a rule sending every secops-worker event on it to a new queue."""
    events = aws_client("events")
    ensure_event_bus(events, bus)
    url = env.clients.sqs.create_queue(QueueName=f"{bus}-events")["QueueUrl"]
    arn = env.clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name=f"{bus}-all", EventBusName=bus, EventPattern=json.dumps({"source": ["secops-worker"]})
    )
    events.put_targets(Rule=f"{bus}-all", EventBusName=bus, Targets=[{"Id": "queue", "Arn": arn}])
    return url


def _bodies(env: Env, url: str) -> list[dict[str, Any]]:
    bodies = []
    while batch := env.clients.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            bodies.append(json.loads(message["Body"]))
            env.clients.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_a_missing_bus_does_not_block_sns_or_security_hub_and_is_reported(
    unique: str, tmp_path: Path, aws_endpoint: str
) -> None:
    # GIVEN a worker with SNS, Security Hub and EventBridge enabled, Security Hub on, and
    # a bus nobody created
    settings = fast_settings(
        unique, tmp_path, channels="sns,securityhub,eventbridge", eventbridge_bus=f"missing-{unique}"
    )
    env = make_env(settings)
    securityhub = aws_client("securityhub")
    securityhub.enable_security_hub(EnableDefaultStandards=False)
    # AND two scanners whose requests reached the application (two escalations, two incidents)
    sources = _ips(unique, 2)
    env.send(
        [waf_record(counted=True, client_ip=ip, request_id=f"1-{unique}-{n}") for n, ip in enumerate(sources)]
    )

    # WHEN the worker drains the queue, its metrics written as EMF
    stream = io.StringIO()
    outcomes: list[Outcome] = []
    run_worker(_worker(env, Metrics(namespace=NAMESPACE, stream=stream), outcomes), with_scheduler=False)

    # THEN both events are done, escalated and linked to their incident, and nothing is
    # left on the queue or in the DLQ
    assert [o.kind for o in outcomes] == ["done", "done"]
    records = env.store.get_many([o.event_key for o in outcomes if o.event_key])
    assert {r.status for r in records.values()} == {"escalated"}
    assert all(r.incident_id and r.notified_at for r in records.values())
    assert env.queue_counts(env.resources.queue_url) == (0, 0)
    assert _dlq(env) == (0, 0)
    # AND SNS delivered each opening once
    subjects = [n["Subject"] for n in env.delivered(env.critical_tap)]
    assert len(subjects) == 2 and all(s.startswith("[SecOps] INCIDENT opened") for s in subjects)
    # AND each incident is one finding in Security Hub
    listed = _cli(env, aws_endpoint, "incidents", "list", "--json")["incidents"]
    assert sorted(i["source"] for i in listed) == sorted(sources)
    assert {r.incident_id for r in records.values()} == {i["id"] for i in listed}
    for incident in listed:
        [finding] = _findings(securityhub, incident["id"])
        assert finding["ProductFields"]["secops/event_count"] == "1"
        # AND `secops incidents show` reports SNS and Security Hub delivered, EventBridge
        # failed with its reason, the others having it (not retried on its own)
        view = _cli(env, aws_endpoint, "incidents", "show", incident["id"], "--json")
        channels = {c["channel"]: c for c in view["channels"]}
        assert set(channels) == {"sns", "securityhub", "eventbridge"}
        assert channels["sns"]["last_delivered"]["milestone"] == "opened"
        assert channels["securityhub"]["last_delivered"]["id"] == finding["Id"]
        assert channels["eventbridge"]["last_delivered"] is None
        [failure] = channels["eventbridge"]["failures"]
        assert failure["milestone"] == "opened" and failure["reason"] == "eventbridge_bus_not_found"
        assert failure["undelivered"] is False and "secops setup" in failure["error"]
        assert not channels["sns"]["failures"] and not channels["securityhub"]["failures"]
    # AND the EMF metrics count each channel's outcome under its name
    assert _emf_counts(stream, "ChannelPublished") == {"sns": 2, "securityhub": 2}
    assert _emf_counts(stream, "ChannelFailed") == {"eventbridge": 2}


def test_when_every_channel_fails_the_message_is_retried_and_notified_once_when_fixed(
    unique: str, tmp_path: Path, aws_endpoint: str
) -> None:
    # GIVEN a worker with SNS and EventBridge enabled, its critical topic deleted and its
    # bus never created
    bus = f"later-{unique}"
    env = make_env(fast_settings(unique, tmp_path, channels="sns,eventbridge", eventbridge_bus=bus))
    env.clients.sns.delete_topic(TopicArn=env.resources.critical_topic_arn)
    [source] = _ips(unique, 1)
    env.send([waf_record(counted=True, client_ip=source, request_id=f"1-{unique}")])

    # WHEN the worker takes the escalation (stopped after it, so the message is not
    # retried into the DLQ while the channels stay broken)
    stream = io.StringIO()
    first: list[Outcome] = []
    worker = _worker(env, Metrics(namespace=NAMESPACE, stream=stream), first)
    worker.consumer.on_outcome = lambda outcome: (first.append(outcome), worker.consumer.stop())
    run_worker(worker, with_scheduler=False)

    # THEN no channel took the opening: the event is neither linked nor notified, the
    # message is kept for a retry, both failures are counted and recorded on the
    # incident as undelivered
    [outcome] = first
    assert outcome.kind == "unavailable"
    assert outcome.reason in {"notify_topic_not_found", "eventbridge_bus_not_found"}
    record = env.store.get(outcome.event_key or "")
    assert record is None or (record.incident_id is None and not record.notified_at)
    assert sum(env.queue_counts(env.resources.queue_url)) == 1
    assert _dlq(env) == (0, 0)
    assert _emf_counts(stream, "ChannelFailed") == {"sns": 1, "eventbridge": 1}
    [incident] = _cli(env, aws_endpoint, "incidents", "list", "--json")["incidents"]
    assert incident["notices"] == 0
    view = _cli(env, aws_endpoint, "incidents", "show", incident["id"], "--json")
    failures = {c["channel"]: c["failures"] for c in view["channels"]}
    assert {name: [(f["reason"], f["undelivered"]) for f in fs] for name, fs in failures.items()} == {
        "sns": [("notify_topic_not_found", True)],
        "eventbridge": [("eventbridge_bus_not_found", True)],
    }
    # AND the claim on the opening was given back
    stored = worker.incidents.repo.get(incident["id"])
    assert stored is not None and "opened" not in stored.claimed

    # WHEN the topic (with a new subscription) and the bus are made, and the message is back
    env.clients.sns.create_topic(Name=env.settings.critical_topic_name)
    tap = f"{env.settings.critical_topic_name}-tap2"
    url = env.clients.sqs.create_queue(QueueName=tap)["QueueUrl"]
    tap_arn = env.clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    env.clients.sns.subscribe(TopicArn=env.resources.critical_topic_arn, Protocol="sqs", Endpoint=tap_arn)
    events_url = _route_bus(env, bus)
    _wait_until_visible(env)
    second: list[Outcome] = []
    run_worker(_worker(env, Metrics(namespace=NAMESPACE, stream=io.StringIO()), second), with_scheduler=False)

    # THEN the redelivery is done: escalated, linked to the incident, notified
    assert [o.kind for o in second] == ["done"]
    record = env.store.get(outcome.event_key or "")
    assert record is not None and record.status == "escalated"
    assert record.incident_id == incident["id"] and record.notified_at
    # AND each channel received the opening exactly once
    [notice] = env.delivered(url)
    assert notice["Subject"].startswith("[SecOps] INCIDENT opened")
    [event] = _bodies(env, events_url)
    assert event["detail-type"] == "Incident Opened" and event["detail"]["incident_id"] == incident["id"]
    # AND the incident holds one notice, both channels delivered, and nothing is left
    view = _cli(env, aws_endpoint, "incidents", "show", incident["id"], "--json")
    assert [n["milestone"] for n in view["notices"]] == ["opened"]
    assert {c["channel"]: c["last_delivered"]["milestone"] for c in view["channels"]} == {
        "sns": "opened",
        "eventbridge": "opened",
    }
    assert env.queue_counts(env.resources.queue_url) == (0, 0)
    assert _dlq(env) == (0, 0)


def _dlq(env: Env) -> tuple[int, int]:
    assert env.resources.dlq_url is not None
    return env.queue_counts(env.resources.dlq_url)


def _wait_until_visible(env: Env) -> None:
    """Until the retried message is back on the queue (its redelivery delay is the
    circuit's open time, a second here); a wait, not a timed assertion."""
    for _ in range(100):
        if env.queue_counts(env.resources.queue_url)[0]:
            return
        time.sleep(0.1)
    raise AssertionError(f"the message did not come back: {env.queue_counts(env.resources.queue_url)}")

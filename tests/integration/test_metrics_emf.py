"""The worker's metrics as CloudWatch Embedded Metric Format lines, over a real flow.

One run against moto's server covers every metric the issue lists: events by outcome
and severity, runtime latency, a retry (SNS throttled once), a rejection (not JSON),
the circuit opening and closing (the runtime down for one delivery), and notifications.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tenacity import wait_none

from testkit.events import simplified
from tests.fixtures.worker_harness import DownAtFirst, Env, fast_settings, make_env
from worker.agents import Agents, RetryPolicy
from worker.daemon import build_worker, run_worker
from worker.platform.metrics import Metrics, emf_wanted

pytestmark = [pytest.mark.usefixtures("aws_endpoint"), pytest.mark.slow]

NAMESPACE = "SecOpsTest"


def _emf(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _values(lines: list[dict[str, Any]], metric: str, dimension: str | None = None) -> list[Any]:
    named = [line for line in lines if metric in line]
    return [line[dimension] if dimension else line[metric] for line in named]


@pytest.fixture
def env(unique: str, tmp_path: Path) -> Env:
    # One message at a time, so the circuit goes open -> half_open (one probe) -> closed
    # instead of a concurrent success closing it straight from open.
    return make_env(fast_settings(unique, tmp_path, metrics_namespace=NAMESPACE, concurrency=1))


def test_a_flow_with_a_retry_a_rejection_and_an_outage_emits_every_metric_as_emf(env: Env) -> None:
    # GIVEN an escalation whose first publish is throttled, a monitored event, a message
    # that is not JSON, and a runtime that is down for the first delivery's attempts
    throttled = {"left": env.settings.notify_max_attempts}

    def throttle(**_: Any) -> None:
        if throttled["left"] > 0:
            throttled["left"] -= 1
            raise ClientError({"Error": {"Code": "Throttling", "Message": "injected"}}, "Publish")

    env.clients.sns.meta.events.register("before-call.sns.Publish", throttle)
    env.send(
        [
            simplified("emf-escalate", action="ALLOW"),
            simplified("emf-monitor", action="BLOCK"),
            "{not json",
        ]
    )
    stream = io.StringIO()
    metrics = Metrics(namespace=NAMESPACE, stream=stream)
    worker = build_worker(
        env.settings,
        clients=env.clients,
        resources=env.resources,
        # Down for every attempt of one delivery: the call's own retries cannot hide it.
        agents=Agents.over(
            DownAtFirst(env.agents().transport, env.settings.runtime_max_attempts),
            RetryPolicy.from_settings(env.settings, wait=wait_none()),
        ),
        metrics=metrics,
    )
    worker.consumer.exit_when_idle_polls = 3

    # WHEN the worker drains the queue
    run_worker(worker, with_scheduler=False)
    lines = _emf(stream)

    # THEN every line is well-formed EMF in our namespace, each dimension at the root
    assert lines
    for line in lines:
        directive = line["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == NAMESPACE
        assert isinstance(line["_aws"]["Timestamp"], int)
        (dimensions,) = directive["Dimensions"]
        assert dimensions[0] == "Service" and line["Service"] == "secops-worker"
        assert all(isinstance(line[d], str) for d in dimensions)
        (metric,) = directive["Metrics"]
        assert isinstance(line[metric["Name"]], int | float)
    # AND the flow shows in them: outcomes, events by status and severity, latency ...
    assert {"done", "rejected", "retry", "unavailable"} <= set(_values(lines, "Messages", "Outcome"))
    processed = {(line["Status"], line["Severity"]) for line in lines if "EventsProcessed" in line}
    assert processed == {("escalated", "4"), ("monitoring", "3")}
    latency = [line for line in lines if "RuntimeLatency" in line]
    assert latency and all(line["Workflow"] == "analyze" for line in latency)
    assert latency[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "Milliseconds"
    # ... retries by reason, rejections, the circuit's transitions, notifications
    assert {"notify_failed", "runtime_unreachable"} <= set(_values(lines, "Retries", "Reason"))
    assert set(_values(lines, "Rejections", "Reason")) == {"invalid_json"}
    assert len(_values(lines, "Rejections")) == env.settings.max_receive_count
    assert _values(lines, "CircuitStateChanges", "State") == ["open", "half_open", "closed"]
    assert _values(lines, "CircuitOpen") == [1, 1, 0]
    assert _values(lines, "Notifications", "Topic") == ["critical"]
    # AND the in-memory counters agree with what was written
    assert metrics.total("Notifications") == 1
    assert metrics.by_dimension("Messages", "Outcome")["rejected"] == env.settings.max_receive_count


def test_emf_is_written_where_logs_are_json() -> None:
    # `auto` follows the stream: JSON (and EMF) off a terminal, neither on one.
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert emf_wanted("json", Tty()) is True
    assert emf_wanted("auto", io.StringIO()) is True
    assert emf_wanted("auto", Tty()) is False
    assert emf_wanted("console", io.StringIO()) is False

"""Redelivery delays on moto's server: a duplicate copy is not parked for a whole lease,
and a replayed message backs off from the beginning whatever its receive count or the
event's earlier attempts.

Each runs the real worker (consumer, processor, DynamoDB store); the only hook is a spy on
the SQS source's ``release`` that records each redelivery delay it was asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from secops_core.ingest.normalize import normalize_event
from secops_core.rules_analysis import rules_analysis
from secops_core.triage import triage
from secops_core.waf.floor import severity_floor
from testkit.events import simplified
from tests.fixtures.fakes import FakeClock
from tests.fixtures.worker_harness import fast_settings, make_env
from worker.agents import Agents
from worker.daemon import Worker
from worker.errors import RetryableError
from worker.pipeline.outcome import Outcome
from worker.platform.clock import epoch
from worker.store.dynamodb import EventStore

pytestmark = pytest.mark.usefixtures("aws_endpoint")

# Long, as in production: a copy parked for the lease would outlast the test's idle polls.
LEASE_S = 180


def _spy_delays(worker: Worker) -> list[int]:
    """The redelivery delays the consumer hands the SQS source, in order."""
    delays: list[int] = []
    source: Any = worker.consumer.source
    release = source.release

    def spied(message: Any, delay_s: int) -> None:
        delays.append(delay_s)
        release(message, delay_s)

    source.release = spied
    return delays


def test_a_duplicate_copy_is_acknowledged_seconds_after_the_first_copy_finishes(
    unique: str, tmp_path: Path
) -> None:
    # GIVEN a first copy of an event in progress elsewhere, under a 180 s lease
    env = make_env(fast_settings(unique, tmp_path, lease_s=LEASE_S, max_receive_count=5))
    body = simplified("dup-copy")
    event = normalize_event(body)
    env.store.claim(event, owner="elsewhere#1", lease_s=LEASE_S, message_id="first-copy")
    # AND a second copy of it on the queue as another message
    env.send([body])
    worker = env.worker()
    delays = _spy_delays(worker)

    def first_copy_finishes(outcome: Outcome) -> None:
        # The second copy met the live lease: the first copy finishes now and gives it back.
        if outcome.kind == "in_progress":
            analysis = rules_analysis(event, severity_floor(event))
            env.store.save_analysis(event.event_key, owner="elsewhere#1", analysis=analysis)
            decision = triage(analysis.severity_rating)
            env.store.apply_triage(event.event_key, owner="elsewhere#1", decision=decision, release=True)

    worker.consumer.on_outcome = first_copy_finishes

    # WHEN the worker drains, giving up after a few idle polls
    worker.consumer.exit_when_idle_polls = 4
    env.drain(worker)

    # THEN the copy looked again after 1 s (not the lease) and was acknowledged as a duplicate
    assert delays == [1]
    assert worker.consumer.stats.outcomes == {"in_progress": 1, "duplicate": 1}
    assert env.queue_counts(env.resources.queue_url) == (0, 0)
    record = env.store.get(event.event_key)
    assert record is not None and record.status == "monitoring" and env.model.calls == 0


class ThrottledUntilRetried:
    """The real transport, failing every call the way a throttled runtime call fails until
    the consumer has handed the message back for a retry."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.throttled = True

    def invoke(self, payload: dict[str, Any], *, session_id: str | None = None) -> dict[str, Any]:
        if self.throttled:
            raise RetryableError("throttled (injected)", reason="runtime_throttled")
        return self.inner.invoke(payload, session_id=session_id)

    def close(self) -> None:
        self.inner.close()

    def on_outcome(self, outcome: Outcome) -> None:
        if outcome.kind == "retry":
            self.throttled = False


def test_a_replayed_message_with_a_high_receive_count_retries_after_the_base_delay(
    unique: str, tmp_path: Path
) -> None:
    # GIVEN a message SQS has handed out 14 times already, as a native DLQ replay leaves it
    env = make_env(
        fast_settings(unique, tmp_path, max_receive_count=30, retry_base_delay_s=2, retry_max_delay_s=600)
    )
    env.send([simplified("replayed")])
    for _ in range(14):
        received = env.clients.sqs.receive_message(
            QueueUrl=env.resources.queue_url, MaxNumberOfMessages=1, VisibilityTimeout=0
        )
        assert len(received["Messages"]) == 1
    # AND a runtime that fails the first delivery's calls in a way worth retrying
    transport = ThrottledUntilRetried(env.agents().transport)
    worker = env.worker(Agents.over(transport))
    worker.consumer.on_outcome = transport.on_outcome
    delays = _spy_delays(worker)

    # WHEN the worker drains (receive 15 fails, receive 16 succeeds)
    worker.consumer.exit_when_idle_polls = 6
    env.drain(worker)

    # THEN the retry waited the base delay less its jitter (the event's first attempt),
    # not 2^14 x base capped at 600 s, and the event was then processed
    assert len(delays) == 1 and 1 <= delays[0] <= 2
    assert worker.consumer.stats.outcomes == {"retry": 1, "done": 1}
    record = env.store.get("evt#replayed")
    assert record is not None and record.status == "monitoring" and record.attempts == 2


def test_an_event_that_failed_long_ago_retries_after_the_base_delay(unique: str, tmp_path: Path) -> None:
    # GIVEN an event claimed (and failed) six times a day ago, as before it went to the DLQ
    settings = fast_settings(
        unique, tmp_path, max_receive_count=30, retry_base_delay_s=2, retry_max_delay_s=600, lease_s=LEASE_S
    )
    env = make_env(settings)
    body = simplified("failed-long-ago")
    event = normalize_event(body)
    yesterday = FakeClock(epoch() - 86_400)
    past = EventStore(settings.table_name, client=env.clients.dynamodb, clock=yesterday)
    for n in range(6):
        past.claim(event, owner=f"gone#{n}", lease_s=LEASE_S, message_id="original")
        yesterday.advance(LEASE_S + 1)
    # AND it comes back now (replayed) to a runtime that fails its first delivery's calls
    env.send([body])
    transport = ThrottledUntilRetried(env.agents().transport)
    worker = env.worker(Agents.over(transport))
    worker.consumer.on_outcome = transport.on_outcome
    delays = _spy_delays(worker)

    # WHEN the worker drains
    worker.consumer.exit_when_idle_polls = 6
    env.drain(worker)

    # THEN the retry waited the base delay less its jitter (the first attempt of a new
    # episode), not 2^6 x base for the event's seventh claim, and the event was processed
    assert len(delays) == 1 and 1 <= delays[0] <= 2
    assert worker.consumer.stats.outcomes == {"retry": 1, "done": 1}
    record = env.store.get(event.event_key)
    assert record is not None and record.status == "monitoring"
    assert (record.attempts, record.episode_attempts) == (8, 2)

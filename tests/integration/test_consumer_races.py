"""Concurrency rules of the dispatcher over the SQS source, each as a race forced to happen.

The queue is moto's server over HTTP; ``GatedSqs`` wraps the real client to record what
reached SQS (visibility changes and deletes, in the order they were answered) and to
hold a call at a gate, so the interleaving a production race needs happens every time.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from worker.consumers.circuit import CircuitBreaker
from worker.consumers.dispatcher import ACK_LINGER_S, Dispatcher, _InFlight
from worker.consumers.source import Delivery
from worker.consumers.sqs import SqsSource
from worker.pipeline.outcome import DelayPolicy, Outcome
from worker.platform import aws
from worker.platform.health import HealthBeacon, check_health
from worker.platform.metrics import Metrics

pytestmark = pytest.mark.usefixtures("aws_endpoint")

Gate = Callable[[dict[str, Any]], None]


class GatedSqs:
    """The real SQS client, recording answered calls and holding calls at gates."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.gates: dict[str, Gate] = {}
        # (operation, receipt handle, visibility or None), in the order SQS answered.
        self.ops: list[tuple[str, str, int | None]] = []
        # Receipt handles in the order they were received.
        self.received: list[str] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _through_gate(self, operation: str, params: dict[str, Any]) -> None:
        gate = self.gates.get(operation)
        if gate is not None:
            gate(params)

    def _record(self, entries: list[tuple[str, str, int | None]]) -> None:
        with self._lock:
            self.ops.extend(entries)

    def receive_message(self, **params: Any) -> Any:
        response = self.inner.receive_message(**params)
        with self._lock:
            self.received += [m["ReceiptHandle"] for m in response.get("Messages", [])]
        return response

    def change_message_visibility(self, **params: Any) -> Any:
        self._through_gate("change_message_visibility", params)
        response = self.inner.change_message_visibility(**params)
        self._record([("visibility", params["ReceiptHandle"], params["VisibilityTimeout"])])
        return response

    def change_message_visibility_batch(self, **params: Any) -> Any:
        self._through_gate("change_message_visibility_batch", params)
        response = self.inner.change_message_visibility_batch(**params)
        ok = {entry["Id"] for entry in response.get("Successful", [])}
        self._record(
            [
                ("extend", entry["ReceiptHandle"], entry["VisibilityTimeout"])
                for entry in params["Entries"]
                if entry["Id"] in ok
            ]
        )
        return response

    def delete_message_batch(self, **params: Any) -> Any:
        self._through_gate("delete_message_batch", params)
        response = self.inner.delete_message_batch(**params)
        ok = {entry["Id"] for entry in response.get("Successful", [])}
        self._record(
            [("delete", entry["ReceiptHandle"], None) for entry in params["Entries"] if entry["Id"] in ok]
        )
        return response

    def ops_for(self, handle: str) -> list[tuple[str, int | None]]:
        with self._lock:
            return [(op, value) for op, h, value in self.ops if h == handle]


@pytest.fixture
def queue(unique: str) -> Iterator[tuple[GatedSqs, str]]:
    client = aws.client("sqs", read_timeout=10)
    url = client.create_queue(QueueName=f"races-{unique}", Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    yield GatedSqs(client), url
    client.delete_queue(QueueUrl=url)


def _consumer(
    sqs: GatedSqs, url: str, process: Callable[[str, str], Outcome], **overrides: Any
) -> Dispatcher:
    options: dict[str, Any] = {
        "concurrency": 2,
        "wait_time_s": 0,
        "heartbeat_interval_s": 0.1,
        "drain_timeout_s": 2.0,
        "delays": DelayPolicy(base_s=0, max_s=60),
    }
    options.update(overrides)
    source = SqsSource(sqs=sqs, queue_url=url, visibility_timeout_s=60)
    return Dispatcher(source=source, process=process, **options)


def _counts(sqs: GatedSqs, url: str) -> tuple[int, int]:
    attributes = sqs.inner.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _first_handle(sqs: GatedSqs) -> str:
    assert sqs.received, "nothing was received"
    return sqs.received[0]


def _run_in_thread(consumer: Dispatcher) -> threading.Thread:
    thread = threading.Thread(target=consumer.run, name="test-consumer", daemon=True)
    thread.start()
    return thread


def test_a_heartbeat_in_flight_cannot_hide_a_message_its_outcome_made_visible(
    queue: tuple[GatedSqs, str],
) -> None:
    # GIVEN a heartbeat that took its snapshot while the message was being processed and
    # is still on its way to SQS when the outcome (bad input: visible now) is applied
    sqs, url = queue
    sqs.inner.send_message(QueueUrl=url, MessageBody="{not json")
    heartbeat_sent = threading.Event()
    outcome_sent = threading.Event()

    def slow_heartbeat(_: dict[str, Any]) -> None:
        heartbeat_sent.set()
        outcome_sent.wait(1.0)  # the old consumer let the outcome overtake it here

    sqs.gates["change_message_visibility_batch"] = slow_heartbeat
    sqs.gates["change_message_visibility"] = lambda _: outcome_sent.set()
    consumer: Dispatcher

    def process(_body: str, _message_id: str, _attributes: object) -> Outcome:
        heartbeat_sent.wait(2.0)
        return Outcome("rejected", reason="invalid_json")

    consumer = _consumer(sqs, url, process, on_outcome=lambda _: consumer.stop())

    # WHEN the worker runs until that outcome
    consumer.run()

    # THEN the outcome is the last word: the message is visible, not hidden for 60 s
    handle = _first_handle(sqs)
    assert sqs.ops_for(handle)[-1] == ("visibility", 0)
    assert _counts(sqs, url) == (1, 0)


def test_a_heartbeat_in_flight_cannot_hide_a_message_released_at_the_drain_deadline(
    queue: tuple[GatedSqs, str],
) -> None:
    # GIVEN work that outlives the drain timeout, and a heartbeat on its way to SQS
    # when the shutdown releases that work's message
    sqs, url = queue
    sqs.inner.send_message(QueueUrl=url, MessageBody="slow")
    started, finish = threading.Event(), threading.Event()
    released = threading.Event()
    consumer: Dispatcher

    def slow_heartbeat(_: dict[str, Any]) -> None:
        if consumer._stop.is_set():
            released.wait(1.0)

    sqs.gates["change_message_visibility_batch"] = slow_heartbeat
    sqs.gates["change_message_visibility"] = lambda _: released.set()

    def process(_body: str, _message_id: str, _attributes: object) -> Outcome:
        started.set()
        finish.wait(5.0)
        return Outcome("done")

    consumer = _consumer(sqs, url, process, drain_timeout_s=0.5)
    thread = _run_in_thread(consumer)
    assert started.wait(5.0)

    # WHEN the worker is told to stop
    stopped_at = time.monotonic()
    consumer.stop()
    thread.join(5.0)

    # THEN it returned in time, the message is visible again, and the work that is
    # still running was abandoned rather than waited for
    try:
        assert not thread.is_alive()
        assert time.monotonic() - stopped_at < 0.5 + 2.0
        assert sqs.ops_for(_first_handle(sqs))[-1] == ("visibility", 0)
        assert _counts(sqs, url) == (1, 0)
        assert consumer.stats.released == 1
        assert consumer.abandoned == 1
    finally:
        finish.set()


def test_an_outcome_and_the_drain_deadline_never_both_own_a_message(queue: tuple[GatedSqs, str]) -> None:
    # GIVEN work that ends in a retry (seen again in 30 s) and whose visibility change is
    # still on its way to SQS while the drain deadline passes
    sqs, url = queue
    sqs.inner.send_message(QueueUrl=url, MessageBody="retry me")
    started = threading.Event()
    release_seen = threading.Event()

    def slow_retry(params: dict[str, Any]) -> None:
        if params["VisibilityTimeout"] == 0:
            release_seen.set()
        else:
            release_seen.wait(1.0)  # the old consumer released it meanwhile

    sqs.gates["change_message_visibility"] = slow_retry

    def process(_body: str, _message_id: str, _attributes: object) -> Outcome:
        started.set()
        return Outcome("retry", reason="injected", delay_s=30)

    consumer = _consumer(sqs, url, process, drain_timeout_s=0.3)
    thread = _run_in_thread(consumer)
    assert started.wait(5.0)

    # WHEN the worker is told to stop
    consumer.stop()
    thread.join(5.0)

    # THEN the retry decided alone: not released, then hidden again by a stale owner
    assert not thread.is_alive()
    assert sqs.ops_for(_first_handle(sqs)) == [("visibility", 30)]
    assert consumer.stats.released == 0
    assert _counts(sqs, url) == (0, 1)


def test_the_acker_keeps_deleting_after_a_stop_until_the_shutdown_closes_it(
    queue: tuple[GatedSqs, str],
) -> None:
    # GIVEN a stop requested while nothing is in flight. The old acker left right here
    # ("stopped and nothing in flight"), although a SIGTERM handled on the poll thread
    # between its stop check and registering a batch still lets that batch run and ack.
    sqs, url = queue
    sqs.inner.send_message(QueueUrl=url, MessageBody="late ack")
    consumer = _consumer(sqs, url, lambda _b, _m, _a: Outcome("done"))
    consumer.stop()
    acker = threading.Thread(target=consumer._ack_loop, daemon=True)
    acker.start()
    time.sleep(3 * ACK_LINGER_S)
    assert acker.is_alive()

    # WHEN a message registered in that instant is acked, and the shutdown then closes acks
    raw = sqs.inner.receive_message(QueueUrl=url, VisibilityTimeout=60)["Messages"][0]
    message = _InFlight(Delivery(raw["MessageId"], raw["ReceiptHandle"], raw["Body"]), started=True)
    with consumer._lock:
        consumer._in_flight[message.delivery.handle] = message
    consumer._settle(message, Outcome("done"))
    consumer._close_acks()
    acker.join(5.0)

    # THEN the delete went out before the acker left
    assert not acker.is_alive()
    assert sqs.ops_for(message.delivery.handle) == [("delete", None)]
    assert _counts(sqs, url) == (0, 0)


def test_a_half_open_circuit_lets_one_probe_through_at_a_time(queue: tuple[GatedSqs, str]) -> None:
    # GIVEN five waiting messages and a circuit that just turned half-open
    sqs, url = queue
    sqs.inner.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(5)]
    )
    circuit = CircuitBreaker(failure_threshold=1, open_s=0.2)
    circuit.record_failure()
    probe_started, probe_answer = threading.Event(), threading.Event()
    calls: list[str] = []

    def process(body: str, _message_id: str, _attributes: object) -> Outcome:
        calls.append(body)
        if len(calls) == 1:
            probe_started.set()
            probe_answer.wait(5.0)
        return Outcome("done", model_called=True)

    consumer = _consumer(sqs, url, process, concurrency=4, circuit=circuit, exit_when_idle_polls=2)
    thread = _run_in_thread(consumer)

    # WHEN the probe is slow to answer
    assert probe_started.wait(5.0)
    time.sleep(0.6)
    during_probe = (len(calls), consumer.in_flight, circuit.state)
    probe_answer.set()
    thread.join(10.0)

    # THEN nothing else was pulled meanwhile, and its success let the rest through
    assert during_probe == (1, 1, "half_open")
    assert not thread.is_alive()
    assert len(calls) == 5 and circuit.state == "closed"
    assert consumer.stats.outcomes == {"done": 5}


def test_a_circuit_opened_by_the_work_that_freed_the_slot_stops_the_next_receive(
    queue: tuple[GatedSqs, str],
) -> None:
    # GIVEN one slot, two messages, and a runtime that is down: the first message's
    # outcome opens the circuit while the poll loop waits for that very slot
    sqs, url = queue
    sqs.inner.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(2)]
    )
    circuit = CircuitBreaker(failure_threshold=1, open_s=30)
    calls: list[str] = []

    def process(body: str, _message_id: str, _attributes: object) -> Outcome:
        calls.append(body)
        time.sleep(0.3)
        return Outcome("unavailable", reason="runtime_unreachable", delay_s=30)

    consumer = _consumer(sqs, url, process, concurrency=1, circuit=circuit)
    thread = _run_in_thread(consumer)

    # WHEN the slot frees
    wait_until = time.monotonic() + 5
    while not calls and time.monotonic() < wait_until:
        time.sleep(0.05)
    time.sleep(1.0)
    consumer.stop()
    thread.join(5.0)

    # THEN the loop saw the open circuit instead of its stale "closed": one call, the
    # second message never received
    assert calls == ["m0"] and circuit.state == "open"
    assert len(sqs.received) == 1
    assert _counts(sqs, url) == (1, 1)


class _RecordingBeacon(HealthBeacon):
    """A real heartbeat file that also notes whether the consumer's lock was held."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, min_interval_s=0)
        self.consumer: Dispatcher | None = None
        self.beats: list[tuple[float, bool]] = []

    def beat(self, **state: Any) -> None:
        assert self.consumer is not None
        self.beats.append((time.monotonic(), self.consumer._lock._is_owned()))  # type: ignore[attr-defined]
        super().beat(**state)


def test_the_heartbeat_stays_fresh_while_every_slot_is_busy_without_holding_the_lock(
    queue: tuple[GatedSqs, str], tmp_path: Path
) -> None:
    # GIVEN one slot, taken by work that lasts 2.5 s
    sqs, url = queue
    sqs.inner.send_message_batch(QueueUrl=url, Entries=[{"Id": "0", "MessageBody": "busy"}])
    started = threading.Event()

    def process(_body: str, _message_id: str, _attributes: object) -> Outcome:
        started.set()
        time.sleep(2.5)
        return Outcome("done")

    beacon = _RecordingBeacon(tmp_path / "health")
    consumer = _consumer(sqs, url, process, concurrency=1, health=beacon, exit_when_idle_polls=1)
    beacon.consumer = consumer
    thread = _run_in_thread(consumer)
    assert started.wait(5.0)

    # WHEN the health check looks while the worker waits for a free slot
    checks = []
    for _ in range(4):
        time.sleep(0.5)
        checks.append(check_health(beacon.path, max_age_s=1.5).healthy)
    busy_from = time.monotonic() - 2.0
    thread.join(10.0)

    # THEN it was fresh every time, and no beat (a file write) held the consumer's lock
    assert checks == [True] * 4
    assert sum(1 for at, _ in beacon.beats if at >= busy_from) >= 2
    assert not any(owned for _, owned in beacon.beats)


def test_a_heartbeat_refused_for_a_lost_receipt_handle_is_not_repeated(queue: tuple[GatedSqs, str]) -> None:
    # GIVEN work in progress whose message someone else deleted meanwhile (its
    # visibility ran out and another replica finished it)
    sqs, url = queue
    sqs.inner.send_message(QueueUrl=url, MessageBody="lost")
    asked: list[str] = []
    sqs.gates["change_message_visibility_batch"] = lambda p: asked.extend(
        e["ReceiptHandle"] for e in p["Entries"]
    )
    started = threading.Event()
    metrics = Metrics(enabled=False)

    def process(_body: str, _message_id: str, _attributes: object) -> Outcome:
        started.set()
        time.sleep(0.8)
        return Outcome("done")

    consumer = _consumer(sqs, url, process, metrics=metrics, exit_when_idle_polls=1)
    thread = _run_in_thread(consumer)
    assert started.wait(5.0)
    with consumer._lock:
        handle = next(iter(consumer._in_flight))
    sqs.inner.delete_message(QueueUrl=url, ReceiptHandle=handle)

    # WHEN heartbeats come every 0.1 s for the rest of the work
    thread.join(10.0)

    # THEN the first refusal marked the lease lost and no heartbeat asked again
    assert asked.count(handle) == 1
    assert metrics.total("LeasesLost") == 1
    assert consumer.stats.outcomes == {"done": 1}


def test_a_heartbeat_skips_messages_whose_delete_is_on_its_way(queue: tuple[GatedSqs, str]) -> None:
    # GIVEN work that is done at once, and a delete that takes 0.6 s to be answered
    sqs, url = queue
    sqs.inner.send_message(QueueUrl=url, MessageBody="done")
    asked: list[tuple[float, str]] = []
    sqs.gates["change_message_visibility_batch"] = lambda p: asked.extend(
        (time.monotonic(), e["ReceiptHandle"]) for e in p["Entries"]
    )
    sqs.gates["delete_message_batch"] = lambda _: time.sleep(0.6)
    settled: list[float] = []
    consumer = _consumer(
        sqs,
        url,
        lambda _b, _m, _a: Outcome("done"),
        exit_when_idle_polls=1,
        on_outcome=lambda _: settled.append(time.monotonic()),
    )

    # WHEN the worker drains it (heartbeats every 0.1 s meanwhile)
    consumer.run()

    # THEN no heartbeat extended it after its outcome, and it was deleted
    assert settled
    assert [h for at, h in asked if at > settled[0]] == []
    assert consumer.stats.acked == 1
    assert _counts(sqs, url) == (0, 0)


def test_a_failing_hook_costs_neither_a_work_thread_nor_a_message(queue: tuple[GatedSqs, str]) -> None:
    # GIVEN one work thread, an on_outcome hook that raises, and metrics whose stdout is gone
    sqs, url = queue
    sqs.inner.send_message_batch(
        QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
    )
    closed = io.StringIO()
    closed.close()
    metrics = Metrics(stream=closed)

    def broken_hook(_: Outcome) -> None:
        raise RuntimeError("hook failed (injected)")

    consumer = _consumer(
        sqs,
        url,
        lambda _b, _m, _a: Outcome("done"),
        concurrency=1,
        exit_when_idle_polls=2,
        metrics=metrics,
        on_outcome=broken_hook,
    )

    # WHEN the worker drains the queue
    thread = _run_in_thread(consumer)
    thread.join(15.0)

    # THEN the one thread processed and acked all three, and the lost EMF lines were counted
    assert not thread.is_alive()
    assert consumer.stats.outcomes == {"done": 3} and consumer.stats.acked == 3
    assert _counts(sqs, url) == (0, 0)
    assert metrics.total("Messages") == 3 and metrics.dropped >= 3

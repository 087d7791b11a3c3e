"""The SQS consumer: poll, lease, heartbeat, ack, back off, shut down gracefully.

Rules (DESIGN.md section 7):
- long polling, batches of at most 10 and never more than free concurrency;
- a heartbeat extends the visibility of in-flight messages;
- a message is deleted only after its state is durable (batch deletes);
- retry delay grows with ApproximateReceiveCount;
- while the runtime is unavailable the circuit is open and nothing is pulled;
- SIGTERM: stop receiving, release unstarted messages, let in-flight work finish
  within the drain timeout, release what is left.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from worker.consumers.circuit import CircuitBreaker, State
from worker.health import HealthBeacon
from worker.metrics import Metrics
from worker.processor import Outcome

log = structlog.get_logger("worker.consumer")

# SQS batch APIs take at most 10 entries.
_SQS_BATCH = 10
# How long the acker waits to fill a delete batch; short, so visibility is not at risk.
_ACK_LINGER_S = 0.2


@dataclass
class _Message:
    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    received_at: float = field(default_factory=time.monotonic)
    started: bool = False
    cancelled: bool = False


@dataclass
class ConsumerStats:
    received: int = 0
    acked: int = 0
    released: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.outcomes[outcome.kind] = self.outcomes.get(outcome.kind, 0) + 1


class SqsConsumer:
    """Consumes one queue with bounded concurrency until ``stop()`` is called."""

    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        process: Callable[[str, str], Outcome],
        concurrency: int = 16,
        batch_size: int = 10,
        wait_time_s: int = 20,
        visibility_timeout_s: int = 120,
        heartbeat_interval_s: float = 30.0,
        drain_timeout_s: float = 25.0,
        retry_base_delay_s: int = 10,
        retry_max_delay_s: int = 600,
        circuit: CircuitBreaker | None = None,
        exit_when_idle_polls: int = 0,
        metrics: Metrics | None = None,
        health: HealthBeacon | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.process = process
        self.concurrency = concurrency
        self.batch_size = min(batch_size, _SQS_BATCH)
        self.wait_time_s = wait_time_s
        self.visibility_timeout_s = visibility_timeout_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.drain_timeout_s = drain_timeout_s
        self.retry_base_delay_s = retry_base_delay_s
        self.retry_max_delay_s = retry_max_delay_s
        self.circuit = circuit or CircuitBreaker(failure_threshold=3, open_s=30.0)
        self.exit_when_idle_polls = exit_when_idle_polls
        self.metrics = metrics or Metrics(enabled=False)
        self.health = health
        self.on_outcome = on_outcome
        self.stats = ConsumerStats()

        self._stop = threading.Event()
        self._closed = threading.Event()
        self._stop_requested_at: float | None = None
        self._lock = threading.Condition()
        self._in_flight: dict[str, _Message] = {}
        self._acks: list[_Message] = []
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="secops-work")

    # ---- public ---------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the consumer to stop (safe from a signal handler)."""
        if not self._stop.is_set():
            self._stop_requested_at = time.monotonic()
            self._stop.set()
            with self._lock:
                self._lock.notify_all()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def run(self) -> ConsumerStats:
        """Consume until stopped (or idle, when configured); returns what happened."""
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="secops-heartbeat", daemon=True)
        acker = threading.Thread(target=self._ack_loop, name="secops-acker", daemon=True)
        heartbeat.start()
        acker.start()
        log.info(
            "consumer_started",
            queue_url=self.queue_url,
            concurrency=self.concurrency,
            wait_time_s=self.wait_time_s,
        )
        try:
            self._poll_loop()
        finally:
            self._shutdown(heartbeat, acker)
        return self.stats

    # ---- polling --------------------------------------------------------------------

    def _poll_loop(self) -> None:
        idle_polls = 0
        while not self._stop.is_set():
            self._beat()
            state = self.circuit.state
            if state == "open":
                self._stop.wait(min(1.0, max(0.05, self.circuit.seconds_until_probe())))
                continue
            free = self._wait_for_free_slot()
            if free <= 0:
                continue
            # Half-open: one message probes the runtime; the rest stay in the queue.
            wanted = 1 if state == "half_open" else min(self.batch_size, free)
            messages = self._receive(wanted)
            if self._stop.is_set():
                # Received while stopping: never started, give them straight back.
                self._release(messages, reason="shutdown")
                break
            if not messages:
                idle_polls += 1
                if (
                    self.exit_when_idle_polls
                    and idle_polls >= self.exit_when_idle_polls
                    and self.in_flight == 0
                ):
                    log.info("queue_idle_exiting", idle_polls=idle_polls)
                    break
                continue
            idle_polls = 0
            for message in messages:
                with self._lock:
                    self._in_flight[message.receipt_handle] = message
                self._executor.submit(self._work, message)

    def _wait_for_free_slot(self) -> int:
        with self._lock:
            while len(self._in_flight) >= self.concurrency and not self._stop.is_set():
                self._lock.wait(timeout=1.0)
                self._beat()
            return self.concurrency - len(self._in_flight)

    def _receive(self, count: int) -> list[_Message]:
        try:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=count,
                WaitTimeSeconds=self.wait_time_s,
                VisibilityTimeout=self.visibility_timeout_s,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            )
        except (BotoCoreError, ClientError) as exc:
            log.warning("receive_failed", error=str(exc))
            self.metrics.count("ReceiveErrors")
            self._stop.wait(2.0)
            return []
        messages = [
            _Message(
                message_id=raw["MessageId"],
                receipt_handle=raw["ReceiptHandle"],
                body=raw.get("Body", ""),
                receive_count=int(raw.get("Attributes", {}).get("ApproximateReceiveCount", "1")),
            )
            for raw in response.get("Messages", [])
        ]
        self.stats.received += len(messages)
        return messages

    # ---- work -----------------------------------------------------------------------

    def _work(self, message: _Message) -> None:
        with self._lock:
            if message.cancelled:
                return
            message.started = True
        with structlog.contextvars.bound_contextvars(message_id=message.message_id):
            try:
                outcome = self.process(message.body, message.message_id)
            except Exception:
                # A bug or an unmapped dependency failure: retry later, never lose it.
                log.exception("processing_crashed", receive_count=message.receive_count)
                outcome = Outcome("retry", reason="crashed")
            self.stats.add(outcome)
            self._settle(message, outcome)
            if self.on_outcome is not None:
                self.on_outcome(outcome)

    def _settle(self, message: _Message, outcome: Outcome) -> None:
        """Ack, or hand the message back with the right delay."""
        if message.cancelled:
            # Released at the drain deadline: it is visible again, and a redelivery
            # resumes from the state this work made durable.
            return
        if outcome.kind == "unavailable":
            self.circuit.record_failure()
        elif outcome.model_called or outcome.kind == "done":
            self.circuit.record_success()
        if outcome.ack:
            with self._lock:
                self._acks.append(message)
                self._lock.notify_all()
            return
        if outcome.kind == "rejected":
            # Bad input: make it visible again now so SQS's redrive moves it to the DLQ
            # after maxReceiveCount receives, instead of parking it for the full timeout.
            delay = 0
        elif outcome.kind == "unavailable":
            delay = int(outcome.delay_s or self.circuit.open_s)
        elif outcome.kind == "in_progress":
            # Another delivery holds the event; it usually finishes in seconds, so look
            # again soon rather than after the whole remaining lease.
            delay = min(int(outcome.delay_s or 0), self.retry_delay(message.receive_count))
        elif outcome.delay_s is not None:
            delay = int(outcome.delay_s)
        else:
            delay = self.retry_delay(message.receive_count)
        self._change_visibility(message, min(delay, self.retry_max_delay_s))
        self._forget(message)
        self.metrics.count(
            "Retries" if outcome.kind != "rejected" else "RejectedReleases",
            dimensions={"Reason": outcome.reason or outcome.kind},
        )

    def retry_delay(self, receive_count: int) -> int:
        """base * 2^(n-1), capped, with jitter so a burst of failures spreads out."""
        exponent = min(max(receive_count - 1, 0), 16)
        delay = min(self.retry_max_delay_s, self.retry_base_delay_s * (2**exponent))
        return int(delay * random.uniform(0.8, 1.0))  # noqa: S311 - jitter, not crypto

    # ---- acks, heartbeats, releases ---------------------------------------------------

    def _ack_loop(self) -> None:
        while True:
            with self._lock:
                if not self._acks:
                    if self._stop.is_set() and not self._in_flight:
                        return
                    self._lock.wait(timeout=_ACK_LINGER_S)
                    continue
                if len(self._acks) < _SQS_BATCH and not self._stop.is_set():
                    self._lock.wait(timeout=_ACK_LINGER_S)
                batch, self._acks = self._acks[:_SQS_BATCH], self._acks[_SQS_BATCH:]
            self._delete(batch)

    def _delete(self, batch: list[_Message]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(batch)]
        try:
            response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            failed = {int(f["Id"]) for f in response.get("Failed", [])}
        except (BotoCoreError, ClientError) as exc:
            # The state is durable: a redelivery is acknowledged as a duplicate.
            log.warning("delete_failed", error=str(exc), count=len(batch))
            failed = set(range(len(batch)))
        for index, message in enumerate(batch):
            if index in failed:
                log.warning("delete_entry_failed", message_id=message.message_id)
            else:
                self.stats.acked += 1
            self._forget(message)

    def _heartbeat_loop(self) -> None:
        # Runs through the drain too: in-flight work must not reappear mid-shutdown.
        while not self._closed.wait(self.heartbeat_interval_s):
            with self._lock:
                messages = list(self._in_flight.values())
            self._extend(messages)

    def _extend(self, messages: list[_Message]) -> None:
        for start in range(0, len(messages), _SQS_BATCH):
            chunk = messages[start : start + _SQS_BATCH]
            entries = [
                {
                    "Id": str(i),
                    "ReceiptHandle": m.receipt_handle,
                    "VisibilityTimeout": self.visibility_timeout_s,
                }
                for i, m in enumerate(chunk)
            ]
            try:
                self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
            except (BotoCoreError, ClientError) as exc:
                log.warning("heartbeat_failed", error=str(exc), count=len(chunk))
        if messages:
            self.metrics.count("HeartbeatExtensions", len(messages))

    def _change_visibility(self, message: _Message, seconds: int) -> None:
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url,
                ReceiptHandle=message.receipt_handle,
                VisibilityTimeout=max(0, seconds),
            )
        except (BotoCoreError, ClientError) as exc:
            # Not fatal: the message reappears when its visibility timeout runs out.
            log.warning("visibility_change_failed", message_id=message.message_id, error=str(exc))

    def _release(self, messages: list[_Message], *, reason: str) -> None:
        for message in messages:
            self._change_visibility(message, 0)
            self.stats.released += 1
            log.info("message_released", message_id=message.message_id, reason=reason)

    def _forget(self, message: _Message) -> None:
        with self._lock:
            self._in_flight.pop(message.receipt_handle, None)
            self._lock.notify_all()

    # ---- shutdown ---------------------------------------------------------------------

    def _drain_deadline_passed(self) -> bool:
        started = self._stop_requested_at or time.monotonic()
        return time.monotonic() >= started + self.drain_timeout_s

    def _shutdown(self, heartbeat: threading.Thread, acker: threading.Thread) -> None:
        # 1. Stop receiving: the poll loop has returned.
        self.stop()
        # 2. Release what was received but not started.
        with self._lock:
            unstarted = [m for m in self._in_flight.values() if not m.started]
            for message in unstarted:
                message.cancelled = True
                self._in_flight.pop(message.receipt_handle, None)
        self._release(unstarted, reason="shutdown_unstarted")
        # 3. Let in-flight work finish within the drain timeout; heartbeats keep running.
        with self._lock:
            while self._in_flight and not self._drain_deadline_passed():
                self._lock.wait(timeout=0.1)
            leftover = [m for m in self._in_flight.values() if m not in self._acks]
        # 4. Release what is left so another replica picks it up now, not after the timeout.
        if leftover:
            log.warning("drain_timeout_releasing", count=len(leftover))
            for message in leftover:
                message.cancelled = True
            self._release(leftover, reason="drain_timeout")
            with self._lock:
                for message in leftover:
                    self._in_flight.pop(message.receipt_handle, None)
                self._lock.notify_all()
        # 5. Flush pending deletes, then close.
        acker.join(timeout=5.0)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._closed.set()
        heartbeat.join(timeout=1.0)
        log.info(
            "consumer_stopped",
            received=self.stats.received,
            acked=self.stats.acked,
            released=self.stats.released,
            outcomes=self.stats.outcomes,
        )

    def _beat(self) -> None:
        if self.health is not None:
            try:
                self.health.beat(circuit=self.circuit.state, in_flight=len(self._in_flight))
            except OSError as exc:
                log.warning("health_beat_failed", error=str(exc))


def circuit_logger(metrics: Metrics) -> Callable[[State], None]:
    def on_change(state: State) -> None:
        log.warning("circuit_state_changed", state=state)
        metrics.count("CircuitStateChanges", dimensions={"State": state})

    return on_change

"""The source-neutral consumer: pull, process with bounded concurrency, settle, shut down.

Rules (docs/architecture.md, "Consumers"), whatever the ``Source``:
- receives are never larger than the free concurrency (nor the source's batch limit);
- a heartbeat extends the lease of in-flight messages;
- a message is acknowledged only after its state is durable (acks go out in batches),
  and a finished message frees its slot before its ack is sent;
- a message that is not acknowledged comes back after ``redelivery_delay``;
- while the runtime is unavailable the circuit is open and nothing is pulled;
- on stop: stop receiving, release unstarted messages, let in-flight work finish
  within the drain timeout, release what is left.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from worker.consumers.circuit import CircuitBreaker
from worker.consumers.source import Delivery, Source, SourceError
from worker.pipeline.outcome import DelayPolicy, Outcome, redelivery_delay
from worker.platform.health import HealthBeacon
from worker.platform.metrics import Metrics

log = structlog.get_logger("worker.consumer")

# How long the acker waits to fill an ack batch; short, so the lease is not at risk.
ACK_LINGER_S = 0.2
# After the drain, settled messages need one more source call each (an ack or a
# redelivery delay); this bounds the wait for them so a hung source cannot hold the exit.
_FLUSH_TIMEOUT_S = 5.0
# How often a poll loop that is waiting (all slots busy, a probe out) refreshes its beat.
_IDLE_BEAT_S = 1.0
# While work is in flight, a receive waits this long for more slots to free up, so a
# busy consumer pulls a few full batches instead of many of one or two messages (a
# receive is a billed request either way). Short beside any event's processing.
RECEIVE_GATHER_S = 0.1


@dataclass(eq=False)
class _InFlight:
    """One received message and where it is in its life; flags change under the lock."""

    delivery: Delivery
    received_at: float = field(default_factory=time.monotonic)
    # Taken by a work thread.
    started: bool = False
    # The work finished and its outcome owns the message (an ack, or a redelivery delay).
    settled: bool = False
    # Settled with an ack: only the ack is left, the message will not come back.
    acking: bool = False
    # Given back by the shutdown (delay 0); its outcome, if any, is ignored.
    cancelled: bool = False
    # The source refused to extend it: this delivery no longer leases the message.
    lease_lost: bool = False
    # Received while the circuit was half-open: the one message that tests the runtime.
    probe: bool = False
    # When its work last said it advanced (its start, then each ``note_progress``), and
    # what it said: a slot stuck in one place makes the worker unhealthy.
    progress_at: float = 0.0
    activity: str = ""

    @property
    def live(self) -> bool:
        """Still leased by work in progress, so a heartbeat should extend it."""
        return not (self.settled or self.cancelled or self.lease_lost)


@dataclass
class ConsumerStats:
    """What one run did; work threads update it concurrently, so under a lock."""

    received: int = 0
    acked: int = 0
    released: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes[outcome.kind] = self.outcomes.get(outcome.kind, 0) + 1


class Dispatcher:
    """Consumes one source with bounded concurrency until ``stop()`` is called.

    Threads: the caller's thread polls; ``concurrency`` daemon work threads process;
    one acker acknowledges in batches; one heartbeat extends leases. Every message is in
    ``_in_flight`` from its receive until it is acknowledged, given a redelivery delay,
    or released, and its flags (``_InFlight``) say which of those owns it.
    """

    def __init__(
        self,
        *,
        source: Source,
        process: Callable[[str, str, Mapping[str, str]], Outcome],
        concurrency: int = 16,
        batch_size: int = 10,
        wait_time_s: float = 20,
        heartbeat_interval_s: float = 30.0,
        drain_timeout_s: float = 25.0,
        delays: DelayPolicy | None = None,
        circuit: CircuitBreaker | None = None,
        exit_when_idle_polls: int = 0,
        metrics: Metrics | None = None,
        health: HealthBeacon | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        receive_error_pause_s: float = 2.0,
    ) -> None:
        self.source = source
        self.process = process
        self.concurrency = concurrency
        self.batch_size = min(batch_size, source.max_batch)
        self.wait_time_s = wait_time_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.drain_timeout_s = drain_timeout_s
        self.circuit = circuit or CircuitBreaker(failure_threshold=3, open_s=30.0)
        self.delays = delays or DelayPolicy(unavailable_s=self.circuit.open_s)
        self.exit_when_idle_polls = exit_when_idle_polls
        self.metrics = metrics or Metrics(enabled=False)
        self.health = health
        self.on_outcome = on_outcome
        # A failed receive is retried after this pause (cut short by a stop), so an
        # unreachable source is not hammered.
        self.receive_error_pause_s = receive_error_pause_s
        self.stats = ConsumerStats()

        self._stop = threading.Event()
        self._closed = threading.Event()
        self._stop_requested_at: float | None = None
        self._lock = threading.Condition()
        self._in_flight: dict[str, _InFlight] = {}
        # The message each work thread is on, for ``note_progress``.
        self._current = threading.local()
        self._acks: list[_InFlight] = []
        # Set once no outcome can add an ack any more; the acker flushes and exits.
        self._acks_closed = False
        # Serializes lease changes of in-flight messages, so a heartbeat that checked a
        # message before it settled cannot land after its redelivery delay or its release
        # and hide it again for a whole lease.
        self._lease_lock = threading.Lock()
        self._work_queue: queue.SimpleQueue[_InFlight | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._busy = 0

    # ---- public ---------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the consumer to stop (safe from a signal handler)."""
        if not self._stop.is_set():
            self._stop_requested_at = time.monotonic()
            self._stop.set()
            with self._lock:
                self._lock.notify_all()

    @property
    def stopping(self) -> bool:
        """A stop was asked for: long work (a log file) ends at its next checkpoint."""
        return self._stop.is_set()

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    @property
    def abandoned(self) -> int:
        """Work threads still busy after ``run()`` returned (released at the drain deadline)."""
        with self._lock:
            return self._busy

    def run(self) -> ConsumerStats:
        """Consume until stopped (or idle, when configured); returns what happened."""
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="secops-heartbeat", daemon=True)
        acker = threading.Thread(target=self._ack_loop, name="secops-acker", daemon=True)
        # Daemon threads: a call still running at the drain deadline has had its message
        # released, and must not hold the process past ECS's stop timeout (a
        # ThreadPoolExecutor joins its threads at interpreter exit).
        self._workers = [
            threading.Thread(target=self._worker_loop, name=f"secops-work-{n}", daemon=True)
            for n in range(self.concurrency)
        ]
        for thread in (heartbeat, acker, *self._workers):
            thread.start()
        log.info(
            "consumer_started",
            source=self.source.name,
            concurrency=self.concurrency,
            wait_time_s=self.wait_time_s,
        )
        try:
            self._poll_loop()
        finally:
            try:
                self._shutdown(heartbeat, acker)
            finally:
                # Every way out (stop, idle, an exception) ends the heartbeat file: a file
                # left behind would read as a live consumer until it aged out.
                self._clear_health()
        return self.stats

    # ---- polling --------------------------------------------------------------------

    def _poll_loop(self) -> None:
        idle_polls = 0
        while not self._stop.is_set():
            self._beat()
            free = self._wait_for_free_slot()
            if free <= 0:
                continue
            free = self._gather_slots(free)
            # Read after the wait for a slot: the work that freed it may have opened the
            # circuit, and a stale "closed" would pull a batch into a runtime that is down.
            state = self.circuit.state
            if state == "open":
                self._stop.wait(min(_IDLE_BEAT_S, max(0.05, self.circuit.seconds_until_probe())))
                continue
            if state == "half_open" and self._probe_in_flight():
                # One probe at a time: until it settles the runtime is still suspect,
                # and more messages would only burn their receive counts.
                self._wait_for_change(_IDLE_BEAT_S)
                continue
            wanted = 1 if state == "half_open" else min(self.batch_size, free)
            busy_before = self._may_return()
            deliveries = self._receive(wanted)
            # A long poll can take wait_time_s; beat again so the health check sees it.
            self._beat()
            messages = [_InFlight(d, probe=state == "half_open") for d in deliveries]
            with self._lock:
                # Checked and registered in one step: a stop from another thread lands
                # either before (the batch goes back) or after (the drain covers it).
                stopping = self._stop.is_set()
                for message in [] if stopping else messages:
                    self._in_flight[message.delivery.handle] = message
            if stopping:
                # Received while stopping: never started, give them straight back.
                self._release(messages, reason="shutdown")
                break
            if not messages:
                # Idle means nothing anywhere: a poll made while work was in flight does
                # not count, since that work may hand its message back a moment later.
                idle_polls = idle_polls + 1 if busy_before == 0 and self._may_return() == 0 else 0
                if self.exit_when_idle_polls and idle_polls >= self.exit_when_idle_polls:
                    log.info("queue_idle_exiting", idle_polls=idle_polls)
                    break
                continue
            idle_polls = 0
            for message in messages:
                self._work_queue.put(message)

    def _may_return(self) -> int:
        """In-flight messages that may yet be deliverable again (all but those being acked)."""
        with self._lock:
            return self._holding_slots()

    def _holding_slots(self) -> int:
        """In-flight messages holding a slot (the lock held): a message waiting only for
        its ack is done with its slot."""
        return sum(not m.acking for m in self._in_flight.values())

    def _probe_in_flight(self) -> bool:
        with self._lock:
            return any(m.probe for m in self._in_flight.values())

    def _wait_for_change(self, timeout: float) -> None:
        """Sleep until a message leaves (or the stop), at most ``timeout``."""
        with self._lock:
            if not self._stop.is_set():
                self._lock.wait(timeout=timeout)

    def _wait_for_free_slot(self) -> int:
        """Free slots; waits while there are none, beating outside the lock meanwhile."""
        while True:
            with self._lock:
                free = self.concurrency - self._holding_slots()
                if free > 0 or self._stop.is_set():
                    return free
                self._lock.wait(timeout=_IDLE_BEAT_S)
            # The beat writes a file: never while holding the lock every work thread,
            # the acker and the heartbeat need.
            self._beat()

    def _gather_slots(self, free: int) -> int:
        """Free slots after waiting up to ``RECEIVE_GATHER_S`` for a full batch's worth,
        while other work is in flight (with nothing in flight, receive at once)."""
        deadline = time.monotonic() + RECEIVE_GATHER_S
        with self._lock:
            while free < self.batch_size and not self._stop.is_set():
                busy = self._holding_slots()
                free = self.concurrency - busy
                remaining = deadline - time.monotonic()
                if busy == 0 or free >= self.batch_size or remaining <= 0:
                    break
                self._lock.wait(timeout=remaining)
        return free

    def _receive(self, count: int) -> list[Delivery]:
        try:
            deliveries = self.source.receive(count, self.wait_time_s)
        except SourceError as exc:
            log.warning("receive_failed", error=str(exc))
            self.metrics.count("ReceiveErrors")
            self._stop.wait(self.receive_error_pause_s)
            return []
        self.stats.received += len(deliveries)
        return deliveries

    # ---- work -----------------------------------------------------------------------

    def _worker_loop(self) -> None:
        while (message := self._work_queue.get()) is not None:
            with self._lock:
                if message.cancelled:
                    continue
                message.started = True
                message.progress_at = time.monotonic()
                self._busy += 1
            self._current.message = message
            try:
                self._work(message)
            except Exception:
                # A failing hook (on_outcome, metrics) must not cost the pool a thread.
                log.exception("work_thread_error", message_id=message.delivery.message_id)
            finally:
                self._current.message = None
                with self._lock:
                    self._busy -= 1

    def _work(self, message: _InFlight) -> None:
        delivery = message.delivery
        with structlog.contextvars.bound_contextvars(message_id=delivery.message_id):
            try:
                outcome = self.process(delivery.body, delivery.message_id, delivery.attributes)
            except Exception:
                # A bug or an unmapped dependency failure: retry later, never lose it.
                log.exception("processing_crashed", receive_count=delivery.receive_count)
                outcome = Outcome("retry", reason="crashed")
            try:
                self.stats.add(outcome)
                self.metrics.count("Messages", dimensions={"Outcome": outcome.kind})
            finally:
                # Whatever the bookkeeping did, the message gets its outcome: an
                # unsettled one would hold its slot and stay leased until shutdown.
                self._settle(message, outcome)
            if self.on_outcome is not None:
                self.on_outcome(outcome)

    def _settle(self, message: _InFlight, outcome: Outcome) -> None:
        """Ack, or hand the message back with its redelivery delay."""
        with self._lock:
            if message.cancelled:
                # Released at the drain deadline: it is deliverable again, and a
                # redelivery resumes from the state this work made durable.
                log.info("outcome_after_release_ignored", outcome=outcome.kind)
                return
            # From here on the outcome owns the message: the shutdown no longer releases
            # it and the heartbeat no longer extends it.
            message.settled = True
            if outcome.ack:
                message.acking = True
                self._acks.append(message)
                self._lock.notify_all()
        if outcome.kind == "unavailable":
            self.circuit.record_failure()
        elif outcome.model_called or outcome.kind == "done":
            self.circuit.record_success()
        delay = redelivery_delay(
            outcome,
            receive_count=message.delivery.receive_count,
            policy=self.delays,
            jitter=random.uniform(0.8, 1.0),  # noqa: S311 - jitter, not crypto
        )
        if delay is None:
            return
        with self._lease_lock:
            self.source.release(message.delivery, delay)
        self._forget(message)
        self.metrics.count(
            "Retries" if outcome.kind != "rejected" else "RejectedReleases",
            dimensions={"Reason": outcome.reason or outcome.kind},
        )

    # ---- acks, heartbeats, releases ---------------------------------------------------

    def _ack_loop(self) -> None:
        # Exits only once the shutdown has closed the acks: leaving on "stopped and
        # nothing in flight" could leave before a message received in the same instant
        # as the stop was acked, and that ack would never be sent.
        limit = self.source.max_batch
        while True:
            with self._lock:
                while not self._acks and not self._acks_closed:
                    self._lock.wait(timeout=ACK_LINGER_S)
                if not self._acks:
                    return
                # Linger up to a deadline so acks go out a full batch at a time; every
                # other notify (a slot freed, a message settled) would end the wait.
                deadline = time.monotonic() + ACK_LINGER_S
                while len(self._acks) < limit and not self._stop.is_set() and not self._acks_closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._lock.wait(timeout=remaining)
                batch, self._acks = self._acks[:limit], self._acks[limit:]
            self.stats.acked += self.source.ack([m.delivery for m in batch])
            for message in batch:
                self._forget(message)

    def _close_acks(self) -> None:
        """No outcome can add an ack any more: the acker sends what is left and exits."""
        with self._lock:
            self._acks_closed = True
            self._lock.notify_all()

    def _heartbeat_loop(self) -> None:
        # Runs through the drain too: in-flight work must not reappear mid-shutdown.
        while not self._closed.wait(self.heartbeat_interval_s):
            self._extend_in_flight()

    def _extend_in_flight(self) -> None:
        """Push out the lease of every message whose work is still running."""
        with self._lock:
            candidates = [m for m in self._in_flight.values() if m.live]
        extended = 0
        limit = self.source.max_batch
        for start in range(0, len(candidates), limit):
            with self._lease_lock:
                # Look again under the lease lock: a message settled or released since
                # the snapshot already has its final visibility.
                with self._lock:
                    chunk = [m for m in candidates[start : start + limit] if m.live]
                if chunk:
                    extended += self._extend(chunk)
        if extended:
            self.metrics.count("HeartbeatExtensions", extended)

    def _extend(self, chunk: list[_InFlight]) -> int:
        result = self.source.extend([m.delivery for m in chunk])
        for message in chunk:
            if message.delivery.handle in result.lost:
                # Someone else may receive it now; the store's claim arbitrates.
                with self._lock:
                    message.lease_lost = True
                self.metrics.count("LeasesLost")
        return result.extended

    def _release(self, messages: list[_InFlight], *, reason: str) -> None:
        with self._lease_lock:
            for message in messages:
                self.source.release(message.delivery, 0)
                self.stats.released += 1
                log.info("message_released", message_id=message.delivery.message_id, reason=reason)

    def _forget(self, message: _InFlight) -> None:
        with self._lock:
            self._in_flight.pop(message.delivery.handle, None)
            self._lock.notify_all()

    # ---- shutdown ---------------------------------------------------------------------

    def _drain_deadline_passed(self) -> bool:
        started = self._stop_requested_at or time.monotonic()
        return time.monotonic() >= started + self.drain_timeout_s

    def _take_unsettled(self, *, unstarted_only: bool) -> list[_InFlight]:
        """Cancel and remove messages no outcome owns yet (atomically with ``_settle``)."""
        with self._lock:
            taken = [
                m for m in self._in_flight.values() if not m.settled and not (unstarted_only and m.started)
            ]
            for message in taken:
                message.cancelled = True
                self._in_flight.pop(message.delivery.handle, None)
            self._lock.notify_all()
        return taken

    def _shutdown(self, heartbeat: threading.Thread, acker: threading.Thread) -> None:
        # 1. Stop receiving: the poll loop has returned.
        self.stop()
        # 2. Release what was received but not started.
        self._release(self._take_unsettled(unstarted_only=True), reason="shutdown_unstarted")
        for _ in self._workers:
            self._work_queue.put(None)  # idle work threads exit
        # 3. Let in-flight work finish within the drain timeout; heartbeats keep running.
        with self._lock:
            while any(not m.settled for m in self._in_flight.values()) and not self._drain_deadline_passed():
                self._lock.wait(timeout=0.1)
        # 4. Release what is left so another consumer picks it up now, not after its lease.
        leftover = self._take_unsettled(unstarted_only=False)
        if leftover:
            log.warning("drain_timeout_releasing", count=len(leftover))
            self._release(leftover, reason="drain_timeout")
        # 5. Every remaining message is settled: flush the acks and redelivery delays.
        self._close_acks()
        acker.join(timeout=_FLUSH_TIMEOUT_S)
        flush_deadline = time.monotonic() + _FLUSH_TIMEOUT_S
        with self._lock:
            while self._in_flight and time.monotonic() < flush_deadline:
                self._lock.wait(timeout=0.1)
        self._closed.set()
        heartbeat.join(timeout=1.0)
        log.info(
            "consumer_stopped",
            received=self.stats.received,
            acked=self.stats.acked,
            released=self.stats.released,
            abandoned=self.abandoned,
            outcomes=self.stats.outcomes,
        )

    def note_progress(self, activity: str) -> None:
        """Called from inside ``process``: this slot's work advanced, and what it is doing."""
        message: _InFlight | None = getattr(self._current, "message", None)
        if message is not None:
            message.progress_at = time.monotonic()
            message.activity = activity

    def stalled(self) -> tuple[float, str]:
        """The longest any slot has gone without progress (seconds), and what it was doing."""
        now = time.monotonic()
        with self._lock:
            working = [m for m in self._in_flight.values() if m.started and not m.settled and not m.cancelled]
        if not working:
            return 0.0, ""
        worst = min(working, key=lambda m: m.progress_at)
        what = worst.activity or f"processing message {worst.delivery.message_id}"
        return now - worst.progress_at, what

    def _beat(self) -> None:
        if self.health is not None:
            stalled_s, activity = self.stalled()
            try:
                self.health.beat(
                    circuit=self.circuit.state,
                    in_flight=self.in_flight,
                    stalled_s=round(stalled_s, 1),
                    stalled=activity,
                )
            except OSError as exc:
                log.warning("health_beat_failed", error=str(exc))

    def _clear_health(self) -> None:
        if self.health is not None:
            try:
                self.health.clear()
            except OSError as exc:
                log.warning("health_clear_failed", error=str(exc))

"""The source-neutral dispatcher against an in-memory source: no network, milliseconds.

The SQS adapter's behaviour against a real queue stays in
tests/integration/test_consumer_races.py; here each rule of the dispatcher is checked
with the interleaving forced by the source's gates.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.memory_source import MemorySource, failing_receives
from worker.consumers.circuit import CircuitBreaker
from worker.consumers.dispatcher import Dispatcher, _InFlight
from worker.pipeline.outcome import DelayPolicy, Outcome
from worker.platform.health import HealthBeacon, check_health
from worker.platform.metrics import Metrics

WAIT = 5.0


def _dispatcher(source: MemorySource, process: Callable[[str, str], Outcome], **overrides: Any) -> Dispatcher:
    options: dict[str, Any] = {
        "concurrency": 2,
        "wait_time_s": 0.01,
        "heartbeat_interval_s": 0.01,
        "drain_timeout_s": 5.0,
        "delays": DelayPolicy(base_s=10, max_s=600, unavailable_s=30),
        "exit_when_idle_polls": 2,
        "receive_error_pause_s": 0.0,
    }
    options.update(overrides)
    return Dispatcher(source=source, process=process, **options)


def _done(_body: str, _message_id: str, _attributes: object) -> Outcome:
    return Outcome("done")


@pytest.fixture
def running() -> Iterator[Callable[[Dispatcher], threading.Thread]]:
    threads: list[tuple[Dispatcher, threading.Thread]] = []

    def start(dispatcher: Dispatcher) -> threading.Thread:
        thread = threading.Thread(target=dispatcher.run, daemon=True)
        thread.start()
        threads.append((dispatcher, thread))
        return thread

    yield start
    for dispatcher, thread in threads:
        dispatcher.stop()
        thread.join(WAIT)


def _wait(condition: Callable[[], bool], what: str) -> None:
    done = threading.Event()
    for _ in range(int(WAIT / 0.005)):
        if condition():
            done.set()
            break
        done.wait(0.005)
    assert done.is_set(), f"timed out waiting for {what}"


# ---- draining and batch sizes ------------------------------------------------------------


def test_a_burst_run_acks_every_message_once_in_batches_the_source_accepts() -> None:
    # GIVEN 25 messages, 4 work threads, and a source that takes at most 3 per call
    source = MemorySource(max_batch=3)
    ids = source.send(*(f"b{n}" for n in range(25)))
    batches: list[int] = []
    source.gates["ack"] = lambda messages: batches.append(len(messages))
    dispatcher = _dispatcher(source, _done, concurrency=4)

    # WHEN it runs until the source is idle
    stats = dispatcher.run()

    # THEN each message was processed and acked exactly once, no call carried more
    # than the source's limit, and nothing is left leased
    assert stats.outcomes == {"done": 25} and stats.acked == 25
    assert all(source.ops_for(i).count(("ack", None)) == 1 for i in ids)
    assert max(source.asked) <= 3 and max(batches) <= 3
    assert source.counts() == (0, 0, 0)


def test_a_receive_never_asks_for_more_than_the_free_work_slots(
    running: Callable[[Dispatcher], threading.Thread],
) -> None:
    # GIVEN 10 messages, 4 work threads, batches of up to 10, and work held at a gate
    source = MemorySource()
    source.send(*(f"s{n}" for n in range(10)))
    gate, started = threading.Event(), threading.Semaphore(0)

    def held(_body: str, _message_id: str, _attributes: object) -> Outcome:
        started.release()
        gate.wait(WAIT)
        return Outcome("done")

    dispatcher = _dispatcher(source, held, concurrency=4, batch_size=10)
    thread = running(dispatcher)

    # WHEN all four slots are busy
    for _ in range(4):
        assert started.acquire(timeout=WAIT)
    asked_while_busy = list(source.asked)
    gate.set()
    thread.join(WAIT)

    # THEN the first receive asked for 4, none was made while no slot was free, and
    # every later receive fitted in the slots left
    assert asked_while_busy == [4]
    assert max(source.asked) == 4
    assert dispatcher.stats.acked == 10


def test_a_finished_message_frees_its_slot_before_its_ack_is_sent(
    running: Callable[[Dispatcher], threading.Thread],
) -> None:
    # GIVEN one work thread, two messages, and an ack held until the second is received
    source = MemorySource()
    first, second = source.send("first", "second")
    second_received = threading.Event()
    source.gates["ack"] = lambda _messages: second_received.wait(WAIT)

    def process(body: str, _message_id: str, _attributes: object) -> Outcome:
        if body == "second":
            second_received.set()
        return Outcome("done")

    dispatcher = _dispatcher(source, process, concurrency=1)

    # WHEN it runs
    thread = running(dispatcher)
    thread.join(WAIT)

    # THEN the second message was received while the first one's ack was still pending
    order = [(op, mid) for op, mid, _ in source.ops]
    assert order.index(("receive", second)) < order.index(("ack", first))
    assert dispatcher.stats.acked == 2


def test_a_failed_receive_is_counted_and_the_run_goes_on() -> None:
    # GIVEN a source whose first two receives fail (an empty poll, as far as the idle
    # count goes, so the burst run is allowed a third)
    source = MemorySource()
    source.send("after the outage")
    source.gates["receive"] = failing_receives(2)
    metrics = Metrics(enabled=False)
    dispatcher = _dispatcher(source, _done, metrics=metrics, exit_when_idle_polls=3)

    # WHEN it runs until idle
    stats = dispatcher.run()

    # THEN both failures were counted and the message was still processed
    assert metrics.total("ReceiveErrors") == 2
    assert stats.outcomes == {"done": 1}


# ---- outcomes and redelivery delays ----------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome("rejected", reason="invalid_json"), ("release", 0)),
        (Outcome("retry", reason="throttled", delay_s=42), ("release", 42)),
        (Outcome("in_progress", delay_s=12.2), ("release", 14)),
        (Outcome("unavailable", reason="runtime_unreachable"), ("release", 30)),
        (Outcome("duplicate"), ("ack", None)),
    ],
)
def test_each_outcome_reaches_the_source_as_an_ack_or_a_release_with_its_delay(
    outcome: Outcome, expected: tuple[str, int | None]
) -> None:
    # GIVEN one message and a process that answers one outcome
    source = MemorySource()
    (message_id,) = source.send("one")
    dispatcher = _dispatcher(
        source,
        lambda _b, _m, _a: outcome,
        circuit=CircuitBreaker(failure_threshold=9, open_s=30),
        on_outcome=lambda _: dispatcher.stop(),
    )

    # WHEN it runs until that outcome
    dispatcher.run()

    # THEN the source saw that ack or release first (a message released at once may be
    # received again before the stop lands)
    seen = [op for op in source.ops_for(message_id) if op[0] != "extend"]
    assert seen[:2] == [("receive", None), expected]


def test_a_crash_in_processing_is_retried_with_the_backoff_of_its_receive_count() -> None:
    # GIVEN a process that raises on the first two deliveries
    source = MemorySource()
    (message_id,) = source.send("flaky")
    calls: list[int] = []

    def process(_body: str, _message_id: str, _attributes: object) -> Outcome:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("bug (injected)")
        return Outcome("done")

    # WHEN it runs three times, the retry delay "passing" in between
    for _ in range(3):
        _dispatcher(source, process).run()
        source.redeliver()

    # THEN each crash became a retry, 10 s then 20 s less at most 20 % jitter, then an ack
    releases = [value for op, value in source.ops_for(message_id) if op == "release"]
    assert len(releases) == 2
    assert releases[0] is not None and 8 <= releases[0] <= 10
    assert releases[1] is not None and 16 <= releases[1] <= 20
    assert source.ops_for(message_id)[-1] == ("ack", None)


# ---- heartbeats ----------------------------------------------------------------------------


def test_a_lease_the_source_reports_lost_is_not_extended_again(
    running: Callable[[Dispatcher], threading.Thread],
) -> None:
    # GIVEN work in progress whose lease the source says is lost
    source = MemorySource()
    (message_id,) = source.send("lost")
    source.lose.add(message_id)
    asked: list[str] = []
    source.gates["extend"] = lambda messages: asked.extend(m.message_id for m in messages)
    finish = threading.Event()
    metrics = Metrics(enabled=False)

    def process(_body: str, _message_id: str, _attributes: object) -> Outcome:
        finish.wait(WAIT)
        return Outcome("done")

    dispatcher = _dispatcher(source, process, metrics=metrics)
    thread = running(dispatcher)

    # WHEN several heartbeat intervals pass
    _wait(lambda: metrics.total("LeasesLost") >= 1, "the lease reported lost")
    time.sleep(0.1)
    finish.set()
    thread.join(WAIT)

    # THEN only the first heartbeat asked for it
    assert asked == [message_id]
    assert metrics.total("LeasesLost") == 1


# ---- circuit -----------------------------------------------------------------------------


def test_an_open_circuit_stops_receiving(running: Callable[[Dispatcher], threading.Thread]) -> None:
    # GIVEN one slot, three messages and a runtime that is down
    source = MemorySource()
    source.send("m0", "m1", "m2")
    circuit = CircuitBreaker(failure_threshold=1, open_s=30)
    outcomes = threading.Semaphore(0)
    dispatcher = _dispatcher(
        source,
        lambda _b, _m, _a: Outcome("unavailable", reason="runtime_unreachable"),
        concurrency=1,
        circuit=circuit,
        exit_when_idle_polls=0,
        on_outcome=lambda _: outcomes.release(),
    )

    # WHEN the first outcome opens the circuit and the loop has gone round a while
    thread = running(dispatcher)
    assert outcomes.acquire(timeout=WAIT)
    time.sleep(0.2)
    dispatcher.stop()
    thread.join(WAIT)

    # THEN nothing else was received, and the message waits out the open circuit
    assert circuit.state == "open"
    assert source.asked == [1]
    assert source.counts() == (2, 0, 1)
    assert [op for op in source.ops if op[0] == "release"] == [("release", "m0", 30)]


def test_a_half_open_circuit_receives_one_probe_and_its_success_reopens_the_flow() -> None:
    # GIVEN a circuit that has been open long enough to let a probe through
    now = [0.0]
    circuit = CircuitBreaker(failure_threshold=1, open_s=30, now=lambda: now[0])
    circuit.record_failure()
    now[0] = 31.0
    source = MemorySource()
    source.send(*(f"p{n}" for n in range(6)))
    dispatcher = _dispatcher(
        source, lambda _b, _m, _a: Outcome("done", model_called=True), concurrency=4, circuit=circuit
    )

    # WHEN it runs until idle
    stats = dispatcher.run()

    # THEN the first receive asked for one message only, and the next for every free slot
    assert source.asked[:2] == [1, 4]
    assert stats.outcomes == {"done": 6} and circuit.state == "closed"


# ---- shutdown ------------------------------------------------------------------------------


def test_a_stop_gives_back_unstarted_work_first_and_lets_running_work_finish_under_heartbeats(
    running: Callable[[Dispatcher], threading.Thread],
) -> None:
    # GIVEN one message being processed, and a stop that lands during the next receive
    source = MemorySource()
    running_id, unstarted_id = source.send("running", "unstarted")
    started, finish = threading.Event(), threading.Event()

    def process(_body: str, _message_id: str, _attributes: object) -> Outcome:
        started.set()
        finish.wait(WAIT)
        return Outcome("done")

    dispatcher = _dispatcher(source, process, concurrency=3, batch_size=1, exit_when_idle_polls=0)
    receives = [0]

    def stop_on_second_receive(_count: int) -> None:
        receives[0] += 1
        if receives[0] == 2:
            assert started.wait(WAIT)
            dispatcher.stop()

    source.gates["receive"] = stop_on_second_receive
    thread = running(dispatcher)
    assert started.wait(WAIT)

    # WHEN the drain is under way: the unstarted message is back, and the running one
    # has been extended since
    _wait(lambda: ("release", 0) in source.ops_for(unstarted_id), "the unstarted message released")
    release_at = len(source.ops)
    _wait(
        lambda: any(op == ("extend", running_id, None) for op in source.ops[release_at:]),
        "a heartbeat during the drain",
    )
    finish.set()
    thread.join(WAIT)

    # THEN the order was: release the unstarted, keep extending, ack the finished work
    ops = [(op, mid) for op, mid, _ in source.ops if op != "extend" or mid == running_id]
    assert ops.index(("release", unstarted_id)) < ops.index(("ack", running_id))
    assert dispatcher.stats.released == 1 and dispatcher.abandoned == 0
    assert source.counts() == (1, 0, 0)


def test_a_stop_releases_received_messages_no_work_thread_took_yet() -> None:
    # GIVEN a message received and registered but not yet taken by a work thread
    source = MemorySource()
    (message_id,) = source.send("waiting")
    (delivery,) = source.receive(1, 0)
    dispatcher = _dispatcher(source, _done)
    dispatcher._in_flight[delivery.handle] = _InFlight(delivery)

    # WHEN the dispatcher is stopped before it takes it
    dispatcher.stop()
    dispatcher.run()

    # THEN it was given back at once, never processed
    assert source.ops_for(message_id)[-1] == ("release", 0)
    assert dispatcher.stats.outcomes == {} and dispatcher.stats.released == 1


def test_work_that_outlives_the_drain_timeout_is_released_and_its_late_outcome_ignored() -> None:
    # GIVEN work that runs until the test lets it finish, and a drain timeout of 50 ms
    source = MemorySource()
    (message_id,) = source.send("slow")
    started, finish, finished = threading.Event(), threading.Event(), threading.Event()

    def process(_body: str, _message_id: str, _attributes: object) -> Outcome:
        started.set()
        finish.wait(WAIT)
        return Outcome("done")

    dispatcher = _dispatcher(
        source, process, drain_timeout_s=0.05, exit_when_idle_polls=0, on_outcome=lambda _: finished.set()
    )
    source.gates["receive"] = lambda _count: dispatcher.stop() if started.is_set() else None

    # WHEN it is stopped while the work runs
    dispatcher.run()
    abandoned = dispatcher.abandoned
    finish.set()
    assert finished.wait(WAIT)

    # THEN the message was released (visible again), the work counted as abandoned, and
    # its late "done" did not ack a message it no longer owns
    assert abandoned == 1
    assert source.ops_for(message_id)[-1] == ("release", 0)
    assert ("ack", None) not in source.ops_for(message_id)
    assert source.counts() == (1, 0, 0)


# ---- the heartbeat file ------------------------------------------------------------------


def test_an_idle_exit_clears_the_heartbeat_file(tmp_path: Path) -> None:
    # GIVEN a run that beats while it works
    source = MemorySource()
    source.send("one")
    beacon = HealthBeacon(tmp_path / "health", min_interval_s=0)
    seen: list[bool] = []

    def process(_body: str, _message_id: str, _attributes: object) -> Outcome:
        seen.append(beacon.path.exists())
        return Outcome("done")

    dispatcher = _dispatcher(source, process, health=beacon)

    # WHEN it exits because the source is idle
    dispatcher.run()

    # THEN the file existed during the run and is gone after it
    assert seen == [True]
    assert not beacon.path.exists()


def test_a_stop_clears_the_heartbeat_file(
    running: Callable[[Dispatcher], threading.Thread], tmp_path: Path
) -> None:
    # GIVEN a running dispatcher that has beaten
    beacon = HealthBeacon(tmp_path / "health", min_interval_s=0)
    dispatcher = _dispatcher(MemorySource(), _done, health=beacon, exit_when_idle_polls=0)
    thread = running(dispatcher)
    _wait(beacon.path.exists, "the first beat")

    # WHEN it is stopped (what SIGTERM does)
    dispatcher.stop()
    thread.join(WAIT)

    # THEN the file is gone
    assert not thread.is_alive()
    assert not beacon.path.exists()


def test_an_exception_out_of_the_poll_loop_clears_the_heartbeat_file_and_gives_work_back(
    tmp_path: Path,
) -> None:
    # GIVEN a source whose receive fails with a bug rather than a SourceError, after a
    # first message is already in work
    source = MemorySource()
    (message_id,) = source.send("in work")
    beacon = HealthBeacon(tmp_path / "health", min_interval_s=0)
    started = threading.Event()

    def process(_body: str, _message_id: str, _attributes: object) -> Outcome:
        started.set()
        return Outcome("done")

    def broken(_count: int) -> None:
        if started.is_set():
            raise RuntimeError("source bug (injected)")

    source.gates["receive"] = broken
    dispatcher = _dispatcher(source, process, health=beacon, exit_when_idle_polls=0)

    # WHEN it runs
    with pytest.raises(RuntimeError, match="source bug"):
        dispatcher.run()

    # THEN the exception propagated after the shutdown: the file is gone and the work
    # that was in flight still reached its ack
    assert not beacon.path.exists()
    assert source.ops_for(message_id)[-1] == ("ack", None)


def test_a_slot_without_progress_shows_in_the_beat(
    running: Callable[[Dispatcher], threading.Thread], tmp_path: Path
) -> None:
    # GIVEN work that reports progress once and then hangs (a read stuck in one place)
    source = MemorySource()
    source.send("stuck")
    gate, reported = threading.Event(), threading.Event()
    beacon = HealthBeacon(tmp_path / "health", min_interval_s=0)

    def hangs(_body: str, _message_id: str, _attributes: object) -> Outcome:
        dispatcher.note_progress("reading s3://b/k: framing, frame 0")
        reported.set()
        gate.wait(WAIT)
        return Outcome("done")

    dispatcher = _dispatcher(source, hangs, health=beacon)
    running(dispatcher)
    assert reported.wait(WAIT)
    # WHEN time passes with no progress
    _wait(lambda: dispatcher.stalled()[0] > 0.3, "the slot to stall")
    _, activity = dispatcher.stalled()
    # THEN the slot's stall and activity are what the beat carries to `secops health`
    assert activity == "reading s3://b/k: framing, frame 0"
    _wait(lambda: json.loads(beacon.path.read_text()).get("stalled_s", 0) > 0.3, "a beat with the stall")
    assert not check_health(beacon.path, max_age_s=90, max_stall_s=0.2).healthy
    gate.set()

"""The outcome -> redelivery delay policy: a pure function, so a table of cases."""

from __future__ import annotations

import pytest

from worker.pipeline.outcome import DelayPolicy, Outcome, redelivery_delay

POLICY = DelayPolicy(base_s=10, max_s=600, unavailable_s=30)


@pytest.mark.parametrize(
    ("outcome", "receive_count", "expected"),
    [
        # State is durable: acknowledge, no delay.
        (Outcome("done"), 1, None),
        (Outcome("duplicate"), 7, None),
        # Bad input comes straight back so the redrive moves it to the DLQ.
        (Outcome("rejected", reason="invalid_json"), 3, 0),
        # A live lease elsewhere: just past its expiry, whatever the receive count.
        (Outcome("in_progress", delay_s=12.2), 9, 14),
        (Outcome("in_progress"), 1, 1),
        # The runtime is down: the outcome's delay, else the circuit's open time.
        (Outcome("unavailable", delay_s=45), 1, 45),
        (Outcome("unavailable"), 5, 30),
        # A duplicate copy meeting another delivery's lease looks again after 1 s, then 2 s,
        # then (its quick looks spent) waits for the lease; never past the lease's end.
        (Outcome("in_progress", delay_s=170, lease_held_by_other=True), 1, 1),
        (Outcome("in_progress", delay_s=169, lease_held_by_other=True), 2, 2),
        (Outcome("in_progress", delay_s=167, lease_held_by_other=True), 3, 168),
        (Outcome("in_progress", delay_s=0.0, lease_held_by_other=True), 2, 1),
        # A redelivery of the holder's own message waits for the lease at once.
        (Outcome("in_progress", delay_s=170), 1, 171),
        # Retries back off by the event's own attempts, whatever the receive count: a
        # replayed message (receive count 15) starts from the base delay.
        (Outcome("retry", attempts=1), 15, 10),
        (Outcome("retry", attempts=3), 15, 40),
        (Outcome("retry", attempts=3), 1, 40),
        # A retry that names its delay keeps it; one that does not backs off, by the
        # receive count when the event's attempts are unknown (the claim failed).
        (Outcome("retry", delay_s=42), 6, 42),
        (Outcome("retry"), 1, 10),
        (Outcome("retry"), 2, 20),
        (Outcome("retry"), 4, 80),
        (Outcome("retry"), 0, 10),
        # Every delay is capped.
        (Outcome("retry"), 30, 600),
        (Outcome("retry", delay_s=5000), 1, 600),
        (Outcome("in_progress", delay_s=5000), 1, 600),
        # A negative hint never becomes a negative delay.
        (Outcome("retry", delay_s=-3), 1, 0),
    ],
)
def test_each_outcome_maps_to_its_delay(outcome: Outcome, receive_count: int, expected: int | None) -> None:
    assert redelivery_delay(outcome, receive_count=receive_count, policy=POLICY) == expected


def test_jitter_only_shortens_the_backoff_and_never_a_named_delay() -> None:
    # GIVEN the lowest jitter the dispatcher draws
    jitter = 0.8

    # THEN the backoff shrinks by at most 20 %, and delays an outcome named stay as named
    assert redelivery_delay(Outcome("retry"), receive_count=3, policy=POLICY, jitter=jitter) == 32
    assert redelivery_delay(Outcome("retry", delay_s=42), receive_count=3, policy=POLICY, jitter=jitter) == 42
    assert redelivery_delay(Outcome("unavailable"), receive_count=3, policy=POLICY, jitter=jitter) == 30


@pytest.mark.parametrize(
    ("max_receive_count", "quick_looks"),
    [(1, 0), (2, 0), (3, 1), (5, 2), (8, 3), (10, 4)],
)
def test_quick_looks_take_at_most_half_of_the_receives_after_the_first(
    max_receive_count: int, quick_looks: int
) -> None:
    # GIVEN the policy of a queue that dead-letters after max_receive_count receives
    policy = DelayPolicy.for_queue(
        base_s=10, max_s=600, unavailable_s=30, max_receive_count=max_receive_count
    )
    copy = Outcome("in_progress", delay_s=170, lease_held_by_other=True)

    # WHEN a duplicate copy meets the lease on each receive
    delays = [redelivery_delay(copy, receive_count=n, policy=policy) for n in range(1, max_receive_count + 1)]

    # THEN the first quick_looks receives look again within seconds, growing, and the
    # rest wait for the lease, leaving receives for a holder that died
    assert delays[:quick_looks] == [min(8, 2**n) for n in range(quick_looks)]
    assert all(d == 171 for d in delays[quick_looks:])


def test_quick_looks_grow_to_their_cap() -> None:
    # GIVEN a queue with many receives
    policy = DelayPolicy.for_queue(base_s=10, max_s=600, unavailable_s=30, max_receive_count=20)
    copy = Outcome("in_progress", delay_s=170, lease_held_by_other=True)
    # THEN the looks double up to the cap, well below the lease
    delays = [redelivery_delay(copy, receive_count=n, policy=policy) for n in range(1, 8)]
    assert delays == [1, 2, 4, 8, 8, 8, 8]

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
        # A retry that names its delay keeps it; one that does not backs off.
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

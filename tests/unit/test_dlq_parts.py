"""The DLQ tools' pure parts: event keys of bodies, the token bucket, the filters."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st

from testkit.events import simplified, waf_record
from worker.cli.dlq import human_age
from worker.ops.dlq import (
    NOT_RECORDED,
    DlqEntry,
    DlqMessage,
    ReplayFilter,
    TokenBucket,
)
from worker.ops.dlq.native import _unsupported
from worker.ops.message_keys import event_key_of_body
from worker.pipeline import processor
from worker.store import rejection_key

# ---- event keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(simplified("evt-1")),
        json.dumps(waf_record()),
        json.dumps({"action": "analyze", "event": simplified("evt-2")}),
        json.dumps({"prompt": json.dumps({"action": "analyze", "event": simplified("evt-3")})}),
    ],
)
def test_a_parsable_body_gets_its_events_key(body: str) -> None:
    assert event_key_of_body(body) == processor.parse_message(body).event.event_key


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (json.dumps(simplified("evt-bad", source_ip="999.1.1.1")), "evt#evt-bad"),
        (json.dumps({"action": "analyze", "event": {"id": 42}}), "evt#42"),
        ("{not json", rejection_key("{not json")),
        ("[1, 2]", rejection_key("[1, 2]")),
        (
            json.dumps({"action": "monitor", "hours": 3}),
            rejection_key(json.dumps({"action": "monitor", "hours": 3})),
        ),
    ],
)
def test_an_unparsable_body_gets_the_key_its_rejection_is_recorded_under(body: str, expected: str) -> None:
    assert event_key_of_body(body) == expected
    # The same rule as the processor's own (private) one for rejected bodies.
    assert (processor.key_of_unparsed(body) or rejection_key(body)) == expected


@given(st.text(max_size=200))
def test_any_body_has_a_key_and_never_raises(body: str) -> None:
    key = event_key_of_body(body)
    assert key.startswith(("evt#", "msg#sha256:"))


# ---- the token bucket -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(4, clock=clock, sleep=clock.sleep)
    assert bucket.acquire(4) == 0.0
    assert bucket.acquire(2) == pytest.approx(0.5)
    assert clock.now == pytest.approx(0.5)


def test_a_slow_rate_still_sends_one_at_a_time() -> None:
    clock = Clock()
    bucket = TokenBucket(0.5, clock=clock, sleep=clock.sleep)
    assert bucket.max_batch == 1
    for _ in range(3):
        bucket.acquire()
    assert clock.now == pytest.approx(4.0)
    with pytest.raises(ValueError, match="cannot take 2"):
        bucket.acquire(2)


def test_idle_time_refills_no_more_than_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    bucket.acquire(10)
    clock.now += 3600
    assert bucket.acquire(10) == 0.0
    assert bucket.acquire(5) == pytest.approx(0.5)


# ---- filters and errors ---------------------------------------------------------------------


def _entry(key: str = "evt#a", sent_at: float | None = 100.0) -> DlqEntry:
    message = DlqMessage("m", "h", "{}", key, sent_at, 1)
    return DlqEntry(message, None)


def test_filters_combine_with_and() -> None:
    entry = _entry()
    assert ReplayFilter().matches(entry, 200.0) and not ReplayFilter().active
    assert ReplayFilter(reasons=frozenset({NOT_RECORDED})).matches(entry, 200.0)
    assert not ReplayFilter(reasons=frozenset({"invalid_json"})).matches(entry, 200.0)
    assert ReplayFilter(event_keys=frozenset({"evt#a"}), max_age_s=100).matches(entry, 200.0)
    assert not ReplayFilter(event_keys=frozenset({"evt#a"}), max_age_s=99).matches(entry, 200.0)
    # No SentTimestamp: an age filter cannot vouch for it, so it is left alone.
    assert not ReplayFilter(max_age_s=1e9).matches(_entry(sent_at=None), 200.0)


def _client_error(code: str, message: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "StartMessageMoveTask",
    )


@pytest.mark.parametrize(
    ("error", "unsupported"),
    [
        (_client_error("500", "<!doctype html>\n<html lang=en>...", 500), True),
        (_client_error("InvalidAction", "The action StartMessageMoveTask is not valid", 400), True),
        (_client_error("UnsupportedOperation", "", 400), True),
        (_client_error("NotImplemented", "", 501), True),
        (_client_error("InternalFailure", "operation not supported by this emulator", 500), True),
        (_client_error("AccessDenied", "not authorized to perform sqs:StartMessageMoveTask", 403), False),
        (_client_error("InvalidParameterValue", "Source queue must be configured as a DLQ", 400), False),
        (_client_error("InternalError", "We encountered an internal error", 500), False),
    ],
)
def test_unsupported_is_told_apart_from_real_failures(error: ClientError, unsupported: bool) -> None:
    assert _unsupported(error) is unsupported


def test_human_age() -> None:
    assert [human_age(s) for s in (None, 42, 192, 18_240, 183_600)] == [
        "-",
        "42s",
        "3m 12s",
        "5h 4m",
        "2d 3h",
    ]

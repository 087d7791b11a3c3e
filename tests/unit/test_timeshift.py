"""Moving recorded events to now: both shapes, nested wrappers, spacing kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from worker.ops import timeshift

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def test_the_newest_lands_on_now_and_the_spacing_is_kept() -> None:
    # GIVEN a simplified event and a WAF log record five minutes later
    records = [
        {"id": "a", "timestamp": "2026-11-25T09:00:00Z"},
        {"timestamp": int(datetime(2026, 11, 25, 9, 5, tzinfo=UTC).timestamp() * 1000)},
    ]

    # WHEN shifted to NOW
    delta = timeshift.delta_to(records, NOW)
    shifted = [timeshift.shift(r, delta) for r in records]

    # THEN the newest is NOW, the older five minutes before, each in its own shape
    assert shifted[1]["timestamp"] == int(NOW.timestamp() * 1000)
    assert shifted[0] == {"id": "a", "timestamp": "2030-06-01T11:55:00Z"}


def test_requests_and_prompt_wrappers_are_shifted_inside() -> None:
    # GIVEN an analyze request wrapped as a prompt string
    inner = {"action": "analyze", "event": {"id": "p", "timestamp": "2026-11-25T09:00:00+00:00"}}
    record = {"prompt": json.dumps(inner)}

    # WHEN shifted by one day
    shifted = timeshift.shift(record, timedelta(days=1))

    # THEN the nested timestamp moved, and it is still a prompt string
    assert json.loads(shifted["prompt"])["event"]["timestamp"] == "2026-11-26T09:00:00Z"
    assert list(timeshift.timestamps(record)) == [datetime(2026, 11, 25, 9, tzinfo=UTC)]


def test_values_that_are_not_timestamps_stay_as_they_are() -> None:
    # GIVEN a record whose timestamp is not one, a naive one, and other fields
    record = {"timestamp": "yesterday", "events": [{"timestamp": "2026-01-01T00:00:00"}], "n": 3}

    # WHEN shifted
    shifted = timeshift.shift(record, timedelta(hours=1))

    # THEN only the real timestamp moved, and without an offset it keeps none
    assert shifted == {"timestamp": "yesterday", "events": [{"timestamp": "2026-01-01T01:00:00"}], "n": 3}


def test_nothing_to_shift_means_no_shift() -> None:
    assert timeshift.delta_to([{"id": "x"}, "not a record"], NOW) == timedelta(0)

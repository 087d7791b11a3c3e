"""Minimal failing examples the fuzz tests found, kept as plain regression tests.

Each one crashed (or leaked, or hung) before its fix; the property tests in this
directory would find them again, but only by chance: these fail deterministically.
"""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_runtime.service import build_service
from agent_runtime.settings import RuntimeSettings
from secops_core.errors import ContractError, ErrorCode
from secops_core.ingest.normalize import normalize_event, parse_request
from secops_core.limits import MAX_EVENT_DEPTH, MAX_FIELD_CHARS, MAX_ID_CHARS, MAX_JSON_DEPTH, MAX_LABELS
from tests.fixtures.runtime_server import rules_app, runtime_server
from worker.ops.inputs import open_input, read_records
from worker.store.keys import sort_time

EVENT = {"timestamp": 1_795_000_000_000, "action": "BLOCK", "source_ip": "192.0.2.1", "uri": "/"}
EVENT_2026 = {**EVENT, "timestamp": "2026-11-25T11:00:00Z"}


@pytest.mark.parametrize("timestamp", [10**400, -(10**400), 3 * 10**308])
def test_an_epoch_timestamp_too_large_for_a_float_is_rejected(timestamp: int) -> None:
    # Valid JSON integers; ``value / 1000`` raised OverflowError outside the try.
    with pytest.raises(ContractError) as caught:
        normalize_event({**EVENT, "timestamp": timestamp})
    assert caught.value.code is ErrorCode.INVALID_EVENT
    assert len(caught.value.message) < 100


def test_event_times_are_normalized_to_utc() -> None:
    # An offset was kept as given, so the monitor compared and the store sorted mixed zones.
    event = normalize_event({**EVENT, "timestamp": "2026-11-25T10:00:00-08:00"})
    assert event.timestamp == datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    assert event.timestamp.utcoffset() == timedelta(0)
    assert sort_time(event.timestamp) == "2026-11-25T18:00:00.000000Z"


@pytest.mark.parametrize("timestamp", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+01:00"])
def test_an_iso_time_without_a_utc_equivalent_is_rejected(timestamp: str) -> None:
    # Accepted before, then ``astimezone(UTC)`` overflowed in the worker's store.
    with pytest.raises(ContractError) as caught:
        normalize_event({**EVENT, "timestamp": timestamp})
    assert caught.value.code is ErrorCode.INVALID_EVENT


def test_a_stored_event_with_a_naive_time_comes_back_in_utc() -> None:
    stored = normalize_event(EVENT).model_dump(mode="json")
    stored["timestamp"] = "2026-11-25T10:00:00"
    event = normalize_event(stored, allow_normalized=True)
    assert event.timestamp == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": "monitor", "hours": Infinity}',
        b'{"action": "monitor", "hours": -Infinity}',
        b'{"action": "monitor", "hours": NaN}',
        b'{"action": "monitor", "hours": 1e400}',
        b'{"action": "monitor", "hours": 1' + b"0" * 400 + b"}",
    ],
)
def test_monitor_hours_that_are_not_finite_are_invalid_hours(body: bytes) -> None:
    # int(inf) raised OverflowError and int(nan) ValueError: a 500 for bad input.
    with pytest.raises(ContractError) as caught:
        parse_request(body)
    assert caught.value.code is ErrorCode.INVALID_HOURS


def test_a_naive_monitor_now_is_taken_as_utc() -> None:
    # Comparing aware event times with a naive 'now' raised TypeError in the monitor: a 500.
    service = build_service(RuntimeSettings(provider="rules"))
    body = service.invoke({"action": "monitor", "now": "2026-11-25T12:00:00", "events": [EVENT_2026]})
    assert body["status"] == "success", body
    assert body["events_in_window"] == 1


@pytest.mark.parametrize(
    "name", ["Cook\x00ie", "Co\u200bokie", "Set-\x1bCookie", "X-Api-Key\x7f", "Cookie\ufeff"]
)
@pytest.mark.parametrize("shape", ["list", "dict"])
def test_a_secret_header_disguised_with_invisible_characters_is_redacted(name: str, shape: str) -> None:
    # The stored name had its controls stripped ("Cookie") while redaction looked at the
    # raw name, so the session cookie was kept next to a header that reads "Cookie".
    headers: Any = (
        [{"name": name, "value": "SECRET-session"}] if shape == "list" else {name: "SECRET-session"}
    )
    event = normalize_event({**EVENT, "headers": headers})
    assert "SECRET-session" not in event.model_dump_json()
    again = normalize_event(
        {**event.model_dump(mode="json"), "headers": [{"name": name, "value": "SECRET-session"}]},
        allow_normalized=True,
    )
    assert "SECRET-session" not in again.model_dump_json()


def test_a_stored_event_sent_back_is_held_to_the_invariants_of_a_fresh_one() -> None:
    # The monitor accepted a forged stored event with a control character in a header
    # name, an empty rule name and any number of labels; a fresh event has none of that.
    stored = normalize_event(EVENT).model_dump(mode="json")
    forged = {
        **stored,
        "headers": [{"name": "\x1fX-Trace", "value": "1"}],
        "rule_name": "",
        "labels": [f"label-{i}" for i in range(MAX_LABELS + 5)],
    }
    event = normalize_event(forged, allow_normalized=True)
    assert [h.name for h in event.headers] == ["X-Trace"]
    assert event.rule_name == "Default_Action"
    assert len(event.labels) == MAX_LABELS
    assert event.truncated


def test_a_stored_event_with_the_longest_id_normalizes_to_itself() -> None:
    # "evt#" + a 512-character id is 516 characters: the whole key was checked against
    # the 512-character id limit, so the monitor rejected the worker's own events.
    event = normalize_event({**EVENT, "id": "a" * MAX_ID_CHARS})
    assert normalize_event(event.model_dump(mode="json"), allow_normalized=True) == event


@pytest.mark.parametrize("label", ["a" * (MAX_ID_CHARS - 1) + " b", "\x00"])
def test_labels_are_cut_so_that_normalizing_twice_changes_nothing(label: str) -> None:
    event = normalize_event({**EVENT, "labels": [{"name": label}]})
    assert normalize_event(event.model_dump(mode="json"), allow_normalized=True) == event


def test_a_stored_event_key_with_control_characters_is_rejected() -> None:
    forged = {**normalize_event(EVENT).model_dump(mode="json"), "event_key": "evt#a\x00b"}
    with pytest.raises(ContractError) as caught:
        normalize_event(forged, allow_normalized=True)
    assert caught.value.code is ErrorCode.INVALID_EVENT


@pytest.mark.parametrize(
    "name",
    ["X-Trace\x80", "X-\x9bTrace", "X-Tr\nace", "X-Tr\tace", "\x85X-Trace", "X-Tr\u2028ace", "X-\u2029Trace"],
)
def test_header_names_lose_every_control_character(name: str) -> None:
    # Tab, CR, LF and the C1 range were kept inside names and labels: a name could forge a
    # line in a log or terminal, and a stored event's names differed from a fresh one's.
    event = normalize_event({**EVENT, "headers": [{"name": name, "value": "1"}], "labels": [name]})
    assert [h.name for h in event.headers] == ["X-Trace"]
    assert event.labels == ("X-Trace",)


def _nested(kind: str, depth: int) -> bytes:
    opening, closing = (b"[", b"]") if kind == "list" else (b'{"a": ', b"}")
    return opening * depth + b"1" + closing * depth


@pytest.mark.parametrize("kind", ["list", "dict"])
@pytest.mark.parametrize("depth", [MAX_EVENT_DEPTH, 600, 900])
def test_deep_nesting_inside_an_event_is_rejected_not_a_recursion_error(kind: str, depth: int) -> None:
    # json.loads accepts ~990 levels; the recursive surrogate scrub then overflowed the
    # stack at ~500, so the runtime answered 500 and the worker's parser crashed. (Bodies
    # that deep are now refused as JSON first; an event built in Python still gets here.)
    deep: Any = 1
    for _ in range(depth):
        deep = [deep] if kind == "list" else {"a": deep}
    with pytest.raises(ContractError) as caught:
        normalize_event({**EVENT, "deep": deep})
    assert caught.value.code is ErrorCode.INVALID_EVENT
    assert "nested deeper" in caught.value.message
    body = b'{"action": "analyze", "event": {"deep": ' + _nested(kind, depth) + b"}}"
    with pytest.raises(ContractError) as caught:
        parse_request(body)
    assert caught.value.code in {ErrorCode.INVALID_EVENT, ErrorCode.INVALID_JSON}


def test_a_real_record_is_well_inside_the_depth_limit() -> None:
    record = {**EVENT, "ruleGroupList": [{"terminatingRule": {"ruleMatchDetails": [{"matchedData": ["x"]}]}}]}
    assert normalize_event(record).event_key.startswith("evt#")


def test_long_keys_over_many_values_do_not_blow_up_memory() -> None:
    # Every value's path repeated its ancestors' keys: a 215 KB body (one 200 000-character
    # key over 5 000 values) built a gigabyte of path strings before anything was rejected.
    body = json.dumps({"action": "analyze", "event": {**EVENT, "K" * 60_000: [0] * 15_000}}).encode()
    tracemalloc.start()
    try:
        normalize_event(json.loads(body)["event"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, f"{peak / 2**20:.0f} MiB"


def test_a_key_longer_than_any_field_is_rejected() -> None:
    with pytest.raises(ContractError) as caught:
        normalize_event({**EVENT, "K" * (MAX_FIELD_CHARS + 1): 1})
    assert caught.value.code is ErrorCode.FIELD_TOO_LARGE
    assert len(caught.value.message) < 400


def test_an_error_message_quoting_input_is_one_bounded_encodable_line() -> None:
    # pydantic's location of an extra field is the attacker's key, verbatim: a line break
    # and a 1000-character key reached the message. Paths quoted by the size check (it
    # runs before the surrogate scrub) may hold lone surrogates, which would fail the
    # JSON answer's UTF-8 encoding.
    stored = normalize_event(EVENT).model_dump(mode="json")
    forged = {**stored, "extra\n\u2028\ud800" + "x" * 1000: 1}
    with pytest.raises(ContractError) as caught:
        normalize_event(forged, allow_normalized=True)
    message = caught.value.message
    assert caught.value.code is ErrorCode.INVALID_EVENT
    assert "\n" not in message
    assert "\u2028" not in message
    message.encode("utf-8")
    assert len(message) <= 300


@pytest.mark.parametrize(
    ("raw", "address"), [("fe80::1%eth0", "fe80::1"), ("fe80::1%<script>\n", "fe80::1"), (" ::1 ", "::1")]
)
def test_an_ipv6_zone_index_does_not_ride_along_as_the_source_ip(raw: str, address: str) -> None:
    # ipaddress accepts any text after '%': it became part of the source IP, and so of
    # pattern keys, FIFO group ids and notification subjects.
    assert normalize_event({**EVENT, "source_ip": raw}).source_ip == address


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_a_json_line_with_a_raw_unicode_line_separator_is_one_record(separator: str) -> None:
    # JSON allows these raw inside strings (json.dumps(..., ensure_ascii=False) writes
    # them), but str.splitlines() split the record there into two broken halves.
    text = (
        json.dumps({**EVENT, "user_agent": f"a{separator}b"}, ensure_ascii=False) + "\n" + json.dumps(EVENT)
    )
    records = list(read_records(io.StringIO(text)))
    assert [(r.line, r.error) for r in records] == [(1, None), (2, None)]
    assert records[0].value["user_agent"] == f"a{separator}b"


def test_a_line_with_an_integer_too_long_for_json_is_an_error_record() -> None:
    # json.loads raises ValueError (not JSONDecodeError) past 4300 digits: it escaped the
    # reader and aborted `secops send` / `secops analyze` on the whole file.
    records = list(read_records(io.StringIO("1" * 5000 + "\n" + json.dumps(EVENT))))
    assert records[0].error is not None
    assert records[0].value is None
    assert records[1].value == EVENT


def test_a_file_that_starts_with_a_byte_order_mark_reads_its_first_record(tmp_path: Path) -> None:
    # Notepad and PowerShell 5 write UTF-8 with a BOM; the first record was "not JSON".
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(EVENT).encode() + b"\n")
    with open_input(str(path)) as stream:
        records = list(read_records(stream))
    assert [(r.value, r.error) for r in records] == [(EVENT, None)]


@pytest.fixture(scope="module")
def runtime_url() -> Iterator[str]:
    with runtime_server(rules_app()) as url:
        yield url


def _with_junk(levels: int) -> bytes:
    """An analyze request whose body nests ``levels + 1`` deep (an ignored extra key)."""
    return (
        b'{"action": "analyze", "event": '
        + json.dumps(EVENT).encode()
        + b', "junk": '
        + _nested("list", levels)
        + b"}"
    )


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH, 500, 950, 960, 970, 980, 990, 2000])
def test_a_body_nested_past_the_limit_is_invalid_json_over_http_and_in_process(
    runtime_url: str, levels: int
) -> None:
    # The guard parsed the body near the bottom of the stack, the SDK parsed it again far
    # deeper: ~970 levels passed the guard and overflowed the SDK's parse, a plain-text 500.
    body = _with_junk(levels)
    response = httpx.post(f"{runtime_url}/invocations", content=body, timeout=10)
    assert response.status_code == 400, response.text[:200]
    assert response.json()["error"]["code"] == "invalid_json"
    service = build_service(RuntimeSettings())
    assert service.invoke(body)["error"]["code"] == "invalid_json"


def test_a_body_nested_to_the_limit_is_served(runtime_url: str) -> None:
    response = httpx.post(f"{runtime_url}/invocations", content=_with_junk(MAX_JSON_DEPTH - 1), timeout=10)
    assert response.status_code == 200, response.text[:200]

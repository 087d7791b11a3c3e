"""Properties of event normalization, payload parsing, redaction and the severity floor.

- ``normalize_event`` returns a valid ``WafEvent`` or raises ``ContractError`` with an
  input error code: never anything else, for any JSON value.
- A normalized event round-trips through JSON, has a deterministic ``evt#`` key, and
  carries no value of a secret header (or secret query parameter) anywhere.
- ``severity_floor`` is total: 0-5 with a class and a reason for *every* ``WafEvent``,
  including ones built directly, bypassing normalization.
- ``parse_request`` / ``decode_payload`` likewise accept or reject with a ``ContractError``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import event, example, given
from hypothesis import strategies as st

from agent_runtime.prompt_safety import FENCE_NAME, build_analysis_prompt
from secops_core.contract import (
    AnalyzeRequest,
    MonitorRequest,
    SeverityFloorInfo,
    TriageOnlyRequest,
    WafEvent,
)
from secops_core.errors import ContractError
from secops_core.ingest.normalize import decode_payload, normalize_event, parse_request
from secops_core.waf.floor import severity_floor
from tests.fuzz import strategies as s
from tests.fuzz.properties import assert_contract_error, assert_valid_event, production_recursion_limit


def normalize_or_reject(raw: Any, **kwargs: Any) -> WafEvent | None:
    """The normalized event, or None after checking the rejection is a documented one."""
    try:
        with production_recursion_limit():
            result = normalize_event(raw, **kwargs)
    except ContractError as exc:
        assert_contract_error(exc)
        event(f"rejected: {exc.code}")
        return None
    event("normalized")
    assert_valid_event(result)
    return result


# ---- normalize_event -------------------------------------------------------------------------


@s.fuzz_settings(120)
@given(raw=s.events)
def test_normalize_event_returns_a_valid_event_or_a_contract_error(raw: Any) -> None:
    normalize_or_reject(raw)
    normalize_or_reject(raw, allow_normalized=True)


@s.fuzz_settings(80)
@given(raw=s.valid_events)
def test_a_normalized_event_round_trips_and_its_key_is_deterministic(raw: dict[str, Any]) -> None:
    first = normalize_or_reject(raw)
    if first is None:
        return
    again = normalize_event(raw)
    assert again == first
    assert again.event_key == first.event_key
    # The same record with its keys in another order is the same record.
    reordered = dict(reversed(list(raw.items())))
    assert normalize_event(reordered).event_key == first.event_key
    # The event as the worker stores and sends it back (monitor) normalizes to itself.
    assert normalize_event(json.loads(first.model_dump_json()), allow_normalized=True) == first


@s.fuzz_settings(30)
@given(raw=s.json_values.map(json.dumps))
def test_normalize_event_accepts_json_text_too(raw: str) -> None:
    normalize_or_reject(raw)


# ---- redaction -------------------------------------------------------------------------------

secret_tokens = st.text(alphabet="0123456789abcdef", min_size=16, max_size=16).map(lambda h: f"SECRET{h}")
SECRET_QUERY_NAMES = [
    "token",
    "access_token",
    "api_key",
    "apikey",
    "password",
    "session",
    "AUTH",
    "sig",
    "jwt",
]


def _with_header(record: dict[str, Any], name: str, value: str, position: int) -> dict[str, Any]:
    """``record`` with one more header, in whichever shape the record uses for headers."""
    request = record.get("httpRequest")
    holder = request if isinstance(request, dict) else record
    headers = holder.get("headers")
    if isinstance(headers, dict):
        headers = {**headers, name: value}
    else:
        headers = list(headers) if isinstance(headers, list) else []
        headers.insert(position % (len(headers) + 1), {"name": name, "value": value})
    if holder is record:
        return {**record, "headers": headers}
    return {**record, "httpRequest": {**holder, "headers": headers}}


@s.fuzz_settings(80)
@given(
    raw=s.valid_events,
    secrets=st.lists(
        st.tuples(st.sampled_from(s.SECRET_HEADER_NAMES), secret_tokens, st.integers(0, 10)),
        min_size=1,
        max_size=3,
    ),
)
@example(
    raw={"timestamp": 1_795_000_000_000, "action": "BLOCK", "source_ip": "192.0.2.1", "uri": "/"},
    secrets=[("Cook\x00ie", "SECRET0123456789abcdef", 0)],
)
def test_no_secret_header_value_survives_normalization(
    raw: dict[str, Any], secrets: list[tuple[str, str, int]]
) -> None:
    record = raw
    for name, value, position in secrets:
        record = _with_header(record, name, value, position)
    for allow_normalized in (False, True):
        normalized = normalize_or_reject(record, allow_normalized=allow_normalized)
        if normalized is None:
            continue
        dumped = normalized.model_dump_json()
        for _, value, _ in secrets:
            assert value not in dumped
        # Sent back as a stored event (monitor), forged or not, it is redacted again.
        again = normalize_or_reject(json.loads(dumped), allow_normalized=True)
        assert again is not None


@s.fuzz_settings(50)
@given(
    raw=s.valid_events,
    before=st.lists(st.tuples(s.short_text, s.short_text), max_size=3),
    name=st.sampled_from(SECRET_QUERY_NAMES),
    secret=secret_tokens,
    after=st.lists(st.tuples(s.short_text, s.short_text), max_size=3),
)
def test_no_secret_query_parameter_value_survives_normalization(
    raw: dict[str, Any],
    before: list[tuple[str, str]],
    name: str,
    secret: str,
    after: list[tuple[str, str]],
) -> None:
    pairs = [*before, (name, secret), *after]
    args = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)
    request = raw.get("httpRequest")
    if isinstance(request, dict):
        record = {**raw, "httpRequest": {**request, "args": args}}
    else:
        record = {**raw, "args": args}
    normalized = normalize_or_reject(record)
    if normalized is not None:
        assert secret not in normalized.model_dump_json()


# ---- severity floor --------------------------------------------------------------------------


def assert_floor(waf_event: WafEvent) -> SeverityFloorInfo:
    with production_recursion_limit():
        floor = severity_floor(waf_event)
    assert isinstance(floor, SeverityFloorInfo)
    assert 0 <= floor.severity <= 5
    assert floor.attack_class.strip()
    assert floor.reason.strip()
    assert floor.rule
    # Every decision says what decided it, with the same class, for the stored record.
    assert floor.floor_reason is not None
    assert floor.floor_reason.attack_class == floor.attack_class
    assert floor.floor_reason.matched.strip()
    assert severity_floor(waf_event) == floor, "the floor is not deterministic"
    event(f"floor {floor.severity}")
    return floor


@s.fuzz_settings(120)
@given(waf_event=s.waf_events)
def test_the_floor_is_total_over_directly_built_events(waf_event: WafEvent) -> None:
    assert_floor(waf_event)


@s.fuzz_settings(50)
@given(raw=s.valid_events)
def test_the_floor_is_total_over_normalized_events(raw: dict[str, Any]) -> None:
    normalized = normalize_or_reject(raw)
    if normalized is not None:
        floor = assert_floor(normalized)
        # What the analyst would be told: one fence pair, whatever the data says.
        prompt = build_analysis_prompt(normalized, floor)
        prompt.encode("utf-8")
        assert prompt.upper().count(FENCE_NAME) == 2


# ---- payloads --------------------------------------------------------------------------------


def parse_or_reject(raw: Any, **kwargs: Any) -> Any:
    try:
        with production_recursion_limit():
            request = parse_request(raw, **kwargs)
    except ContractError as exc:
        assert_contract_error(exc)
        event(f"rejected: {exc.code}")
        return None
    event(f"accepted: {request.action}")
    assert isinstance(request, AnalyzeRequest | TriageOnlyRequest | MonitorRequest)
    if isinstance(request, MonitorRequest):
        for item in request.events:
            assert_valid_event(item)
        if request.now is not None:
            assert request.now.tzinfo is not None, "a naive 'now' cannot be compared with events"
    else:
        assert_valid_event(request.event)
        assert_floor(request.event)
    return request


@s.fuzz_settings(100)
@given(payload=s.payloads)
@example(payload={"action": "monitor", "hours": float("inf")})
@example(payload={"action": "monitor", "hours": float("nan")})
@example(payload={"action": "monitor", "now": "2026-11-25T12:00:00"})
def test_parse_request_accepts_or_rejects_with_a_contract_error(payload: Any) -> None:
    parse_or_reject(payload)
    parse_or_reject(payload, allow_normalized=False)


@s.fuzz_settings(80)
@given(body=s.raw_bodies)
def test_parse_request_over_raw_bodies(body: bytes) -> None:
    parse_or_reject(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return
    parse_or_reject(text)


@s.fuzz_settings(50)
@given(raw=st.one_of(s.payloads, s.payloads.map(json.dumps), st.binary(max_size=50)))
def test_decode_payload_returns_an_object_or_a_contract_error(raw: Any) -> None:
    try:
        with production_recursion_limit():
            payload = decode_payload(raw)
    except ContractError as exc:
        assert_contract_error(exc)
        return
    assert isinstance(payload, dict)


# ---- documented record shapes ------------------------------------------------------------------

_SOURCES = ("ALB", "APIGW", "CF", "APPSYNC", "COGNITOIDP", "APPRUNNER", "VERIFIED_ACCESS", "AMPLIFY", "-")


@s.fuzz_settings(60)
@given(
    uri=st.sampled_from(["", "/", "/a/b"]) | st.none(),
    source=st.sampled_from(_SOURCES),
    optional=st.dictionaries(
        st.sampled_from(["ja3Fingerprint", "ja4Fingerprint", "oversizeFields", "requestBodySize", "labels"]),
        st.sampled_from(["abc", ["REQUEST_BODY"], 1024, [], None]),
    ),
    fragment=st.sampled_from(["", "#top"]) | st.none(),
)
def test_every_documented_waf_log_shape_is_accepted(
    uri: str | None, source: str, optional: dict[str, Any], fragment: str | None
) -> None:
    # GIVEN a native record with an empty or missing uri, any httpSourceName and any of
    # the optional fields AWS documents
    request: dict[str, Any] = {"clientIp": "198.51.100.4"}
    if uri is not None:
        request["uri"] = uri
    if fragment is not None:
        request["fragment"] = fragment
    raw = {
        "timestamp": 1_795_000_000_000,
        "action": "BLOCK",
        "httpSourceName": source,
        "httpRequest": request,
    }
    raw.update({k: v for k, v in optional.items() if k != "labels" or isinstance(v, list)})
    # WHEN normalized THEN it is accepted (never dead-lettered) and graded
    normalized = normalize_event(raw)
    assert normalized.uri == (uri or "")
    assert_floor(normalized)

"""The runtime app over real HTTP: the three actions, the wrapped form, /ping, bad input.

Every bad input must come back in the contract's error shape with its stable code and
a 4xx status: never a 500, never a traceback, and the same code the in-process service
gives for the same bytes (so switching transports cannot change a classification).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agent_runtime.service import AgentService, build_service
from agent_runtime.settings import RuntimeSettings
from secops_core.contract import (
    AnalyzeResponse,
    ErrorResponse,
    MonitorResponse,
    TriageOnlyResponse,
)
from tests.fixtures.agent_samples import (
    MONITOR_NOW,
    probe_series,
    simplified_event,
    simplified_waf_event,
    waf_log_record,
)
from tests.fixtures.runtime_server import rules_app, runtime_server
from worker.agents import SESSION_HEADER, session_id_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runtime_url() -> Iterator[str]:
    with runtime_server(rules_app()) as url:
        yield url


@pytest.fixture
def http(runtime_url: str) -> Iterator[httpx.Client]:
    # A client per test: a request that crashes the app makes uvicorn drop the
    # connection, and a pooled one shared across tests would fail the next test.
    with httpx.Client(base_url=runtime_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def service() -> AgentService:
    return build_service(RuntimeSettings(provider="rules"))


def post(http: httpx.Client, body: bytes, **headers: str) -> httpx.Response:
    return http.post("/invocations", content=body, headers={"Content-Type": "application/json", **headers})


def as_json(payload: Any) -> bytes:
    return json.dumps(payload).encode("utf-8")


# ---- the three actions ---------------------------------------------------------------


def test_analyze_a_simplified_event(http: httpx.Client) -> None:
    response = post(
        http,
        as_json({"action": "analyze", "event": simplified_event()}),
        **{SESSION_HEADER: session_id_for("evt#evt-1001")},
    )
    assert response.status_code == 200
    result = AnalyzeResponse.model_validate(response.json())
    assert result.event_key == "evt#evt-1001"
    assert result.event.source_format == "simplified"
    assert result.analysis.severity_floor == 3
    assert result.triage.status == "monitoring"


def test_analyze_a_native_waf_log_record(http: httpx.Client) -> None:
    response = post(http, as_json({"action": "analyze", "event": waf_log_record()}))
    assert response.status_code == 200
    result = AnalyzeResponse.model_validate(response.json())
    assert result.event.source_format == "waf_log"
    assert result.event.source_ip == "203.0.113.77"
    assert result.event.rule_name == "SQLi_QUERYARGUMENTS"
    assert result.event.rule_group == "AWSManagedRulesSQLiRuleSet"
    assert "awswaf:managed:aws:sql-database:SQLi_QueryArguments" in result.event.labels
    # The session cookie never comes back (nor reaches a model or the store).
    cookie = next(h for h in result.event.headers if h.name.lower() == "cookie")
    assert "8f14e45f" not in cookie.value
    assert "8f14e45f" not in response.text


def test_triage_only(http: httpx.Client) -> None:
    payload = {
        "action": "triage_only",
        "event": simplified_event(),
        "analysis": {"severity_rating": 5, "security_analysis": "confirmed injection"},
    }
    response = post(http, as_json(payload))
    assert response.status_code == 200
    result = TriageOnlyResponse.model_validate(response.json())
    assert result.triage.action == "escalate"
    assert result.analysis.severity_rating == 5


def test_monitor(http: httpx.Client) -> None:
    events = [e.model_dump(mode="json") for e in probe_series(6)]
    payload = {
        "action": "monitor",
        "hours": 24,
        "threshold": 5,
        "events": [*events, waf_log_record()],
        "now": MONITOR_NOW.isoformat(),
    }
    response = post(http, as_json(payload))
    assert response.status_code == 200
    result = MonitorResponse.model_validate(response.json())
    assert result.events_considered == 7
    top = result.patterns[0]
    assert (top.source_ip, top.count, top.threshold_met) == ("198.51.100.23", 6, True)


@pytest.mark.parametrize(
    "request_body",
    [
        {"action": "analyze", "event": simplified_event()},
        {"action": "triage_only", "event": waf_log_record(), "analysis": {"severity_rating": 2}},
        {"action": "monitor", "hours": 1, "events": [simplified_event()]},
    ],
    ids=["analyze", "triage_only", "monitor"],
)
def test_wrapped_prompt_form(http: httpx.Client, request_body: dict[str, Any]) -> None:
    # The original agent was invoked as {"prompt": "<the request as a JSON string>"}.
    response = post(http, as_json({"prompt": json.dumps(request_body)}))
    assert response.status_code == 200
    assert response.json()["status"] == "success"
    assert response.json()["workflow"] == request_body["action"]


def test_ping_is_healthy(http: httpx.Client) -> None:
    response = http.get("/ping")
    assert response.status_code == 200
    assert response.json()["status"] == "Healthy"


# ---- bad input -----------------------------------------------------------------------

EVENT = simplified_event()


def deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


BAD_INPUTS = [
    ("not_json", b"{this is not json", 400, "invalid_json"),
    ("empty_body", b"", 400, "invalid_json"),
    ("json_array", b'[{"action": "analyze"}]', 400, "invalid_payload"),
    ("json_null", b"null", 400, "invalid_payload"),
    ("json_number", b"42", 400, "invalid_payload"),
    ("unknown_action", as_json({"action": "delete_all", "event": EVENT}), 400, "unknown_action"),
    ("missing_action", as_json({"event": EVENT}), 400, "unknown_action"),
    ("action_not_string", as_json({"action": ["analyze"]}), 400, "unknown_action"),
    ("missing_event", as_json({"action": "analyze"}), 400, "missing_event"),
    ("event_not_object", as_json({"action": "analyze", "event": [EVENT]}), 422, "invalid_event"),
    (
        "source_ip_wrong_type",
        as_json({"action": "analyze", "event": {**EVENT, "source_ip": 3325256727}}),
        422,
        "invalid_event",
    ),
    (
        "uri_wrong_type",
        as_json({"action": "analyze", "event": {**EVENT, "uri": {"path": "/"}}}),
        422,
        "invalid_event",
    ),
    (
        "headers_wrong_type",
        as_json({"action": "analyze", "event": {**EVENT, "headers": "Host: x"}}),
        422,
        "invalid_event",
    ),
    (
        "invalid_ip",
        as_json({"action": "analyze", "event": {**EVENT, "source_ip": "198.51.100.300"}}),
        422,
        "invalid_event",
    ),
    (
        "bad_timestamp",
        as_json({"action": "analyze", "event": {**EVENT, "timestamp": "yesterday at noon"}}),
        422,
        "invalid_event",
    ),
    (
        "timestamp_nan",
        b'{"action": "analyze", "event": {"id": "e", "timestamp": NaN, "action": "BLOCK",'
        b' "source_ip": "192.0.2.1", "uri": "/"}}',
        422,
        "invalid_event",
    ),
    (
        "unknown_waf_action",
        as_json({"action": "analyze", "event": {**EVENT, "action": "EXPLODE"}}),
        422,
        "invalid_event",
    ),
    (
        "waf_log_without_client_ip",
        as_json(
            {
                "action": "analyze",
                "event": waf_log_record(httpRequest={"uri": "/", "httpMethod": "GET"}),
            }
        ),
        422,
        "invalid_event",
    ),
    (
        "oversize_field_70kb_uri",
        as_json({"action": "analyze", "event": {**EVENT, "uri": "/search?q=" + "A" * 70_000}}),
        413,
        "field_too_large",
    ),
    (
        "oversize_body_over_1mib",
        as_json({"action": "analyze", "event": {**EVENT, "padding": "x" * (1024 * 1024 + 1)}}),
        413,
        "payload_too_large",
    ),
    ("triage_without_analysis", as_json({"action": "triage_only", "event": EVENT}), 422, "invalid_analysis"),
    (
        "analysis_severity_9",
        as_json({"action": "triage_only", "event": EVENT, "analysis": {"severity_rating": 9}}),
        422,
        "invalid_analysis",
    ),
    ("monitor_hours_0", as_json({"action": "monitor", "hours": 0}), 422, "invalid_hours"),
    ("monitor_hours_10000", as_json({"action": "monitor", "hours": 10000}), 422, "invalid_hours"),
    ("monitor_hours_fraction", as_json({"action": "monitor", "hours": 1.5}), 422, "invalid_hours"),
    (
        "monitor_events_not_list",
        as_json({"action": "monitor", "events": {"0": EVENT}}),
        400,
        "invalid_payload",
    ),
    (
        "monitor_one_bad_event",
        as_json({"action": "monitor", "events": [EVENT, {**EVENT, "source_ip": "nope"}]}),
        422,
        "invalid_event",
    ),
    (
        "monitor_too_many_events",
        as_json({"action": "monitor", "events": [{}] * 5001}),
        413,
        "too_many_events",
    ),
    ("nested_100000_levels", deep(100_000), 400, "invalid_json"),
    ("invalid_utf8", b'{"action": "analyze", "event": {"uri": "/\xff\xfe"}}', 400, "invalid_json"),
    ("prompt_not_json", as_json({"prompt": "analyze this please"}), 400, "invalid_json"),
    ("prompt_holds_array", as_json({"prompt": "[1, 2]"}), 400, "invalid_payload"),
    pytest.param(
        "json_string",
        b'"analyze this event"',
        400,
        "invalid_payload",
    ),
    pytest.param(
        "integer_over_4300_digits",
        b'{"action": "monitor", "hours": 1' + b"0" * 5000 + b"}",
        400,
        "invalid_json",
    ),
    pytest.param(
        "monitor_now_at_datetime_min",
        as_json({"action": "monitor", "now": "0001-01-01T00:00:00Z", "events": [EVENT]}),
        400,
        "invalid_payload",
    ),
]


@pytest.mark.parametrize(
    ("name", "body", "status", "code"),
    BAD_INPUTS,
    ids=[str(getattr(case, "values", case)[0]) for case in BAD_INPUTS],
)
def test_bad_input_gets_its_stable_code(
    http: httpx.Client, service: AgentService, name: str, body: bytes, status: int, code: str
) -> None:
    # WHEN the bad body is posted
    response = post(http, body)
    # THEN it is a 4xx in the contract's error shape, with the stable code
    assert response.status_code != 500, response.text[:300]
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    assert response.headers["content-type"].startswith("application/json")
    error = ErrorResponse.model_validate(response.json()).error
    assert (response.status_code, error.code) == (status, code), error.message
    assert error.retryable is False
    # AND the in-process service classifies the same bytes the same way
    assert service.invoke(body)["error"]["code"] == code


def test_lone_surrogate_in_a_field_is_not_a_500(http: httpx.Client) -> None:
    body = b'{"action": "analyze", "event": {"id": "e-sur", "timestamp": "2026-11-25T10:00:00Z",'
    body += b' "action": "BLOCK", "source_ip": "192.0.2.1", "uri": "/\\ud800"}}'
    response = post(http, body)
    assert response.status_code in {200, 422}
    assert response.json()["status"] in {"success", "error"}


def test_pre_normalized_shape_is_still_validated_and_redacted(http: httpx.Client) -> None:
    forged = {
        **simplified_waf_event().model_dump(mode="json"),
        "source_ip": "not-an-ip",
        "headers": [{"name": "Authorization", "value": "Bearer eyJhbGciOiJIUzI1NiJ9.secret"}],
    }
    response = post(http, as_json({"action": "analyze", "event": forged}))
    assert "eyJhbGciOiJIUzI1NiJ9" not in response.text
    assert response.json()["error"]["code"] == "invalid_event"

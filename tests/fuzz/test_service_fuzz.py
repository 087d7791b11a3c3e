"""Properties of ``AgentService.invoke`` with the rules provider, the embedded default.

Whatever the payload (an object, JSON text, raw bytes), the answer is a dict that is one
of the contract's responses or an ``ErrorResponse`` with an input error code, it encodes
as UTF-8 JSON (no lone surrogate survives), and a success never rates below the floor.
The rules provider cannot fail, so ``internal_error`` always means a bug.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from agent_runtime.app import _json_problem
from agent_runtime.service import AgentService, build_service
from agent_runtime.settings import RuntimeSettings
from secops_core.contract import AnalyzeResponse, MonitorResponse, TriageOnlyResponse
from secops_core.errors import ErrorCode
from secops_core.limits import MAX_PAYLOAD_BYTES
from secops_core.triage import triage
from secops_core.waf.floor import severity_floor
from tests.fuzz import strategies as s
from tests.fuzz.properties import assert_response, production_recursion_limit


@pytest.fixture(scope="module")
def service() -> AgentService:
    return build_service(RuntimeSettings())


def invoke(service: AgentService, payload: Any, *, parsed: bool = False) -> tuple[Any, int]:
    with capture_logs() as logs, production_recursion_limit():
        body, status = service.invoke_with_status(payload, parsed=parsed)
    crashes = [entry for entry in logs if entry["event"] == "request_crashed"]
    assert not crashes, "the service caught an exception: a bug, not bad input"
    response = assert_response(body)
    event(f"{body['status']}: {body.get('workflow') or body['error']['code']}")
    assert (status == 200) == (body["status"] == "success")
    return response, status


def check_success(response: Any, payload: Any) -> None:
    if isinstance(response, AnalyzeResponse):
        analysis = response.analysis
        assert analysis.severity_rating >= analysis.severity_floor
        # The floor travels with the event it was computed from.
        assert severity_floor(response.event).severity == analysis.severity_floor
        assert response.triage == triage(analysis.severity_rating)
        assert response.event_key == response.event.event_key
    elif isinstance(response, TriageOnlyResponse):
        analysis = response.analysis
        assert analysis.model_severity is not None
        assert analysis.severity_rating == max(analysis.severity_floor, analysis.model_severity)
        assert response.triage == triage(analysis.severity_rating)
    elif isinstance(response, MonitorResponse):
        assert sum(p.count for p in response.patterns) == response.events_in_window
        assert response.events_in_window <= response.events_considered
        for pattern in response.patterns:
            assert pattern.threshold_met == (pattern.count >= pattern.threshold)
            assert pattern.first_seen <= pattern.last_seen


@s.fuzz_settings(100)
@given(payload=s.payloads)
@example(payload={"action": "monitor", "hours": float("inf")})
@example(payload={"action": "monitor", "now": "2026-11-25T12:00:00", "events": [s.EXAMPLE_EVENT]})
@example(payload={"action": "analyze", "event": {**s.EXAMPLE_EVENT, "uri": "/\ud800", "\udfff": "\ud800"}})
def test_invoke_answers_every_payload_in_the_contract_shape(service: AgentService, payload: Any) -> None:
    response, _ = invoke(service, payload)
    check_success(response, payload)


@s.fuzz_settings(60)
@given(payload=s.payloads, ascii_only=st.booleans())
def test_invoke_answers_json_bytes_as_the_http_app_does(
    service: AgentService, payload: Any, ascii_only: bool
) -> None:
    body = s.encode(payload, ascii_only=ascii_only)
    by_bytes, status = invoke(service, body)
    check_success(by_bytes, payload)
    # Over HTTP the app's guard answers oversize and unparsable bodies itself, and hands
    # the service what it parsed: both paths must classify the same bytes the same way.
    if len(body) > MAX_PAYLOAD_BYTES:
        assert status == 413
        return
    with production_recursion_limit():
        problem = _json_problem(body)
    if problem is not None:
        assert by_bytes.error.code == ErrorCode.INVALID_JSON, (problem, by_bytes.error)
        return
    parsed = json.loads(body.decode("utf-8"))
    by_object, parsed_status = invoke(service, parsed, parsed=True)
    assert parsed_status == status
    if status != 200:
        assert by_object.error.code == by_bytes.error.code


@s.fuzz_settings(60)
@given(body=s.raw_bodies)
@example(body=s.nested_body(600, "dict"))
@example(body=s.nested_body(900, "list"))
@example(body=b'{"action": "monitor", "hours": NaN}')
def test_invoke_answers_raw_bodies(service: AgentService, body: bytes) -> None:
    response, _ = invoke(service, body)
    check_success(response, body)

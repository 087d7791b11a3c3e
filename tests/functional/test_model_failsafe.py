"""The runtime fails safe against misbehaving model endpoints, over real HTTP.

One test per misbehaviour of issue 10, for an OpenAI-compatible endpoint and for the
Bedrock Converse wire: the runtime's answer to a valid event is always ``success`` with a
severity at or above the floor, a ``degraded_reason`` when the model did not decide, and
never more model requests than the budget (docs/architecture.md, "Model fail-safe").
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from agent_runtime.analyst import SecurityAnalyst
from agent_runtime.providers import ProviderConfig
from agent_runtime.service import AgentService
from secops_core.contract import OUTAGE_REASONS
from testkit.events import waf_record
from tests.fixtures.scripted_http import Reply
from tests.functional.test_bedrock_wire import ConverseServer, converse_response, json_reply
from tests.functional.test_openai_wire import (
    ANSWER,
    ChatCompletionsServer,
    error_reply,
    text_reply,
    tool_call_reply,
)

BUDGET = 3
# A counted SQL injection reached the application: floor 4, escalated.
FLOOR = 4
# Short enough that a stalled endpoint costs the test a second, not ten.
READ_TIMEOUT_S = 0.3
STALL_S = 10.0
TWO_MB = 2 * 1024 * 1024


def raw_reply(status: int, content_type: str, data: bytes) -> Reply:
    def reply(handler: BaseHTTPRequestHandler, _body: dict[str, Any]) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return reply


def stall_reply(released: threading.Event) -> Reply:
    """Answer nothing for STALL_S (or until the test ends), then a 500."""

    def reply(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        released.wait(STALL_S)
        # The client gave up long ago.
        with contextlib.suppress(OSError):
            error_reply(500, "too_late")(handler, body)

    return reply


def openai_bad_json_args(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "SecurityAssessment", "arguments": "{not json"},
    }
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    payload = {
        "id": "chatcmpl-3",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
    }
    raw_reply(200, "application/json", json.dumps(payload).encode())(handler, body)


def converse_text(text: str) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 900, "outputTokens": 5, "totalTokens": 905},
        "metrics": {"latencyMs": 300},
    }


HTML = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"

# name -> (replies for the OpenAI endpoint, replies for Bedrock, expected degraded_reason,
# expected model severity when the model decided)
Script = Callable[[threading.Event], list[Reply]]


def forever(reply: Reply) -> Script:
    # More replies than the budget: a runtime over budget would show up in the count.
    return lambda _released: [reply] * (BUDGET + 2)


def stalled(_released: threading.Event) -> list[Reply]:
    return [stall_reply(_released)] * (BUDGET + 2)


OPENAI_CASES: dict[str, tuple[Script, str | None, int | None]] = {
    "free-text": (
        forever(text_reply("This is clearly benign, no tool needed.")),
        "model_output_invalid",
        None,
    ),
    "bad-json-args": (forever(openai_bad_json_args), "model_output_invalid", None),
    "severity-9": (forever(tool_call_reply({**ANSWER, "severity_rating": 9})), None, 5),
    "severity-minus-1": (forever(tool_call_reply({**ANSWER, "severity_rating": -1})), None, 0),
    "severity-high": (
        forever(tool_call_reply({**ANSWER, "severity_rating": "high"})),
        "model_output_invalid",
        None,
    ),
    "2mb-answer": (forever(text_reply("benign " * (TWO_MB // 7))), "model_output_invalid", None),
    "html-200": (forever(raw_reply(200, "text/html", HTML)), "model_output_invalid", None),
    "not-json-200": (
        forever(raw_reply(200, "application/json", b"{truncated")),
        "model_output_invalid",
        None,
    ),
    "10s-stall": (stalled, "model_timeout", None),
    "429-forever": (forever(error_reply(429, "rate_limit_exceeded")), "model_throttled", None),
    "500-forever": (forever(error_reply(500, "internal_error")), "model_error", None),
    "429-then-ok": (
        lambda _r: [
            error_reply(429, "rate_limit_exceeded"),
            tool_call_reply({**ANSWER, "severity_rating": 5}),
        ],
        None,
        5,
    ),
    "500-then-ok": (
        lambda _r: [error_reply(500, "internal_error"), tool_call_reply({**ANSWER, "severity_rating": 5})],
        None,
        5,
    ),
}

BEDROCK_THROTTLE = json_reply(
    429,
    {"message": "Too many tokens, please wait before trying again."},
    {"x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/"},
)
BEDROCK_500 = json_reply(500, {"message": "internal"}, {"x-amzn-ErrorType": "InternalServerException"})
BEDROCK_CASES: dict[str, tuple[Script, str | None, int | None]] = {
    "free-text": (
        forever(json_reply(200, converse_text("Benign, no tool needed."))),
        "model_output_invalid",
        None,
    ),
    "severity-9": (forever(json_reply(200, converse_response({**ANSWER, "severity_rating": 9}))), None, 5),
    "severity-minus-1": (
        forever(json_reply(200, converse_response({**ANSWER, "severity_rating": -1}))),
        None,
        0,
    ),
    "severity-high": (
        forever(json_reply(200, converse_response({**ANSWER, "severity_rating": "high"}))),
        "model_output_invalid",
        None,
    ),
    "2mb-answer": (
        forever(json_reply(200, converse_text("benign " * (TWO_MB // 7)))),
        "model_output_invalid",
        None,
    ),
    "html-200": (forever(raw_reply(200, "text/html", HTML)), "model_output_invalid", None),
    "10s-stall": (stalled, "model_timeout", None),
    "429-forever": (forever(BEDROCK_THROTTLE), "model_throttled", None),
    "500-forever": (forever(BEDROCK_500), "model_error", None),
    "429-then-ok": (
        lambda _r: [BEDROCK_THROTTLE, json_reply(200, converse_response({**ANSWER, "severity_rating": 5}))],
        None,
        5,
    ),
    "500-then-ok": (
        lambda _r: [BEDROCK_500, json_reply(200, converse_response({**ANSWER, "severity_rating": 5}))],
        None,
        5,
    ),
}


@pytest.fixture
def released() -> Iterator[threading.Event]:
    """Set at teardown so a stalled reply stops waiting."""
    event = threading.Event()
    yield event
    event.set()


@pytest.fixture
def dummy_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def run_analyze(config: ProviderConfig, request: dict[str, Any] | None = None) -> dict[str, Any]:
    service = AgentService(SecurityAnalyst.from_config(config, retry_base_s=0))
    return service.invoke(request or {"action": "analyze", "event": waf_record(counted=True)})


def assert_fail_safe(
    body: dict[str, Any], requests: int, reason: str | None, model_severity: int | None
) -> None:
    # THEN the answer is a success at or above the floor, never an error
    assert body["status"] == "success", body
    analysis = body["analysis"]
    assert analysis["severity_floor"] == FLOOR
    assert analysis["severity_rating"] >= FLOOR
    assert body["triage"]["action"] == "escalate"
    # AND the reason says why the model did not decide (None when it did)
    assert analysis["degraded_reason"] == reason
    assert analysis["degraded"] is (reason is not None)
    if reason is not None:
        assert analysis["analyzed_by"] == "rules"
        assert analysis["model_written"] is False
    else:
        assert analysis["model_severity"] == model_severity
        assert analysis["model_overruled"] is (model_severity is not None and model_severity < FLOOR)
    # AND every request the endpoint saw is counted, within the budget
    assert analysis["model_calls"] == requests
    assert 1 <= requests <= BUDGET


@pytest.mark.parametrize("case", list(OPENAI_CASES))
def test_openai_endpoint_misbehaviour_fails_safe(case: str, released: threading.Event) -> None:
    # GIVEN an OpenAI-compatible endpoint that misbehaves this way
    script, reason, model_severity = OPENAI_CASES[case]
    with ChatCompletionsServer() as server:
        server.replies += script(released)
        config = ProviderConfig(
            provider="openai",
            model_id="llama3.1:8b",
            base_url=server.base_url,
            call_budget=BUDGET,
            read_timeout=READ_TIMEOUT_S,
        )

        # WHEN the runtime analyzes a valid event with a floor of 4
        body = run_analyze(config)
        requests = len(server.received)

    assert_fail_safe(body, requests, reason, model_severity)


@pytest.mark.usefixtures("dummy_aws_credentials")
@pytest.mark.parametrize("case", list(BEDROCK_CASES))
def test_bedrock_endpoint_misbehaviour_fails_safe(case: str, released: threading.Event) -> None:
    # GIVEN a Bedrock Converse endpoint that misbehaves this way
    script, reason, model_severity = BEDROCK_CASES[case]
    with ConverseServer() as server:
        server.replies += script(released)
        config = ProviderConfig(
            provider="bedrock",
            region="us-east-1",
            base_url=server.url,
            call_budget=BUDGET,
            read_timeout=READ_TIMEOUT_S,
        )

        # WHEN the runtime analyzes a valid event with a floor of 4
        body = run_analyze(config)
        requests = len(server.received)

    assert_fail_safe(body, requests, reason, model_severity)


def test_outages_are_told_apart_from_unusable_answers() -> None:
    # The worker waits (circuit open) only for these; an unusable answer is final.
    assert frozenset({"model_timeout", "model_throttled", "model_error"}) == OUTAGE_REASONS


def test_the_request_budget_bounds_the_calls(released: threading.Event) -> None:
    # GIVEN an endpoint that throttles forever and a worker that has one call left
    with ChatCompletionsServer() as server:
        server.replies += forever(error_reply(429, "rate_limit_exceeded"))(released)
        config = ProviderConfig(provider="openai", model_id="m", base_url=server.base_url, call_budget=BUDGET)

        # WHEN the worker passes model_budget 1, then 0
        one = run_analyze(config, {"action": "analyze", "event": waf_record(counted=True), "model_budget": 1})
        none = run_analyze(
            config, {"action": "analyze", "event": waf_record(counted=True), "model_budget": 0}
        )
        requests = len(server.received)

    # THEN one request was made in all, and budget 0 is the floor without a call
    assert requests == 1
    assert one["analysis"]["model_calls"] == 1
    assert one["analysis"]["degraded_reason"] == "model_throttled"
    assert none["analysis"]["model_calls"] == 0
    assert none["analysis"]["degraded_reason"] == "model_budget_spent"
    assert none["analysis"]["severity_rating"] == FLOOR

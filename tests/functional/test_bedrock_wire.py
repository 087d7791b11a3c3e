"""The Bedrock provider up to the wire: the real BedrockModel and boto3 client.

Two interception points: botocore's ``Stubber`` on the model's ``bedrock-runtime`` client
(request shape as botocore validates it, injected service errors), and a tiny Converse
server on 127.0.0.1 that receives the signed HTTP request itself, for both ``Converse``
and ``ConverseStream`` (AWS event-stream framing).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

import pytest
from botocore.stub import Stubber

from agent_runtime.analyst import SecurityAnalyst
from agent_runtime.prompt_safety import FENCE_CLOSE, FENCE_OPEN, SYSTEM_PROMPT
from agent_runtime.providers import ProviderConfig, build_model
from secops_core.contract import Header, RuleMatch, SeverityFloorInfo, WafEvent
from tests.fixtures.scripted_http import Reply, ScriptedHTTPServer

MODEL_ID = "amazon.nova-lite-v1:0"

EVENT = WafEvent(
    event_key="evt#wire-1",
    source_format="waf_log",
    timestamp=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
    action="ALLOW",
    source_ip="203.0.113.9",
    country="BR",
    http_method="GET",
    host="shop.example.com",
    uri="/products",
    args="id=1 UNION SELECT password FROM users",
    user_agent="sqlmap/1.7",
    headers=(Header(name="Authorization", value="Bearer SECRET-WIRE-TOKEN"),),
    rule_name="SQLi_QUERYARGUMENTS",
    rule_group="AWSManagedRulesSQLiRuleSet",
    matches=(RuleMatch(rule_id="SQLi_QUERYARGUMENTS", action="COUNT"),),
    request_id="req-wire-1",
)
FLOOR = SeverityFloorInfo(
    severity=4,
    attack_class="sqli",
    reason="an SQL injection match was only counted",
    rule="AWSManagedRulesSQLiRuleSet/SQLi_QUERYARGUMENTS",
)
ANSWER = {
    "severity_rating": 5,
    "security_analysis": "A UNION-based SQL injection reached the application.",
    "follow_up_suggestion": "Check the id parameter is parameterized.",
    "attack_type": "SQL injection",
}


@pytest.fixture(autouse=True)
def dummy_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sign with dummy keys and never ask the instance metadata service for real ones."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", raising=False)


def bedrock_config(**overrides: Any) -> ProviderConfig:
    # One call: a test asserts on exactly the calls it scripted.
    fields: dict[str, Any] = {"provider": "bedrock", "region": "us-east-1", "call_budget": 1}
    fields.update(overrides)
    return ProviderConfig(**fields)


def converse_response(tool_input: dict[str, Any]) -> dict[str, Any]:
    return {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_wire_1",
                            "name": "SecurityAssessment",
                            "input": tool_input,
                        }
                    }
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 900, "outputTokens": 80, "totalTokens": 980},
        "metrics": {"latencyMs": 420},
    }


def prompt_text(messages: list[dict[str, Any]]) -> str:
    return "".join(block.get("text", "") for block in messages[0]["content"])


def assert_analyst_request(
    model_id: str, body: dict[str, Any], *, max_tokens: int = 1024, temperature: float = 0.0
) -> None:
    assert model_id == MODEL_ID
    assert [block["text"] for block in body["system"] if "text" in block] == [SYSTEM_PROMPT]
    prompt = prompt_text(body["messages"])
    assert prompt.count(FENCE_OPEN) == 1
    assert prompt.count(FENCE_CLOSE) == 1
    assert "UNION SELECT password FROM users" in prompt
    assert "SECRET-WIRE-TOKEN" not in json.dumps(body)
    tools = [tool["toolSpec"] for tool in body["toolConfig"]["tools"] if "toolSpec" in tool]
    assert [tool["name"] for tool in tools] == ["SecurityAssessment"]
    # The docstring alone: Strands' "invoke it last" preamble is left out (issue 21).
    assert tools[0]["description"] == "Assessment of one AWS WAF event."
    schema = tools[0]["inputSchema"]["json"]
    assert set(schema["required"]) == {
        "severity_rating",
        "security_analysis",
        "follow_up_suggestion",
        "attack_type",
    }
    assert body["inferenceConfig"] == {"maxTokens": max_tokens, "temperature": temperature}


# ---- Stubber on the model's client -----------------------------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[SecurityAnalyst, Stubber, list[dict[str, Any]]]]:
    model = build_model(bedrock_config())
    client = model.client  # type: ignore[union-attr]
    sent: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        sent.append(json.loads(json.dumps(params)))

    client.meta.events.register("before-parameter-build.bedrock-runtime.Converse", capture)
    with Stubber(client) as stubber:
        yield SecurityAnalyst(model), stubber, sent
        stubber.assert_no_pending_responses()


def test_build_model_configures_the_bedrock_client() -> None:
    config = bedrock_config(region="eu-west-1", connect_timeout=2.5, read_timeout=30, call_budget=4)

    model = build_model(config)

    client = model.client  # type: ignore[union-attr]
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.config.connect_timeout == 2.5
    assert client.meta.config.read_timeout == 30
    # One attempt per request: the analyst retries within the call budget.
    assert client.meta.config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert model.get_config()["model_id"] == MODEL_ID  # type: ignore[union-attr]
    assert model.get_config()["streaming"] is False  # type: ignore[union-attr]


def test_region_defaults_to_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")

    model = build_model(ProviderConfig(provider="bedrock"))

    assert model.client.meta.region_name == "ap-southeast-2"  # type: ignore[union-attr]


def test_converse_request_and_tool_use_answer(
    stubbed: tuple[SecurityAnalyst, Stubber, list[dict[str, Any]]],
) -> None:
    # GIVEN Bedrock answers with a SecurityAssessment tool use
    analyst, stubber, sent = stubbed
    stubber.add_response("converse", converse_response(ANSWER))

    # WHEN the analyst assesses the event
    analysis = analyst.analyze(EVENT, FLOOR)

    # THEN the request carried the model id, system prompt, fenced prompt and the tool
    assert len(sent) == 1
    assert_analyst_request(sent[0]["modelId"], sent[0])
    # AND the tool use became the analysis
    assert analysis.severity_rating == 5
    assert analysis.model_severity == 5
    assert analysis.severity_floor == 4
    assert analysis.attack_type == "SQL injection"
    assert analysis.analyzed_by == MODEL_ID


def test_a_model_rating_below_the_floor_is_raised_to_it(
    stubbed: tuple[SecurityAnalyst, Stubber, list[dict[str, Any]]],
) -> None:
    analyst, stubber, _ = stubbed
    stubber.add_response("converse", converse_response({**ANSWER, "severity_rating": 1}))

    analysis = analyst.analyze(EVENT, FLOOR)

    assert (analysis.severity_rating, analysis.model_severity) == (4, 1)
    assert analysis.model_overruled is True
    assert analysis.model_opinion is not None
    assert analysis.model_opinion.security_analysis == ANSWER["security_analysis"]
    assert analysis.security_analysis != ANSWER["security_analysis"]


@pytest.mark.parametrize(
    ("error_code", "status", "expected"),
    [
        ("ThrottlingException", 429, "model_throttled"),
        ("ServiceUnavailableException", 503, "model_error"),
        ("AccessDeniedException", 403, "model_error"),
        ("ValidationException", 400, "model_error"),
        ("ModelTimeoutException", 408, "model_timeout"),
    ],
)
def test_service_errors_become_degraded_analyses(
    stubbed: tuple[SecurityAnalyst, Stubber, list[dict[str, Any]]],
    error_code: str,
    status: int,
    expected: str,
) -> None:
    analyst, stubber, _ = stubbed
    stubber.add_client_error(
        "converse",
        service_error_code=error_code,
        service_message=f"{error_code} (stubbed)",
        http_status_code=status,
    )

    analysis = analyst.analyze(EVENT, FLOOR, budget=1)

    assert analysis.degraded_reason == expected
    assert analysis.severity_rating == FLOOR.severity
    assert analysis.model_calls == 1


def test_a_prose_answer_gets_one_forced_retry(
    stubbed: tuple[SecurityAnalyst, Stubber, list[dict[str, Any]]],
) -> None:
    # GIVEN Nova answers in prose first, then calls the tool when forced
    analyst, stubber, sent = stubbed
    prose = {
        "output": {"message": {"role": "assistant", "content": [{"text": "Looks like SQLi."}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 900, "outputTokens": 5, "totalTokens": 905},
        "metrics": {"latencyMs": 300},
    }
    stubber.add_response("converse", prose)
    stubber.add_response("converse", converse_response(ANSWER))

    analysis = analyst.analyze(EVENT, FLOOR, budget=2)

    assert analysis.model_severity == 5
    assert sent[1]["toolConfig"]["toolChoice"] == {"tool": {"name": "SecurityAssessment"}}


# ---- a local Converse server: the signed HTTP request itself ---------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def model_id(self) -> str:
        return unquote(self.path.split("/")[2])


class ConverseServer(ScriptedHTTPServer):
    """Answers Bedrock Runtime requests on 127.0.0.1 with scripted replies."""

    def __init__(self) -> None:
        super().__init__(Received)
        self.url = self.origin


def json_reply(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> Reply:
    def reply(handler: BaseHTTPRequestHandler, _body: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    return reply


def event_stream_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One AWS event-stream message (prelude, string headers, JSON payload, CRCs)."""
    headers = b""
    for name, value in (
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ):
        raw_name, raw_value = name.encode(), value.encode()
        headers += bytes([len(raw_name)]) + raw_name + b"\x07"
        headers += struct.pack(">H", len(raw_value)) + raw_value
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + headers + body
    return message + struct.pack(">I", zlib.crc32(message))


def stream_reply(tool_input: dict[str, Any]) -> Reply:
    frames = [
        ("messageStart", {"role": "assistant"}),
        (
            "contentBlockStart",
            {
                "contentBlockIndex": 0,
                "start": {"toolUse": {"toolUseId": "tooluse_s1", "name": "SecurityAssessment"}},
            },
        ),
        (
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"toolUse": {"input": json.dumps(tool_input)}}},
        ),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "tool_use"}),
        (
            "metadata",
            {
                "usage": {"inputTokens": 900, "outputTokens": 80, "totalTokens": 980},
                "metrics": {"latencyMs": 420},
            },
        ),
    ]

    def reply(handler: BaseHTTPRequestHandler, _body: dict[str, Any]) -> None:
        data = b"".join(event_stream_frame(kind, payload) for kind, payload in frames)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/vnd.amazon.eventstream")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return reply


@pytest.fixture
def converse_server() -> Iterator[ConverseServer]:
    with ConverseServer() as server:
        yield server


@pytest.mark.parametrize("streaming", [False, True], ids=["converse", "converse-stream"])
def test_signed_request_reaches_the_endpoint(converse_server: ConverseServer, streaming: bool) -> None:
    # GIVEN a Converse endpoint on 127.0.0.1 answering with a tool use
    converse_server.replies.append(
        stream_reply(ANSWER) if streaming else json_reply(200, converse_response(ANSWER))
    )
    config = bedrock_config(base_url=converse_server.url, streaming=streaming, max_tokens=512)
    analyst = SecurityAnalyst.from_config(config)

    # WHEN the analyst assesses the event
    analysis = analyst.analyze(EVENT, FLOOR)

    # THEN one SigV4-signed request went to the model's operation path
    assert len(converse_server.received) == 1
    request = converse_server.received[0]
    operation = "converse-stream" if streaming else "converse"
    assert request.path.endswith(f"/{operation}")
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert "/us-east-1/bedrock/aws4_request" in request.headers["authorization"]
    assert_analyst_request(request.model_id, request.body, max_tokens=512)
    # AND the answer became the analysis
    assert analysis.severity_rating == 5
    assert analysis.analyzed_by == MODEL_ID


def test_throttling_on_the_wire_is_model_throttled(converse_server: ConverseServer) -> None:
    converse_server.replies.append(
        json_reply(
            429,
            {"message": "Too many tokens, please wait before trying again."},
            {"x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/"},
        )
    )
    analyst = SecurityAnalyst.from_config(bedrock_config(base_url=converse_server.url))

    analysis = analyst.analyze(EVENT, FLOOR)

    assert analysis.degraded_reason == "model_throttled"
    # One request: botocore's own retries are off, the budget was 1.
    assert len(converse_server.received) == analysis.model_calls == 1


def test_an_unreachable_endpoint_is_model_error() -> None:
    # GIVEN a port nothing listens on (bound, then closed)
    with ConverseServer() as server:
        url = server.url
    analyst = SecurityAnalyst.from_config(bedrock_config(base_url=url, connect_timeout=1))

    analysis = analyst.analyze(EVENT, FLOOR)

    assert analysis.degraded_reason == "model_error"
    assert analysis.severity_rating == FLOOR.severity

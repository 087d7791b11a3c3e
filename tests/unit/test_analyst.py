"""The security analyst: structured output, the floor, the rules provider, model errors."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from pydantic import ValidationError
from strands.types.exceptions import (
    EventLoopException,
    MaxTokensReachedException,
    ModelThrottledException,
    StructuredOutputException,
)

from agent_runtime.analyst import (
    ANALYSIS_TEXT_CHARS,
    SecurityAnalyst,
    SecurityAssessment,
    rules_analysis,
    classify_failure,
)
from agent_runtime.prompt_safety import FENCE_CLOSE, FENCE_OPEN, SYSTEM_PROMPT
from agent_runtime.providers import ProviderConfig, build_model
from secops_core.contract import Analysis, Header, RuleMatch, SeverityFloorInfo, WafEvent
from secops_core.errors import ErrorCode, ModelError
from tests.fixtures.scripted_model import Raise, ScriptedModel, ScriptExhaustedError, ToolUse


def make_event(**overrides: Any) -> WafEvent:
    fields: dict[str, Any] = {
        "event_key": "evt#test-1",
        "source_format": "waf_log",
        "timestamp": datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        "action": "ALLOW",
        "source_ip": "203.0.113.9",
        "country": "BR",
        "http_method": "GET",
        "host": "shop.example.com",
        "uri": "/products",
        "args": "id=1%27%20OR%201=1--",
        "user_agent": "sqlmap/1.7",
        "headers": (Header(name="Host", value="shop.example.com"),),
        "rule_name": "SQLi_QUERYARGUMENTS",
        "rule_group": "AWSManagedRulesSQLiRuleSet",
        "matches": (
            RuleMatch(
                rule_id="SQLi_QUERYARGUMENTS",
                rule_group="AWSManagedRulesSQLiRuleSet",
                action="COUNT",
            ),
        ),
        "request_id": "req-abc-123",
    }
    fields.update(overrides)
    return WafEvent(**fields)


FLOOR = SeverityFloorInfo(
    severity=4,
    attack_class="sqli",
    reason="an SQL injection match was only counted, so the request reached the application",
    rule="AWSManagedRulesSQLiRuleSet/SQLi_QUERYARGUMENTS",
)


def assessment(severity: int = 4, **overrides: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "severity_rating": severity,
        "security_analysis": "A UNION-based SQL injection probe reached the application.",
        "follow_up_suggestion": "Check the id parameter is parameterized.",
        "attack_type": "SQL injection",
    }
    answer.update(overrides)
    return answer


# ---- structured output -----------------------------------------------------------------


def test_structured_output_becomes_the_analysis() -> None:
    # GIVEN a model that answers with the structured-output tool
    model = ScriptedModel([assessment(5)], model_id="amazon.nova-lite-v1:0")

    # WHEN the analyst assesses an event
    analysis = SecurityAnalyst(model).analyze(make_event(), FLOOR)

    # THEN every field comes from the model, with the floor and the model id recorded
    assert analysis == Analysis(
        severity_rating=5,
        severity_floor=4,
        model_severity=5,
        security_analysis="A UNION-based SQL injection probe reached the application.",
        follow_up_suggestion="Check the id parameter is parameterized.",
        attack_type="SQL injection",
        analyzed_by="amazon.nova-lite-v1:0",
        floor=FLOOR,
    )
    assert model.calls == 1


def test_the_model_sees_the_system_prompt_the_fenced_prompt_and_one_tool() -> None:
    model = ScriptedModel([assessment()])

    SecurityAnalyst(model).analyze(make_event(), FLOOR)

    request = model.requests[0]
    assert request.system_prompt == SYSTEM_PROMPT
    assert request.tool_names == ["SecurityAssessment"]
    schema = request.tool_specs[0]["inputSchema"]["json"]
    assert set(schema["properties"]) == set(SecurityAssessment.model_fields)
    assert all(prop.get("description") for prop in schema["properties"].values())
    assert schema["properties"]["severity_rating"]["maximum"] == 5
    assert FENCE_OPEN in request.prompt
    assert FENCE_CLOSE in request.prompt
    assert "Deterministic severity floor: 4" in request.prompt


@pytest.mark.parametrize(
    ("floor", "model_severity", "expected"),
    [(4, 0, 4), (4, 3, 4), (4, 4, 4), (4, 5, 5), (0, 2, 2), (3, 1, 3), (5, 0, 5), (0, 0, 0)],
)
def test_final_severity_is_the_higher_of_floor_and_model(
    floor: int, model_severity: int, expected: int
) -> None:
    model = ScriptedModel([assessment(model_severity)])
    floor_info = FLOOR.model_copy(update={"severity": floor})

    analysis = SecurityAnalyst(model).analyze(make_event(), floor_info)

    assert analysis.severity_rating == expected
    assert analysis.severity_floor == floor
    assert analysis.model_severity == model_severity


def test_a_text_answer_is_followed_by_a_forced_structured_output_turn() -> None:
    # GIVEN a model that first answers in prose, then calls the tool when forced
    model = ScriptedModel(["This looks like SQL injection.", assessment(4)])

    analysis = SecurityAnalyst(model).analyze(make_event(), FLOOR)

    assert analysis.model_severity == 4
    assert model.requests[0].tool_choice is None
    assert model.requests[1].tool_choice == {"tool": {"name": "SecurityAssessment"}}


def test_an_invalid_tool_input_is_retried_once_then_accepted() -> None:
    model = ScriptedModel([assessment(9), assessment(4)])

    analysis = SecurityAnalyst(model).analyze(make_event(), FLOOR)

    assert analysis.model_severity == 4
    assert model.calls == 2


def test_every_event_gets_a_fresh_conversation() -> None:
    # GIVEN one analyst used for two events
    model = ScriptedModel([assessment(), assessment()])
    analyst = SecurityAnalyst(model)

    analyst.analyze(make_event(uri="/first"), FLOOR)
    analyst.analyze(make_event(uri="/second"), FLOOR)

    # THEN the second request carries nothing of the first
    second = model.requests[1]
    assert len(second.messages) == 1
    assert "/first" not in second.prompt
    assert "/second" in second.prompt


def test_model_text_is_sanitized_and_capped_for_operators() -> None:
    # GIVEN a model that parrots control characters and writes an essay
    noisy = "Alert\x1b[31m!\u202e\u200b " + "essay " * 2000
    model = ScriptedModel(
        [assessment(4, security_analysis=noisy, follow_up_suggestion=noisy, attack_type=noisy)]
    )

    analysis = SecurityAnalyst(model).analyze(make_event(), FLOOR)

    for text in (analysis.security_analysis, analysis.follow_up_suggestion):
        assert len(text) <= ANALYSIS_TEXT_CHARS
        assert text.startswith("Alert[31m! essay")
    assert len(analysis.attack_type) <= 120
    for text in (analysis.security_analysis, analysis.follow_up_suggestion, analysis.attack_type):
        assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text)


def test_model_id_override_is_recorded() -> None:
    model = ScriptedModel([assessment()])

    analysis = SecurityAnalyst(model, model_id="us.amazon.nova-lite-v1:0").analyze(make_event(), FLOOR)

    assert analysis.analyzed_by == "us.amazon.nova-lite-v1:0"


# ---- rules provider --------------------------------------------------------------------


def test_rules_provider_uses_the_floor_and_says_why() -> None:
    # GIVEN the rules provider (no model)
    analyst = SecurityAnalyst(None)

    analysis = analyst.analyze(make_event(), FLOOR)

    # THEN the floor is the severity, and the text names rule, target, source and reason
    assert analysis.analyzed_by == "rules"
    assert analysis.model_severity is None
    assert analysis.severity_rating == analysis.severity_floor == 4
    assert analysis.floor == FLOOR
    assert analysis.degraded is False
    assert analysis.attack_type == "SQL injection"
    text = analysis.security_analysis
    assert "AWSManagedRulesSQLiRuleSet/SQLi_QUERYARGUMENTS" in text
    assert "GET shop.example.com/products" in text
    assert "203.0.113.9 (BR)" in text
    assert "ALLOW" in text and "reached the application" in text
    assert FLOOR.reason in text


def test_rules_follow_up_for_a_counted_sqli_that_reached_the_app() -> None:
    analysis = rules_analysis(make_event(), FLOOR)

    follow_up = analysis.follow_up_suggestion
    assert "req-abc-123" in follow_up
    assert "parameterized" in follow_up
    assert "from COUNT to BLOCK" in follow_up


def test_rules_follow_up_for_a_blocked_attack_is_to_monitor() -> None:
    event = make_event(action="BLOCK", matches=())
    floor = FLOOR.model_copy(update={"severity": 3, "reason": "an SQL injection match was blocked"})

    analysis = rules_analysis(event, floor)

    assert analysis.severity_rating == 3
    assert "stopped" in analysis.security_analysis
    assert "No action needed" in analysis.follow_up_suggestion
    assert "COUNT" not in analysis.follow_up_suggestion


@pytest.mark.parametrize(
    ("attack_class", "severity", "action", "attack_type", "follow_up_words"),
    [
        ("rce", 5, "ALLOW", "Remote code execution", "compromise"),
        ("log4j", 5, "COUNT", "Log4j remote code execution", "Log4j"),
        ("command_injection", 5, "ALLOW", "Shell command injection", "shell command"),
        ("xss", 4, "ALLOW", "Cross-site scripting", "output-encoded"),
        ("ssrf", 4, "ALLOW", "Server-side request forgery", "IMDSv2"),
        ("credential_stuffing", 4, "ALLOW", "Credential stuffing", "MFA"),
        ("admin_access", 3, "ALLOW", "Admin page access", "requires authentication"),
        ("xss", 3, "CAPTCHA", "Cross-site scripting", "WAF stopped it"),
        ("ip_reputation", 2, "BLOCK", "IP reputation", "false positives"),
        ("rate_limit", 2, "ALLOW", "Rate limit exceeded", "legitimate"),
        ("bot", 1, "CHALLENGE", "Bot traffic", "bot-control"),
        ("none", 0, "ALLOW", "None", "no rule matched"),
        ("allow_rule", 0, "ALLOW", "Allow-listed request", "allow rule"),
        ("unknown", 2, "BLOCK", "Unclassified rule match", "Classify rule"),
        ("graphql_abuse", 2, "BLOCK", "Graphql abuse", "false positives"),
    ],
)
def test_rules_attack_type_and_follow_up_depend_on_the_class(
    attack_class: str, severity: int, action: str, attack_type: str, follow_up_words: str
) -> None:
    floor = SeverityFloorInfo(severity=severity, attack_class=attack_class, reason="policy", rule="SomeRule")

    analysis = rules_analysis(make_event(action=action, matches=()), floor)

    assert analysis.attack_type == attack_type
    assert follow_up_words in analysis.follow_up_suggestion
    assert analysis.severity_rating == severity


def test_rules_analysis_marks_a_fallback_as_degraded() -> None:
    assert rules_analysis(make_event(), FLOOR, degraded=True).degraded is True


def test_rules_text_quotes_attacker_fields_sanitized_and_short() -> None:
    event = make_event(uri="/a\u202e\x00" + "b" * 5000, host="evil\nhost", http_method="GET\x1b")

    analysis = rules_analysis(event, FLOOR)

    assert "\x00" not in analysis.security_analysis
    assert "\u202e" not in analysis.security_analysis
    assert "evil host" in analysis.security_analysis
    assert len(analysis.security_analysis) < 1000


def test_from_config_rules_needs_no_model() -> None:
    analyst = SecurityAnalyst.from_config(ProviderConfig(provider="rules"))

    assert analyst.uses_model is False
    assert analyst.analyzed_by == "rules"
    assert build_model(ProviderConfig(provider="rules")) is None


def test_from_config_uses_an_injected_model() -> None:
    model = ScriptedModel([assessment(5)])

    analyst = SecurityAnalyst.from_config(ProviderConfig(provider="rules"), model=model)

    assert analyst.analyze(make_event(), FLOOR).model_severity == 5


@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_provider_config_rejects_the_bedrock_model_id_elsewhere(provider: str) -> None:
    with pytest.raises(ValidationError, match="set model_id"):
        ProviderConfig(provider=provider)  # type: ignore[arg-type]


# ---- model errors ----------------------------------------------------------------------


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"{code} from the service"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "Converse",
    )


def openai_error(cls: type[openai.APIStatusError], status: int) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    return cls("rate limited", response=httpx.Response(status, request=request), body=None)


def wrapped_throttle() -> ModelThrottledException:
    try:
        raise client_error("ThrottlingException", 400)
    except ClientError as exc:
        try:
            raise ModelThrottledException(str(exc)) from exc
        except ModelThrottledException as wrapped:
            return wrapped


def validation_error() -> ValidationError:
    try:
        SecurityAssessment.model_validate({"severity_rating": 9})
    except ValidationError as exc:
        return exc
    raise AssertionError("expected a ValidationError")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ModelThrottledException("slow down"), ErrorCode.MODEL_THROTTLED),
        (wrapped_throttle(), ErrorCode.MODEL_THROTTLED),
        (client_error("ThrottlingException", 400), ErrorCode.MODEL_THROTTLED),
        (client_error("TooManyRequestsException", 429), ErrorCode.MODEL_THROTTLED),
        (openai_error(openai.RateLimitError, 429), ErrorCode.MODEL_THROTTLED),
        (StructuredOutputException("no structured output"), ErrorCode.MODEL_OUTPUT_INVALID),
        (validation_error(), ErrorCode.MODEL_OUTPUT_INVALID),
        (MaxTokensReachedException("max tokens"), ErrorCode.MODEL_OUTPUT_INVALID),
        (client_error("AccessDeniedException", 403), ErrorCode.MODEL_ERROR),
        (client_error("ValidationException", 400), ErrorCode.MODEL_ERROR),
        (client_error("ServiceUnavailableException", 503), ErrorCode.MODEL_ERROR),
        (EndpointConnectionError(endpoint_url="https://bedrock"), ErrorCode.MODEL_ERROR),
        (ReadTimeoutError(endpoint_url="https://bedrock"), ErrorCode.MODEL_ERROR),
        (openai_error(openai.AuthenticationError, 401), ErrorCode.MODEL_ERROR),
        (ConnectionRefusedError("refused"), ErrorCode.MODEL_ERROR),
        (RuntimeError("boom"), ErrorCode.MODEL_ERROR),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_a_model_exception_becomes_a_typed_model_error(error: BaseException, code: ErrorCode) -> None:
    # GIVEN a model whose call raises
    model = ScriptedModel([Raise(error)])

    # WHEN the analyst assesses an event
    with pytest.raises(ModelError) as caught:
        SecurityAnalyst(model).analyze(make_event(), FLOOR)

    # THEN the error carries the stable code and says what failed, on one line
    assert caught.value.code == code
    assert caught.value.retryable is (code != ErrorCode.MODEL_OUTPUT_INVALID)
    assert caught.value.message
    assert "\n" not in caught.value.message
    assert model.calls == 1  # no agent-level retry: the SDK client and the worker retry


def test_the_mapping_looks_through_strands_wrappers() -> None:
    wrapped = EventLoopException(client_error("ThrottlingException", 400))

    error = to_model_error(wrapped)

    assert error.code == ErrorCode.MODEL_THROTTLED
    assert error.message.startswith("ClientError:")


def test_a_model_error_passes_through_unchanged() -> None:
    original = ModelError(ErrorCode.MODEL_ERROR, "already typed")

    assert to_model_error(original) is original


# ---- unusable output -------------------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(["I cannot help with that.", "Still prose, no JSON."], id="prose-twice"),
        pytest.param(["Here you go", '{"severity_rating": 7}'], id="invalid-json-text"),
        pytest.param([ToolUse("{not json")] * 3, id="tool-input-not-json"),
        pytest.param([assessment(9)] * 3, id="severity-out-of-range"),
        pytest.param([assessment(4, security_analysis="")] * 3, id="empty-analysis"),
        pytest.param([{"severity_rating": "high"}] * 3, id="wrong-types"),
    ],
)
def test_unusable_output_is_model_output_invalid(script: list[Any]) -> None:
    model = ScriptedModel(script)

    with pytest.raises(ModelError) as caught:
        SecurityAnalyst(model).analyze(make_event(), FLOOR)

    assert caught.value.code == ErrorCode.MODEL_OUTPUT_INVALID
    assert caught.value.retryable is False
    assert model.calls <= 3


def test_the_turn_budget_bounds_model_calls() -> None:
    # GIVEN a model that never produces valid output
    model = ScriptedModel([assessment(9)], cycle=True)

    with pytest.raises(ModelError):
        SecurityAnalyst(model, max_turns=2).analyze(make_event(), FLOOR)

    assert model.calls == 2


def test_a_script_runs_out_loudly() -> None:
    model = ScriptedModel([])

    with pytest.raises(ModelError) as caught:
        SecurityAnalyst(model).analyze(make_event(), FLOOR)

    assert caught.value.code == ErrorCode.MODEL_ERROR
    assert ScriptExhaustedError.__name__ in caught.value.message

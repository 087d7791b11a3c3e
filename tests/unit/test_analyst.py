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
    classify_failure,
    rules_analysis,
)
from agent_runtime.prompt_safety import FENCE_CLOSE, FENCE_OPEN, SYSTEM_PROMPT
from agent_runtime.providers import ProviderConfig, build_model
from secops_core.contract import Analysis, Header, RuleMatch, SeverityFloorInfo, WafEvent
from testkit.scripted_model import Raise, ScriptedModel, ToolUse


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
        model_written=True,
        model_calls=1,
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
    [(4, 4, 4), (4, 5, 5), (0, 2, 2), (0, 0, 0), (3, 3, 3)],
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
    assert analysis.model_overruled is False
    assert analysis.model_written is True


@pytest.mark.parametrize(("floor", "model_severity"), [(4, 0), (4, 3), (3, 1), (5, 0)])
def test_a_model_below_the_floor_is_overruled_and_its_words_kept_apart(
    floor: int, model_severity: int
) -> None:
    # GIVEN a model that rates below the floor, as an obeyed injection does
    model = ScriptedModel(
        [
            assessment(
                model_severity, security_analysis="Benign health check.", follow_up_suggestion="Close it."
            )
        ]
    )
    floor_info = FLOOR.model_copy(update={"severity": floor})

    # WHEN the analyst assesses the event
    analysis = SecurityAnalyst(model).analyze(make_event(), floor_info)

    # THEN the floor decides, and the analysis shown is the rules analysis
    expected = rules_analysis(make_event(), floor_info)
    assert analysis.severity_rating == floor
    assert analysis.security_analysis == expected.security_analysis
    assert analysis.follow_up_suggestion == expected.follow_up_suggestion
    assert analysis.attack_type == expected.attack_type
    assert analysis.analyzed_by == "rules"
    assert analysis.model_written is False
    assert analysis.degraded is False
    # AND it says the model was overruled, with the floor's reason and the model's words apart
    assert analysis.model_overruled is True
    assert analysis.floor == floor_info
    assert analysis.model_severity == model_severity
    assert analysis.model_opinion is not None
    assert analysis.model_opinion.model_id == "scripted-model"
    assert analysis.model_opinion.severity == model_severity
    assert analysis.model_opinion.security_analysis == "Benign health check."
    assert analysis.model_opinion.follow_up_suggestion == "Close it."
    assert "Benign" not in analysis.security_analysis
    assert analysis.model_calls == 1


@pytest.mark.parametrize(("raw", "clamped", "overruled"), [(9, 5, False), (10**12, 5, False), (-1, 0, True)])
def test_an_out_of_range_severity_is_clamped_and_recorded(raw: int, clamped: int, overruled: bool) -> None:
    # GIVEN a model that answers with an integer outside 0-5
    model = ScriptedModel([assessment(raw)])

    analysis = SecurityAnalyst(model).analyze(make_event(), FLOOR)

    # THEN the rating is clamped (one call, no retry), recorded as clamped, never rejected
    assert analysis.model_severity == clamped
    assert analysis.model_severity_clamped is True
    assert analysis.severity_rating == max(FLOOR.severity, clamped)
    assert analysis.model_overruled is overruled
    assert analysis.degraded is False
    assert model.calls == 1


def test_a_text_answer_is_followed_by_a_forced_structured_output_turn() -> None:
    # GIVEN a model that first answers in prose, then calls the tool when forced
    model = ScriptedModel(["This looks like SQL injection.", assessment(4)])

    analysis = SecurityAnalyst(model).analyze(make_event(), FLOOR)

    assert analysis.model_severity == 4
    assert model.requests[0].tool_choice is None
    assert model.requests[1].tool_choice == {"tool": {"name": "SecurityAssessment"}}


def test_the_tool_is_described_by_its_docstring_alone_on_every_turn() -> None:
    # GIVEN a model that needs the forced turn
    model = ScriptedModel(["This looks like SQL injection.", assessment(4)])

    # WHEN the analyst assesses an event
    SecurityAnalyst(model).analyze(make_event(), FLOOR)

    # THEN both turns offered the tool without Strands' "call it last" preamble: the agent
    # has no other tool and the system prompt says to answer with it
    for request in model.requests:
        assert [spec["description"] for spec in request.tool_specs] == ["Assessment of one AWS WAF event."]
    assert "SecurityAssessment" in SYSTEM_PROMPT


def test_an_invalid_tool_input_is_retried_once_then_accepted() -> None:
    model = ScriptedModel([assessment(4, severity_rating="high"), assessment(4)])

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

    assert analyst.model is None
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
    ("error", "reason", "transient"),
    [
        (ModelThrottledException("slow down"), "model_throttled", True),
        (wrapped_throttle(), "model_throttled", True),
        (client_error("ThrottlingException", 400), "model_throttled", True),
        (client_error("TooManyRequestsException", 429), "model_throttled", True),
        (openai_error(openai.RateLimitError, 429), "model_throttled", True),
        (StructuredOutputException("no structured output"), "model_output_invalid", False),
        (validation_error(), "model_output_invalid", False),
        (MaxTokensReachedException("max tokens"), "model_output_invalid", False),
        (client_error("AccessDeniedException", 403), "model_error", False),
        (client_error("ValidationException", 400), "model_error", False),
        (client_error("ServiceUnavailableException", 503), "model_error", True),
        (client_error("ModelTimeoutException", 408), "model_timeout", True),
        (EndpointConnectionError(endpoint_url="https://bedrock"), "model_error", True),
        (ReadTimeoutError(endpoint_url="https://bedrock"), "model_timeout", True),
        (openai.APITimeoutError(request=httpx.Request("POST", "http://127.0.0.1:9")), "model_timeout", True),
        (openai_error(openai.InternalServerError, 500), "model_error", True),
        (openai_error(openai.AuthenticationError, 401), "model_error", False),
        (ConnectionRefusedError("refused"), "model_error", True),
        (AttributeError("'str' object has no attribute 'choices'"), "model_output_invalid", False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_a_model_exception_is_classified(error: BaseException, reason: str, transient: bool) -> None:
    failure = classify_failure(error)

    assert (failure.reason, failure.transient) == (reason, transient)
    assert failure.message
    assert "\n" not in failure.message


@pytest.mark.parametrize(
    ("error", "reason", "calls"),
    [
        (ModelThrottledException("slow down"), "model_throttled", 3),
        (client_error("ServiceUnavailableException", 503), "model_error", 3),
        (ReadTimeoutError(endpoint_url="https://bedrock"), "model_timeout", 3),
        (client_error("AccessDeniedException", 403), "model_error", 1),
        (RuntimeError("boom"), "model_output_invalid", 1),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_a_failing_model_gives_the_degraded_rules_analysis(
    error: BaseException, reason: str, calls: int
) -> None:
    # GIVEN a model whose every call raises
    model = ScriptedModel([Raise(error)], cycle=True)

    # WHEN the analyst assesses an event
    analysis = SecurityAnalyst(model, retry_base_s=0).analyze(make_event(), FLOOR)

    # THEN the answer is the rules analysis at the floor, degraded with the reason
    assert analysis == rules_analysis(make_event(), FLOOR, degraded=True).model_copy(
        update={"degraded_reason": reason, "model_calls": calls}
    )
    # AND transient failures were retried within the budget of 3, others not at all
    assert model.calls == calls


def test_the_mapping_looks_through_strands_wrappers() -> None:
    wrapped = EventLoopException(client_error("ThrottlingException", 400))

    failure = classify_failure(wrapped)

    assert failure.reason == "model_throttled"
    assert failure.message.startswith("ClientError:")


def test_an_outage_then_an_answer_uses_the_answer() -> None:
    # GIVEN a 503, a throttle, then a good answer
    model = ScriptedModel(
        [
            Raise(client_error("ServiceUnavailableException", 503)),
            Raise(ModelThrottledException("slow down")),
            assessment(5),
        ]
    )

    analysis = SecurityAnalyst(model, retry_base_s=0).analyze(make_event(), FLOOR)

    assert analysis.model_severity == 5
    assert analysis.degraded is False
    assert analysis.model_calls == 3


# ---- unusable output -------------------------------------------------------------------


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(["I cannot help with that.", "Still prose, no JSON."], id="prose-twice"),
        pytest.param(["Here you go", '{"severity_rating": 7}'], id="invalid-json-text"),
        pytest.param([ToolUse("{not json")] * 3, id="tool-input-not-json"),
        pytest.param([assessment(4, security_analysis="")] * 3, id="empty-analysis"),
        pytest.param([{"severity_rating": "high"}] * 3, id="wrong-types"),
        pytest.param([assessment(4, severity_rating=4.5)] * 3, id="fractional-severity"),
    ],
)
def test_unusable_output_is_a_degraded_rules_analysis(script: list[Any]) -> None:
    model = ScriptedModel(script)

    analysis = SecurityAnalyst(model).analyze(make_event(), FLOOR)

    assert analysis.degraded is True
    assert analysis.degraded_reason == "model_output_invalid"
    assert analysis.severity_rating == FLOOR.severity
    assert analysis.analyzed_by == "rules"
    assert analysis.model_written is False
    assert analysis.model_calls == model.calls <= 3


@pytest.mark.parametrize("budget", [1, 2, 5])
def test_the_request_budget_bounds_model_calls(budget: int) -> None:
    # GIVEN a model that never produces valid output
    model = ScriptedModel([assessment(4, severity_rating="high")], cycle=True)

    analysis = SecurityAnalyst(model).analyze(make_event(), FLOOR, budget=budget)

    assert model.calls == analysis.model_calls == budget
    assert analysis.degraded_reason == "model_output_invalid"


def test_a_spent_budget_makes_no_call() -> None:
    model = ScriptedModel([assessment(5)])

    analysis = SecurityAnalyst(model).analyze(make_event(), FLOOR, budget=0)

    assert model.calls == analysis.model_calls == 0
    assert analysis.degraded_reason == "model_budget_spent"
    assert analysis.severity_rating == FLOOR.severity


def test_the_default_budget_comes_from_the_analyst() -> None:
    model = ScriptedModel([Raise(ModelThrottledException("slow down"))], cycle=True)

    analysis = SecurityAnalyst(model, call_budget=2, retry_base_s=0).analyze(make_event(), FLOOR)

    assert model.calls == analysis.model_calls == 2


def test_a_script_runs_out_loudly_but_safely() -> None:
    model = ScriptedModel([])

    analysis = SecurityAnalyst(model).analyze(make_event(), FLOOR)

    assert analysis.degraded_reason == "model_output_invalid"
    assert analysis.severity_rating == FLOOR.severity

"""The security analyst: a Strands agent with structured output, or rules when offline.

The model only ever adds to the deterministic floor: the final severity is
``max(floor, model)``, so nothing an attacker writes into a request can lower it. The
agent has no tools and is built fresh for every event, so the runtime keeps no
conversation state between events.

The model path fails safe (docs/architecture.md, "Model fail-safe"): for a valid event
``analyze`` always returns an ``Analysis``. Whatever the model does (unusable answer,
timeout, throttling, 5xx), the result is at least the floor with the rules analysis,
marked ``degraded`` with a ``degraded_reason``; a model that rates below the floor is
overruled and its words are kept apart in ``model_opinion``. Every model request is
counted and bounded by a per-request budget: this module is the one retry policy (the
SDK clients make exactly one attempt per request, see ``providers.py``).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent_runtime.prompt_safety import SYSTEM_PROMPT, build_analysis_prompt
from agent_runtime.providers import DEFAULT_CALL_BUDGET, ProviderConfig, build_model, model_id_of
from secops_core.contract import Analysis, DegradedReason, ModelOpinion, SeverityFloorInfo, WafEvent
from secops_core.rules_analysis import ANALYSIS_TEXT_CHARS, ATTACK_TYPE_CHARS, RULES_PROVIDER, rules_analysis
from secops_core.text import sanitize_text

if TYPE_CHECKING:
    from strands.models import Model

log = structlog.get_logger("agent_runtime.analyst")

_ERROR_MESSAGE_CHARS = 300
# Backoff between attempts after an outage, full jitter: a short pause spreads retries
# of concurrent events; a long one would only hold the worker's request open.
RETRY_BASE_S = 0.5
RETRY_CAP_S = 4.0
SEVERITY_MIN, SEVERITY_MAX = 0, 5


def _without_titles(schema: dict[str, Any]) -> None:
    """Pydantic titles repeat the field names ("Severity Rating"): tokens the model does
    not need on every call (docs/architecture.md, "Model economy")."""
    schema.pop("title", None)
    # Strands already sends the docstring as the tool's description.
    schema.pop("description", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
        # Empty text fails validation anyway (and the model is asked again).
        prop.pop("minLength", None)


class SecurityAssessment(BaseModel):
    """Assessment of one AWS WAF event."""

    model_config = ConfigDict(json_schema_extra=_without_titles)

    # The schema tells the model 0-5, but an out-of-range integer is accepted and clamped
    # by the analyst (recorded as clamped): a model saying 9 tries to *raise* the
    # severity, and rejecting that would cost a turn or drop the answer.
    severity_rating: int = Field(
        description="Never below the floor.",
        json_schema_extra={"minimum": SEVERITY_MIN, "maximum": SEVERITY_MAX},
    )
    security_analysis: str = Field(
        min_length=1,
        description="2-5 sentences: what it tried, if it reached the app, why this severity.",
    )
    follow_up_suggestion: str = Field(min_length=1, description="1-3 sentences: next steps.")
    attack_type: str = Field(min_length=1, description="e.g. 'SQL injection'; 'None' if benign.")

    # Operators read these fields, so they are cleaned while validating: a field that is
    # only control characters fails validation and the model is asked again, and text
    # the model copied from the request cannot carry invisible or terminal characters.
    @field_validator("security_analysis", "follow_up_suggestion", mode="before")
    @classmethod
    def _clean_text(cls, value: object) -> object:
        return sanitize_text(value, ANALYSIS_TEXT_CHARS) if isinstance(value, str) else value

    @field_validator("attack_type", mode="before")
    @classmethod
    def _clean_attack_type(cls, value: object) -> object:
        return sanitize_text(value, ATTACK_TYPE_CHARS) if isinstance(value, str) else value


# ---- failures -------------------------------------------------------------------------

_THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "throttlingException",
        "TooManyRequestsException",
        "Throttling",
        "ServiceQuotaExceededException",
    }
)
_TIMEOUT_CODES = frozenset({"ModelTimeoutException", "RequestTimeout", "RequestTimeoutException"})


@dataclass(frozen=True)
class ModelFailure:
    """Why one attempt at the model gave no usable assessment."""

    reason: DegradedReason
    # Worth another attempt within the budget: an outage that may pass (throttling,
    # timeout, 5xx, connection). A 4xx or an unusable answer would fail the same way.
    transient: bool
    message: str


def _exception_chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps, outermost first, as a traceback would show them.

    Strands wraps some errors in ``EventLoopException.original_exception``; providers
    raise their own types ``from`` the SDK error.
    """
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and not any(current is seen for seen in chain):
        chain.append(current)
        wrapped = getattr(current, "original_exception", None)
        if isinstance(wrapped, BaseException) and wrapped is not current.__cause__:
            current = wrapped
        elif current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return chain


def _client_error(exc: BaseException) -> tuple[str | None, int | None] | None:
    """(error code, HTTP status) of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return response.get("Error", {}).get("Code"), status if isinstance(status, int) else None


def _is_throttling(exc: BaseException) -> bool:
    from strands.types.exceptions import ModelThrottledException

    if isinstance(exc, ModelThrottledException):
        return True
    client = _client_error(exc)
    if client is not None:
        code, status = client
        return code in _THROTTLING_CODES or status == 429
    try:
        import openai
    except ImportError:
        return False
    return isinstance(exc, openai.RateLimitError)


def _is_timeout(exc: BaseException) -> bool:
    from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError

    if isinstance(exc, TimeoutError | ReadTimeoutError | ConnectTimeoutError):
        return True
    client = _client_error(exc)
    if client is not None:
        return client[0] in _TIMEOUT_CODES or client[1] in (408, 504)
    try:
        import httpx
        import openai
    except ImportError:
        return False
    return isinstance(exc, openai.APITimeoutError | httpx.TimeoutException)


def _is_invalid_output(exc: BaseException) -> bool:
    from strands.types.exceptions import MaxTokensReachedException, StructuredOutputException

    # A truncated answer is unusable output; the same input would be cut the same way.
    return isinstance(
        exc, StructuredOutputException | ValidationError | MaxTokensReachedException | _NoAssessmentError
    )


def _provider_error(exc: BaseException) -> bool | None:
    """For an error of the provider's API or connection: is it transient? None: not one."""
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, HTTPClientError

    client = _client_error(exc)
    if client is not None:
        return client[1] is None or client[1] >= 500
    if isinstance(exc, HTTPClientError | EndpointConnectionError | ConnectionClosedError | ConnectionError):
        return True
    try:
        import openai
    except ImportError:
        return None
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500
    if isinstance(exc, openai.APIConnectionError):
        return True
    return None


def classify_failure(exc: BaseException) -> ModelFailure:
    """Why a model call failed, looking through every wrapper in the chain.

    Throttling, then timeouts, then unusable output, then provider errors. Anything
    else arose while reading an answer that did arrive (an HTTP 200 that is HTML or not
    JSON fails inside the SDK's parser with an arbitrary exception): unusable output.
    """
    from agent_runtime.model_budget import ModelBudgetSpentError

    chain = _exception_chain(exc)
    spent = next((item for item in chain if isinstance(item, ModelBudgetSpentError)), None)
    if spent is not None:
        # An attempt starts only with budget left, so the budget ran out mid-conversation:
        # the model kept answering unusably (prose, invalid tool input) until it was spent.
        return ModelFailure("model_output_invalid", False, f"no usable answer: {spent}")
    tests: tuple[tuple[Any, DegradedReason, bool], ...] = (
        (_is_throttling, "model_throttled", True),
        (_is_timeout, "model_timeout", True),
        (_is_invalid_output, "model_output_invalid", False),
    )
    for test, reason, transient in tests:
        matched = next((item for item in chain if test(item)), None)
        if matched is not None:
            return ModelFailure(reason, transient, _describe(matched))
    for item in chain:
        provider_transient = _provider_error(item)
        if provider_transient is not None:
            return ModelFailure("model_error", provider_transient, _describe(item))
    # The innermost error names the real cause; the wrappers mostly repeat it.
    return ModelFailure("model_output_invalid", False, _describe(chain[-1]))


def _describe(exc: BaseException) -> str:
    detail = sanitize_text(str(exc), _ERROR_MESSAGE_CHARS)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


class _NoAssessmentError(Exception):
    """The agent finished without a SecurityAssessment."""


def backoff_s(attempt: int, *, base_s: float = RETRY_BASE_S, cap_s: float = RETRY_CAP_S) -> float:
    """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
    return random.uniform(0, min(cap_s, base_s * 2 ** (attempt - 1)))  # noqa: S311 - jitter, not crypto


# ---- the analyst ------------------------------------------------------------------------


class SecurityAnalyst:
    """Assesses WAF events with a Strands model, or with rules when there is none."""

    def __init__(
        self,
        model: Model | None = None,
        *,
        model_id: str | None = None,
        call_budget: int = DEFAULT_CALL_BUDGET,
        retry_base_s: float = RETRY_BASE_S,
    ) -> None:
        """Use ``model`` (any Strands model, including a test double), or rules if None.

        ``model_id`` overrides the id recorded in ``analyzed_by``; by default it is the
        id the model reports in ``get_config()``. ``call_budget``: model requests per
        event when the request names none.
        """
        self._model = model
        self._model_id = model_id
        self._call_budget = call_budget
        self._retry_base_s = retry_base_s

    @classmethod
    def from_config(
        cls, config: ProviderConfig, *, model: Model | None = None, retry_base_s: float = RETRY_BASE_S
    ) -> SecurityAnalyst:
        """Build the analyst for ``config``; a given ``model`` replaces the configured one."""
        if model is not None:
            return cls(model, call_budget=config.call_budget, retry_base_s=retry_base_s)
        built = build_model(config)
        return cls(
            built,
            model_id=config.model_id if built is not None else None,
            call_budget=config.call_budget,
            retry_base_s=retry_base_s,
        )

    @property
    def model_id(self) -> str | None:
        """The configured model's id; None for the rules provider."""
        if self._model is None:
            return None
        return self._model_id or model_id_of(self._model)

    @property
    def analyzed_by(self) -> str:
        """What ``Analysis.analyzed_by`` records when the model writes: its id, or ``rules``."""
        return self.model_id or RULES_PROVIDER

    @property
    def model(self) -> Model | None:
        """The Strands model behind the analyst; None for the rules provider."""
        return self._model

    def analyze(self, event: WafEvent, floor: SeverityFloorInfo, *, budget: int | None = None) -> Analysis:
        """Assess one event with at most ``budget`` model requests; never raises for the model.

        The final severity is the higher of the floor and the model's rating.
        """
        if self._model is None:
            return rules_analysis(event, floor)
        from agent_runtime.model_budget import BudgetedModel

        model = BudgetedModel(self._model, self._call_budget if budget is None else budget)
        # Only when the budget is 0: no attempt is made at all.
        failure = ModelFailure("model_budget_spent", False, "no model request allowed")
        attempt = 0
        while model.remaining > 0:
            attempt += 1
            try:
                assessment = self._assess(model, event, floor)
            except Exception as exc:
                failure = classify_failure(exc)
                log.warning(
                    "model_attempt_failed",
                    attempt=attempt,
                    reason=failure.reason,
                    transient=failure.transient,
                    error=failure.message,
                    model_calls=model.calls,
                )
                if not failure.transient or model.remaining <= 0:
                    break
                time.sleep(backoff_s(attempt, base_s=self._retry_base_s))
                continue
            return self._decide(event, floor, assessment, model.calls)
        log.warning("model_fallback_rules", reason=failure.reason, model_calls=model.calls)
        return rules_analysis(event, floor, degraded=True).model_copy(
            update={"degraded_reason": failure.reason, "model_calls": model.calls}
        )

    def _decide(
        self, event: WafEvent, floor: SeverityFloorInfo, assessment: SecurityAssessment, calls: int
    ) -> Analysis:
        raw = assessment.severity_rating
        severity = min(SEVERITY_MAX, max(SEVERITY_MIN, raw))
        model_id = self.analyzed_by
        if severity < floor.severity:
            # Overruled: a rating below the floor is most likely the request's text talking
            # (docs/architecture.md, "Model fail-safe"). The rules text is the analysis;
            # the model's words are kept apart, for forensics.
            log.warning("model_overruled", model_severity=severity, severity_floor=floor.severity)
            return rules_analysis(event, floor).model_copy(
                update={
                    "model_severity": severity,
                    "model_severity_clamped": severity != raw,
                    "model_overruled": True,
                    "model_opinion": ModelOpinion(
                        model_id=model_id,
                        severity=severity,
                        attack_type=assessment.attack_type,
                        security_analysis=assessment.security_analysis,
                        follow_up_suggestion=assessment.follow_up_suggestion,
                    ),
                    "model_calls": calls,
                }
            )
        return Analysis(
            severity_rating=severity,
            severity_floor=floor.severity,
            model_severity=severity,
            security_analysis=assessment.security_analysis,
            follow_up_suggestion=assessment.follow_up_suggestion,
            attack_type=assessment.attack_type,
            analyzed_by=model_id,
            floor=floor,
            model_written=True,
            model_severity_clamped=severity != raw,
            model_calls=calls,
        )

    @staticmethod
    def _assess(model: Model, event: WafEvent, floor: SeverityFloorInfo) -> SecurityAssessment:
        from strands import Agent

        from agent_runtime.structured_output import offer_plainly

        prompt = build_analysis_prompt(event, floor)
        # A fresh agent per attempt: an agent accumulates conversation history, and the
        # runtime must not carry one event's text into the next. No tools, so nothing the
        # model says can act on anything. Retries belong to ``analyze`` alone, never to
        # the agent's minute-long backoff.
        agent = Agent(
            model=model,
            system_prompt=SYSTEM_PROMPT,
            tools=[],
            callback_handler=None,
            retry_strategy=None,
            name="security_analyst",
        )
        offer_plainly(agent, SecurityAssessment)
        result: Any = agent(prompt, structured_output_model=SecurityAssessment)
        assessment = result.structured_output
        if not isinstance(assessment, SecurityAssessment):
            raise _NoAssessmentError(
                f"the model gave no SecurityAssessment (stop reason {result.stop_reason})"
            )
        return assessment

"""The security analyst: a Strands agent with structured output, or rules when offline.

The model only ever adds to the deterministic floor: the final severity is
``max(floor, model)``, so nothing an attacker writes into a request can lower it. The
agent has no tools and is built fresh for every event, so the runtime keeps no
conversation state between events. A model failure is a typed ``ModelError``, never a
silent default; ``rules_analysis`` is the fallback the worker chooses explicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from agent_runtime.prompt_safety import SYSTEM_PROMPT, build_analysis_prompt
from agent_runtime.providers import ProviderConfig, build_model, model_id_of
from secops_core.contract import Analysis, SeverityFloorInfo, WafEvent
from secops_core.errors import ErrorCode, ModelError
from secops_core.rules_analysis import ANALYSIS_TEXT_CHARS, ATTACK_TYPE_CHARS, RULES_PROVIDER, rules_analysis
from secops_core.text import sanitize_text

if TYPE_CHECKING:
    from strands.models import Model

# One answer, one retry when the model's tool input fails validation, one forced
# structured-output turn: more only spends tokens on a model that cannot comply.
DEFAULT_MAX_TURNS = 3
_ERROR_MESSAGE_CHARS = 300


class SecurityAssessment(BaseModel):
    """The security analyst's assessment of one AWS WAF event."""

    severity_rating: int = Field(
        ge=0,
        le=5,
        description=(
            "Severity from 0 (benign) to 5 (remote code execution reached the application), "
            "never below the deterministic floor given in the prompt."
        ),
    )
    security_analysis: str = Field(
        min_length=1,
        description=(
            "Two to five plain sentences for an operator: what the request tried, whether it "
            "reached the application, and why the severity is what it is."
        ),
    )
    follow_up_suggestion: str = Field(
        min_length=1,
        description="Concrete next steps for the operator, in one to three sentences.",
    )
    attack_type: str = Field(
        min_length=1,
        description=(
            "Short name of the attack, e.g. 'SQL injection', 'Cross-site scripting', "
            "'Log4j remote code execution', 'Bot traffic', or 'None' when benign."
        ),
    )

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


# ---- model errors -----------------------------------------------------------------------

_THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "throttlingException",
        "TooManyRequestsException",
        "Throttling",
        "ServiceQuotaExceededException",
    }
)


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


def _is_throttling(exc: BaseException) -> bool:
    from strands.types.exceptions import ModelThrottledException

    if isinstance(exc, ModelThrottledException):
        return True
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        # botocore ClientError
        code = response.get("Error", {}).get("Code")
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in _THROTTLING_CODES or status == 429
    try:
        import openai
    except ImportError:
        return False
    return isinstance(exc, openai.RateLimitError)


def _is_invalid_output(exc: BaseException) -> bool:
    from strands.types.exceptions import MaxTokensReachedException, StructuredOutputException

    # A truncated answer is unusable output; the same input would be cut the same way.
    return isinstance(exc, StructuredOutputException | ValidationError | MaxTokensReachedException)


def to_model_error(exc: BaseException) -> ModelError:
    """Map any exception from a model call to a ``ModelError`` with a stable code.

    MODEL_THROTTLED for throttling anywhere in the chain (Strands, botocore, OpenAI),
    MODEL_OUTPUT_INVALID when the model answered but not with a valid assessment, and
    MODEL_ERROR for everything else (connection errors, timeouts, access denied, ...).
    """
    if isinstance(exc, ModelError):
        return exc
    chain = _exception_chain(exc)
    code = ErrorCode.MODEL_ERROR
    # The innermost error names the real cause; the wrappers mostly repeat it.
    cause = chain[-1]
    for test, matched_code in (
        (_is_throttling, ErrorCode.MODEL_THROTTLED),
        (_is_invalid_output, ErrorCode.MODEL_OUTPUT_INVALID),
    ):
        matched = next((item for item in chain if test(item)), None)
        if matched is not None:
            code, cause = matched_code, matched
            break
    detail = sanitize_text(str(cause), _ERROR_MESSAGE_CHARS)
    message = f"{type(cause).__name__}: {detail}" if detail else type(cause).__name__
    return ModelError(code, message)


# ---- the analyst ------------------------------------------------------------------------


class SecurityAnalyst:
    """Assesses WAF events with a Strands model, or with rules when there is none."""

    def __init__(
        self,
        model: Model | None = None,
        *,
        model_id: str | None = None,
        max_turns: int = DEFAULT_MAX_TURNS,
    ) -> None:
        """Use ``model`` (any Strands model, including a test double), or rules if None.

        ``model_id`` overrides the id recorded in ``analyzed_by``; by default it is the
        id the model reports in ``get_config()``.
        """
        self._model = model
        self._model_id = model_id
        self._max_turns = max_turns

    @classmethod
    def from_config(cls, config: ProviderConfig, *, model: Model | None = None) -> SecurityAnalyst:
        """Build the analyst for ``config``; a given ``model`` replaces the configured one."""
        if model is not None:
            return cls(model)
        built = build_model(config)
        return cls(built, model_id=config.model_id if built is not None else None)

    @property
    def analyzed_by(self) -> str:
        """What ``Analysis.analyzed_by`` records: the model id, or ``rules``."""
        if self._model is None:
            return RULES_PROVIDER
        return self._model_id or model_id_of(self._model)

    @property
    def uses_model(self) -> bool:
        """False for the rules provider."""
        return self._model is not None

    def analyze(self, event: WafEvent, floor: SeverityFloorInfo) -> Analysis:
        """Assess one event. Raises ``ModelError`` when the model fails.

        The final severity is the higher of the floor and the model's rating.
        """
        if self._model is None:
            return rules_analysis(event, floor)
        assessment = self._assess(event, floor)
        return Analysis(
            severity_rating=max(floor.severity, assessment.severity_rating),
            severity_floor=floor.severity,
            model_severity=assessment.severity_rating,
            security_analysis=assessment.security_analysis,
            follow_up_suggestion=assessment.follow_up_suggestion,
            attack_type=assessment.attack_type,
            analyzed_by=self.analyzed_by,
            floor=floor,
        )

    def _assess(self, event: WafEvent, floor: SeverityFloorInfo) -> SecurityAssessment:
        from strands import Agent

        prompt = build_analysis_prompt(event, floor)
        # A fresh agent per event: an agent accumulates conversation history, and the
        # runtime must not carry one event's text into the next. No tools, so nothing the
        # model says can act on anything. Retries belong to the SDK client (botocore or
        # OpenAI) and, beyond it, to the worker, never to the agent's minute-long backoff.
        agent = Agent(
            model=self._model,
            system_prompt=SYSTEM_PROMPT,
            tools=[],
            callback_handler=None,
            retry_strategy=None,
            name="security_analyst",
        )
        try:
            result: Any = agent(
                prompt,
                structured_output_model=SecurityAssessment,
                limits={"turns": self._max_turns},
            )
        except Exception as exc:
            raise to_model_error(exc) from exc
        assessment = result.structured_output
        if not isinstance(assessment, SecurityAssessment):
            raise ModelError(
                ErrorCode.MODEL_OUTPUT_INVALID,
                f"the model gave no SecurityAssessment (stop reason {result.stop_reason})",
            )
        return assessment

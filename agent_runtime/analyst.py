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

from agent_runtime.contract import Analysis, SeverityFloorInfo, WafEvent
from agent_runtime.errors import ErrorCode, ModelError
from agent_runtime.prompt_safety import SYSTEM_PROMPT, build_analysis_prompt, sanitize_text
from agent_runtime.providers import ProviderConfig, build_model, model_id_of

if TYPE_CHECKING:
    from strands.models import Model

RULES_PROVIDER = "rules"

# Operators read these in a console and in notifications: long enough for a paragraph,
# short enough that a model cannot paste a payload essay into an alert.
ANALYSIS_TEXT_CHARS = 4000
ATTACK_TYPE_CHARS = 120
# Text the rules provider quotes from the request (target, source) or the floor.
_RULES_TARGET_CHARS = 200
_RULES_FIELD_CHARS = 120
_RULES_REASON_CHARS = 500
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


# ---- rules provider ---------------------------------------------------------------------

# The attack classes of ``severity.py``, in words an operator reads. A class missing here
# still gets a readable name from its identifier.
_ATTACK_TYPES = {
    "sqli": "SQL injection",
    "xss": "Cross-site scripting",
    "lfi": "Local file inclusion",
    "rfi": "Remote file inclusion",
    "path_traversal": "Path traversal",
    "ssrf": "Server-side request forgery (EC2 metadata)",
    "sensitive_file_access": "Sensitive file access",
    "host_header": "Host header attack",
    "webdav_probe": "WebDAV probe",
    "exploitable_path": "Exploitable path probe",
    "known_bad_input": "Known bad input",
    "common_web_attack": "Common web attack",
    "wordpress_path": "WordPress path probe",
    "wordpress_attack": "WordPress attack",
    "php_attack": "PHP attack",
    "log4j": "Log4j remote code execution",
    "java_deserialization": "Java deserialization remote code execution",
    "spring4shell": "Spring4Shell remote code execution",
    "command_injection": "Shell command injection",
    "rce": "Remote code execution",
    "php_exploit": "PHP exploit",
    "wordpress_exploit": "WordPress exploit",
    "credential_stuffing": "Credential stuffing",
    "compromised_credential": "Compromised credential",
    "admin_access": "Admin page access",
    "account_takeover": "Account takeover attempt",
    "account_creation_fraud": "Account creation fraud",
    "ddos": "DDoS",
    "ddos_suspect": "Suspected DDoS",
    "bad_bot_user_agent": "Bad bot user agent",
    "no_user_agent": "Missing user agent",
    "size_restriction": "Oversized request",
    "ip_reputation": "IP reputation",
    "anonymous_ip": "Anonymous IP",
    "rate_limit": "Rate limit exceeded",
    "ip_match": "IP list match",
    "geo_match": "Geo match",
    "login_anomaly": "Login anomaly",
    "bot_targeted": "Targeted bot",
    "bot": "Bot traffic",
    "bot_signal": "Bot signal",
    "challenge": "CAPTCHA or challenge",
    "unsupported_request": "Unsupported request",
    "default_block": "Default block",
    "unknown_action": "Unrecognized WAF action",
    "allow_rule": "Allow-listed request",
    "none": "None",
    "unknown": "Unclassified rule match",
}

_RCE_CHECK = "look for signs of compromise on the host (new processes, outbound connections)"
_FILE_CHECK = "check that no file path is built from request input"
_WORDPRESS_CHECK = "check that WordPress core and plugins are patched"
_PHP_CHECK = "check that PHP and its modules are patched"
_GENERIC_CHECK = "check the application logs around it for errors or unusual responses"

# Attack classes (an attack payload; blocked is still an attempt) and what to check in
# the application when one of them reached it.
_ATTACK_CHECKS = {
    "sqli": "check that the targeted parameter is bound with parameterized queries",
    "xss": "check that the reflected value is output-encoded and that a Content-Security-Policy is in place",
    "lfi": _FILE_CHECK,
    "rfi": "check that the application never includes or fetches a URL taken from the request",
    "path_traversal": _FILE_CHECK,
    "ssrf": "check that IMDSv2 is enforced and that the application never fetches a URL from the request",
    "sensitive_file_access": "check that no backup, log or configuration file is served from the web root",
    "host_header": "check that the application does not build links or redirects from the Host header",
    "webdav_probe": "check that WebDAV is disabled on the web server",
    "exploitable_path": "check that administrative and debug paths are not exposed",
    "known_bad_input": _GENERIC_CHECK,
    "common_web_attack": _GENERIC_CHECK,
    "wordpress_path": _WORDPRESS_CHECK,
    "wordpress_attack": _WORDPRESS_CHECK,
    "wordpress_exploit": f"{_WORDPRESS_CHECK} and {_RCE_CHECK}",
    "php_attack": _PHP_CHECK,
    "php_exploit": f"{_PHP_CHECK} and {_RCE_CHECK}",
    "log4j": f"check that every Java service behind this host runs a patched Log4j and {_RCE_CHECK}",
    "java_deserialization": f"check that the service never deserializes request data and {_RCE_CHECK}",
    "spring4shell": f"check that Spring Framework is patched (CVE-2022-22965) and {_RCE_CHECK}",
    "command_injection": f"check that no shell command is built from request input and {_RCE_CHECK}",
    "rce": f"patch the targeted component and {_RCE_CHECK}",
    "credential_stuffing": (
        "check which logins from this source succeeded, reset those passwords and consider MFA"
    ),
}

# Non-attack classes with something specific to check when the request got through.
_REACHED_CHECKS = {
    "compromised_credential": "check whether the login succeeded and reset that credential if it did",
    "account_takeover": "check whether the login succeeded and reset that credential if it did",
    "account_creation_fraud": "review the accounts created from this source",
    "admin_access": "check that the admin path requires authentication and is not public",
}

_REACHED_ACTIONS = frozenset({"ALLOW", "COUNT"})
_COUNT_ACTIONS = frozenset({"COUNT", "EXCLUDED_AS_COUNT"})
_CHALLENGE_ACTIONS = frozenset({"CAPTCHA", "CHALLENGE"})


def _attack_type(attack_class: str) -> str:
    key = attack_class.strip().lower()
    if key in _ATTACK_TYPES:
        return _ATTACK_TYPES[key]
    readable = sanitize_text(key.replace("_", " ").replace("-", " "), ATTACK_TYPE_CHARS)
    return readable.capitalize() or _ATTACK_TYPES["unknown"]


def _target(event: WafEvent) -> str:
    method = sanitize_text(event.http_method or "", _RULES_FIELD_CHARS)
    host = sanitize_text(event.host or "", _RULES_FIELD_CHARS)
    uri = sanitize_text(event.uri, _RULES_TARGET_CHARS)
    return " ".join(part for part in (method, f"{host}{uri}") if part)


def _source(event: WafEvent) -> str:
    ip = sanitize_text(event.source_ip, _RULES_FIELD_CHARS)
    country = sanitize_text(event.country or "", _RULES_FIELD_CHARS)
    return f"{ip} ({country})" if country else ip


def _request_ref(event: WafEvent) -> str:
    if event.request_id:
        return f"request id {sanitize_text(event.request_id, _RULES_FIELD_CHARS)}"
    return f"requests from {_source(event)} at {event.timestamp.isoformat()}"


def _was_counted(event: WafEvent) -> bool:
    """True when a rule matched in COUNT mode: the request went on to the application."""
    return event.action.upper() == "COUNT" or any(
        match.action.upper() in _COUNT_ACTIONS for match in event.matches
    )


def _disposition(event: WafEvent) -> str:
    action = event.action.upper()
    if action in _REACHED_ACTIONS:
        return f"WAF action {action}: the request reached the application"
    if action in _CHALLENGE_ACTIONS:
        return f"WAF action {action}: the client had to pass a {action.lower()} first"
    return f"WAF action {sanitize_text(action, _RULES_FIELD_CHARS)}: the request was stopped"


def _follow_up(event: WafEvent, floor: SeverityFloorInfo) -> str:
    attack_class = floor.attack_class.strip().lower()
    action = event.action.upper()
    rule = sanitize_text(floor.rule, _RULES_FIELD_CHARS)
    reached = action in _REACHED_ACTIONS
    check = _ATTACK_CHECKS.get(attack_class) or _REACHED_CHECKS.get(attack_class)
    if reached and check:
        steps = [f"Review the application logs for {_request_ref(event)}", check]
        if _was_counted(event):
            steps.append(f"consider switching rule {rule} from COUNT to BLOCK")
        else:
            steps.append(
                f"find out why rule {rule} did not block it (rule action, scope-down statement, "
                "an earlier allow rule) and consider making it BLOCK"
            )
        return "; ".join(steps) + "."
    if attack_class in _ATTACK_CHECKS:
        return (
            f"No action needed for this request: WAF stopped it. The monitor escalates if "
            f"{_source(event)} keeps sending it; if the source keeps probing, consider adding it "
            "to a blocking IP set."
        )
    if attack_class == "none":
        return "No action needed: no rule matched and the default action allowed the request."
    if floor.severity == 0:
        return "No action needed: the web ACL's own allow rule admitted the request."
    if attack_class == "unknown":
        return (
            f"Classify rule {rule} (managed group, rule type or naming) so its events get a "
            "meaningful severity, then review whether this request was legitimate."
        )
    if action in _CHALLENGE_ACTIONS or floor.severity <= 1:
        return "No action needed; review bot-control metrics if the volume from this source grows."
    if reached:
        return (
            f"Check whether traffic from {_source(event)} is legitimate; if not, consider "
            f"switching rule {rule} to BLOCK."
        )
    return (
        f"No action needed unless legitimate clients are affected; check rule {rule} for false "
        f"positives if {_source(event)} is a known client."
    )


def rules_analysis(event: WafEvent, floor: SeverityFloorInfo, degraded: bool = False) -> Analysis:
    """Analyze without a model: the floor is the severity, the text is templated.

    ``degraded`` marks an analysis made because the configured model failed.
    """
    rule = sanitize_text(floor.rule, _RULES_FIELD_CHARS)
    reason = sanitize_text(floor.reason, _RULES_REASON_CHARS).rstrip(".")
    attack_type = _attack_type(floor.attack_class)
    if floor.attack_class.strip().lower() == "none":
        matched = f"No rule matched {_target(event)} from {_source(event)}."
    else:
        matched = f"{attack_type}: rule {rule} matched {_target(event)} from {_source(event)}."
    analysis = (
        f"{matched} {_disposition(event)}. Severity {floor.severity} (deterministic floor): "
        f"{reason}. Assessed by rules, without a model."
    )
    return Analysis(
        severity_rating=floor.severity,
        severity_floor=floor.severity,
        model_severity=None,
        security_analysis=sanitize_text(analysis, ANALYSIS_TEXT_CHARS),
        follow_up_suggestion=sanitize_text(_follow_up(event, floor), ANALYSIS_TEXT_CHARS),
        attack_type=attack_type,
        analyzed_by=RULES_PROVIDER,
        floor=floor,
        degraded=degraded,
    )


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

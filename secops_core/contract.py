"""The wire contract between the worker and the agent runtime.

Owned by the runtime, imported by the worker. Only pydantic and the standard library
are imported here so the worker can use it without pulling in Strands or a model SDK.

Requests (each also accepted wrapped as ``{"prompt": "<the same JSON as a string>"}``):

- ``{"action": "analyze", "event": {...}}``
- ``{"action": "monitor", "hours": 24, "events": [...]}``
- ``{"action": "triage_only", "event": {...}, "analysis": {"severity_rating": 4, ...}}``

Responses are ``{"status": "success", "workflow": ..., ...}`` or
``{"status": "error", "error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from secops_core.errors import RETRYABLE_CODES, ErrorCode
from secops_core.limits import MAX_MONITOR_EVENTS, MAX_MONITOR_HOURS

Severity = Annotated[int, Field(ge=0, le=5)]
TriageAction = Literal["auto_close", "monitor", "escalate"]
EventStatus = Literal["closed", "monitoring", "escalated"]
Workflow = Literal["analyze", "monitor", "triage_only"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Header(_Frozen):
    name: str
    value: str


class RuleMatch(_Frozen):
    """One rule that matched the request, wherever the WAF log recorded it."""

    rule_id: str
    # Rule group without vendor prefix or version, e.g. ``AWSManagedRulesSQLiRuleSet``;
    # None for a rule of the web ACL itself.
    rule_group: str | None = None
    # BLOCK, ALLOW, COUNT, CAPTCHA, CHALLENGE, or EXCLUDED_AS_COUNT for an excluded rule.
    action: str
    terminating: bool = False
    # Match details (``conditionType``): SQL_INJECTION, XSS, ...
    condition_types: tuple[str, ...] = ()


class WafEvent(_Frozen):
    """One WAF event, normalized from either input shape and already redacted."""

    event_key: str
    source_format: Literal["simplified", "waf_log"]
    event_id: str | None = None
    timestamp: datetime
    # What the WAF did to the request: ALLOW, BLOCK, COUNT, CAPTCHA, CHALLENGE.
    action: str
    source_ip: str
    country: str | None = None
    http_method: str | None = None
    host: str | None = None
    uri: str
    args: str | None = None
    user_agent: str | None = None
    headers: tuple[Header, ...] = ()
    # The rule that decided: the inner rule of a managed group when known,
    # ``Default_Action`` when nothing matched.
    rule_name: str
    rule_group: str | None = None
    terminating_rule_type: str | None = None
    matches: tuple[RuleMatch, ...] = ()
    labels: tuple[str, ...] = ()
    request_id: str | None = None
    web_acl: str | None = None
    # True when headers, labels or matches were cut to the limits in ``limits.py``.
    truncated: bool = False


FloorSource = Literal[
    "rule", "label", "condition", "group", "name", "rate_based", "operator", "default", "action"
]
FloorDisposition = Literal["blocked", "reached", "interrupted", "unknown"]


class FloorReason(_Frozen):
    """What decided the floor, for the record and ``secops rules explain``."""

    # rule: a managed rule id; label: a WAF label; condition: a custom rule's match
    # details; group: a managed group whose inner rule is unknown; name: a token of a
    # custom rule's name; rate_based: a rate-based rule; operator: the operator's own
    # catalog; default: the documented default for an unrecognized rule; action: no
    # rule, only the web ACL's action.
    source: FloorSource
    # The rule, label or pattern that matched, as written in the event or the catalog.
    matched: str
    attack_class: str
    disposition: FloorDisposition
    # The operator catalog entry ("<file> line N") when source is "operator".
    entry: str | None = None


class SeverityFloorInfo(_Frozen):
    """The deterministic floor as it travels on the wire."""

    severity: Severity
    attack_class: str
    reason: str
    rule: str
    # Absent in records written before it existed.
    floor_reason: FloorReason | None = None


# Why the configured model did not decide an analysis (``Analysis.degraded_reason``).
#
# - ``model_output_invalid``: an answer arrived and is unusable (free text after the forced
#   structured-output turn, tool input that is not JSON or not a valid assessment until
#   the budget ran out, an HTTP 200 that is HTML or not JSON, an answer cut by max
#   tokens). Retrying the same input gives the same answer: final, never worth waiting for.
# - ``model_timeout`` / ``model_throttled`` / ``model_error``: an *outage* (read or connect
#   timeout; 429 or a throttling error; 5xx, connection refused, access denied, any other
#   provider error) that lasted through the whole per-request budget.
# - ``model_budget_spent``: the request's ``model_budget`` was 0 (the worker spent the
#   event's budget on earlier deliveries); no model request was made.
DegradedReason = Literal[
    "model_output_invalid",
    "model_timeout",
    "model_throttled",
    "model_error",
    "model_budget_spent",
]
# The degraded reasons that are outages: the worker may wait (circuit open) and ask again
# while the per-event budget lasts, or accept the degraded analysis (``rules`` policy).
OUTAGE_REASONS: frozenset[str] = frozenset({"model_timeout", "model_throttled", "model_error"})


class ModelOpinion(_Frozen):
    """What an overruled model wrote: MODEL-WRITTEN, UNTRUSTED, kept for forensics only.

    A model that rates an event below the deterministic floor was most likely steered by
    text in the request (docs/architecture.md, "Model fail-safe"). Its words are never
    the analysis; show them, if at all, quoted and labelled as the overruled model's.
    """

    model_id: str
    severity: Severity
    attack_type: str
    security_analysis: str
    follow_up_suggestion: str


class Analysis(_Frozen):
    """The security analyst's result, with the floor and the model's own rating.

    Guarantees of the ``analyze`` workflow for a valid event (the runtime never answers
    an error because of the model; docs/architecture.md, "Model fail-safe"):

    - ``severity_rating >= severity_floor`` always.
    - ``model_written`` is True only when ``security_analysis``, ``follow_up_suggestion``
      and ``attack_type`` were written by the model named in ``analyzed_by``; otherwise
      they are the rules analysis (``analyzed_by == "rules"``).
    - The model answered usably and rated at or above the floor: its text, ``model_written``.
    - The model rated below the floor: ``model_overruled``, the rules text is the analysis
      (``floor.reason`` says why), the model's words are in ``model_opinion`` only.
    - No usable answer within the budget: the rules analysis, ``degraded`` with
      ``degraded_reason``; ``OUTAGE_REASONS`` tell an outage from an unusable answer.
    - ``model_calls`` counts every model request made for this analysis (each HTTP
      request: retries after errors and structured-output turns included), never more
      than the request's ``model_budget``.
    """

    severity_rating: Severity
    severity_floor: Severity
    # The model's rating after clamping to 0-5; None when no model rated the event.
    model_severity: Severity | None = None
    security_analysis: str
    follow_up_suggestion: str
    attack_type: str
    # Who wrote the text above: a model id, ``rules``, or ``caller`` (triage_only).
    analyzed_by: str
    floor: SeverityFloorInfo | None = None
    # True when the configured model was not used (it failed and the rules answered).
    degraded: bool = False
    degraded_reason: DegradedReason | None = None
    # Marker for readers: the text fields were written by a model (untrusted prose).
    model_written: bool = False
    # The model rated an integer outside 0-5; ``model_severity`` holds the clamped value.
    model_severity_clamped: bool = False
    # The model rated below the floor: its text was replaced by the rules analysis.
    model_overruled: bool = False
    model_opinion: ModelOpinion | None = None
    model_calls: Annotated[int, Field(ge=0)] = 0


class AnalysisInput(BaseModel):
    """An analysis supplied by the caller for ``triage_only`` (the seed's shape)."""

    model_config = ConfigDict(extra="allow")

    # Strict: ``true`` or ``"4"`` is a caller's mistake, not a severity.
    severity_rating: Annotated[int, Field(ge=0, le=5, strict=True)]
    security_analysis: str | None = None
    follow_up_suggestion: str | None = None
    attack_type: str | None = None


class TriageDecision(_Frozen):
    action: TriageAction
    status: EventStatus
    severity_rating: Severity
    reason: str


class Pattern(_Frozen):
    """A group of monitored events from one source IP to one normalized URI."""

    pattern_key: str
    source_ip: str
    normalized_uri: str
    count: int
    first_seen: datetime
    last_seen: datetime
    rules: tuple[str, ...]
    event_keys: tuple[str, ...]
    max_severity: Severity
    threshold: int
    threshold_met: bool
    narrative: str
    # Who wrote ``narrative``: ``template`` (code) or the model id. A model-written
    # narrative is untrusted prose about attacker-controlled traffic: label it as such.
    narrative_by: str = "template"
    narrative_model_written: bool = False


# ---- requests ------------------------------------------------------------------------


# At most this many model requests for one analyze request, whatever the worker asks.
MAX_MODEL_BUDGET = 20


class AnalyzeRequest(_Frozen):
    action: Literal["analyze"] = "analyze"
    event: WafEvent
    # Model requests this analysis may make (the worker passes what is left of the
    # event's budget across deliveries); None: the runtime's ``model_call_budget``.
    # 0: no model call, the rules analysis marked ``model_budget_spent``.
    model_budget: Annotated[int, Field(ge=0, le=MAX_MODEL_BUDGET, strict=True)] | None = None


class TriageOnlyRequest(_Frozen):
    action: Literal["triage_only"] = "triage_only"
    event: WafEvent
    analysis: AnalysisInput


class MonitorRequest(_Frozen):
    action: Literal["monitor"] = "monitor"
    hours: Annotated[int, Field(ge=1, le=MAX_MONITOR_HOURS)] = 24
    events: tuple[WafEvent, ...] = ()
    # Minimum events per pattern for the threshold; the worker passes its setting.
    threshold: Annotated[int, Field(ge=1)] | None = None
    # When the window ends (defaults to the runtime's clock): events older than
    # ``hours`` before it are ignored, so a stale list cannot escalate.
    now: datetime | None = None
    # Pattern keys that get a model-written narrative (the ones the worker will notify);
    # every other pattern gets the template and costs no model call.
    narrate: Annotated[tuple[str, ...], Field(max_length=MAX_MONITOR_EVENTS)] = ()


Request = AnalyzeRequest | TriageOnlyRequest | MonitorRequest


# ---- responses -----------------------------------------------------------------------


class AnalyzeResponse(_Frozen):
    status: Literal["success"] = "success"
    workflow: Literal["analyze"] = "analyze"
    event_key: str
    event: WafEvent
    analysis: Analysis
    triage: TriageDecision


class TriageOnlyResponse(_Frozen):
    status: Literal["success"] = "success"
    workflow: Literal["triage_only"] = "triage_only"
    event_key: str
    analysis: Analysis
    triage: TriageDecision


class MonitorResponse(_Frozen):
    status: Literal["success"] = "success"
    workflow: Literal["monitor"] = "monitor"
    hours: int
    events_considered: int
    events_in_window: int
    threshold: int
    patterns: tuple[Pattern, ...]
    # Model requests made for narratives (0 unless ``narrate`` named a pattern).
    model_calls: int = 0


class ErrorBody(_Frozen):
    code: ErrorCode
    message: str
    retryable: bool = False


class ErrorResponse(_Frozen):
    status: Literal["error"] = "error"
    error: ErrorBody


Response = AnalyzeResponse | TriageOnlyResponse | MonitorResponse


def parse_response(data: dict[str, Any]) -> Response | ErrorResponse:
    """Parse a runtime response body (used by the worker's transports)."""
    if data.get("status") == "error":
        return ErrorResponse.model_validate(data)
    workflow = data.get("workflow")
    models: dict[object, type[Response]] = {
        "analyze": AnalyzeResponse,
        "triage_only": TriageOnlyResponse,
        "monitor": MonitorResponse,
    }
    model = models.get(workflow, AnalyzeResponse)
    return model.model_validate(data)


def error_body(code: ErrorCode, message: str) -> dict[str, Any]:
    return ErrorResponse(
        error=ErrorBody(code=code, message=message, retryable=code in RETRYABLE_CODES)
    ).model_dump(mode="json")

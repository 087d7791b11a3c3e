"""The runtime's workflows, independent of how they are invoked (HTTP or in-process)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog

from agent_runtime.monitor import Narrator, detect_patterns
from secops_core.contract import (
    Analysis,
    AnalysisInput,
    AnalyzeRequest,
    AnalyzeResponse,
    MonitorRequest,
    MonitorResponse,
    SeverityFloorInfo,
    TriageOnlyRequest,
    TriageOnlyResponse,
    error_body,
)
from secops_core.errors import HTTP_STATUS, AgentRuntimeError, ErrorCode
from secops_core.ingest.normalize import parse_request
from secops_core.settings import CommonSettings
from secops_core.text import sanitize_text
from secops_core.triage import triage
from secops_core.waf.floor import severity_floor

if TYPE_CHECKING:
    from strands.models import Model

log = structlog.get_logger("agent_runtime")


class AgentService:
    """Routes a request to the three logical agents and shapes the response.

    Stateless: it holds a configured analyst and nothing about past requests.
    """

    def __init__(
        self,
        analyst: Any,
        *,
        monitor_threshold: int = 5,
        narrator: Narrator | None = None,
    ) -> None:
        self.analyst = analyst
        self.monitor_threshold = monitor_threshold
        self.narrator = narrator

    def invoke(self, payload: bytes | str | Mapping[str, Any] | Any) -> dict[str, Any]:
        """Handle one request; bad input and model failures become error responses."""
        body, _ = self.invoke_with_status(payload)
        return body

    def invoke_with_status(self, payload: Any, *, parsed: bool = False) -> tuple[dict[str, Any], int]:
        """The response body and its HTTP status; ``parsed``: the body is decoded JSON."""
        try:
            request = parse_request(payload, parsed=parsed)
            if isinstance(request, AnalyzeRequest):
                response: Any = self.analyze(request)
            elif isinstance(request, TriageOnlyRequest):
                response = self.triage_only(request)
            else:
                response = self.monitor(request)
            return response.model_dump(mode="json"), 200
        except AgentRuntimeError as exc:
            log.warning("request_failed", code=str(exc.code), error=exc.message)
            return error_body(exc.code, exc.message), HTTP_STATUS[exc.code]
        except Exception:
            # A bug, not bad input: log it in full, answer in the contract's shape.
            log.exception("request_crashed")
            return (
                error_body(ErrorCode.INTERNAL_ERROR, "internal error in the agent runtime"),
                HTTP_STATUS[ErrorCode.INTERNAL_ERROR],
            )

    def analyze(self, request: AnalyzeRequest) -> AnalyzeResponse:
        event = request.event
        with structlog.contextvars.bound_contextvars(event_key=event.event_key):
            floor = severity_floor(event)
            # Never raises for the model: a failure is a degraded analysis at the floor.
            analysis = self.analyst.analyze(event, floor, budget=request.model_budget)
            decision = triage(analysis.severity_rating)
            log.info(
                "event_analyzed",
                severity_floor=floor.severity,
                model_severity=analysis.model_severity,
                severity=analysis.severity_rating,
                triage=decision.action,
                analyzed_by=analysis.analyzed_by,
                model_calls=analysis.model_calls,
                degraded_reason=analysis.degraded_reason,
                model_overruled=analysis.model_overruled,
            )
            return AnalyzeResponse(event_key=event.event_key, event=event, analysis=analysis, triage=decision)

    def triage_only(self, request: TriageOnlyRequest) -> TriageOnlyResponse:
        """Triage a caller-supplied analysis; the floor still applies (it is never lowered)."""
        event = request.event
        floor = severity_floor(event)
        analysis = _analysis_from_input(request.analysis, floor)
        return TriageOnlyResponse(
            event_key=event.event_key, analysis=analysis, triage=triage(analysis.severity_rating)
        )

    def monitor(self, request: MonitorRequest) -> MonitorResponse:
        response = detect_patterns(
            request,
            default_threshold=self.monitor_threshold,
            severity_of=lambda e: severity_floor(e).severity,
            narrator=self.narrator,
        )
        log.info(
            "monitor_done",
            events=response.events_considered,
            in_window=response.events_in_window,
            patterns=len(response.patterns),
            over_threshold=sum(p.threshold_met for p in response.patterns),
        )
        return response


def _analysis_from_input(given: AnalysisInput, floor: SeverityFloorInfo) -> Analysis:
    return Analysis(
        severity_rating=max(floor.severity, given.severity_rating),
        severity_floor=floor.severity,
        model_severity=given.severity_rating,
        security_analysis=sanitize_text(given.security_analysis or floor.reason, 4000),
        follow_up_suggestion=sanitize_text(given.follow_up_suggestion or "", 4000),
        attack_type=sanitize_text(given.attack_type or floor.attack_class, 200),
        analyzed_by="caller",
        floor=floor,
    )


def build_service(settings: CommonSettings, model: Model | None = None) -> AgentService:
    """Build the service from the process settings; ``model`` overrides the provider (tests)."""
    from agent_runtime.analyst import SecurityAnalyst
    from agent_runtime.narrator import PatternNarrator
    from agent_runtime.providers import ProviderConfig

    analyst = SecurityAnalyst.from_config(ProviderConfig.from_settings(settings), model=model)
    narrator = (
        PatternNarrator(analyst.model, model_id=analyst.model_id) if analyst.model is not None else None
    )
    return AgentService(analyst, monitor_threshold=settings.monitor_threshold, narrator=narrator)

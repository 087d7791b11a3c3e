"""Typed facades of the three logical agents, over any transport.

The worker speaks to ``security_analyst``, ``incident_triager`` and
``security_monitor`` through these classes only: each builds the contract request,
runs it through the retry policy, parses the answer into the contract's response model,
and turns a contract error into the worker's typed errors (see ``transport.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from secops_core.contract import (
    AnalysisInput,
    AnalyzeResponse,
    ErrorResponse,
    MonitorResponse,
    TriageOnlyResponse,
    WafEvent,
    parse_response,
)
from worker.agents.transport import (
    RetryPolicy,
    Transport,
    TransportConfigError,
    classify_error_body,
    is_error_body,
    may_have_spent_model_calls,
    session_id_for,
)

if TYPE_CHECKING:
    from tenacity.wait import wait_base

    from worker.settings import Settings

R = TypeVar("R", AnalyzeResponse, TriageOnlyResponse, MonitorResponse)


class _Agent:
    """What the three facades share: a transport, a retry policy, strict parsing."""

    def __init__(self, transport: Transport, retry: RetryPolicy | None = None) -> None:
        self.transport = transport
        self.retry = retry or RetryPolicy()

    def _call(
        self,
        request: dict[str, Any],
        expected: type[R],
        *,
        session_key: str,
        event_key: str | None = None,
        before_attempt: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> R:
        # One session id for every attempt: AgentCore routes the retries of one event to
        # the same session, and a redelivery of the event derives the same id again.
        session_id = session_id_for(session_key)

        def attempt() -> R:
            sent = before_attempt(request) if before_attempt is not None else request
            try:
                body = self.transport.invoke(sent, session_id=session_id)
            except Exception as exc:
                if on_failure is not None:
                    on_failure(exc)
                raise
            parsed = _parse(body, expected)
            answered_key = getattr(parsed, "event_key", event_key)
            if answered_key != event_key:
                # Never let an answer for one event be stored as another's.
                raise TransportConfigError(
                    f"runtime answered for {answered_key!r}, asked about {event_key!r}",
                    reason="contract_mismatch",
                )
            return parsed

        return self.retry.call(attempt, operation=request["action"], event_key=event_key)


def _parse(body: dict[str, Any], expected: type[R]) -> R:
    if is_error_body(body):
        raise classify_error_body(body)
    try:
        parsed = parse_response(body)
    except ValidationError as exc:
        # The runtime answered, but not in this worker's contract: a version mismatch
        # between the deployed runtime and the worker, not a problem of the event.
        raise TransportConfigError(
            f"runtime response does not match the contract: {_first_error(exc)}",
            reason="contract_mismatch",
        ) from None
    if isinstance(parsed, ErrorResponse) or not isinstance(parsed, expected):
        raise TransportConfigError(
            f"runtime answered workflow {body.get('workflow')!r}, expected "
            f"{expected.model_fields['workflow'].default!r}",
            reason="contract_mismatch",
        )
    return parsed


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid"
    loc = ".".join(str(part) for part in errors[0]["loc"])
    return f"{loc}: {errors[0]['msg']}" if loc else errors[0]["msg"]


class SecurityAnalystAgent(_Agent):
    """``security_analyst``: severity, analysis and triage of one event."""

    def analyze(
        self,
        event: WafEvent,
        *,
        model_budget: int | None = None,
        on_lost_calls: Callable[[int], None] | None = None,
    ) -> AnalyzeResponse:
        """Analyze one normalized event; raises worker errors as classified.

        ``model_budget``: model requests the runtime may make for this event, across the
        retries of this call too (docs/architecture.md, "Model fail-safe"). A retry after
        an attempt that reached the runtime but brought no answer (a read timeout, a 5xx)
        counts that attempt's whole budget as spent, since the runtime may have spent it,
        and tells ``on_lost_calls``; so no retry can take the event past its budget.
        """
        request: dict[str, Any] = {"action": "analyze", "event": event.model_dump(mode="json")}
        if model_budget is None:
            return self._call(
                request, AnalyzeResponse, session_key=event.event_key, event_key=event.event_key
            )
        left = [model_budget]

        def with_budget(base: dict[str, Any]) -> dict[str, Any]:
            return {**base, "model_budget": left[0]}

        def lost(exc: BaseException) -> None:
            if left[0] > 0 and may_have_spent_model_calls(exc):
                if on_lost_calls is not None:
                    on_lost_calls(left[0])
                left[0] = 0

        return self._call(
            request,
            AnalyzeResponse,
            session_key=event.event_key,
            event_key=event.event_key,
            before_attempt=with_budget,
            on_failure=lost,
        )


class IncidentTriagerAgent(_Agent):
    """``incident_triager``: triage of an analysis the worker already holds."""

    def triage_only(self, event: WafEvent, analysis: dict[str, Any] | AnalysisInput) -> TriageOnlyResponse:
        """Triage ``analysis`` for ``event`` (the runtime never lowers the floor)."""
        given = analysis.model_dump(mode="json") if isinstance(analysis, AnalysisInput) else analysis
        request = {
            "action": "triage_only",
            "event": event.model_dump(mode="json"),
            "analysis": given,
        }
        return self._call(request, TriageOnlyResponse, session_key=event.event_key, event_key=event.event_key)


class SecurityMonitorAgent(_Agent):
    """``security_monitor``: patterns among the monitored events of a window."""

    def monitor(
        self,
        events: Sequence[WafEvent],
        hours: int,
        threshold: int,
        now: datetime | None = None,
        narrate: Sequence[str] = (),
    ) -> MonitorResponse:
        """Group ``events`` of the last ``hours`` (ending at ``now``) into patterns.

        Only the patterns named in ``narrate`` get a model-written narrative (and cost
        model calls); the others get the template.
        """
        request: dict[str, Any] = {
            "action": "monitor",
            "hours": hours,
            "threshold": threshold,
            "events": [event.model_dump(mode="json") for event in events],
        }
        if now is not None:
            request["now"] = now.isoformat()
        if narrate:
            request["narrate"] = list(narrate)
        # The same monitor request (one slot, re-run after a crash) gets the same session.
        digest = hashlib.sha256(
            json.dumps(request, sort_keys=True, separators=(",", ":")).encode("utf-8")
        ).hexdigest()
        return self._call(request, MonitorResponse, session_key=f"monitor#{digest}")


@dataclass(frozen=True)
class Agents:
    """The three agents over one shared transport, as the worker holds them."""

    analyst: SecurityAnalystAgent
    triager: IncidentTriagerAgent
    monitor: SecurityMonitorAgent
    transport: Transport

    @classmethod
    def over(cls, transport: Transport, retry: RetryPolicy | None = None) -> Agents:
        """The three facades over ``transport`` with one retry policy."""
        return cls(
            analyst=SecurityAnalystAgent(transport, retry),
            triager=IncidentTriagerAgent(transport, retry),
            monitor=SecurityMonitorAgent(transport, retry),
            transport=transport,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        runtime: Transport | None = None,
        wait: wait_base | None = None,
    ) -> Agents:
        """Build the configured transport (or use ``runtime``) and the retry policy from settings."""
        return cls.over(
            runtime if runtime is not None else build_transport(settings),
            RetryPolicy.from_settings(settings, wait=wait),
        )

    def close(self) -> None:
        """Close the shared transport."""
        self.transport.close()


def build_transport(settings: Settings) -> Transport:
    """The transport ``SECOPS_TRANSPORT`` names (``inprocess``, ``http`` or ``agentcore``).

    ``inprocess`` builds the runtime from the worker's own provider settings.
    """
    if settings.transport == "inprocess":
        from worker.agents.inprocess import InProcessTransport

        return InProcessTransport.from_settings(settings)
    if settings.transport == "http":
        from worker.agents.http import HttpTransport

        return HttpTransport(
            settings.runtime_url,
            connect_timeout=settings.runtime_connect_timeout_s,
            read_timeout=settings.runtime_read_timeout_s,
            max_connections=settings.concurrency,
        )
    from worker.agents.agentcore import AgentCoreTransport

    if not settings.agent_runtime_arn:  # Settings validates this too; keeps the type narrow.
        raise TransportConfigError(
            "SECOPS_TRANSPORT=agentcore needs SECOPS_AGENT_RUNTIME_ARN", reason="missing_arn"
        )
    return AgentCoreTransport(
        settings.agent_runtime_arn,
        qualifier=settings.agent_runtime_qualifier,
        region=settings.aws_region,
        connect_timeout=settings.runtime_connect_timeout_s,
        read_timeout=settings.runtime_read_timeout_s,
        max_pool_connections=settings.concurrency,
    )

"""The facades over the in-process transport: the embedded default, no network."""

from __future__ import annotations

from datetime import datetime

import pytest
from structlog.testing import capture_logs
from tenacity import wait_none

from agent_runtime.service import AgentService, build_service
from agent_runtime.settings import RuntimeSettings
from secops_core.contract import AnalysisInput, AnalyzeResponse, WafEvent
from tests.fixtures.agent_samples import (
    EVENT_TIME,
    MONITOR_NOW,
    native_waf_event,
    probe_series,
    simplified_waf_event,
)
from worker.agents import Agents, RetryPolicy, build_transport
from worker.agents.inprocess import InProcessTransport
from worker.errors import PermanentError, RetryableError
from worker.settings import Settings


@pytest.fixture(scope="module")
def service() -> AgentService:
    return build_service(RuntimeSettings(provider="rules"))


@pytest.fixture
def agents(service: AgentService) -> Agents:
    return Agents.over(
        InProcessTransport(service), RetryPolicy(max_attempts=3, deadline_s=5, wait=wait_none())
    )


def test_analyze_returns_a_typed_response(agents: Agents) -> None:
    event = native_waf_event()
    result = agents.analyst.analyze(event)
    assert isinstance(result, AnalyzeResponse)
    # The event survives the JSON round trip unchanged, datetimes included.
    assert result.event == event
    assert isinstance(result.event.timestamp, datetime)
    assert result.event.timestamp == EVENT_TIME
    assert result.analysis.analyzed_by == "rules"
    assert result.analysis.severity_rating >= result.analysis.severity_floor


def test_triage_only_accepts_a_dict_or_an_analysis_input(agents: Agents) -> None:
    event = simplified_waf_event()
    from_dict = agents.triager.triage_only(event, {"severity_rating": 5})
    from_model = agents.triager.triage_only(event, AnalysisInput(severity_rating=5))
    assert from_dict.triage == from_model.triage
    assert from_dict.triage.action == "escalate"
    assert from_dict.event_key == event.event_key


def test_triage_only_keeps_the_floor(agents: Agents) -> None:
    result = agents.triager.triage_only(simplified_waf_event(), {"severity_rating": 0})
    assert result.analysis.severity_rating == result.analysis.severity_floor == 3
    assert result.triage.action == "monitor"


def test_monitor_groups_and_applies_the_window(agents: Agents) -> None:
    # GIVEN three probes in the window and one from a day earlier
    stale = simplified_waf_event(id="evt-old", timestamp="2026-11-24T09:00:00Z")
    events: list[WafEvent] = [*probe_series(3), stale]
    # WHEN the monitor looks at the last 24 hours before MONITOR_NOW
    result = agents.monitor.monitor(events, hours=24, threshold=3, now=MONITOR_NOW)
    # THEN the stale event is outside the window and the three form one pattern
    assert result.events_considered == 4
    assert result.events_in_window == 3
    (pattern,) = result.patterns
    assert pattern.count == 3
    assert pattern.threshold_met
    assert pattern.normalized_uri == "/login.php"
    assert set(pattern.event_keys) == {e.event_key for e in events[:3]}


def test_bad_input_is_permanent_with_the_contract_code(agents: Agents) -> None:
    with pytest.raises(PermanentError) as caught:
        agents.triager.triage_only(simplified_waf_event(), {"severity_rating": 9})
    assert caught.value.reason == "invalid_analysis"


def test_model_errors_are_retried_then_surface_as_retryable() -> None:
    # GIVEN a service whose analyst always fails with a model error
    from secops_core.errors import ErrorCode, ModelError

    class BrokenAnalyst:
        def analyze(self, event: WafEvent, floor: object, *, budget: int | None = None) -> None:
            raise ModelError(ErrorCode.MODEL_ERROR, "model endpoint returned 500")

    agents = Agents.over(
        InProcessTransport(AgentService(BrokenAnalyst())),
        RetryPolicy(max_attempts=3, deadline_s=5, wait=wait_none()),
    )
    event = simplified_waf_event()
    # WHEN an event is analyzed
    with capture_logs() as logs, pytest.raises(RetryableError) as caught:
        agents.analyst.analyze(event)
    # THEN all three attempts were made and the reason is the contract code
    assert caught.value.reason == "model_error"
    assert len([e for e in logs if e["event"] == "runtime_retry"]) == 2


def test_build_transport_inprocess_builds_a_service_or_takes_the_given_runtime(service: AgentService) -> None:
    settings = Settings(transport="inprocess", provider="rules")
    assert isinstance(build_transport(settings), InProcessTransport)
    given = InProcessTransport(service)
    assert Agents.from_settings(settings, runtime=given).transport is given
    built = Agents.from_settings(settings)
    assert isinstance(built.transport, InProcessTransport)
    assert built.analyst.analyze(simplified_waf_event()).workflow == "analyze"
    built.close()

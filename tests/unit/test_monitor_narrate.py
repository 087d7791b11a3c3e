"""Pattern narratives: model-written only when asked, labelled, counted (issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from agent_runtime.monitor import detect_patterns, template_narrative
from agent_runtime.narrator import NARRATIVE_CALL_BUDGET, PatternNarrator
from agent_runtime.service import AgentService
from secops_core.contract import MonitorRequest, WafEvent
from secops_core.ingest.normalize import normalize_event
from secops_core.patterns import normalize_uri, pattern_key
from testkit.events import simplified
from testkit.scripted_model import ScriptedModel

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _event(n: int, ip: str) -> WafEvent:
    raw = simplified(f"mon-{ip}-{n}", source_ip=ip, uri="/api/users/1")
    raw["timestamp"] = (NOW - timedelta(minutes=10 - n)).isoformat()
    return normalize_event(raw)


def _request(**extra: Any) -> MonitorRequest:
    events = [_event(i, "198.51.100.77") for i in range(5)] + [_event(i, "203.0.113.5") for i in range(6)]
    return MonitorRequest(hours=24, events=tuple(events), threshold=5, now=NOW, **extra)


KEY_A = pattern_key("198.51.100.77", normalize_uri("/api/users/1"))
KEY_B = pattern_key("203.0.113.5", normalize_uri("/api/users/1"))


def test_no_narrative_is_asked_by_default_and_no_model_is_called() -> None:
    # GIVEN two patterns over the threshold and a model ready to narrate
    model = ScriptedModel([])

    # WHEN the monitor runs without ``narrate``
    response = detect_patterns(
        _request(), default_threshold=5, severity_of=lambda e: 3, narrator=PatternNarrator(model)
    )

    # THEN every pattern has the template, labelled as such, and the model was not called
    assert model.calls == 0
    assert response.model_calls == 0
    for pattern in response.patterns:
        assert pattern.threshold_met
        assert pattern.narrative == template_narrative(pattern)
        assert (pattern.narrative_by, pattern.narrative_model_written) == ("template", False)


def test_only_the_named_patterns_get_a_labelled_model_narrative() -> None:
    # GIVEN a model that writes one narrative
    model = ScriptedModel([{"narrative": "Benign traffic, no action."}], model_id="nova-test")

    # WHEN the worker asks a narrative for pattern A only
    response = detect_patterns(
        _request(narrate=(KEY_A,)),
        default_threshold=5,
        severity_of=lambda e: 3,
        narrator=PatternNarrator(model),
    )

    # THEN pattern A's narrative is the model's, marked model-written with its id
    by_key = {p.pattern_key: p for p in response.patterns}
    assert by_key[KEY_A].narrative == "Benign traffic, no action."
    assert by_key[KEY_A].narrative_model_written is True
    assert by_key[KEY_A].narrative_by == "nova-test"
    # AND pattern B kept the template, and one model call was counted
    assert by_key[KEY_B].narrative_model_written is False
    assert model.calls == response.model_calls == 1


def test_a_failing_narrator_is_bounded_and_leaves_the_labelled_template() -> None:
    model = ScriptedModel(["prose"], cycle=True)

    response = detect_patterns(
        _request(narrate=(KEY_A, KEY_B)),
        default_threshold=5,
        severity_of=lambda e: 3,
        narrator=PatternNarrator(model),
    )

    assert model.calls == response.model_calls <= 2 * NARRATIVE_CALL_BUDGET
    for pattern in response.patterns:
        assert pattern.narrative == template_narrative(pattern)
        assert pattern.narrative_model_written is False


def test_the_service_reads_narrate_from_the_wire() -> None:
    # GIVEN the runtime with a narrator, and a monitor request naming pattern B
    model = ScriptedModel([{"narrative": "A probe."}])
    service = AgentService(None, narrator=PatternNarrator(model, model_id="nova-test"))
    events = [e.model_dump(mode="json") for e in _request().events]

    body = service.invoke(
        {
            "action": "monitor",
            "hours": 24,
            "events": events,
            "threshold": 5,
            "now": NOW.isoformat(),
            "narrate": [KEY_B],
        }
    )

    assert body["status"] == "success", body
    assert body["model_calls"] == 1
    narrated = [p["pattern_key"] for p in body["patterns"] if p["narrative_model_written"]]
    assert narrated == [KEY_B]

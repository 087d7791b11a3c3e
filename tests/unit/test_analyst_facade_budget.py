"""The analyst facade keeps an event's model budget across its own retries."""

from __future__ import annotations

from typing import Any

from tenacity import wait_none

from secops_core.ingest.normalize import normalize_event
from secops_core.settings import CommonSettings
from testkit.events import simplified
from worker.agents import Agents, RetryPolicy
from worker.agents.inprocess import InProcessTransport
from worker.errors import RuntimeUnavailable


class FailingFirst:
    """Raises ``errors`` one per call, then hands the request to the real runtime."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.sent: list[dict[str, Any]] = []
        self.inner = InProcessTransport.from_settings(CommonSettings(provider="rules"))

    def invoke(self, payload: dict[str, Any], *, session_id: str | None = None) -> dict[str, Any]:
        self.sent.append(payload)
        if self.errors:
            raise self.errors.pop(0)
        return self.inner.invoke(payload, session_id=session_id)

    def close(self) -> None:
        self.inner.close()


def analyst(transport: FailingFirst) -> Any:
    return Agents.over(transport, RetryPolicy(max_attempts=3, wait=wait_none())).analyst


def test_a_retry_after_a_lost_answer_has_no_budget_left() -> None:
    # GIVEN a runtime whose first answer was lost after it read the request
    transport = FailingFirst([RuntimeUnavailable("read timed out", reason="read_timeout")])
    lost: list[int] = []
    # WHEN the facade analyzes with a budget of 3
    event = normalize_event(simplified("b1"))
    response = analyst(transport).analyze(event, model_budget=3, on_lost_calls=lost.append)
    # THEN the lost attempt counts its whole budget and the retry may call no model
    assert [p["model_budget"] for p in transport.sent] == [3, 0]
    assert lost == [3]
    assert response.analysis.severity_rating >= response.analysis.severity_floor


def test_a_refused_connection_spends_nothing() -> None:
    # GIVEN a runtime that refused the first connection (it never read the request)
    transport = FailingFirst([RuntimeUnavailable("refused", reason="connection")])
    lost: list[int] = []
    # WHEN the facade analyzes with a budget of 2
    analyst(transport).analyze(normalize_event(simplified("b2")), model_budget=2, on_lost_calls=lost.append)
    # THEN the retry is sent the whole budget again
    assert [p["model_budget"] for p in transport.sent] == [2, 2]
    assert lost == []

"""The analyze request's ``model_budget``: what the wire accepts (issue 10)."""

from __future__ import annotations

from typing import Any

import pytest

from agent_runtime.analyst import SecurityAnalyst
from agent_runtime.service import AgentService
from testkit.events import waf_record


@pytest.mark.parametrize("budget", [True, -1, 21, "2", 2.5])
def test_a_bad_model_budget_is_bad_input(budget: Any) -> None:
    service = AgentService(SecurityAnalyst(None))

    body = service.invoke({"action": "analyze", "event": waf_record(counted=True), "model_budget": budget})

    assert body["status"] == "error"
    assert body["error"]["code"] == "invalid_payload"


@pytest.mark.parametrize("budget", [None, 0, 3, 20])
def test_the_rules_provider_makes_no_model_call_whatever_the_budget(budget: int | None) -> None:
    service = AgentService(SecurityAnalyst(None))

    body = service.invoke({"action": "analyze", "event": waf_record(counted=True), "model_budget": budget})

    assert body["status"] == "success"
    assert body["analysis"]["model_calls"] == 0
    assert body["analysis"]["degraded"] is False

"""A model slower than the claim's lease: the claim is extended while the runtime call runs,
so a redelivery meets a live lease instead of analyzing the event a second time
(docs/architecture.md, "Event state machine")."""

from __future__ import annotations

import json
import threading
import time

from agent_runtime.service import build_service
from secops_core.settings import CommonSettings
from testkit.events import simplified
from testkit.scripted_model import ScriptedModel
from tests.fixtures.fakes import FakeNotifier
from worker.agents import Agents
from worker.agents.inprocess import InProcessTransport
from worker.incidents.joiner import IncidentJoiner
from worker.incidents.memory import MemoryIncidentRepo
from worker.pipeline.outcome import Outcome
from worker.pipeline.processor import EventProcessor
from worker.platform.metrics import Metrics
from worker.store.memory import MemoryStore

LEASE_S = 1
# The model answers after three leases' time.
MODEL_LATENCY_S = 3.0
ASSESSMENT = {
    "severity_rating": 5,
    "security_analysis": "Scripted: remote code execution attempt reached the application.",
    "follow_up_suggestion": "Scripted: block the source.",
    "attack_type": "RCE",
}


def test_a_redelivery_during_a_slow_model_call_does_not_process_the_event_twice() -> None:
    # GIVEN a scripted model that takes three leases to answer, and two replicas
    model = ScriptedModel([ASSESSMENT], latency_s=MODEL_LATENCY_S, cycle=True)
    service = build_service(CommonSettings(provider="rules"), model=model)
    agents = Agents.over(InProcessTransport(service))
    store = MemoryStore()
    notifier = FakeNotifier()
    incidents = IncidentJoiner(MemoryIncidentRepo(quiet_s=3600), window_s=0)

    def replica(name: str) -> EventProcessor:
        return EventProcessor(
            store=store,
            agents=agents,
            notifier=notifier,
            incidents=incidents,
            owner=name,
            lease_s=LEASE_S,
            metrics=Metrics(enabled=False),
        )

    body = json.dumps(simplified("slow1", action="ALLOW", rule_name="AWS-AWSManagedRulesSQLiRuleSet"))
    first: list[Outcome] = []
    worker = threading.Thread(target=lambda: first.append(replica("w1").process(body, "m1")))
    worker.start()
    # WHEN the message comes back to another replica after the lease would have run out
    # (its visibility expired) while the model still thinks
    while model.calls == 0:
        time.sleep(0.05)
    time.sleep(LEASE_S * 2)
    second = replica("w2").process(body, "m1-redelivered")
    worker.join()
    # THEN the redelivery met a live lease, the model was asked once and one critical
    # notification went out
    assert second.kind == "in_progress"
    assert first[0].kind == "done" and first[0].status == "escalated"
    assert model.calls == 1
    assert [m for _, m in notifier.incidents] == ["opened"]  # its incident opened

"""The response policy in the pipeline: an escalated event that reached the application
opens an incident, and its publisher blocks the source once (in-memory ports); the
announcements and the EventBridge detail against its published schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from tenacity import wait_none

from testkit.events import simplified
from tests.fixtures.fakes import FakeAgents, FakeClock, FakeNotifier
from worker.incidents.joiner import IncidentJoiner
from worker.incidents.memory import MemoryIncidentRepo
from worker.notify import blocks
from worker.pipeline.processor import EventProcessor
from worker.platform.metrics import Metrics
from worker.response.addresses import Allowlist
from worker.response.blocker import Blocker
from worker.response.memory import MemoryBlockRepo, MemoryIpSets
from worker.response.policy import ResponsePolicy
from worker.response.records import BlockCaps, BlockRecord, IpSetRef
from worker.response.responder import PolicyResponder
from worker.store.memory import MemoryStore

ROOT = Path(__file__).resolve().parents[3]
V4 = IpSetRef(
    name="secops-blocked-v4",
    id="abc",
    scope="REGIONAL",
    version="IPV4",
    arn="arn:aws:wafv2:us-east-1:123456789012:regional/ipset/secops-blocked-v4/abc",
)


class Heard:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    def blocked(self, record: BlockRecord) -> None:
        self.changes.append(("blocked", record.network))

    def unblocked(self, record: BlockRecord) -> None:
        self.changes.append(("unblocked", record.network))


@pytest.fixture
def parts() -> dict[str, Any]:
    clock = FakeClock(1_796_000_000.0)
    ip_sets = MemoryIpSets(wait=wait_none())
    ip_sets.create(V4)
    heard = Heard()
    blocker = Blocker(
        repo=MemoryBlockRepo(clock=clock),
        ip_sets=ip_sets,
        sets={"IPV4": V4},
        allowlist=Allowlist.build(release=["documentation"]),
        caps=BlockCaps(per_hour=50, total=1000),
        now=clock,
        listener=heard,
    )
    agents = FakeAgents()
    agents.analyst.severity = 5
    processor = EventProcessor(
        store=MemoryStore(clock=clock),
        agents=agents,
        notifier=FakeNotifier(),
        incidents=IncidentJoiner(MemoryIncidentRepo(quiet_s=3600), window_s=0),
        owner="w1",
        lease_s=60,
        metrics=Metrics(enabled=False),
        responder=PolicyResponder(policy=ResponsePolicy(mode="on"), blocker=blocker),
    )
    return {"processor": processor, "ip_sets": ip_sets, "heard": heard, "blocker": blocker}


def test_an_attack_that_reached_the_application_blocks_its_source_once(parts: dict[str, Any]) -> None:
    # GIVEN twelve severity-5 requests from one source that the WAF let through
    processor: EventProcessor = parts["processor"]
    # WHEN they are processed (the incident opens, then grows past 10)
    for n in range(12):
        processor.process(json.dumps(simplified(f"e{n}", action="ALLOW", source_ip="203.0.113.50")), f"m{n}")
    # THEN the source was blocked once, on the opening, and the set holds it once
    assert parts["heard"].changes == [("blocked", "203.0.113.50/32")]
    assert parts["ip_sets"].addresses(V4) == frozenset({"203.0.113.50/32"})
    (record,) = parts["blocker"].repo.blocks_in_force()
    assert record.decided_by == "policy" and record.incident_id is not None
    assert "reached the application" in record.reason
    assert record.expires_at - record.created_at == 4 * 3600


def test_an_attack_stopped_at_the_edge_blocks_nothing(parts: dict[str, Any]) -> None:
    # GIVEN a severity-5 request the WAF blocked
    processor: EventProcessor = parts["processor"]
    processor.process(json.dumps(simplified("e1", action="BLOCK", source_ip="203.0.113.50")), "m1")
    # THEN the default policy leaves the source alone: the WAF already stops it
    assert parts["heard"].changes == []


def test_what_a_person_reads_and_the_event_detail(parts: dict[str, Any]) -> None:
    # GIVEN a block of the policy
    blocker: Blocker = parts["blocker"]
    result = blocker.block(
        "203.0.113.9",
        duration_s=3600,
        reason="sqli at severity 5",
        decided_by="policy",
        incident_id="inc#ab#1",
    )
    record = result.record
    assert record is not None
    # WHEN it is rendered for SNS, chat, EventBridge and Security Hub
    text = blocks.text_notification("arn:aws:sns:us-east-1:123456789012:t", record, "blocked").message
    card = json.loads(
        blocks.chat_notification("arn:aws:sns:us-east-1:123456789012:c", record, "blocked").message
    )
    entry = blocks.event_entry(record, "blocked", bus="secops-incidents")
    note = blocks.securityhub_note(record, "blocked")
    # THEN each says what was blocked, where, until when, and how to undo it
    assert text.startswith("blocked 203.0.113.9 in ipset secops-blocked-v4 until 01:53 UTC.")
    assert "Undo: secops block remove 203.0.113.9/32" in text
    assert card["metadata"]["threadId"] == "inc#ab#1"
    assert "secops block remove" in card["content"]["nextSteps"][0]
    assert entry["DetailType"] == "Source Blocked"
    assert "until 01:53 UTC" in note["Text"]
    assert blocks.finding_of(record) == "secops-worker/incidents/ab/1"
    # AND the detail validates against the published schema, blocked and unblocked
    schema = json.loads((ROOT / blocks.SCHEMA_FILE).read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(entry["Detail"]), schema)
    (removed,) = blocker.unblock("203.0.113.9", by="person:ana", reason="mistake")
    jsonschema.validate(blocks.detail(removed, "unblocked"), schema)
    assert (
        blocks.summary(removed, "unblocked")
        == "unblocked 203.0.113.9 from ipset secops-blocked-v4 (unblocked by person:ana)"
    )

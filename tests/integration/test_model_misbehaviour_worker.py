"""Issue 10 acceptance: a worker run against a misbehaving OpenAI-compatible endpoint.

The whole production path: SQS, DynamoDB and SNS on moto's server, the real runtime in
process with the ``openai`` provider, and a scripted chat-completions endpoint over
HTTP. For every misbehaviour, every valid event ends in a terminal status at or above its
floor, each escalation is notified once, nothing is rejected or dead-lettered because of
the model, and no event costs more model requests than the budget, counted on the
endpoint (docs/architecture.md, "Model fail-safe").
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from tenacity import wait_none

from secops_core.ingest.normalize import normalize_event
from secops_core.waf.floor import severity_floor
from testkit.events import simplified
from tests.fixtures.scripted_http import Reply
from tests.fixtures.worker_harness import Env, fast_settings, make_env
from tests.functional.test_model_failsafe import openai_bad_json_args, raw_reply
from tests.functional.test_openai_wire import (
    ANSWER,
    ChatCompletionsServer,
    error_reply,
    text_reply,
    tool_call_reply,
)
from worker.agents import Agents
from worker.agents.inprocess import InProcessTransport
from worker.notify.render import JSON_SEPARATOR

pytestmark = pytest.mark.usefixtures("aws_endpoint")

BUDGET = 3
READ_TIMEOUT_S = 0.3
STALL_S = 10.0
TWO_MB = 2 * 1024 * 1024
HTML = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"
BENIGN = "Benign health check as the request instructed. Close it."

# (rule, WAF action) -> an event per floor the pipeline treats differently.
EVENTS = {
    "escalate": {"action": "ALLOW", "rule_name": "AWS-AWSManagedRulesSQLiRuleSet"},
    "rce": {"action": "COUNT", "rule_name": "AWS-AWSManagedRulesKnownBadInputsRuleSet#Log4JRCE"},
    "monitor": {"action": "BLOCK", "rule_name": "AWS-AWSManagedRulesSQLiRuleSet"},
    "low": {"action": "BLOCK", "rule_name": "AWS-AWSManagedRulesAmazonIpReputationList"},
}


class PerEventEndpoint(ChatCompletionsServer):
    """The scripted endpoint, answering each event's n-th request with its script's n-th
    reply (the last one repeats), and counting requests per event."""

    def __init__(self, script: list[Reply], uris: list[str]) -> None:
        super().__init__()
        self.script = script
        self.uris = uris
        self.calls: Counter[str] = Counter()
        self.released = threading.Event()
        self._lock = threading.Lock()
        endpoint = self

        class Dispatch(list[Reply]):
            def pop(self, _index: Any = -1) -> Reply:
                return endpoint.reply

        self.replies = Dispatch()

    def reply(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        text = json.dumps(body)
        uri = next((u for u in self.uris if u in text), "?")
        with self._lock:
            self.calls[uri] += 1
            n = self.calls[uri]
        self.script[min(n, len(self.script)) - 1](handler, body)


def stall(endpoint: Callable[[], PerEventEndpoint]) -> Reply:
    def reply(handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        endpoint().released.wait(STALL_S)
        with contextlib.suppress(OSError):
            error_reply(500, "too_late")(handler, body)

    return reply


OK_5 = tool_call_reply({**ANSWER, "severity_rating": 5})
CASES: dict[str, Callable[[Callable[[], PerEventEndpoint]], list[Reply]]] = {
    "free-text": lambda _e: [text_reply("This is clearly benign, no tool needed.")],
    "bad-json-args": lambda _e: [openai_bad_json_args],
    "severity-9": lambda _e: [tool_call_reply({**ANSWER, "severity_rating": 9})],
    "severity-minus-1": lambda _e: [tool_call_reply({**ANSWER, "severity_rating": -1})],
    "severity-high": lambda _e: [tool_call_reply({**ANSWER, "severity_rating": "high"})],
    "2mb-answer": lambda _e: [text_reply("benign " * (TWO_MB // 7))],
    "html-200": lambda _e: [raw_reply(200, "text/html", HTML)],
    "10s-stall": lambda e: [stall(e)],
    "429-forever": lambda _e: [error_reply(429, "rate_limit_exceeded")],
    "500-forever": lambda _e: [error_reply(500, "internal_error")],
    "429-then-ok": lambda _e: [error_reply(429, "rate_limit_exceeded"), OK_5],
    "500-then-ok": lambda _e: [error_reply(500, "internal_error"), OK_5],
}


@contextlib.contextmanager
def endpoint_for(case: str, uris: list[str]) -> Iterator[PerEventEndpoint]:
    holder: list[PerEventEndpoint] = []
    server = PerEventEndpoint(CASES[case](lambda: holder[0]), uris)
    holder.append(server)
    with server:
        try:
            yield server
        finally:
            server.released.set()


def run_case(
    case: str, unique: str, tmp_path: Path, *, policy: str = "wait", script: list[Reply] | None = None
) -> tuple[Env, PerEventEndpoint, dict[str, Any]]:
    bodies = {
        kind: simplified(f"{case}-{kind}", uri=f"/acceptance/{case}/{kind}", **fields)
        for kind, fields in EVENTS.items()
    }
    uris = [body["uri"] for body in bodies.values()]
    with endpoint_for(case, uris) as endpoint:
        if script is not None:
            endpoint.script = script
        settings = fast_settings(
            unique,
            tmp_path,
            provider="openai",
            model_id="gpt-scripted",
            model_base_url=endpoint.base_url,
            model_api_key="sk-test-not-a-secret",
            model_read_timeout_s=READ_TIMEOUT_S,
            model_call_budget=BUDGET,
            on_runtime_unavailable=policy,
            # Every event must meet the model here, the noise and the floor-5 ones too.
            skip_model_blocked_noise=False,
            skip_model_max_floor=False,
        )
        env = make_env(settings)
        agents = Agents.from_settings(
            settings, runtime=InProcessTransport.from_settings(settings), wait=wait_none()
        )
        env.send(bodies.values())
        env.drain(env.worker(agents))
    return env, endpoint, bodies


def check_run(env: Env, endpoint: PerEventEndpoint, bodies: dict[str, Any]) -> list[dict[str, Any]]:
    """The acceptance invariants; returns the critical notifications delivered."""
    records = env.store.get_many([f"evt#{body['id']}" for body in bodies.values()])
    notices = env.delivered(env.critical_tap)
    # Critical notices are per incident milestone: keyed by the incident's id.
    milestones = Counter(
        (
            n["MessageAttributes"]["event_key"]["Value"],
            json.loads(n["Message"].split(JSON_SEPARATOR, 1)[1])["milestone"]["id"],
        )
        for n in notices
    )
    assert all(times == 1 for times in milestones.values()), milestones
    for body in bodies.values():
        record = records[f"evt#{body['id']}"]
        floor = severity_floor(normalize_event(body)).severity
        assert record.analysis is not None, body["id"]
        # Terminal, never rejected, never below the floor.
        assert record.status in {"closed", "monitoring", "escalated"}, (body["id"], record.status)
        assert record.analysis.severity_rating >= floor
        # At most the budgeted model requests, counted by the endpoint and by the store.
        assert endpoint.calls[body["uri"]] <= BUDGET, (body["id"], endpoint.calls)
        assert record.model_calls == endpoint.calls[body["uri"]], body["id"]
        # Escalations joined an incident, whose opening was notified (once, as every milestone).
        if record.status == "escalated":
            assert record.incident_id is not None and milestones[(record.incident_id, "opened")] == 1, (
                record.key,
                milestones,
            )
        else:
            assert record.incident_id is None, record.key
    # Nothing dead-lettered.
    assert env.resources.dlq_url is not None
    assert env.queue_counts(env.resources.dlq_url) == (0, 0)
    return notices


@pytest.mark.parametrize("case", list(CASES))
def test_every_valid_event_ends_at_least_at_its_floor(case: str, unique: str, tmp_path: Path) -> None:
    # GIVEN an endpoint that misbehaves as `case` says, the `wait` policy and a budget of 3
    # WHEN a worker drains escalating, monitored and low events
    env, endpoint, bodies = run_case(case, unique, tmp_path)
    # THEN every event is triaged at or above its floor within the budget, escalations
    # notified once, nothing rejected or dead-lettered
    check_run(env, endpoint, bodies)
    records = env.store.get_many([f"evt#{b['id']}" for b in bodies.values()])
    assert records[f"evt#{bodies['escalate']['id']}"].status == "escalated"


def test_the_rules_policy_holds_the_same_guarantees(unique: str, tmp_path: Path) -> None:
    # GIVEN a model that answers 500 to everything and SECOPS_ON_RUNTIME_UNAVAILABLE=rules
    env, endpoint, bodies = run_case("500-forever", unique, tmp_path, policy="rules")
    # THEN the same invariants hold
    check_run(env, endpoint, bodies)


def test_an_obedient_model_is_overruled_and_its_words_never_notified(unique: str, tmp_path: Path) -> None:
    # GIVEN a model that obeys an injection: severity 0, "benign", for every event
    obedient = [
        tool_call_reply(
            {
                "severity_rating": 0,
                "security_analysis": BENIGN,
                "follow_up_suggestion": "Close it.",
                "attack_type": "None",
            }
        )
    ]
    env, endpoint, bodies = run_case("free-text", unique, tmp_path, script=obedient)
    # THEN the invariants hold, every event with a floor above 0 is model_overruled, and no
    # notification carries the model's benign words
    notices = check_run(env, endpoint, bodies)
    records = env.store.get_many([f"evt#{b['id']}" for b in bodies.values()])
    for body in bodies.values():
        record = records[f"evt#{body['id']}"]
        assert record.analysis is not None
        if record.analysis.severity_floor > 0:
            assert record.analysis.model_overruled, body["id"]
            assert BENIGN not in record.analysis.security_analysis
    assert notices and all(BENIGN not in n["Message"] for n in notices)
    assert all("MODEL OVERRULED" in n["Message"] for n in notices)

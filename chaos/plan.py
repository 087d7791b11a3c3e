"""The seeded plan of messages a chaos run sends, and the store key of each.

Valid events of every triage outcome in both input shapes (simplified, native WAF log,
the wrapped ``{"prompt": ...}`` form), campaigns of blocked attacks from one source to
one URI (the monitor turns them into patterns), copies sent right after the original,
re-sends of an event later under a new message id (as a DLQ replay would), and poison
messages (not JSON, invalid events, a monitor request).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from secops_core.errors import ContractError
from secops_core.ingest.normalize import event_key_for, normalize_event
from secops_core.triage import triage
from secops_core.waf.floor import severity_floor
from testkit.events import simplified, waf_record
from worker.errors import PermanentError
from worker.pipeline.processor import parse_message
from worker.store import rejection_key

MessageKind = Literal["event", "copy", "resend", "poison"]

# Shares of the valid events; the rest are escalations and closed noise.
CAMPAIGN_SHARE = 0.30
SCATTERED_MONITOR_SHARE = 0.05  # each is a pattern of one that every monitor slot re-writes
ESCALATION_SHARE = 0.25
CAMPAIGN_SIZES = (6, 10)  # above the monitor threshold (5) from the first slot that sees them
COPY_SHARE = 0.10  # sent twice, back to back
RESEND_SHARE = 0.05  # sent again later, wrapped, under a new message id
POISON_SHARE = 0.03
RESEND_DELAY_S = (15.0, 30.0)

# (action, rule name) of simplified events per outcome, with the floor they get.
_ESCALATIONS = (("ALLOW", "SQLi_BODY"), ("COUNT", "CrossSiteScripting_BODY"), ("ALLOW", "Log4JRCE_HEADER"))
_CLOSED = (
    ("BLOCK", "SizeRestrictions_BODY"),
    ("CAPTCHA", "CategoryHTTPLibrary"),
    ("BLOCK", "AWSManagedIPReputationList"),
)


@dataclass(frozen=True)
class PlannedMessage:
    at_s: float  # when to send it, from the start of the chaos phase
    body: str
    key: str  # the store key the processor files it under
    kind: MessageKind
    label: str  # what it is: the event's outcome class, or the kind of poison
    expected_status: str | None  # closed | monitoring | escalated; None for poison
    floor: int | None


@dataclass(frozen=True)
class Plan:
    messages: tuple[PlannedMessage, ...]

    @property
    def valid_keys(self) -> dict[str, PlannedMessage]:
        return {m.key: m for m in self.messages if m.kind == "event"}

    @property
    def poison_keys(self) -> set[str]:
        return {m.key for m in self.messages if m.kind == "poison"}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for message in self.messages:
            out[message.kind] = out.get(message.kind, 0) + 1
        return out


def store_key(body: str) -> str:
    """The key the processor records a message under (``worker.pipeline.processor`` rules)."""
    try:
        return parse_message(body).event.event_key
    except (ContractError, PermanentError):
        pass
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return rejection_key(body)
    if isinstance(payload, dict) and isinstance(payload.get("event"), dict):
        payload = payload["event"]
    if isinstance(payload, dict) and isinstance(payload.get("id"), str | int):
        try:
            return event_key_for(payload)
        except ContractError:
            return rejection_key(body)
    return rejection_key(body)


def build_plan(rng: random.Random, *, events: int, send_window_s: float, resend_window_s: float) -> Plan:
    """``events`` distinct valid events sent over ``send_window_s``, plus copies and poison."""
    tag = f"{rng.getrandbits(32):08x}"
    payloads = _valid_payloads(rng, events, tag)
    messages: list[PlannedMessage] = []
    for index, (label, payload) in enumerate(payloads):
        at = rng.uniform(0, send_window_s)
        body = _shape(rng, payload)
        event = normalize_event(payload)
        floor = severity_floor(event).severity
        original = PlannedMessage(at, body, event.event_key, "event", label, triage(floor).status, floor)
        if store_key(body) != event.event_key:
            raise AssertionError(f"plan: message {index} would be filed under another key")
        messages.append(original)
        roll = rng.random()
        if roll < COPY_SHARE:
            messages.append(_again(original, at + rng.uniform(0, 0.5), body, "copy"))
        elif roll < COPY_SHARE + RESEND_SHARE:
            resend_at = min(at + rng.uniform(*RESEND_DELAY_S), resend_window_s)
            wrapped = json.dumps({"action": "analyze", "event": payload})
            if store_key(wrapped) != event.event_key:
                raise AssertionError(f"plan: the re-send of message {index} changes its key")
            messages.append(_again(original, max(at, resend_at), wrapped, "resend"))
    poison = max(2, round(events * POISON_SHARE))
    for index in range(poison):
        label, body = _POISON[index % len(_POISON)](tag, index)
        at = rng.uniform(0, send_window_s)
        message = PlannedMessage(at, body, store_key(body), "poison", label, None, None)
        messages.append(message)
        if index == 0:
            messages.append(_again(message, at + 0.2, body, "poison"))
    messages.sort(key=lambda m: m.at_s)
    return Plan(tuple(messages))


def _again(message: PlannedMessage, at: float, body: str, kind: MessageKind) -> PlannedMessage:
    return PlannedMessage(at, body, message.key, kind, message.label, message.expected_status, message.floor)


def _valid_payloads(rng: random.Random, events: int, tag: str) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    budget = round(events * CAMPAIGN_SHARE)
    campaign = 0
    while budget >= CAMPAIGN_SIZES[0]:
        size = min(rng.randint(*CAMPAIGN_SIZES), budget)
        source_ip, uri = f"203.0.113.{campaign + 1}", f"/campaign/{tag}/{campaign}/login"
        for _ in range(size):
            member = _simple(rng, tag, len(out), action="BLOCK", rule="SQLi_BODY", ip=source_ip, uri=uri)
            out.append(("campaign", member))
        budget -= size
        campaign += 1
    scattered = round(events * SCATTERED_MONITOR_SHARE)
    escalations = round(events * ESCALATION_SHARE)
    while len(out) < events:
        index = len(out)
        if scattered > 0:
            scattered -= 1
            out.append(("monitor", _monitored(rng, tag, index)))
        elif escalations > 0:
            escalations -= 1
            out.append(("escalation", _escalation(rng, tag, index)))
        else:
            out.append(("closed", _closed(rng, tag, index)))
    return out


def _random_ip(rng: random.Random) -> str:
    return f"198.18.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def _simple(
    rng: random.Random, tag: str, index: int, *, action: str, rule: str, ip: str, uri: str
) -> dict[str, Any]:
    return simplified(
        f"chaos-{tag}-{index}",
        action=action,
        rule_name=rule,
        source_ip=ip,
        uri=uri,
        minutes_ago=rng.uniform(0.5, 20),
    )


def _native(rng: random.Random, tag: str, index: int, **kwargs: Any) -> dict[str, Any]:
    return waf_record(
        request_id=f"chaos-{tag}-{index}",
        client_ip=_random_ip(rng),
        minutes_ago=rng.uniform(0.5, 20),
        **kwargs,
    )


def _monitored(rng: random.Random, tag: str, index: int) -> dict[str, Any]:
    if rng.random() < 0.3:
        return _native(rng, tag, index, uri=f"/products/{index}")
    return _simple(
        rng, tag, index, action="BLOCK", rule="SQLi_BODY", ip=_random_ip(rng), uri=f"/search/{index}"
    )


def _escalation(rng: random.Random, tag: str, index: int) -> dict[str, Any]:
    if rng.random() < 0.25:
        return _native(rng, tag, index, counted=True, uri=f"/products/{index}")
    action, rule = rng.choice(_ESCALATIONS)
    return _simple(rng, tag, index, action=action, rule=rule, ip=_random_ip(rng), uri=f"/app/{index}")


def _closed(rng: random.Random, tag: str, index: int) -> dict[str, Any]:
    if rng.random() < 0.25:
        record = _native(rng, tag, index, uri=f"/static/{index}.css")
        record.update(
            terminatingRuleId="Default_Action",
            terminatingRuleType="REGULAR",
            action="ALLOW",
            ruleGroupList=[],
            labels=[],
        )
        return record
    action, rule = rng.choice(_CLOSED)
    return _simple(rng, tag, index, action=action, rule=rule, ip=_random_ip(rng), uri=f"/page/{index}")


def _shape(rng: random.Random, payload: dict[str, Any]) -> str:
    """The body as sent: mostly as is, sometimes in the seed's wrapped request form."""
    if "id" in payload and rng.random() < 0.15:
        return json.dumps({"prompt": json.dumps({"action": "analyze", "event": payload})})
    return json.dumps(payload)


def _not_json(tag: str, index: int) -> tuple[str, str]:
    return "not_json", f"this is not JSON {tag}-{index} {{"


def _truncated(tag: str, index: int) -> tuple[str, str]:
    return "truncated_json", json.dumps(simplified(f"trunc-{tag}-{index}"))[:-9]


def _missing_fields(tag: str, index: int) -> tuple[str, str]:
    event = simplified(f"bad-{tag}-{index}")
    del event["source_ip"], event["uri"]
    return "invalid_event", json.dumps(event)


def _bad_timestamp(tag: str, index: int) -> tuple[str, str]:
    return "bad_timestamp", json.dumps(
        simplified(f"badts-{tag}-{index}", timestamp="the day before yesterday")
    )


def _monitor_request(tag: str, index: int) -> tuple[str, str]:
    return "monitor_request", json.dumps(
        {"action": "monitor", "hours": 1 + index % 168, "events": [], "note": f"{tag}-{index}"}
    )


def _scalar(tag: str, index: int) -> tuple[str, str]:
    return "json_array", json.dumps([tag, index])


_POISON: tuple[Callable[[str, int], tuple[str, str]], ...] = (
    _not_json,
    _missing_fields,
    _truncated,
    _bad_timestamp,
    _monitor_request,
    _scalar,
)

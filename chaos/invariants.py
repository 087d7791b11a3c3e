"""The checks of a chaos run, on what the run collected (pure functions, no AWS calls).

Ground truth comes from the store (every item), the DLQ (every message), and the
notifications SNS actually delivered (read back through SQS subscriptions). The
evidence the workers wrote explains what the ground truth shows: who called the model
when, who published what, who was killed before marking it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from chaos.evidence import Record
from chaos.plan import Plan, PlannedMessage, store_key
from worker.notify.render import JSON_SEPARATOR

OK_TERMINAL = frozenset({"closed", "monitoring", "escalated"})
# Allowed final statuses per expected triage status: a monitored event may be escalated
# by its pattern.
_ALLOWED = {"closed": {"closed"}, "monitoring": {"monitoring", "escalated"}, "escalated": {"escalated"}}
# How many examples of a failed invariant the report carries.
_EXAMPLES = 5
# analyzed_at is stored with millisecond precision (truncated).
_ISO_MS_SLACK_S = 0.001


@dataclass(frozen=True)
class SentMessage:
    message: PlannedMessage
    message_id: str
    t: float


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    body: str
    receive_count: int


@dataclass(frozen=True)
class Delivery:
    """One notification SNS delivered (an SNS envelope read from a tap queue)."""

    message_id: str
    key: str | None
    t: float
    document: dict[str, Any]


@dataclass
class RunData:
    plan: Plan
    sent: list[SentMessage]
    items: dict[str, dict[str, Any]]
    dlq: list[QueueMessage]
    left_in_queue: int
    critical: list[Delivery]
    monitoring: list[Delivery]
    evidence: list[Record]
    timeline: list[dict[str, Any]]
    sigterm: dict[str, Any] | None
    drained: bool
    t0: float
    monitor_settled: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def block_invariants(blocks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The response actions' invariants from :func:`chaos.blocks.check_blocks`."""
    return {
        "blocks_no_address_blocked_twice": _check(
            not blocks["blocked_twice_count"], blocks["blocked_twice_count"], blocks["blocked_twice"]
        ),
        "blocks_no_allowlisted_address_written": _check(
            not blocks["allowlisted_written_count"],
            blocks["allowlisted_written_count"],
            blocks["allowlisted_written"],
        ),
        "blocks_none_outlived_expiry": _check(
            not blocks["outlived_expiry_count"], blocks["outlived_expiry_count"], blocks["outlived_expiry"]
        ),
        "blocks_audited_with_incident": _check(
            not blocks["without_audit_or_incident_count"],
            blocks["without_audit_or_incident_count"],
            blocks["without_audit_or_incident"],
        ),
        "blocks_hourly_cap_held": _check(not blocks["hourly_cap_exceeded"], blocks["hourly_cap_exceeded"]),
    }


def epoch(iso: str | None) -> float | None:
    return epoch_of(iso) if iso else None


def epoch_of(iso: str) -> float:
    """Epoch seconds of an ISO-8601 time (``Z`` or an offset)."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def delivery_from_envelope(envelope: dict[str, Any]) -> Delivery:
    attributes = envelope.get("MessageAttributes") or {}
    key = (attributes.get("event_key") or {}).get("Value")
    message = str(envelope.get("Message", ""))
    document: dict[str, Any] = {}
    if JSON_SEPARATOR in message:
        try:
            document = json.loads(message.split(JSON_SEPARATOR, 1)[1])
        except ValueError:
            document = {}
    return Delivery(str(envelope["MessageId"]), key, epoch(envelope.get("Timestamp")) or 0.0, document)


class Checker:
    def __init__(self, data: RunData) -> None:
        self.d = data
        self.by_key: dict[str, list[Record]] = defaultdict(list)
        for record in data.evidence:
            if record.get("key"):
                self.by_key[str(record["key"])].append(record)
        self.sigkilled = {e["proc"]: e["t"] for e in data.timeline if e["event"] == "sigkill"}

    def rel(self, t: float | None) -> float | None:
        return None if t is None else round(t - self.d.t0, 3)

    def story(self, key: str, limit: int = 40) -> list[str]:
        """The evidence of one key from every process, plus kills of those processes."""
        records = self.by_key.get(key, [])
        procs = {r["proc"] for r in records}
        lines = [
            (r["t"], f"{r['proc']} {r['kind']} " + _fields(r, ("key", "t", "kind", "proc", "pid")))
            for r in records
        ]
        lines += [
            (e["t"], f"{e['proc']} {e['event']} (orchestrator)")
            for e in self.d.timeline
            if e["proc"] in procs
        ]
        lines.sort()
        return [f"{self.rel(t):9.3f}s {text}" for t, text in lines][:limit]

    # ---- the checks ------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        d = self.d
        items = d.items
        valid = d.plan.valid_keys
        statuses = Counter(items.get(k, {}).get("status", "absent") for k in valid)
        dlq = self.dlq()
        lost = self.lost({m.message_id for m in d.dlq})
        model = self.model_calls()
        notifications = self.notifications()
        monitor = self.monitor()
        outcomes = self.outcomes()
        invariants = {
            "queue_drained": _check(d.drained and d.left_in_queue == 0, d.left_in_queue),
            "final_monitor_slot_completed": _check(d.monitor_settled, d.monitor_settled),
            "events_lost": _check(not lost, len(lost), lost),
            # The DLQ is for bad input: a valid event there ran out of receives before any
            # delivery could finish it (each fault costs one receive out of eight).
            "valid_events_dead_lettered": _check(
                not dlq["valid_examples"], dlq["valid_events_in_dlq"], dlq["valid_examples"]
            ),
            "valid_events_rejected": _check(
                not outcomes["rejected"], len(outcomes["rejected"]), outcomes["rejected"]
            ),
            "poison_accepted": _check(not outcomes["poison_accepted"], len(outcomes["poison_accepted"])),
            "wrong_triage": _check(not outcomes["wrong"], len(outcomes["wrong"]), outcomes["wrong"]),
            "model_calls_after_analysis_saved": _check(
                not model["after_saved"], len(model["after_saved"]), model["after_saved"]
            ),
            "duplicate_notifications": _check(
                not notifications["duplicates"], len(notifications["duplicates"]), notifications["duplicates"]
            ),
            "escalations_without_incident": _check(
                not notifications["unlinked"], len(notifications["unlinked"]), notifications["unlinked"]
            ),
            "incidents_miscounted": _check(
                not notifications["miscounted"], len(notifications["miscounted"]), notifications["miscounted"]
            ),
            "incidents_opened_twice": _check(
                not notifications["opened_twice"],
                len(notifications["opened_twice"]),
                notifications["opened_twice"],
            ),
            "incidents_never_notified": _check(
                not notifications["never_notified"],
                len(notifications["never_notified"]),
                notifications["never_notified"],
            ),
            "monitor_slots_run_more_than_once": _check(
                not monitor["more_than_once"], len(monitor["more_than_once"]), monitor["more_than_once"]
            ),
        }
        if "blocks" in d.extra:
            invariants.update(block_invariants(d.extra["blocks"]))
        if d.sigterm is not None:
            s = d.sigterm
            stopped = s.get("run_worker_returned_after_s")
            invariants["sigterm_drain_exit_0_in_time"] = _check(
                s.get("exit_code") == 0
                and stopped is not None
                and stopped <= s["stop_bound_s"]
                and s["exited_after_s"] <= s["exit_bound_s"],
                s,
            )
        counts = d.plan.counts()
        return {
            "events": {
                "messages_sent": len(d.sent),
                "distinct_valid_events": len(valid),
                "copies": counts.get("copy", 0),
                "resends_new_message_id": counts.get("resend", 0),
                "poison_messages": counts.get("poison", 0),
            },
            "terminal": sum(statuses[s] for s in OK_TERMINAL),
            "by_status": dict(sorted(statuses.items())),
            "blocks": d.extra["blocks"]["summary"] if "blocks" in d.extra else None,
            "dlq": dlq,
            "lost": len(lost),
            "model_calls": {k: v for k, v in model.items() if k != "after_saved"}
            | {"after_analysis_saved": len(model["after_saved"])},
            "notifications": {
                k: v
                for k, v in notifications.items()
                if k
                not in (
                    "duplicates",
                    "resent_after_kill",
                    "never_notified",
                    "window",
                    "unlinked",
                    "miscounted",
                    "opened_twice",
                )
            }
            | {
                "duplicate_notifications": len(notifications["duplicates"]),
                "openings_lost_in_claim_publish_window": len(notifications["window"]),
                "milestones_resent_after_a_kill_mid_publish": len(notifications["resent_after_kill"]),
                "in_window_by_cause": dict(Counter(w["cause"] for w in notifications["window"])),
                "in_window_evidence": notifications["window"][:_EXAMPLES],
            },
            "monitor": {k: v for k, v in monitor.items() if k != "more_than_once"}
            | {"slots_run_more_than_once": len(monitor["more_than_once"])}
            | {"slots_completed_under_faults": slot_completion(d)},
            "faults_injected": self.faults(),
            "invariants": invariants,
            "ok": all(v["ok"] for v in invariants.values()),
        }

    def dlq(self) -> dict[str, Any]:
        reasons: Counter[str] = Counter()
        valid_in_dlq = []
        for message in self.d.dlq:
            key = store_key(message.body)
            item = self.d.items.get(key, {})
            status = item.get("status", "absent")
            if status == "rejected":
                reasons[str(item.get("rejection_code"))] += 1
            else:
                reasons[f"not_rejected:{status}"] += 1
                if key in self.d.plan.valid_keys:
                    valid_in_dlq.append(
                        {
                            "key": key,
                            "status": status,
                            "receives": message.receive_count,
                            "timeline": self.story(key),
                        }
                    )
        return {
            "messages": len(self.d.dlq),
            "by_reason": dict(sorted(reasons.items())),
            "valid_events_in_dlq": len(valid_in_dlq),
            "valid_examples": valid_in_dlq[:_EXAMPLES],
        }

    def lost(self, dlq_ids: set[str]) -> list[dict[str, Any]]:
        """Sent messages that are neither in the DLQ nor about an event that got through."""
        lost = []
        for sent in self.d.sent:
            status = self.d.items.get(sent.message.key, {}).get("status")
            if sent.message_id in dlq_ids:
                continue
            if sent.message.kind != "poison" and status in OK_TERMINAL:
                continue
            lost.append(
                {
                    "message_id": sent.message_id,
                    "key": sent.message.key,
                    "kind": sent.message.kind,
                    "label": sent.message.label,
                    "status": status,
                    "sent_at_s": self.rel(sent.t),
                    "timeline": self.story(sent.message.key),
                }
            )
        return lost

    def outcomes(self) -> dict[str, list[dict[str, Any]]]:
        rejected, wrong = [], []
        for key, planned in self.d.plan.valid_keys.items():
            item = self.d.items.get(key, {})
            status = item.get("status")
            if status == "rejected":
                rejected.append(
                    {"key": key, "code": item.get("rejection_code"), "reason": item.get("rejection_reason")}
                )
            elif status in OK_TERMINAL:
                allowed = _ALLOWED[str(planned.expected_status)]
                by_pattern = status == "escalated" and planned.expected_status == "monitoring"
                if (
                    status not in allowed
                    or not _severity_as_planned(item, planned.floor, by_pattern=by_pattern)
                    or (by_pattern and not item.get("pattern_key"))
                ):
                    wrong.append(
                        {
                            "key": key,
                            "expected": planned.expected_status,
                            "status": status,
                            "severity": item.get("severity_rating"),
                        }
                    )
        accepted = [
            k for k in self.d.plan.poison_keys if self.d.items.get(k, {}).get("status") in OK_TERMINAL
        ]
        return {"rejected": rejected, "wrong": wrong, "poison_accepted": [{"key": k} for k in accepted]}

    def model_calls(self) -> dict[str, Any]:
        calls = [r for r in self.d.evidence if r["kind"] == "model_call"]
        analyze = [r for r in calls if r.get("action") == "analyze"]
        per_event = Counter(str(r["key"]) for r in analyze)
        after = []
        for record in analyze:
            saved = epoch(self.d.items.get(str(record["key"]), {}).get("analyzed_at"))
            if saved is not None and record["t"] > saved + _ISO_MS_SLACK_S:
                after.append(
                    {
                        "key": record["key"],
                        "proc": record["proc"],
                        "pid": record["pid"],
                        "call_at_s": self.rel(record["t"]),
                        "analyzed_at_s": self.rel(saved),
                        "timeline": self.story(str(record["key"])),
                    }
                )
        return {
            "analyze_calls": len(analyze),
            "monitor_narrative_calls": sum(1 for r in calls if r.get("action") == "monitor"),
            "events_called_more_than_once": sum(1 for n in per_event.values() if n > 1),
            "max_calls_for_one_event": max(per_event.values(), default=0),
            "runtime_timeouts": sum(1 for r in self.d.evidence if r["kind"] == "runtime_timeout"),
            "after_saved": after,
        }

    # ---- notifications -----------------------------------------------------------------------

    def notifications(self) -> dict[str, Any]:
        """Escalations become incidents; incidents are notified per milestone, once.

        Critical deliveries carry the incident id as their key and the milestone in
        their JSON document. A milestone is claimed before it is published, so a second
        delivery of one milestone is a duplicate; an incident whose opening was never
        delivered was lost, unless the process holding the opening's claim was killed
        between the claim and the publish (the window of that design, reported apart).
        """
        d = self.d
        incidents = {k: v for k, v in d.items.items() if k.startswith("inc#") and "group_hash" in v}
        milestones: dict[tuple[str, str], list[Delivery]] = defaultdict(list)
        for delivery in d.critical:
            milestone = (delivery.document.get("milestone") or {}).get("id") or delivery.message_id
            milestones[(str(delivery.key), str(milestone))].append(delivery)
        patterns_delivered: dict[str, list[Delivery]] = defaultdict(list)
        for delivery in d.monitoring:
            patterns_delivered[str(delivery.key)].append(delivery)

        unlinked: list[dict[str, Any]] = []
        linked: Counter[str] = Counter()
        for key, item in d.items.items():
            if item.get("status") != "escalated" or not key.startswith("evt#"):
                continue
            incident = item.get("incident_id")
            if not incident:
                unlinked.append(
                    {"key": key, "why": "escalated, never joined an incident", "timeline": self.story(key)}
                )
            elif incident not in incidents:
                unlinked.append({"key": key, "why": f"linked to {incident}, which does not exist"})
            else:
                linked[str(incident)] += 1

        miscounted = [
            {"incident": i, "count": item.get("count"), "linked_events": linked[i]}
            for i, item in incidents.items()
            if int(item.get("count", 0)) != linked[i]
        ]
        opened_twice = _overlapping(incidents)

        never: list[dict[str, Any]] = []
        window: list[dict[str, Any]] = []
        for incident, item in incidents.items():
            if milestones.get((incident, "opened")):
                continue
            cause = self._claim_cause(incident, item)
            entry = {"incident": incident, "cause": cause, "timeline": self.story(incident)}
            (window if cause == "killed_after_claim" else never).append(entry)

        duplicates: list[dict[str, Any]] = []
        resent: list[dict[str, Any]] = []
        for (incident, milestone), deliveries in milestones.items():
            if len(deliveries) < 2:
                continue
            entry = {
                "key": incident,
                "why": f"milestone {milestone} delivered {len(deliveries)} times",
                "timeline": self.story(incident),
            }
            # At least once by design: a publisher killed after its publish and before
            # recording the notice leaves a claim that goes stale and is sent again.
            (resent if self._killed_mid_publish(incident) else duplicates).append(entry)
        # A pattern is notified once per count (counts only grow); a body that did not
        # parse counts as its own message, so it can never pose as a duplicate.
        pattern_counts = Counter(
            (str(n.key), n.document.get("pattern", {}).get("count") or n.message_id) for n in d.monitoring
        )
        for (pattern, count), times in pattern_counts.items():
            if times > 1:
                duplicates.append(
                    {
                        "key": pattern,
                        "why": f"pattern notified {times} times at count {count}",
                        "timeline": self.story(pattern),
                    }
                )
        return {
            "critical_delivered": len(d.critical),
            "incidents": len(incidents),
            "escalated_events_linked": sum(linked.values()),
            "pattern_notifications_delivered": len(d.monitoring),
            "patterns_notified": len(patterns_delivered),
            "duplicates": duplicates,
            "resent_after_kill": resent,
            "window": window,
            "never_notified": never,
            "unlinked": unlinked,
            "miscounted": miscounted,
            "opened_twice": opened_twice,
        }

    def _killed_mid_publish(self, incident: str) -> bool:
        """Whether a process that started publishing ``incident`` was SIGKILLed after
        that start without having recorded the publish as done."""
        records = self.by_key.get(incident, [])
        for start in (r for r in records if r["kind"] == "publish_start"):
            killed = self.sigkilled.get(start["proc"])
            done = any(
                r["kind"] == "published" and r["proc"] == start["proc"] and r["t"] >= start["t"]
                for r in records
            )
            if killed is not None and killed >= start["t"] and not done:
                return True
        return False

    def _claim_cause(self, incident: str, item: dict[str, Any]) -> str:
        """Why an incident's opening was never delivered, from the claim's evidence and
        the incident's own claimed set and notices."""
        claims = [
            r
            for r in self.by_key.get(incident, [])
            if r["kind"] == "milestone_claimed" and r.get("milestone") == "opened" and r.get("won")
        ]
        if not claims:
            noticed = {n.get("milestone") for n in item.get("notices") or []}
            if "opened" in (item.get("claimed") or []) and "opened" not in noticed:
                # Claimed by a process that stopped before it could write its evidence
                # line (SIGKILL, or a shutdown that abandoned the thread): the claim has
                # no expiry, so nobody publishes it.
                return "claimed_by_a_stopped_process"
            return "never_claimed"
        holder = claims[-1]
        killed = self.sigkilled.get(holder["proc"])
        published = any(
            r["kind"] == "published" and r["proc"] == holder["proc"] for r in self.by_key.get(incident, [])
        )
        if killed is not None and killed >= holder["t"] and not published:
            return "killed_after_claim"
        return "claimed_never_delivered"

    # ---- monitor -----------------------------------------------------------------------------

    def monitor(self) -> dict[str, Any]:
        acquired: dict[str, list[Record]] = defaultdict(list)
        completed: dict[str, list[Record]] = defaultdict(list)
        for record in self.d.evidence:
            if record["kind"] == "lock_acquired":
                acquired[record["lock"]].append(record)
            elif record["kind"] == "lock_completed":
                completed[record["lock"]].append(record)
        locks = {k: v for k, v in self.d.items.items() if k.startswith("lock#monitor#")}
        more, takeovers = [], []
        for name, runs in acquired.items():
            if len(runs) < 2:
                continue
            earlier = runs[:-1]
            # A holder killed mid-run leaves an expired, uncompleted lock: taking it over is by design.
            if all(
                self.sigkilled.get(r["proc"], 0) >= r["t"]
                and not any(c["proc"] == r["proc"] for c in completed[name])
                for r in earlier
            ):
                takeovers.append(name)
            else:
                more.append(
                    {"slot": name, "runs": [{"proc": r["proc"], "at_s": self.rel(r["t"])} for r in runs]}
                )
        for name, done in completed.items():
            if len(done) > 1 and name not in {m["slot"] for m in more}:
                more.append({"slot": name, "completed_by": [r["proc"] for r in done]})
        unseen = [name for name, item in locks.items() if name not in acquired]
        mismatched = [
            name
            for name, runs in acquired.items()
            if name in locks and locks[name].get("owner") != runs[-1].get("owner")
        ]
        return {
            "runs": sum(len(r) for r in acquired.values()),
            "slots": len(locks),
            "slots_completed": sum(1 for item in locks.values() if item.get("completed_at")),
            "slot_takeovers_after_kill": len(takeovers),
            "lock_items_without_evidence": len(unseen),
            "lock_owner_mismatches": mismatched,
            "more_than_once": more,
        }

    def faults(self) -> dict[str, int]:
        counts: Counter[str] = Counter()
        for record in self.d.evidence:
            if record["kind"] == "fault":
                counts[f"{record['target']}:{record['code']}"] += 1
            elif record["kind"] == "model_call" and record.get("fault"):
                counts[f"model:{record['fault']}"] += 1
        return dict(sorted(counts.items()))


# ---- monitor slots completed under faults ----------------------------------------------------

# A slot's store writes are retried within the slot, so a transient fault should not cost
# it: at the default 5 % fault rate at least this share of slots must complete.
SLOT_COMPLETION_TARGET = 0.9
# Fault-injected workers are named "w<slot>.<incarnation>"; fault-free drain workers "d...".
_FAULTY_PROCESS_PREFIX = "w"


def slot_completion(d: RunData) -> dict[str, Any]:
    """Monitor slots first taken by a fault-injected worker, and how many were completed.

    A slot is completed when its lock item carries ``completed_at`` (whoever finished it).
    A slot whose holder was SIGKILLed, or SIGTERMed (the run stops for the shutdown),
    mid-run stays open by design: the next slot, a different lock, takes over. So the
    target is checked on the slots whose holder lived: those are what a store fault,
    not a signal, can cost.
    """
    sigkilled = {e["proc"]: e["t"] for e in d.timeline if e["event"] == "sigkill"}
    sigtermed = {e["proc"]: e["t"] for e in d.timeline if e["event"] == "sigterm"}
    first: dict[str, Record] = {}
    for record in sorted((r for r in d.evidence if r["kind"] == "lock_acquired"), key=lambda r: r["t"]):
        first.setdefault(str(record["lock"]), record)
    under_faults = [name for name, r in first.items() if str(r["proc"]).startswith(_FAULTY_PROCESS_PREFIX)]
    done = [name for name in under_faults if d.items.get(name, {}).get("completed_at")]
    open_slots = sorted(set(under_faults) - set(done))
    killed = [name for name in open_slots if sigkilled.get(str(first[name]["proc"]), 0) >= first[name]["t"]]
    shut_down = [
        name
        for name in open_slots
        if name not in killed and sigtermed.get(str(first[name]["proc"]), 0) >= first[name]["t"]
    ]
    total = len(under_faults)
    lived = total - len(killed) - len(shut_down)
    share = len(done) / total if total else 1.0
    share_lived = len(done) / lived if lived else 1.0
    return {
        "completed": len(done),
        "total": total,
        "share": round(share, 3),
        "open_holder_killed": len(killed),
        "open_holder_shut_down": len(shut_down),
        "share_holder_lived": round(share_lived, 3),
        "target": SLOT_COMPLETION_TARGET,
        "met": share_lived >= SLOT_COMPLETION_TARGET,
        "open": open_slots[:_EXAMPLES],
    }


def _overlapping(incidents: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Incidents of one group whose open windows overlap: one key and window opened twice."""
    by_group: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for incident, item in incidents.items():
        by_group[str(item["group_hash"])].append(
            (str(item.get("first_seen", "")), str(item.get("open_until", "")), incident)
        )
    found = []
    for group, spans in by_group.items():
        spans.sort()
        for (_, until, first), (since, _, second) in pairwise(spans):
            resolved = incidents[first].get("status") == "resolved"
            if since <= until and not resolved:
                found.append({"group": group, "incidents": [first, second]})
    return found


def _check(ok: bool, value: Any, examples: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": ok, "value": value}
    if examples:
        out["examples"] = examples[:_EXAMPLES]
    return out


def _fields(record: Record, skip: tuple[str, ...]) -> str:
    return " ".join(f"{k}={v}" for k, v in record.items() if k not in skip and v is not None)


def _severity_as_planned(item: dict[str, Any], floor: int, *, by_pattern: bool) -> bool:
    """The event's one severity is its floor, or, for an event its pattern escalated, a
    raise above the floor that the record explains while the analysis keeps the floor."""
    severity = item.get("severity_rating")
    if not by_pattern:
        return severity == floor
    raw = item.get("analysis")
    analysis = json.loads(raw) if isinstance(raw, str) else raw or {}
    raised = item.get("severity_raised")
    return (
        severity is not None
        and severity > floor
        and analysis.get("severity_rating") == floor
        and bool(raised)
        and json.loads(raised).get("by") == "monitor"
    )

"""The per-process evidence log and the hooks that feed it.

Every worker process appends one JSON object per line to its own file: the model calls
it started, the notifications it published, the marks it wrote, the monitor slots it
took. Lines are written with one ``write(2)`` on an ``O_APPEND`` descriptor, so a line
that was written survives a SIGKILL of the process the very next instant.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from worker.errors import AlreadyInProgress

Record = dict[str, Any]


class EvidenceLog:
    """Appends records ``{"t", "kind", "pid", "proc", ...}`` to one file."""

    def __init__(self, path: Path, *, process: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._base = {"pid": os.getpid(), "proc": process}

    def record(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"t": time.time(), "kind": kind, **self._base, **fields}, default=str)
        os.write(self._fd, line.encode("utf-8") + b"\n")

    def close(self) -> None:
        os.close(self._fd)


def read_evidence(directory: Path) -> list[Record]:
    """Every record of every ``*.jsonl`` file under ``directory``, in time order."""
    records: list[Record] = []
    for path in sorted(directory.glob("*.jsonl")):
        records.extend(_read_lines(path))
    records.sort(key=lambda r: r["t"])
    return records


def read_evidence_of(directory: Path, process: str) -> list[Record]:
    """The records of one process."""
    path = directory / f"{process}.jsonl"
    return list(_read_lines(path)) if path.exists() else []


def _read_lines(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # cannot happen with one write per line; never fail a report on it


# ---- hooks on a built worker ---------------------------------------------------------------

Method = Callable[..., Any]


def instrument(worker: Any, evidence: EvidenceLog) -> None:
    """Record the side effects of ``worker`` (a built :class:`worker.daemon.Worker`).

    Bound methods of the worker's store, incident repository and notifier are replaced
    on those instances; the processor, the monitor job and the worker all hold the same
    ones, so every caller goes through the wrappers. Each wrapper returns and raises what it wraps.
    """
    hooks = _Hooks(evidence)
    for target, name, around in (
        (worker.store, "claim", hooks.claim),
        (worker.store, "save_analysis", hooks.step("analysis_saved")),
        (worker.store, "apply_triage", hooks.step("triaged")),
        (worker.store, "link_incident", hooks.mark),
        (worker.store, "acquire_lock", hooks.acquire),
        (worker.store, "complete_lock", hooks.complete),
        (worker.store, "escalate_from_pattern", hooks.pattern_escalation),
        (worker.store, "claim_pattern_notification", hooks.pattern_claim),
        (worker.store, "decide", hooks.decide),
        (worker.store, "finish", hooks.step("finished")),
        (worker.incidents.repo, "claim_milestone", hooks.milestone_claim),
        # A join claims the milestones it crosses in its own write.
        (worker.incidents.repo, "join", hooks.join_claims),
        # Every SNS publish (escalations, patterns, the sns and chat channels) goes through it.
        (worker.notifier.sns.publisher, "publish", hooks.publish),
    ):
        setattr(target, name, around(getattr(target, name)))


class _Hooks:
    def __init__(self, evidence: EvidenceLog) -> None:
        self.evidence = evidence

    def claim(self, original: Method) -> Method:
        def wrapped(event: Any, **kwargs: Any) -> Any:
            try:
                record = original(event, **kwargs)
            except AlreadyInProgress:
                self.evidence.record("claim_busy", key=event.event_key, message_id=kwargs.get("message_id"))
                raise
            except Exception as exc:
                self.evidence.record("claim_failed", key=event.event_key, error=type(exc).__name__)
                raise
            self.evidence.record(
                "claimed",
                key=event.event_key,
                status=record.status,
                owner=kwargs.get("owner"),
                lease_owner=record.lease_owner,
                message_id=kwargs.get("message_id"),
            )
            return record

        return wrapped

    def step(self, kind: str) -> Callable[[Method], Method]:
        def around(original: Method) -> Method:
            def wrapped(key: str, **kwargs: Any) -> Any:
                try:
                    record = original(key, **kwargs)
                except Exception as exc:
                    self.evidence.record(
                        f"{kind}_failed", key=key, error=type(exc).__name__, owner=kwargs.get("owner")
                    )
                    raise
                self.evidence.record(kind, key=key, status=record.status, owner=kwargs.get("owner"))
                return record

            return wrapped

        return around

    def mark(self, original: Method) -> Method:
        """The escalation's link to its incident: the mark that it owes no notice."""

        def wrapped(key: str, **kwargs: Any) -> bool:
            message_id = kwargs.get("notification_id")
            incident = kwargs.get("incident_id")
            self.evidence.record("mark_start", key=key, message_id=message_id, incident=incident)
            try:
                marked = bool(original(key, **kwargs))
            except Exception as exc:
                self.evidence.record("mark_failed", key=key, error=type(exc).__name__, message_id=message_id)
                raise
            self.evidence.record("marked", key=key, marked=marked, message_id=message_id, incident=incident)
            return marked

        return wrapped

    def publish(self, original: Method) -> Method:
        def wrapped(notification: Any) -> str:
            key = notification.attributes.get("event_key")
            action = notification.attributes.get("action")
            self.evidence.record("publish_start", key=key, action=action)
            try:
                message_id = str(original(notification))
            except Exception as exc:
                self.evidence.record(
                    "publish_failed", key=key, action=action, error=type(exc).__name__, reason=_reason(exc)
                )
                raise
            self.evidence.record("published", key=key, action=action, message_id=message_id)
            return message_id

        return wrapped

    def acquire(self, original: Method) -> Method:
        def wrapped(name: str, **kwargs: Any) -> bool:
            acquired = bool(original(name, **kwargs))
            kind = "lock_acquired" if acquired else "lock_taken"
            self.evidence.record(kind, lock=name, owner=kwargs.get("owner"))
            return acquired

        return wrapped

    def complete(self, original: Method) -> Method:
        def wrapped(name: str, **kwargs: Any) -> None:
            original(name, **kwargs)
            self.evidence.record("lock_completed", lock=name, owner=kwargs.get("owner"))

        return wrapped

    def pattern_escalation(self, original: Method) -> Method:
        def wrapped(key: str, **kwargs: Any) -> bool:
            escalated = bool(original(key, **kwargs))
            if escalated:
                self.evidence.record("escalated_by_pattern", key=key, pattern=kwargs.get("pattern_key"))
            return escalated

        return wrapped

    def decide(self, original: Method) -> Method:
        """The fast path's one write (None: the event had a record, the full path runs)."""

        def wrapped(decided: Any, **kwargs: Any) -> Any:
            key = decided.event.event_key
            try:
                record = original(decided, **kwargs)
            except Exception as exc:
                self.evidence.record("decide_failed", key=key, error=type(exc).__name__)
                raise
            self.evidence.record(
                "decided" if record is not None else "decide_found_record",
                key=key,
                status=decided.decision.status,
                analyzed_by=decided.analysis.analyzed_by,
                message_id=kwargs.get("message_id"),
            )
            return record

        return wrapped

    def milestone_claim(self, original: Method) -> Method:
        def wrapped(incident: str, milestone: str) -> bool:
            won = bool(original(incident, milestone))
            self.evidence.record("milestone_claimed", key=incident, milestone=milestone, won=won)
            return won

        return wrapped

    def join_claims(self, original: Method) -> Method:
        def wrapped(group: Any, contributions: Any) -> Any:
            result = original(group, contributions)
            for crossing in result.crossings:
                if crossing.claimed:
                    self.evidence.record(
                        "milestone_claimed",
                        key=crossing.incident.id,
                        milestone=crossing.milestone.id,
                        won=True,
                    )
            return result

        return wrapped

    def pattern_claim(self, original: Method) -> Method:
        def wrapped(key: str, **kwargs: Any) -> bool:
            try:
                claimed = bool(original(key, **kwargs))
            except Exception as exc:
                self.evidence.record("pattern_claim_failed", key=key, error=type(exc).__name__)
                raise
            self.evidence.record("pattern_claimed", key=key, claimed=claimed, count=kwargs.get("count"))
            return claimed

        return wrapped


def _reason(exc: BaseException) -> str | None:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason is not None else None

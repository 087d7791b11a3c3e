"""Which incidents block their sources, and for how long (pure; docs/architecture.md,
"Response actions").

An incident is selected when any rule the operator enabled holds:

- **severity**: its severity reached ``min_severity`` and (unless ``reached_app_only``
  is off) at least one of its requests reached the application;
- **volume**: it counts at least ``min_events`` events (a scanner; 0 turns it off);
- **rate**: it ran at ``min_rate_per_min`` events a minute or more over at least a
  minute (AWS WAF Security Automations' default threshold is 50; 0 turns it off).

The block lasts ``duration_s`` (4 h by default, as Security Automations' block period),
multiplied by ``repeat_factor`` for each earlier block of the same network that started
within ``repeat_window_s``, and never longer than ``max_duration_s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from worker.incidents.keys import OTHER
from worker.incidents.records import IncidentRecord
from worker.response.records import BlockRecord

ResponseMode = Literal["off", "dry_run", "on"]
RESPONSE_MODES: tuple[str, ...] = get_args(ResponseMode)


@dataclass(frozen=True)
class Selection:
    """Why an incident is blocked, and which of its sources."""

    reason: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class ResponsePolicy:
    mode: ResponseMode = "off"
    min_severity: int = 4
    reached_app_only: bool = True
    min_events: int = 0
    min_rate_per_min: float = 0.0
    duration_s: float = 4 * 3600
    repeat_window_s: float = 24 * 3600
    repeat_factor: float = 2.0
    max_duration_s: float = 7 * 24 * 3600
    # How many of an incident's sources one decision may block (a `signature` incident
    # spans many; the caps bound the rest).
    max_sources: int = 10

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def select(self, incident: IncidentRecord) -> Selection | None:
        """The reason and sources to block for ``incident``, or None."""
        if not self.enabled or incident.status == "resolved":
            return None
        reason = self._reason(incident)
        if reason is None:
            return None
        sources = sorted(
            (ip for ip in incident.source_ips if ip != OTHER), key=lambda ip: (-incident.source_ips[ip], ip)
        )
        return Selection(reason=reason, addresses=tuple(sources[: self.max_sources]))

    def _reason(self, incident: IncidentRecord) -> str | None:
        reached = incident.reached_app > 0
        if incident.max_severity >= self.min_severity and (reached or not self.reached_app_only):
            where = ", reached the application" if reached else ""
            return f"{incident.attack_class} at severity {incident.max_severity}{where}"
        if self.min_events and incident.count >= self.min_events:
            return f"{incident.attack_class}: {incident.count} events (policy: {self.min_events})"
        if self.min_rate_per_min:
            minutes = (incident.last_seen - incident.first_seen).total_seconds() / 60
            if minutes >= 1 and incident.count / minutes >= self.min_rate_per_min:
                rate = incident.count / minutes
                return f"{incident.attack_class}: {rate:.0f} events/min (policy: {self.min_rate_per_min:g})"
        return None

    def duration(self, history: Sequence[BlockRecord | None], *, now: float) -> float:
        """The block period for a network whose record (if any) is in ``history``:
        escalated for each earlier block that started within the repeat window."""
        earlier = 0
        for record in history:
            if record is None:
                continue
            earlier += sum(
                1 for e in record.history if e.action == "blocked" and now - e.at <= self.repeat_window_s
            )
        return min(self.duration_s * self.repeat_factor**earlier, self.max_duration_s)

"""What incident repositories answer and raise: the results of a join and of one
caller's join, and the errors of a status change. Plain data, so the ports
(:mod:`worker.ports`) name them without importing any backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from worker.errors import WorkerError
from worker.incidents.milestones import Milestone
from worker.incidents.records import IncidentRecord


class IncidentNotFound(WorkerError):
    def __init__(self, incident: str) -> None:
        super().__init__(f"no incident {incident}", reason="incident_missing")
        self.incident = incident


class StatusConflict(WorkerError):
    """The incident was not in the status the caller expected (or cannot move there)."""

    def __init__(self, current: IncidentRecord, wanted: str) -> None:
        super().__init__(
            f"incident {current.id} is {current.status}: cannot make it {wanted}", reason="incident_status"
        )
        self.current = current


class VersionConflict(Exception):
    """A conditional incident write lost; ``current`` is the incident as it now is."""

    def __init__(self, current: IncidentRecord | None) -> None:
        super().__init__("incident changed since it was read")
        self.current = current


@dataclass(frozen=True, slots=True)
class Crossing:
    """A milestone one join crossed, with the incident as that join left it."""

    incident: IncidentRecord
    milestone: Milestone
    # Claimed by the join's own write (the join that crosses a milestone is the only
    # one that can: the write is conditional on the version it folded).
    claimed: bool = False


@dataclass(frozen=True, slots=True)
class JoinResult:
    """What one join did."""

    record: IncidentRecord  # the group's current incident after the join
    placed: Mapping[str, str]  # event key -> incident id, for new and duplicate events
    new: tuple[str, ...]  # event keys this join counted
    duplicate: tuple[str, ...]  # event keys already counted before this join
    crossings: tuple[Crossing, ...]  # to claim and notify, in order
    records: tuple[IncidentRecord, ...]  # every incident the join touched, oldest first


@dataclass(frozen=True, slots=True)
class EventJoin:
    """One caller's answer."""

    event_key: str
    incident: IncidentRecord  # the event's incident, as this batch left it
    new: bool  # False: the incident had already counted this event (a redelivery)
    # The milestones this caller must claim and notify; each crossing of a batch goes
    # to exactly one of its callers, so a batch never notifies twice.
    crossings: tuple[Crossing, ...]

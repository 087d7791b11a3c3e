"""The incident repository: its port, its results, and the join algorithm every
backend shares.

A backend implements a handful of storage steps (read the group's current incident,
advance the group's pointer, write an incident conditionally on the version it read,
and the claim / notice / status writes); the join itself lives here once, so the
in-memory and DynamoDB repositories cannot disagree on what joining means.
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import structlog

import worker.clock
from worker.errors import RetryableError, WorkerError
from worker.incidents.grouping import GroupKey
from worker.incidents.keys import JOIN_ATTEMPTS, JOIN_BACKOFF_BASE_S, JOIN_BACKOFF_MAX_S, incident_id
from worker.incidents.milestones import DEFAULT_GROWTH_FACTOR, Milestone, crossed
from worker.incidents.records import Contribution, IncidentRecord, IncidentStatus, fold

log = structlog.get_logger("worker.incidents")

# Where a status may go: resolved is final (the group's next event opens a new incident).
STATUS_TARGETS: Mapping[str, frozenset[str]] = {
    "open": frozenset({"acknowledged", "resolved"}),
    "acknowledged": frozenset({"resolved"}),
    "resolved": frozenset(),
}


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


@dataclass(frozen=True, slots=True)
class JoinResult:
    """What one join did."""

    record: IncidentRecord  # the incident the latest of the contributions landed in
    placed: Mapping[str, str]  # event key -> incident id, for new and duplicate events
    new: tuple[str, ...]  # event keys this join counted
    duplicate: tuple[str, ...]  # event keys already counted before this join
    crossings: tuple[Crossing, ...]  # to claim and notify, in order
    records: tuple[IncidentRecord, ...]  # every incident the join touched, oldest first


class IncidentRepo(Protocol):
    """Where incidents live. Every method is safe across threads and replicas."""

    def join(self, group: GroupKey, contributions: Sequence[Contribution]) -> JoinResult:
        """Fold escalated events of one group into its current incident, opening the
        next when there is none, it is resolved, or an event is past its quiet period.
        """
        ...

    def get(self, incident: str) -> IncidentRecord | None: ...

    def list(
        self,
        *,
        status: IncidentStatus | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[IncidentRecord]:
        """Incidents by last_seen, most recent first."""
        ...

    def claim_milestone(self, incident: str, milestone: str) -> bool:
        """True for exactly one caller per (incident, milestone): that one notifies."""
        ...

    def release_milestone(self, incident: str, milestone: str) -> bool:
        """Give back a claim whose publish failed; False if it was not claimed."""
        ...

    def record_notice(self, incident: str, milestone: str, message_id: str | None) -> None: ...

    def set_status(
        self,
        incident: str,
        status: IncidentStatus,
        *,
        note: str = "",
        by: str = "",
        expected_status: IncidentStatus | None = None,
    ) -> IncidentRecord:
        """Acknowledge or resolve, conditionally; raises StatusConflict or IncidentNotFound."""
        ...


class JoiningRepo(ABC):
    """The join, once, over a backend's storage steps."""

    def __init__(
        self,
        *,
        quiet_s: float,
        growth_factor: float = DEFAULT_GROWTH_FACTOR,
        clock: Callable[[], float] = worker.clock.epoch,
    ) -> None:
        if quiet_s <= 0:
            raise ValueError("the quiet period must be positive")
        self.quiet_s = quiet_s
        self.growth_factor = growth_factor
        self._clock = clock

    # ---- storage steps ---------------------------------------------------------------

    @abstractmethod
    def _current(self, group: GroupKey) -> tuple[int, IncidentRecord | None]:
        """The group's current seq (0: never opened) and that incident, if written."""

    @abstractmethod
    def _advance(self, group: GroupKey, seq: int) -> int:
        """Make ``seq + 1`` current if ``seq`` still is; the current seq either way."""

    @abstractmethod
    def _load(self, incident: str) -> IncidentRecord | None: ...

    @abstractmethod
    def _write(self, before: IncidentRecord | None, after: IncidentRecord) -> IncidentRecord:
        """Write ``after`` if the incident is still ``before`` (absent if None), keeping
        its claims, notices and status history; raise VersionConflict otherwise.
        """

    @abstractmethod
    def _remember(self, group: GroupKey, seq: int, record: IncidentRecord) -> None:
        """Note the group's current incident after a join (a backend may cache it)."""

    @staticmethod
    def _backoff(attempt: int, write_s: float) -> None:
        """Exponential backoff with full jitter after a lost write, so racing replicas
        spread out instead of colliding again in step. It starts from the time the lost
        write took: a slow table (throttled, far away) needs its writers spread wider.
        """
        ceiling = min(JOIN_BACKOFF_MAX_S, max(JOIN_BACKOFF_BASE_S, write_s) * 2**attempt)
        time.sleep(random.uniform(0.0, ceiling))  # noqa: S311 - jitter, not crypto

    # ---- the join --------------------------------------------------------------------

    def join(self, group: GroupKey, contributions: Sequence[Contribution]) -> JoinResult:
        pending = _ordered(contributions)
        if not pending:
            raise ValueError("join needs at least one contribution")
        seq, record = self._current(group)
        new: list[str] = []
        duplicate: list[str] = []
        placed: dict[str, str] = {}
        crossings: list[Crossing] = []
        touched: dict[str, IncidentRecord] = {}
        lost = 0
        while pending:
            if seq == 0 or (record is not None and not record.accepts(pending[0].at)):
                moved = self._advance(group, seq)
                if moved != seq + 1:
                    lost += 1  # another writer opened it first
                seq, record = moved, self._load(incident_id(group.hash, moved))
            else:
                step = fold(record, pending, group=group, seq=seq, quiet_s=self.quiet_s, now=self._clock())
                after = step.after
                if step.new:
                    started = time.monotonic()
                    try:
                        after = self._write(record, step.after)
                    except VersionConflict as conflict:
                        lost += 1
                        record = conflict.current
                        self._check_attempts(group, lost)
                        self._backoff(lost, time.monotonic() - started)
                        continue
                    crossings.extend(
                        Crossing(after, m) for m in crossed(record, after, growth_factor=self.growth_factor)
                    )
                new.extend(step.new)
                duplicate.extend(step.duplicate)
                placed.update(dict.fromkeys(step.new + step.duplicate, after.id))
                touched[after.id] = after
                record, pending = after, list(step.rest)
            self._check_attempts(group, lost)
        assert record is not None  # the loop leaves only after a fold
        self._remember(group, seq, record)
        return JoinResult(
            record=record,
            placed=placed,
            new=tuple(new),
            duplicate=tuple(duplicate),
            crossings=tuple(crossings),
            records=tuple(touched.values()),
        )

    @staticmethod
    def _check_attempts(group: GroupKey, lost: int) -> None:
        if lost >= JOIN_ATTEMPTS:
            log.warning("incident_join_contended", group=group.hash, attempts=lost)
            raise RetryableError(
                f"incident group {group.hash}: too many concurrent joins", reason="store_contended"
            )


def _ordered(contributions: Sequence[Contribution]) -> list[Contribution]:
    """Event-time order (ties by key), each event once: an incident's window grows in
    time order, so the fold can tell where the next incident starts.
    """
    unique = {c.event_key: c for c in contributions}
    return sorted(unique.values(), key=lambda c: (c.at, c.event_key))

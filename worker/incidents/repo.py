"""The join algorithm every incident repository shares (its port is
:class:`worker.ports.IncidentRepo`, its results :mod:`worker.incidents.results`).

A backend implements a handful of storage steps (read the group's current incident,
advance the group's pointer, write an incident conditionally on the version it read,
and the claim / notice / status writes); the join itself lives here once, so the
in-memory and DynamoDB repositories cannot disagree on what joining means.
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import structlog

import worker.platform.clock
from worker.errors import RetryableError
from worker.incidents.grouping import GroupKey
from worker.incidents.keys import JOIN_ATTEMPTS, JOIN_BACKOFF_BASE_S, JOIN_BACKOFF_MAX_S, incident_id
from worker.incidents.milestones import DEFAULT_GROWTH_FACTOR, crossed
from worker.incidents.records import Contribution, IncidentRecord, fold
from worker.incidents.results import Crossing, JoinResult, VersionConflict
from worker.store.keys import event_digest

log = structlog.get_logger("worker.incidents")

# A claim without a notice is taken to be a dead worker's after this long; it must
# exceed the notifier's publish retry budget, or a slow publish is sent twice.
DEFAULT_CLAIM_STALE_S = 300.0

# Where a status may go: resolved is final (the group's next event opens a new incident).
STATUS_TARGETS: Mapping[str, frozenset[str]] = {
    "open": frozenset({"acknowledged", "resolved"}),
    "acknowledged": frozenset({"resolved"}),
    "resolved": frozenset(),
}


class JoiningRepo(ABC):
    """The join, once, over a backend's storage steps."""

    def __init__(
        self,
        *,
        quiet_s: float,
        growth_factor: float = DEFAULT_GROWTH_FACTOR,
        claim_stale_s: float = DEFAULT_CLAIM_STALE_S,
        clock: Callable[[], float] = worker.platform.clock.epoch,
    ) -> None:
        if quiet_s <= 0:
            raise ValueError("the quiet period must be positive")
        if claim_stale_s <= 0:
            raise ValueError("the claim staleness must be positive")
        self.quiet_s = quiet_s
        self.growth_factor = growth_factor
        self.claim_stale_s = claim_stale_s
        self._clock = clock

    def stale_claims(self, record: IncidentRecord) -> tuple[str, ...]:
        return record.stale_claims(self._clock(), self.claim_stale_s)

    def claim_wait(self, record: IncidentRecord, *, besides: Collection[str] = ()) -> float | None:
        return record.claim_wait(self._clock(), self.claim_stale_s, besides=besides)

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
    def _write(
        self, before: IncidentRecord | None, after: IncidentRecord, *, claims: Sequence[str] = ()
    ) -> IncidentRecord:
        """Write ``after`` if the incident is still ``before`` (absent if None), keeping
        its claims, notices and status history and claiming ``claims`` (milestone ids)
        in the same write; raise VersionConflict otherwise.
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
        done = _Tally()
        screened: set[str] = set()
        lost = 0
        while pending:
            if record is not None and record.id not in screened:
                pending = self._screen(
                    group=group, seq=seq, record=record, pending=pending, screened=screened, done=done
                )
            elif seq == 0:
                # A group's first incident needs no pointer: its conditional creation is
                # the race two replicas run, and the loser joins what the winner wrote.
                seq = 1
            elif record is not None and not record.accepts(pending[0].at):
                moved = self._advance(group, seq)
                if moved != seq + 1:
                    lost += 1  # another writer opened it first
                seq, record = moved, self._load(incident_id(group.hash, moved))
            else:
                step = fold(record, pending, group=group, seq=seq, quiet_s=self.quiet_s, now=self._clock())
                after = step.after
                if step.new:
                    started = time.monotonic()
                    # Claimed in the write that crosses them: no claim write of their own.
                    found = crossed(record, step.after, growth_factor=self.growth_factor)
                    try:
                        after = self._write(record, step.after, claims=[m.id for m in found])
                    except VersionConflict as conflict:
                        lost += 1
                        record = conflict.current
                        self._check_attempts(group, lost)
                        self._backoff(lost, time.monotonic() - started)
                        continue
                    done.crossings.extend(Crossing(after, m, claimed=True) for m in found)
                done.new.extend(step.new)
                done.place(after, step.new + step.duplicate)
                screened.add(after.id)
                record, pending = after, list(step.rest)
            self._check_attempts(group, lost)
        assert record is not None  # the loop leaves after a fold or a screen, both need one
        self._remember(group, seq, record)
        counted_now = set(done.new)
        return JoinResult(
            record=record,
            placed=done.placed,
            new=tuple(done.new),
            duplicate=tuple(k for k in done.placed if k not in counted_now),
            crossings=tuple(done.crossings),
            records=tuple(done.touched.values()),
        )

    def _screen(
        self,
        *,
        group: GroupKey,
        seq: int,
        record: IncidentRecord,
        pending: list[Contribution],
        screened: set[str],
        done: _Tally,
    ) -> list[Contribution]:
        """Take out the events ``record`` (or, for events older than it, the incident
        before it) already counted, wherever their time would place them now.

        A redelivered event must not count again in a newer incident: the one that
        counted it may have been resolved, or a later event may have opened the next.
        """
        screened.add(record.id)
        pending = _drop_counted(record, pending, done)
        previous_id = incident_id(group.hash, seq - 1)
        if seq > 1 and pending and pending[0].at < record.first_seen and previous_id not in screened:
            screened.add(previous_id)
            previous = self._load(previous_id)
            if previous is not None:
                pending = _drop_counted(previous, pending, done)
        return pending

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


@dataclass
class _Tally:
    """What one join has done so far."""

    new: list[str] = field(default_factory=list)
    placed: dict[str, str] = field(default_factory=dict)
    crossings: list[Crossing] = field(default_factory=list)
    touched: dict[str, IncidentRecord] = field(default_factory=dict)

    def place(self, record: IncidentRecord, keys: Sequence[str]) -> None:
        self.placed.update(dict.fromkeys(keys, record.id))
        self.touched[record.id] = record


def _drop_counted(record: IncidentRecord, pending: list[Contribution], done: _Tally) -> list[Contribution]:
    seen = record.digests()
    counted = [c.event_key for c in pending if event_digest(c.event_key) in seen]
    if not counted:
        return pending
    done.place(record, counted)
    dropped = set(counted)
    return [c for c in pending if c.event_key not in dropped]

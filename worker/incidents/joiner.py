"""Group commit: the events of one group arriving together share one incident write.

In a flood every worker thread escalates an event of the same attack at once. Each
calls :meth:`IncidentJoiner.join` and blocks; the first caller of a group leads a batch:
it waits a short window (or until the batch is full) while later callers of that group
join its batch, then makes one repository join for all of them and hands each caller
its own answer. A group with no incident this joiner knows to be open flushes at once:
that join is the one that opens the incident and pages, and the window must not delay
it; only the events folding into an open incident wait. (An incident resolved by
another process still looks open here: the join that opens its successor waits one
window, at most ``window_s``.) One group's batches flush one
after the other, so they never race each other on the incident's version; a batch that
waits on a flush keeps collecting. That is what keeps a flood near one incident write
per batch instead of one per event.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from worker.incidents.grouping import GroupBy
from worker.incidents.keys import CACHED_GROUPS
from worker.incidents.records import Contribution, IncidentRecord
from worker.incidents.results import EventJoin, JoinResult
from worker.ports import IncidentRepo

log = structlog.get_logger("worker.incidents")


@dataclass(eq=False)
class _Waiter:
    contribution: Contribution
    done: threading.Event = field(default_factory=threading.Event)
    answer: EventJoin | None = None
    error: BaseException | None = None


@dataclass(eq=False)
class _Group:
    waiting: list[_Waiter] = field(default_factory=list)
    led: bool = False  # a leader is collecting `waiting`
    flushing: bool = False  # a batch of this group is in the repository


class IncidentJoiner:
    """``IncidentJoiner(repo, group_by="source", window_s=0.5, max_batch=100)``; thread-safe."""

    def __init__(
        self, repo: IncidentRepo, *, group_by: GroupBy = "source", window_s: float = 0.5, max_batch: int = 100
    ) -> None:
        if window_s < 0 or max_batch < 1:
            raise ValueError("window_s must be >= 0 and max_batch >= 1")
        self.repo = repo
        self.group_by: GroupBy = group_by
        self.window_s = window_s
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._groups: dict[str, _Group] = {}
        # Group hash -> the end of the quiet period of its incident as last joined, for
        # the groups whose incident is open: only their joins wait for the window.
        self._open_until: OrderedDict[str, datetime] = OrderedDict()
        self.joins = 0  # contributions joined
        self.flushes = 0  # repository joins made

    def join(self, contribution: Contribution) -> EventJoin:
        """Join one event to its incident; blocks for the batch. A failed repository
        join raises its error in every caller of the batch.
        """
        group = contribution.group(self.group_by)
        waiter = _Waiter(contribution)
        with self._cond:
            state = self._groups.setdefault(group.hash, _Group())
            state.waiting.append(waiter)
            leads = not state.led
            state.led = True
            if not leads and len(state.waiting) >= self.max_batch:
                self._cond.notify_all()
        if leads:
            batch = self._collect(group.hash, state)
            self._flush(group.hash, state, batch)
        waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.answer is not None  # set with done unless error is
        return waiter.answer

    def _collect(self, key: str, state: _Group) -> list[_Waiter]:
        with self._cond:
            open_until = self._open_until.get(key)
            first = state.waiting[0].contribution.at if state.waiting else None
            known_open = open_until is not None and first is not None and first <= open_until
            deadline = time.monotonic() + (self.window_s if known_open else 0.0)
            while True:
                remaining = deadline - time.monotonic()
                full = len(state.waiting) >= self.max_batch
                if not state.flushing and (remaining <= 0 or full):
                    break
                # Past the window (or full) only a running flush holds us: wait for its end.
                self._cond.wait(None if remaining <= 0 or full else remaining)
            batch, state.waiting = state.waiting, []
            state.led, state.flushing = False, True
            self.joins += len(batch)
            self.flushes += 1
            return batch

    def _flush(self, key: str, state: _Group, batch: list[_Waiter]) -> None:
        try:
            group = batch[0].contribution.group(self.group_by)
            result = self.repo.join(group, [w.contribution for w in batch])
            self._note_open(key, result.record)
            _hand_out(batch, result)
        except Exception as exc:
            log.warning("incident_join_failed", group=key, events=len(batch), error=str(exc))
            for waiter in batch:
                waiter.error = exc
        finally:
            with self._cond:
                state.flushing = False
                if not state.led and not state.waiting:
                    self._groups.pop(key, None)
                self._cond.notify_all()
            for waiter in batch:
                waiter.done.set()

    def _note_open(self, key: str, record: IncidentRecord) -> None:
        with self._cond:
            if record.status == "resolved":
                self._open_until.pop(key, None)
                return
            self._open_until[key] = record.open_until
            self._open_until.move_to_end(key)
            while len(self._open_until) > CACHED_GROUPS:
                self._open_until.popitem(last=False)


def _hand_out(batch: list[_Waiter], result: JoinResult) -> None:
    """Each caller's answer: its incident, whether it was counted by this batch (the
    first caller with a key, if an event came twice), and the crossings it owns.
    """
    records = {r.id: r for r in result.records}
    new = set(result.new)
    owners: dict[str, _Waiter] = {}  # incident id -> the caller notifying for it
    for waiter in batch:
        key = waiter.contribution.event_key
        if key in new:
            new.discard(key)
            waiter.answer = EventJoin(key, records[result.placed[key]], True, ())
            owners.setdefault(result.placed[key], waiter)
        else:
            waiter.answer = EventJoin(key, records[result.placed[key]], False, ())
    for crossing in result.crossings:
        owner = owners[crossing.incident.id]
        assert owner.answer is not None
        owner.answer = EventJoin(
            owner.answer.event_key,
            owner.answer.incident,
            owner.answer.new,
            (*owner.answer.crossings, crossing),
        )

"""The worker's copy of the suppressions, read again every ``refresh_s`` (at most a
minute), so an operator's change applies on every replica within that period
(docs/architecture.md, "Suppressions").

Expiry is compared at each match, so an expired suppression stops at once, whatever
the refresh. A failed refresh keeps the last list and tries again soon: events meet
the same suppressions as a moment before, never fewer checks than their floor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

import worker.platform.clock
from secops_core.contract import WafEvent
from secops_core.waf.floor import explain_floor
from worker.ports import SuppressionRepo
from worker.suppressions.keys import MAX_REFRESH_S
from worker.suppressions.matching import cover
from worker.suppressions.model import Suppression, SuppressionMatch

log = structlog.get_logger("worker.suppressions")

# After a failed read, the next try comes this soon (not a whole refresh period later).
_RETRY_AFTER_FAILURE_S = 5.0


class SuppressionCache:
    """``SuppressionCache(repo, refresh_s=30, clock=worker.platform.clock.epoch)``: thread-safe;
    the caller that finds the list stale reads it again, the others go on with the old.
    """

    def __init__(
        self,
        repo: SuppressionRepo,
        *,
        refresh_s: float = 30.0,
        clock: Callable[[], float] = worker.platform.clock.epoch,
    ) -> None:
        if not 0 < refresh_s <= MAX_REFRESH_S:
            raise ValueError(f"refresh_s must be in (0, {MAX_REFRESH_S}], got {refresh_s}")
        self.repo = repo
        self.refresh_s = refresh_s
        self._clock = clock
        self._suppressions: tuple[Suppression, ...] = ()
        self._next_read = 0.0
        self._loaded = False
        self._reading = threading.Lock()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def refresh(self) -> bool:
        """Read the list now; False (and the old list kept) if the store failed."""
        try:
            listed = self.repo.list(with_hits=False)
        except Exception as exc:
            # Whatever failed (an outage, a denied read), events must go on meeting the
            # suppressions they met a moment ago; the log says what to fix.
            log.warning("suppressions_refresh_failed", error=str(exc), error_type=type(exc).__name__)
            self._next_read = self._clock() + min(_RETRY_AFTER_FAILURE_S, self.refresh_s)
            return False
        now = self._now()
        self._suppressions = tuple(
            sorted((s for s in listed if s.active(now)), key=lambda s: (s.created_at, s.id))
        )
        self._next_read = self._clock() + self.refresh_s
        self._loaded = True
        return True

    def active(self) -> tuple[Suppression, ...]:
        """The suppressions in force now, read again when the copy is due."""
        # The first read is waited for; later ones by one caller, the rest go on.
        if self._clock() >= self._next_read and self._reading.acquire(blocking=not self._loaded):
            try:
                if self._clock() >= self._next_read:
                    self.refresh()
            finally:
                self._reading.release()
        now = self._now()
        return tuple(s for s in self._suppressions if s.active(now))

    def match(self, event: WafEvent) -> SuppressionMatch | None:
        """The first suppression (oldest first) that covers ``event``, or None."""
        suppressions = self.active()
        if not suppressions:
            return None
        floor, findings = explain_floor(event)
        for suppression in suppressions:
            if cover(suppression.scope, event, findings).suppresses:
                return SuppressionMatch(suppression, floor)
        return None

    def count_hit(self, suppression_id: str, event_key: str) -> bool:
        """Count the event once for the suppression; False if counted before."""
        return self.repo.count_hit(suppression_id, event_key, at=self._now())

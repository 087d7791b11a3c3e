"""How an IP set is edited safely, once for every backend (docs/architecture.md, "Response actions").

WAF's UpdateIPSet replaces the whole address list and takes the ``LockToken`` of the
read it is based on; a write based on a stale read fails (``WAFOptimisticLockException``)
instead of erasing another writer's change. So an edit is: read the list and its token,
merge (an address already present is not added again, one already absent is not
"removed"), write with the token, and on a lost lock read again and redo the merge after
a jittered backoff (replicas retrying in step would collide again). Every write is read
back: the change counts only once the set shows it.

A backend implements two steps, :meth:`IpSetEditor._read` and :meth:`IpSetEditor._write`
(raising :class:`LockLost`); the WAFv2 adapter and the in-memory one share the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence

import structlog
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_base, wait_random_exponential

from worker.errors import PermanentError, RetryableError
from worker.response.addresses import canonical
from worker.response.keys import (
    LOCK_ATTEMPTS,
    LOCK_BACKOFF_BASE_S,
    LOCK_BACKOFF_MAX_S,
    WAF_MAX_ADDRESSES,
)
from worker.response.records import IpSetChange, IpSetRef

log = structlog.get_logger("worker.response")


class LockLost(Exception):
    """The write was based on a stale read: another writer changed the set first."""


class _Missing(Exception):
    """The read back does not show our change: another writer overwrote it; edit again."""


def default_wait() -> wait_base:
    """Full jitter between 0 and an exponentially growing cap (50 ms … 2 s)."""
    return wait_random_exponential(multiplier=LOCK_BACKOFF_BASE_S, max=LOCK_BACKOFF_MAX_S)


class IpSetEditor:
    """The :class:`~worker.ports.IpSetWriter` algorithm over a backend's read and write."""

    def __init__(
        self,
        *,
        attempts: int = LOCK_ATTEMPTS,
        wait: wait_base | None = None,
        sleep: Callable[[float], None] | None = None,
        max_addresses: int = WAF_MAX_ADDRESSES,
    ) -> None:
        self.attempts = max(1, attempts)
        self.wait = wait if wait is not None else default_wait()
        self.sleep = sleep
        self.max_addresses = max_addresses

    # ---- what a backend implements ------------------------------------------------------

    def _read(self, ip_set: IpSetRef) -> tuple[list[str], str]:
        """The set's addresses as stored, and the token a write must present."""
        raise NotImplementedError

    def _write(self, ip_set: IpSetRef, addresses: list[str], token: str) -> None:
        """Replace the set's addresses if ``token`` is still current, else raise LockLost."""
        raise NotImplementedError

    # ---- the port ------------------------------------------------------------------------

    def addresses(self, ip_set: IpSetRef) -> frozenset[str]:
        stored, _ = self._read(ip_set)
        return frozenset(canonical(a) for a in stored)

    def add(self, ip_set: IpSetRef, networks: Collection[str]) -> IpSetChange:
        wanted = sorted({canonical(n) for n in networks})
        return self._edit(ip_set, "add", wanted)

    def remove(self, ip_set: IpSetRef, networks: Collection[str]) -> IpSetChange:
        unwanted = sorted({canonical(n) for n in networks})
        return self._edit(ip_set, "remove", unwanted)

    # ---- the algorithm -------------------------------------------------------------------

    def _edit(self, ip_set: IpSetRef, op: str, networks: Sequence[str]) -> IpSetChange:
        attempts = 0
        changed: tuple[str, ...] = ()

        def once() -> IpSetChange:
            nonlocal attempts, changed
            attempts += 1
            stored, token = self._read(ip_set)
            present = {canonical(a) for a in stored}
            if op == "add":
                todo = [n for n in networks if n not in present]
                if todo and len(present) + len(todo) > self.max_addresses:
                    raise PermanentError(
                        f"IP set {ip_set.label} holds {len(present)} addresses; adding {len(todo)} "
                        f"would pass WAF's limit of {self.max_addresses}",
                        reason="ip_set_full",
                    )
                new = [*stored, *todo]
            else:
                gone = set(networks)
                todo = [n for n in networks if n in present]
                new = [a for a in stored if canonical(a) not in gone]
            if todo:
                self._write(ip_set, new, token)
                # Our write is done: whatever a lost read-back does next, these changed.
                changed = tuple(sorted({*changed, *todo}))
            after = self.addresses(ip_set)
            missing = [n for n in networks if (n not in after) == (op == "add")]
            if missing:
                # Another writer replaced the list between our write and the read back
                # (a writer that read before us and wrote without a token check, or a
                # backend that lost our write): edit again.
                raise _Missing(", ".join(missing))
            return IpSetChange(
                ip_set=ip_set,
                added=changed if op == "add" else (),
                removed=changed if op == "remove" else (),
                size=len(after),
                attempts=attempts,
            )

        def before_sleep(state: RetryCallState) -> None:
            log.info("ip_set_write_lost", ip_set=ip_set.label, op=op, attempt=attempts)

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=self.wait,
            retry=retry_if_exception_type((LockLost, _Missing)),
            before_sleep=before_sleep,
            reraise=False,
            sleep=self.sleep or time.sleep,
        )
        try:
            change: IpSetChange = retrying(once)
        except RetryError as exc:
            raise RetryableError(
                f"IP set {ip_set.label}: {op} lost to other writers {attempts} times in a row",
                reason="ip_set_contended",
            ) from exc.last_attempt.exception()
        if attempts > 1:
            log.info("ip_set_write_contended", ip_set=ip_set.label, op=op, attempts=attempts)
        return change

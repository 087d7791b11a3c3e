"""Blocking a source in a WAF IP set for a bounded time, and taking it out again
(docs/architecture.md, "Response actions").

The order of the writes is what makes a crash harmless:

- **block**: the guards first (allowlist; the network as the policy asks), then the
  record (one conditional transaction that also counts the caps), then the IP set. A
  crash after the record leaves a block that the next decision, ``secops block sync``
  or, at the latest, its expiry takes care of; an address is never in a set without a
  record that will take it out.
- **remove** (expiry, a person, a false positive): the record is marked ``removing``,
  the IP set written, and only then the record closed with its audit entry. A crash in
  between leaves the record in force and expired, so the next pass removes it again
  (removing an absent address is a no-op).

Nothing here imports botocore: the IP sets and the records are ports.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

import structlog
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from worker.errors import ConfigurationError, PermanentError, RetryableError, WorkerError
from worker.platform import clock
from worker.ports import BlockRepo, IpSetWriter
from worker.response.addresses import (
    AddressRefused,
    Allowlist,
    BlockPrefix,
    IpVersion,
    block_target,
    canonical,
    check_allowed,
    parse_network,
    version_of,
)
from worker.response.keys import STORE_ATTEMPTS, STORE_BACKOFF_S, block_key
from worker.response.records import AuditAction, BlockCaps, BlockRecord, BlockResult, IpSetRef

log = structlog.get_logger("worker.response")

SCHEDULER = "scheduler"
T = TypeVar("T")


class BlockListener(Protocol):
    """Told of every block written and removed (the notifications, the event bus)."""

    def blocked(self, record: BlockRecord) -> None: ...

    def unblocked(self, record: BlockRecord) -> None: ...


@dataclass
class SyncReport:
    """What differs between the records and the IP sets, and what was done about it.

    ``drift`` is what was found (missing or stale networks); ``repaired`` says this sync
    wrote them back to the sets, so it is false when there was nothing to repair, with
    ``--check`` and in a dry run: drift that is not repaired is drift that remains.
    """

    missing: list[str] = field(default_factory=list)  # recorded in force, absent from its set
    stale: list[str] = field(default_factory=list)  # in a set, our record says removed
    foreign: list[str] = field(default_factory=list)  # in a set, never recorded: a person's
    expired: list[str] = field(default_factory=list)  # removed by this sync's expiry pass
    repaired: bool = False  # the missing were written in and the stale taken out

    @property
    def drift(self) -> bool:
        return bool(self.missing or self.stale)

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "repaired": self.repaired,
            "missing": self.missing,
            "stale": self.stale,
            "foreign": self.foreign,
            "expired": self.expired,
        }


class Blocker:
    """Block, unblock, expire and reconcile, behind every guard."""

    def __init__(
        self,
        *,
        repo: BlockRepo,
        ip_sets: IpSetWriter,
        sets: Mapping[IpVersion, IpSetRef],
        allowlist: Allowlist,
        caps: BlockCaps,
        prefix: BlockPrefix = "address",
        dry_run: bool = False,
        now: Callable[[], float] = clock.epoch,
        listener: BlockListener | None = None,
    ) -> None:
        self.repo = repo
        self.ip_sets = ip_sets
        self.sets = dict(sets)
        self.allowlist = allowlist
        self.caps = caps
        self.prefix = prefix
        self.dry_run = dry_run
        self.now = now
        self.listener = listener

    # ---- blocking ------------------------------------------------------------------------

    def block(
        self,
        address: str,
        *,
        duration_s: float,
        reason: str,
        decided_by: str,
        incident_id: str | None = None,
        prefix: BlockPrefix | None = None,
    ) -> BlockResult:
        """Block ``address`` (or its network) for ``duration_s``; never raises for a refusal.

        Raises :class:`~worker.errors.RetryableError` only when the record could not be
        written (the decision may be taken again).
        """
        try:
            target = self._target(address, prefix or self.prefix)
        except AddressRefused as exc:
            log.info("block_refused", address=address, reason=exc.reason)
            return BlockResult("refused", address, reason=exc.reason)
        ip_set = self.sets.get(version_of(target))
        if ip_set is None:
            return BlockResult(
                "refused", address, network=str(target), reason=f"no_{version_of(target).lower()}_set"
            )
        now = self.now()
        record = BlockRecord(
            network=str(target),
            address=address.strip(),
            ip_set=ip_set,
            incident_id=incident_id,
            reason=reason,
            decided_by=decided_by,
            created_at=now,
            expires_at=now + duration_s,
        )
        if self.dry_run:
            existing = self.repo.get_block(record.key)
            if existing is not None and existing.in_set:
                return BlockResult("already", address, str(target), ip_set, existing)
            log.info("block_dry_run", address=address, network=str(target), ip_set=ip_set.label)
            return BlockResult("dry_run", address, str(target), ip_set, record)
        opening = self.repo.open_block(record, caps=self.caps)
        if opening.refused is not None:
            log.warning("block_refused", address=address, reason=opening.refused)
            return BlockResult("refused", address, str(target), ip_set, reason=opening.refused)
        existing = opening.record
        if existing is None:
            raise RetryableError(f"block of {target} could not be recorded", reason="block_contended")
        if not opening.opened:
            if existing.status == "active":
                # A decision taken twice is one block; writing the set again (a no-op if it
                # holds the network) finishes a block whose first writer died after its record.
                self._write(existing)
            return BlockResult("already", address, str(target), ip_set, existing)
        return self._write(existing, fresh=True)

    def existing(self, address: str, *, prefix: BlockPrefix | None = None) -> BlockRecord | None:
        """The record of the network a block of ``address`` would write, if any (for the
        policy's repeat-offender escalation); None for an address that is refused."""
        try:
            target = self._target(address, prefix or self.prefix)
        except AddressRefused:
            return None
        ip_set = self.sets.get(version_of(target))
        return self.repo.get_block(block_key(ip_set.id, str(target))) if ip_set is not None else None

    def _target(self, address: str, prefix: BlockPrefix) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        if "/" in address:
            try:
                network = parse_network(address)
            except ValueError:
                raise AddressRefused(f"{address!r} is not a CIDR", reason="not_an_address") from None
            check_allowed(network, self.allowlist)
            return network
        return block_target(address, prefix=prefix, allowlist=self.allowlist)

    def _write(self, record: BlockRecord, *, fresh: bool = False) -> BlockResult:
        result = BlockResult(
            "blocked" if fresh else "already", record.address, record.network, record.ip_set, record
        )
        try:
            change = self.ip_sets.add(record.ip_set, [record.network])
        except (PermanentError, ConfigurationError) as exc:
            # Certainly not written (the set is full, or missing, or denied): the record
            # is closed at once, so it neither counts against the caps nor expires later.
            self.repo.finish_removal(
                record.key, generation=record.generation, action="abandoned", by=SCHEDULER, reason=exc.message
            )
            log.error("block_not_written", key=record.key, reason=exc.reason, error=exc.message)
            return BlockResult("refused", record.address, record.network, record.ip_set, reason=exc.reason)
        except RetryableError as exc:
            # Maybe written: the record stays in force and its expiry takes the network
            # out whatever happened; the next decision or `secops block sync` writes it.
            log.warning("block_write_pending", key=record.key, reason=exc.reason, error=exc.message)
            return BlockResult(
                "pending", record.address, record.network, record.ip_set, record, reason=exc.reason
            )
        if fresh:
            log.info(
                "source_blocked",
                network=record.network,
                ip_set=record.ip_set.label,
                incident=record.incident_id,
                decided_by=record.decided_by,
                expires_at=record.expires_at,
                attempts=change.attempts,
            )
            self._tell("blocked", record)
        return result

    # ---- removing ------------------------------------------------------------------------

    def expire(self, *, limit: int = 500) -> list[BlockRecord]:
        """Take out every block whose expiry has passed (the scheduler's pass)."""
        now = self.now()
        # The index may lag the table, but a generation's expiry never changes and every
        # removal step is conditional on the generation: no second read is needed.
        due = [
            b
            for b in retrying_store(lambda: self.repo.expired_blocks(now=now, limit=limit))
            if b.expired(now)
        ]
        return self._remove(due, action="expired", by=SCHEDULER, reason="block period over")

    def unblock(
        self, target: str, *, by: str, reason: str, action: AuditAction = "unblocked"
    ) -> list[BlockRecord]:
        """Take out the blocks in force of ``target`` (an address, whatever network of it
        was blocked, or a CIDR as written); raises ValueError if it is neither."""
        try:
            wanted = ipaddress.ip_network(target.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{target!r} is not an address or CIDR") from None
        single = "/" not in target
        matching = [
            record
            for record in self.repo.blocks_in_force()
            if (
                wanted.subnet_of(parse_network(record.network))  # type: ignore[arg-type]
                if single and wanted.version == parse_network(record.network).version
                else canonical(record.network) == str(wanted)
            )
        ]
        return self._remove(matching, action=action, by=by, reason=reason)

    def unblock_incident(self, incident_id: str, *, by: str, reason: str) -> list[BlockRecord]:
        """Take out every block decided for ``incident_id`` (a false positive)."""
        matching = [r for r in self.repo.blocks_in_force() if r.incident_id == incident_id]
        return self._remove(matching, action="unblocked", by=by, reason=reason)

    def _remove(
        self, records: Iterable[BlockRecord], *, action: AuditAction, by: str, reason: str
    ) -> list[BlockRecord]:
        """One IP set write per set for all of ``records``; the records closed after it."""
        by_set: dict[IpSetRef, list[BlockRecord]] = defaultdict(list)
        for record in records:
            marked = self._each(
                record.key, partial(self.repo.begin_removal, record.key, generation=record.generation)
            )
            if marked is not None:
                by_set[marked.ip_set].append(marked)
        removed: list[BlockRecord] = []
        failures: list[str] = []
        for ip_set, marked_records in by_set.items():
            try:
                self.ip_sets.remove(ip_set, [r.network for r in marked_records])
            except WorkerError as exc:
                # The records stay `removing` and expired: the next pass tries again.
                failures.append(f"{ip_set.label}: {exc.message}")
                log.warning("unblock_failed", ip_set=ip_set.label, reason=exc.reason, error=exc.message)
                continue
            try:
                closed_records = retrying_store(
                    partial(self.repo.finish_removals, marked_records, action=action, by=by, reason=reason)
                )
            except WorkerError as exc:
                # Out of the set, still `removing`: the next pass closes them (idempotent).
                log.warning("block_close_failed", ip_set=ip_set.label, reason=exc.reason, error=exc.message)
                continue
            for closed in closed_records:
                removed.append(closed)
                log.info(
                    "source_unblocked", network=closed.network, ip_set=ip_set.label, action=action, by=by
                )
                self._tell("unblocked", closed)
        if failures and not removed:
            raise RetryableError("; ".join(failures), reason="unblock_failed")
        return removed

    def _each(self, key: str, call: Callable[[], T]) -> T | None:
        """One record's store step, retried; a step that still fails leaves that record
        for the next pass (each step is idempotent) instead of failing the others."""
        try:
            return retrying_store(call)
        except WorkerError as exc:
            log.warning("block_step_failed", key=key, reason=exc.reason, error=exc.message)
            return None

    def _tell(self, what: Literal["blocked", "unblocked"], record: BlockRecord) -> None:
        if self.listener is None:
            return
        try:
            tell = self.listener.blocked if what == "blocked" else self.listener.unblocked
            tell(record)
        except Exception:
            # A failing notice never undoes or repeats the action it reports.
            log.exception("block_notice_failed", what=what, key=record.key)

    # ---- reconciling ---------------------------------------------------------------------

    def sync(self, *, repair: bool = True, removed_since: float = 0.0) -> SyncReport:
        """Compare the records with the IP sets; with ``repair``, write the sets to match
        the records (expired blocks out, missing ones in, ones we removed out again).
        Addresses a person put in a set are reported, never touched."""
        report = SyncReport()
        if repair and not self.dry_run:
            report.expired = [r.network for r in self.expire()]
        in_force = self.repo.blocks_in_force()
        removed = {r.key: r for r in self.repo.removed_blocks(since=removed_since)}
        for ip_set in dict.fromkeys(self.sets.values()):
            present = self.ip_sets.addresses(ip_set)
            mine = [r for r in in_force if r.ip_set.id == ip_set.id]
            ours = {r.network for r in mine}
            missing = sorted(r.network for r in mine if r.status == "active" and r.network not in present)
            stale = sorted(n for n in present if n not in ours and block_key(ip_set.id, n) in removed)
            foreign = sorted(n for n in present if n not in ours and n not in stale)
            report.missing += [f"{n} ({ip_set.name})" for n in missing]
            report.stale += [f"{n} ({ip_set.name})" for n in stale]
            report.foreign += [f"{n} ({ip_set.name})" for n in foreign]
            if repair and not self.dry_run and (missing or stale):
                if missing:
                    self.ip_sets.add(ip_set, missing)
                if stale:
                    self.ip_sets.remove(ip_set, stale)
                report.repaired = True
        return report


def retrying_store(call: Callable[[], T]) -> T:
    """A store call, retried after a transient fault (throttling, a 5xx): one fault must
    not cost a block its expiry slot. Only for idempotent calls (reads, conditional steps)."""
    retrying = Retrying(
        stop=stop_after_attempt(STORE_ATTEMPTS),
        wait=wait_exponential_jitter(multiplier=STORE_BACKOFF_S, max=1.0, jitter=STORE_BACKOFF_S),
        retry=retry_if_exception_type(RetryableError),
        reraise=True,
    )
    return retrying(call)

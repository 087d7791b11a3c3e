"""Incidents in the store's DynamoDB table.

A join is, on the fast path, one UpdateItem: the repository remembers each group's
current incident and writes conditionally on the version it remembers; a stale memory
costs nothing more, because the lost write hands back the item as it is
(``ReturnValuesOnConditionCheckFailure``) and the fold is redone against it. Opening
an incident is a conditional increment of the group's pointer, so two replicas racing
on an expired group both land in the one new incident.

Incidents carry ``mon_pk = "incident"`` and ``mon_sk = <last_seen>#<id>`` and so are
listed through the table's existing sparse time index.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import worker.platform.clock
from worker.errors import WorkerError
from worker.incidents.grouping import GroupKey
from worker.incidents.keys import CACHED_GROUPS, INDEX_PK, incident_id, pointer_key
from worker.incidents.milestones import DEFAULT_GROWTH_FACTOR
from worker.incidents.records import ChannelResult, IncidentRecord, IncidentStatus, Notice, cut_note
from worker.incidents.repo import DEFAULT_CLAIM_STALE_S, STATUS_TARGETS, JoiningRepo
from worker.incidents.results import IncidentNotFound, StatusConflict, VersionConflict
from worker.store.dynamodb.table import ConditionFailed, DynamoTable, Item, Update, from_item
from worker.store.keys import MONITORING_INDEX, iso_from_epoch, sort_time, ttl_after

if TYPE_CHECKING:
    from types_boto3_dynamodb.client import DynamoDBClient
    from types_boto3_dynamodb.type_defs import QueryInputTypeDef

# Written by the claim, notice and status operations only; a join never overwrites them,
# so a claim need not move the version (and never makes a join retry).
_NOT_JOINED = frozenset({"claimed", "pending_claims", "notices", "last_failure", "status_history"})
# Items per page when listing; the status filter runs on our side.
_LIST_PAGE = 100


class _Update(Update):
    """An Update that can also DELETE members from a set and write inside a map."""

    def __init__(self) -> None:
        super().__init__()
        self._delete: list[str] = []

    def delete_from_set(self, attr: str, *members: str) -> _Update:
        self._delete.append(f"{self.name(attr)} {self.value(set(members))}")
        return self

    def set_path(self, path: str, value: str) -> _Update:
        """SET a document path (placeholders already registered) to a value placeholder."""
        self._set.append(f"{path} = {value}")
        return self

    def remove_path(self, path: str) -> _Update:
        self._remove.append(path)
        return self

    def expression(self) -> str:
        expression = super().expression()
        if self._delete:
            expression = " ".join(filter(None, [expression, "DELETE " + ", ".join(self._delete)]))
        return expression


def _pending_path(update: Update, milestone: str) -> str:
    """The document path of ``milestone``'s entry in the pending claims map; milestone
    ids (``growth:100``) are not valid placeholder names, so the entry gets its own.
    """
    update.names["#pending_entry"] = milestone
    return f"{update.name('pending_claims')}.#pending_entry"


def _record(item: Item) -> IncidentRecord:
    return IncidentRecord.from_fields(from_item(item))


class DynamoIncidentRepo(JoiningRepo):
    """``DynamoIncidentRepo(table_name, client=None, ttl_days=30, quiet_s=3600,
    growth_factor=10.0, claim_stale_s=300, clock=worker.platform.clock.epoch)``; the table is the store's
    (``secops setup`` creates it).
    """

    def __init__(
        self,
        table_name: str,
        *,
        quiet_s: float,
        client: DynamoDBClient | None = None,
        ttl_days: int = 30,
        growth_factor: float = DEFAULT_GROWTH_FACTOR,
        claim_stale_s: float = DEFAULT_CLAIM_STALE_S,
        clock: Callable[[], float] = worker.platform.clock.epoch,
    ) -> None:
        super().__init__(
            quiet_s=quiet_s, growth_factor=growth_factor, claim_stale_s=claim_stale_s, clock=clock
        )
        self.table = DynamoTable(table_name, client=client, ttl_days=ttl_days, clock=clock)
        self._cache: OrderedDict[str, tuple[int, IncidentRecord]] = OrderedDict()
        self._cache_lock = threading.Lock()

    # ---- storage steps of the join -----------------------------------------------------

    def _current(self, group: GroupKey) -> tuple[int, IncidentRecord | None]:
        with self._cache_lock:
            cached = self._cache.get(group.hash)
        if cached is not None:
            return cached
        pointer = self.table._get_item(pointer_key(group.hash))
        if pointer is None:
            # No pointer until the group's second incident: the first is found by its id.
            first = self._load(incident_id(group.hash, 1))
            return (1, first) if first is not None else (0, None)
        seq = int(from_item(pointer)["seq"])
        return seq, self._load(incident_id(group.hash, seq))

    def _advance(self, group: GroupKey, seq: int) -> int:
        update = Update().set("seq", seq + 1).set("group", group.text).set("kind", "incident_group")
        condition = f"{update.name('seq')} = {update.value(seq, 'expected')}"
        if seq <= 1:
            # The first incident is written without a pointer (see JoiningRepo.join).
            condition = f"attribute_not_exists(pk) OR {condition}"
        try:
            self.table._update(pointer_key(group.hash), update, condition=condition, returns="NONE")
        except ConditionFailed as lost:
            if lost.old is None:
                raise WorkerError(
                    f"incident group {group.hash} lost its pointer", reason="incident_pointer_missing"
                ) from None
            return int(from_item(lost.old)["seq"])
        return seq + 1

    def _load(self, incident: str) -> IncidentRecord | None:
        item = self.table._get_item(incident)
        return _record(item) if item else None

    def _write(
        self, before: IncidentRecord | None, after: IncidentRecord, *, claims: Sequence[str] = ()
    ) -> IncidentRecord:
        update = _Update()
        for name, value in after.to_fields().items():
            if name not in _NOT_JOINED:
                update.set(name, value)
        now = self._clock()
        if before is None:
            # A claim sets one entry of this map, which needs the map to exist already.
            update.set("pending_claims", dict.fromkeys(claims, now))
        else:
            for n, milestone in enumerate(claims):
                update.names[f"#claim{n}"] = milestone
                update.set_path(f"{update.name('pending_claims')}.#claim{n}", update.value(now, "claimed_at"))
        if claims:
            update.add_to_set("claimed", *claims)
        update.set("kind", "incident").set("mon_pk", INDEX_PK)
        update.set("mon_sk", f"{sort_time(after.last_seen)}#{after.id}")
        update.set("ttl", ttl_after(after.open_until.timestamp(), self.table.ttl_days))
        if before is None:
            condition = "attribute_not_exists(pk)"
        else:
            condition = f"{update.name('version')} = {update.value(before.version, 'read_version')}"
        try:
            return _record(self.table._update(after.id, update, condition=condition))
        except ConditionFailed as lost:
            with self._cache_lock:
                self._cache.pop(after.group_hash, None)
            raise VersionConflict(_record(lost.old) if lost.old else None) from None

    def _remember(self, group: GroupKey, seq: int, record: IncidentRecord) -> None:
        with self._cache_lock:
            self._cache[group.hash] = (seq, record)
            self._cache.move_to_end(group.hash)
            while len(self._cache) > CACHED_GROUPS:
                self._cache.popitem(last=False)

    # ---- reads ---------------------------------------------------------------------------

    def get(self, incident: str) -> IncidentRecord | None:
        """One incident (a strongly consistent read), or None."""
        return self._load(incident)

    def list(
        self,
        *,
        status: IncidentStatus | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[IncidentRecord]:
        """Incidents whose last event is at or after ``since``, most recent first.

        Read through the table's time index, which DynamoDB updates asynchronously: a
        join of the last second may not show yet.
        """
        names = {"#pk": "mon_pk"}
        values: dict[str, Any] = {":pk": {"S": INDEX_PK}}
        condition = "#pk = :pk"
        if since is not None:
            names["#sk"] = "mon_sk"
            values[":since"] = {"S": sort_time(since)}
            condition += " AND #sk >= :since"
        params: QueryInputTypeDef = {
            "TableName": self.table.table_name,
            "IndexName": MONITORING_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": _LIST_PAGE,
        }
        found: list[IncidentRecord] = []
        while len(found) < limit:
            with self.table._translated("query"):
                page = self.table._client.query(**params)
            for item in page.get("Items", []):
                record = _record(item)
                if status is None or record.status == status:
                    found.append(record)
            if "LastEvaluatedKey" not in page:
                break
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    # ---- claims, notices, status -------------------------------------------------------

    def claim_milestone(self, incident: str, milestone: str) -> bool:
        now = self._clock()
        update = _Update()
        update.add_to_set("claimed", milestone)
        pending = _pending_path(update, milestone)
        update.set_path(pending, update.value(now, "now"))
        condition = (
            f"attribute_exists(pk) AND (NOT contains({update.name('claimed')}, "
            f"{update.value(milestone, 'milestone')}) OR "
            f"{pending} < {update.value(now - self.claim_stale_s, 'stale_before')})"
        )
        return self._conditional(incident, update, condition)

    def release_milestone(
        self, incident: str, milestone: str, *, failed: Sequence[ChannelResult] = ()
    ) -> bool:
        update = _Update().delete_from_set("claimed", milestone)
        update.remove_path(_pending_path(update, milestone))
        if failed:
            # One map, overwritten: a channel failing on every redelivery cannot grow the item.
            failure = Notice(milestone, iso_from_epoch(self._clock()), None, tuple(failed))
            update.set("last_failure", failure.to_dict())
        condition = f"contains({update.name('claimed')}, {update.value(milestone, 'milestone')})"
        return self._conditional(incident, update, condition)

    def record_notice(
        self,
        incident: str,
        milestone: str,
        message_id: str | None,
        *,
        channels: Sequence[ChannelResult] = (),
    ) -> None:
        notice = Notice(milestone, iso_from_epoch(self._clock()), message_id, tuple(channels)).to_dict()
        update = _Update()
        update.append("notices", notice)
        update.remove_path(_pending_path(update, milestone))
        if not self._conditional(incident, update, "attribute_exists(pk)"):
            raise IncidentNotFound(incident)

    def _conditional(self, incident: str, update: Update, condition: str) -> bool:
        """One conditional write that leaves the version alone; False if it lost, and
        IncidentNotFound when there is no such incident at all.
        """
        try:
            self.table._update(incident, update, condition=condition, returns="NONE")
        except ConditionFailed as lost:
            if lost.old is None:
                raise IncidentNotFound(incident) from None
            return False
        return True

    def set_status(
        self,
        incident: str,
        status: IncidentStatus,
        *,
        note: str = "",
        by: str = "",
        expected_status: IncidentStatus | None = None,
    ) -> IncidentRecord:
        current = self.get(incident)
        if current is None:
            raise IncidentNotFound(incident)
        if status not in STATUS_TARGETS[current.status] or (
            expected_status is not None and current.status != expected_status
        ):
            raise StatusConflict(current, status)
        stamp = iso_from_epoch(self._clock())
        change: Mapping[str, str] = {"status": status, "at": stamp, "by": by, "note": cut_note(note)}
        update = Update().set("status", status).append("status_history", change)
        update.increment("version").set("updated_at", stamp)
        # Conditional on the status it was read in: a concurrent ack or resolve wins
        # once; a concurrent join only moved the version, which this write moves again,
        # so that join retries and sees the new status.
        condition = f"{update.name('status')} = {update.value(current.status, 'read_status')}"
        try:
            return _record(self.table._update(incident, update, condition=condition))
        except ConditionFailed as lost:
            if lost.old is None:
                raise IncidentNotFound(incident) from None
            raise StatusConflict(_record(lost.old), status) from None

"""Per-object checkpoints of S3 log files: the record, its key, its lease rules.

One item per object version in the events table (``obj#sha256:<40 hex>``): how far the
read got (``position``, in frames of :class:`~secops_core.ingest.s3_logs.LogObjectReader`),
what it counted, the first bad lines, and a lease so two deliveries of one notification
never read the same object at once. Both backends (:mod:`worker.store.dynamodb.checkpoints`
and :class:`worker.store.memory.MemoryCheckpoints`) apply these rules in one atomic step
(docs/architecture.md, "Consumers").
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from secops_core.ingest.s3_logs import BadLine, ReadCounts
from worker.store.keys import iso_from_epoch

CHECKPOINT_PREFIX = "obj#sha256:"
CheckpointStatus = Literal["reading", "complete"]
# A finished object stays known this long, so a late duplicate notification or a
# backfill re-run finds it complete instead of reading it again.
CHECKPOINT_TTL_DAYS = 30


def checkpoint_key(bucket: str, key: str, version: str) -> str:
    """The item key of one object version; NUL cannot occur in a bucket name or a key."""
    digest = hashlib.sha256(f"{bucket}\0{key}\0{version}".encode()).hexdigest()[:40]
    return CHECKPOINT_PREFIX + digest


@dataclass(frozen=True)
class ObjectCheckpoint:
    bucket: str
    key: str
    version: str
    status: CheckpointStatus = "reading"
    # Frames of the object finished: their kept records are on the events queue.
    position: int = 0
    read: int = 0
    kept: int = 0
    skipped: int = 0
    bad: int = 0
    bad_lines: tuple[BadLine, ...] = ()
    # Records to keep that were copies of one already kept, or past a bound on kept records.
    duplicates: int = 0
    capped: int = 0
    # Records relevant but unable to page, counted in their windows (saved with this).
    counted: int = 0
    # The bounds the object reached (``inflated_bytes``, ``read_time``, ``kept_per_object`` ...).
    limits: tuple[str, ...] = ()
    # What the reader is doing and how far into the stream it is, as of the last save: a
    # read stuck in one place shows it here even while ``position`` cannot move.
    activity: str | None = None
    compressed_bytes: int = 0
    inflated_bytes: int = 0
    # Seconds spent reading it, over every attempt (the time bound is on this sum).
    read_s: float = 0.0
    updated_at: str | None = None
    lease_owner: str | None = None
    lease_expires_at: float = 0.0
    # How many reads started on it (1 unless a crash or a stop interrupted one).
    attempts: int = 0
    started_at: str | None = None
    completed_at: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def pk(self) -> str:
        return checkpoint_key(self.bucket, self.key, self.version)

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def counts(self) -> ReadCounts:
        return ReadCounts(
            self.read,
            self.kept,
            self.skipped,
            self.bad,
            list(self.bad_lines),
            self.duplicates,
            self.capped,
            list(self.limits),
            self.counted,
        )

    def advanced(self, position: int, counts: ReadCounts, **progress: Any) -> ObjectCheckpoint:
        """This checkpoint moved on to ``position``; ``counts`` are the totals so far, and
        ``progress`` what the reader is doing (``activity``, stream bytes, ``read_s``)."""
        return replace(
            self,
            position=position,
            read=counts.read,
            kept=counts.kept,
            skipped=counts.skipped,
            bad=counts.bad,
            bad_lines=tuple(counts.bad_lines),
            duplicates=counts.duplicates,
            capped=counts.capped,
            limits=tuple(counts.limits),
            counted=counts.counted,
            **progress,
        )

    def saved(
        self, *, owner: str, lease_s: int, complete: bool, release: bool, now: float
    ) -> ObjectCheckpoint:
        """This checkpoint as a save by ``owner`` at ``now`` leaves it: complete (no lease),
        released (the lease expired at once) or leased for ``lease_s`` more seconds."""
        if complete:
            return replace(
                self,
                status="complete",
                completed_at=iso_from_epoch(now),
                lease_owner=None,
                lease_expires_at=0.0,
            )
        return replace(self, lease_owner=owner, lease_expires_at=0.0 if release else now + lease_s)

    def to_item(self) -> dict[str, Any]:
        """The attributes both backends store (plain values; the lease is kept apart)."""
        return {
            "bucket": self.bucket,
            "object_key": self.key,
            "version": self.version,
            "status": self.status,
            "position": self.position,
            "read": self.read,
            "kept": self.kept,
            "skipped": self.skipped,
            "bad": self.bad,
            "bad_lines": [{"line": b.line, "reason": b.reason} for b in self.bad_lines],
            "duplicates": self.duplicates,
            "capped": self.capped,
            "counted": self.counted,
            "limits": list(self.limits),
            "activity": self.activity,
            "compressed_bytes": self.compressed_bytes,
            "inflated_bytes": self.inflated_bytes,
            "read_s": round(self.read_s, 3),
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ObjectCheckpoint:
        return cls(
            bucket=str(item["bucket"]),
            key=str(item["object_key"]),
            version=str(item["version"]),
            status="complete" if item.get("status") == "complete" else "reading",
            position=int(item.get("position", 0)),
            read=int(item.get("read", 0)),
            kept=int(item.get("kept", 0)),
            skipped=int(item.get("skipped", 0)),
            bad=int(item.get("bad", 0)),
            bad_lines=tuple(
                BadLine(int(b["line"]), str(b["reason"]))
                for b in item.get("bad_lines") or ()
                if isinstance(b, Mapping)
            ),
            duplicates=int(item.get("duplicates", 0)),
            capped=int(item.get("capped", 0)),
            counted=int(item.get("counted", 0)),
            limits=tuple(str(name) for name in item.get("limits") or ()),
            activity=item.get("activity") or None,
            compressed_bytes=int(item.get("compressed_bytes", 0)),
            inflated_bytes=int(item.get("inflated_bytes", 0)),
            read_s=float(item.get("read_s", 0) or 0),
            updated_at=item.get("updated_at") or None,
            lease_owner=item.get("lease_owner") or None,
            lease_expires_at=float(item.get("lease_expires_at", 0) or 0),
            attempts=int(item.get("attempts", 0)),
            started_at=item.get("started_at"),
            completed_at=item.get("completed_at"),
        )
